import json

import pytest
import torch
from torch import nn

from polymodal.engine.checkpoint import (
    Checkpoint,
    checkpoint_exists,
    from_tree,
    load_checkpoint,
    save_checkpoint,
    to_tree,
)
from polymodal.engine.seeding import rng_state, seed_everything, set_rng_state


def _trained(opt_name: str):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 3), nn.Linear(3, 2))
    opt = {"sgd": lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9),
           "adamw": lambda p: torch.optim.AdamW(p, lr=0.01)}[opt_name](model.parameters())
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    for _ in range(2):
        model(torch.randn(5, 4)).pow(2).mean().backward()
        opt.step()
        opt.zero_grad()
        sched.step()
    return model, opt, sched


def test_tree_round_trip_keeps_types():
    obj = {"a": (1, 2.5, None), 3: [torch.arange(3), {"x": True}], "s": "text"}
    tensors = {}
    tree = to_tree(obj, tensors, "root")
    json.dumps(tree)  # JSON-able
    back = from_tree(json.loads(json.dumps(tree)), tensors)
    assert back["a"] == (1, 2.5, None) and back["s"] == "text" and back[3][1] == {"x": True}
    assert torch.equal(back[3][0], torch.arange(3))
    with pytest.raises(TypeError, match="holds a object"):
        to_tree({"bad": object()}, {}, "root")


@pytest.mark.parametrize("opt_name", ["sgd", "adamw"])
def test_optimizer_and_scheduler_state_round_trip(tmp_path, opt_name):
    model, opt, sched = _trained(opt_name)
    save_checkpoint(tmp_path / "ck", Checkpoint(model.state_dict(), opt.state_dict(), sched.state_dict(),
                                                {"buf": torch.ones(2), "count": 3}, {"epoch": 2}))
    ck = load_checkpoint(tmp_path / "ck")
    assert ck.state["epoch"] == 2 and ck.strategy["count"] == 3 and torch.equal(ck.strategy["buf"], torch.ones(2))
    model2, opt2, sched2 = _trained(opt_name)
    # continue both from the same state: identical parameters afterwards
    model2.load_state_dict(ck.model)
    opt2.load_state_dict(ck.optimizer)
    sched2.load_state_dict(ck.scheduler)
    x = torch.randn(5, 4)
    for m, o, s in ((model, opt, sched), (model2, opt2, sched2)):
        m(x).pow(2).mean().backward()
        o.step()
        s.step()
    for p, q in zip(model.parameters(), model2.parameters(), strict=True):
        assert torch.equal(p, q)
    assert sched2.get_last_lr() == sched.get_last_lr()


def test_interrupted_swap_keeps_a_checkpoint(tmp_path):
    path = tmp_path / "last"
    save_checkpoint(path, Checkpoint({"w": torch.zeros(2)}, state={"epoch": 1}))
    save_checkpoint(path, Checkpoint({"w": torch.ones(2)}, state={"epoch": 2}))
    assert load_checkpoint(path).state["epoch"] == 2
    assert not (tmp_path / ".last.old").exists() and not (tmp_path / ".last.tmp").exists()
    # a kill between "old moved away" and "new moved in": the backup is used
    path.rename(tmp_path / ".last.old")
    (tmp_path / ".last.tmp").mkdir()  # a half-written new checkpoint is ignored
    assert checkpoint_exists(path)
    assert load_checkpoint(path).state["epoch"] == 2
    save_checkpoint(path, Checkpoint({"w": torch.full((2,), 3.0)}, state={"epoch": 3}))
    assert torch.equal(load_checkpoint(path).model["w"], torch.full((2,), 3.0))
    with pytest.raises(FileNotFoundError, match="no checkpoint at"):
        load_checkpoint(tmp_path / "missing")


def test_rng_state_round_trip_through_json():
    import random

    import numpy as np

    seed_everything(5, deterministic=False)
    state = json.loads(json.dumps(rng_state()))
    expected = (random.random(), np.random.rand(), torch.rand(1))
    set_rng_state(state)
    assert (random.random(), np.random.rand(), torch.rand(1)) == expected
