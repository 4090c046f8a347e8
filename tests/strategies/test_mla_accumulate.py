"""MLA with gradient accumulation, and the reference grad mode with three modalities."""

import pytest
import torch
from safetensors.torch import load_file

from polymodal.data.batch import Batch
from polymodal.data.schema import Modality
from polymodal.engine import train
from polymodal.models import build_model
from polymodal.strategies.base import StepContext
from polymodal.strategies.mla import MLA

from ..engine._helpers import tiny_config

NO_DROPOUT = ["model.encoders.a.dropout=0.0", "model.encoders.b.dropout=0.0"]


def _weights(run_dir):
    return load_file(str(run_dir / "checkpoints" / "last" / "model.safetensors"))


@pytest.mark.slow
@pytest.mark.parametrize("hgm", [False, True])
def test_accumulating_two_half_batches_equals_one_whole_batch(tmp_path, hgm):
    common = ["strategy.name=mla", "model.fusion=shared_head", f"strategy.args.hgm={str(hgm).lower()}",
              "trainer.max_epochs=2", "optim.name=sgd", "optim.lr=0.05", *NO_DROPOUT]
    whole = train(tiny_config(tmp_path, "name=whole", "data.batch_size=16", *common))
    halves = train(tiny_config(tmp_path, "name=halves", "data.batch_size=8", "optim.accumulate=2", *common))
    a, b = _weights(whole.run_dir), _weights(halves.run_dir)
    assert set(a) == set(b)
    for k in a:
        torch.testing.assert_close(b[k], a[k], atol=2e-5, rtol=1e-4, msg=k)
    # the comparison can fail: small batches without accumulation end elsewhere
    small = _weights(train(tiny_config(tmp_path, "name=small", "data.batch_size=8", *common)).run_dir)
    assert any(not torch.allclose(small[k], a[k], atol=1e-3) for k in a)


def _three_modality_setup():
    torch.manual_seed(0)
    schema = tuple(Modality(m, "tabular", (5,)) for m in ("a", "b", "c"))
    model = build_model(schema, 3, fusion="shared_head", width=8, encoders={m: {"dropout": 0.0} for m in "abc"})
    g = torch.Generator().manual_seed(1)
    batch = Batch(inputs={m: torch.randn(12, 5, generator=g) for m in "abc"},
                  present={m: torch.ones(12, dtype=torch.bool) for m in "abc"},
                  label=torch.randint(0, 3, (12,), generator=g), index=torch.arange(12))
    mla = MLA(grad_mode="reference", hgm=False)
    mla.setup(model, None)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-3)
    return model, batch, mla, opt


def test_reference_mode_leaves_an_encoder_alone_until_its_step_comes():
    model, batch, mla, opt = _three_modality_setup()
    snapshots = []

    def step(params=None, set_to_none=True, now=False):
        opt.step()
        opt.zero_grad(set_to_none=set_to_none)
        snapshots.append([p.detach().clone() for p in model.encoders["c"].parameters()])
        return True

    ctx = StepContext(epoch=0, batch_idx=0, batches_per_epoch=10, optimizer=opt, backward=lambda loss: loss.backward(),
                      step=step, zero_grad=lambda set_to_none: opt.zero_grad(set_to_none=set_to_none),
                      all_reduce_mean=lambda t: t)
    mla.training_step(model, batch, ctx)  # batch 1: every encoder steps and gets a momentum buffer
    assert all(p.grad is None for p in model.parameters())  # the reference clears at the end of a batch
    before = [p.detach().clone() for p in model.encoders["c"].parameters()]
    snapshots.clear()
    ctx.batch_idx = 1
    mla.training_step(model, batch, ctx)  # batch 2: steps a, b, then c
    for k in (0, 1):  # after the steps of a and b, c has not moved (no gradient: SGD skips it)
        assert all(torch.equal(x, y) for x, y in zip(before, snapshots[k], strict=True)), f"moved at step {k + 1}"
    assert any(not torch.equal(x, y) for x, y in zip(before, snapshots[2], strict=True))  # its own step moves it


def test_hgm_rescale_keeps_the_projected_direction_at_the_unprojected_norm():
    torch.manual_seed(0)
    g = torch.randn(5, 8)
    plain, rescaled = MLA(hgm_rescale=False), MLA(hgm_rescale=True)
    schema = tuple(Modality(m, "tabular", (5,)) for m in ("a", "b"))
    model = build_model(schema, 5, fusion="shared_head", width=8)
    for s in (plain, rescaled):
        s.setup(model, None)
        for _ in range(3):
            s.projector.update(torch.randn(8), 0.05)
        s.projector.P = plain.projector.P.clone()
    p, r = plain._project(g), rescaled._project(g)
    assert torch.linalg.vector_norm(p) < 0.5 * torch.linalg.vector_norm(g)  # the normalised P shrinks the step
    assert torch.linalg.vector_norm(r) == pytest.approx(float(torch.linalg.vector_norm(g)), rel=1e-5)
    torch.testing.assert_close(r / torch.linalg.vector_norm(r), p / torch.linalg.vector_norm(p))
