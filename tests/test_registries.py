"""One test per registry kind that is not covered elsewhere: every dataset and every strategy, tiny."""

import numpy as np
import pytest
import torch

from polymodal.data.base import build_dataset
from polymodal.models import build_model
from polymodal.registries import DATASETS, STRATEGIES
from polymodal.strategies.base import StepContext
from polymodal.tasks import DEFAULT_TASK, TASKS, get_task

from .strategies._baselines import make_teacher_run


@pytest.mark.parametrize("name", DATASETS.names())
def test_every_dataset_serves_valid_batches(name):
    entry = DATASETS.get(name)
    try:
        ds = build_dataset(name, "val", **entry.tiny)
    except ImportError as e:  # a dataset read through an optional extra that is not installed
        if "pip install 'polymodal[" not in str(e):
            raise
        pytest.skip(str(e))
    except FileNotFoundError as e:  # a published dataset not prepared here (`polymodal prepare`; tests/data/ cover it)
        if "prepared data is absent" not in str(e):
            raise
        pytest.skip(str(e))
    task = get_task(ds.task)
    assert len(ds) > 0 and len(ds.labels) == len(ds)
    task.check_labels(ds.labels, ds.num_outputs, name)  # the task's own label check: shape, dtype, values
    batch = ds.collate_fn()([ds[i] for i in range(min(4, len(ds)))])
    batch.validate(ds.schema)
    assert set(batch.inputs) == {m.name for m in ds.schema}
    task.check_labels(batch.label.numpy(), ds.num_outputs, f"{name} batch")  # and so do the collated labels
    np.testing.assert_array_equal(task.read_targets(batch.label.numpy()), ds.labels[batch.index.numpy()])
    assert ds.provenance


def _task_for(entry) -> str:
    """The first task (classification first) that the strategy can train, by its requirements and outputs."""
    for task in (DEFAULT_TASK, *TASKS.names()):
        capabilities = get_task(task).capabilities
        if entry.factory.provides in capabilities and entry.factory.requirements(entry.tiny) <= capabilities:
            return task
    raise AssertionError(f"strategy {entry.name!r} fits no registered task")


@pytest.mark.parametrize("name", STRATEGIES.names())
def test_every_strategy_takes_a_training_step(name, tmp_path):
    entry = STRATEGIES.get(name)
    torch.manual_seed(0)
    ds = build_dataset("synthetic", "train", size=32, task=_task_for(entry))
    model = build_model(ds.schema, ds.num_outputs, fusion=entry.factory.default_fusion, width=8)
    kwargs = dict(entry.tiny)
    if name == "umt":  # distils from finished unimodal runs: give it two (untrained) teachers
        teacher = build_model(ds.schema, ds.num_outputs, fusion="late", width=8)
        kwargs["teachers"] = {m: str(make_teacher_run(tmp_path / f"teacher-{m}", teacher)) for m in ds.modalities}
    strategy = STRATEGIES.create(name, **kwargs)
    strategy.setup(model, ds)
    opt = torch.optim.SGD(model.parameters(), lr=0.05)

    def step(params=None, set_to_none=True):
        opt.step()
        opt.zero_grad(set_to_none=set_to_none)
        return True

    before = [p.detach().clone() for p in model.parameters()]
    strategy.on_epoch_start(model, 0)
    batch = ds.collate_fn()([ds[i] for i in range(16)])
    ctx = StepContext(epoch=0, batch_idx=0, batches_per_epoch=2, optimizer=opt, backward=lambda loss: loss.backward(),
                      step=step, zero_grad=lambda s: opt.zero_grad(set_to_none=s), all_reduce_mean=lambda t: t)
    logs = strategy.training_step(model, batch, ctx)
    assert torch.isfinite(torch.as_tensor(logs["loss"], dtype=torch.float32))
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))
    # as the engine does before every evaluation (a rule fitted on held-out rows fits here: the batch stands in)
    strategy.prepare_evaluation(model, lambda: [batch], 1, val_batches=lambda: [batch])
    with torch.no_grad():
        out = strategy.predict(model.eval(), batch)
    assert out.logits.shape == (16, ds.num_outputs) and torch.isfinite(out.logits).all()
