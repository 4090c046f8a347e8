import pytest
import torch
from lightning_fabric import Fabric

from polymodal.data.datasets.synthetic import SyntheticDataset
from polymodal.engine.data import make_loader
from polymodal.engine.step import NonFiniteLoss, Stepper
from polymodal.models import build_model
from polymodal.strategies.joint import Joint

ENCODERS = {"a": {"dropout": 0.0}, "b": {"dropout": 0.0}}  # LayerNorm only: no batch statistics


def _setup(accumulate: int, grad_clip: float | None = None):
    torch.manual_seed(0)
    ds = SyntheticDataset("train", size=16)
    model = build_model(ds.schema, 4, fusion="late", encoders=ENCODERS, width=8)
    opt = torch.optim.SGD(model.parameters(), lr=0.5, momentum=0.0)
    fabric = Fabric(accelerator="cpu", devices=1)
    model, opt = fabric.setup(model, opt)
    return ds, model, Stepper(fabric, model, opt, accumulate=accumulate, grad_clip=grad_clip)


def _batches(ds, size):
    return list(make_loader(ds, batch_size=size, seed=0, shuffle=False))


def test_accumulate_two_halves_equals_one_full_batch():
    ds, full_model, full = _setup(accumulate=1)
    _, acc_model, acc = _setup(accumulate=2)
    strategy = Joint()
    (big,) = _batches(ds, 16)
    strategy.training_step(full_model, big, full.context(0, 0, 1, {}))
    stepped = []
    for i, half in enumerate(_batches(ds, 8)):
        before = [p.detach().clone() for p in acc_model.parameters()]
        strategy.training_step(acc_model, half, acc.context(0, i, 2, {}))
        stepped.append(any(not torch.equal(b, p) for b, p in zip(before, acc_model.parameters(), strict=True)))
    assert stepped == [False, True] and acc.optimizer_steps == full.optimizer_steps == 1
    for p, q in zip(full_model.parameters(), acc_model.parameters(), strict=True):
        torch.testing.assert_close(p, q, atol=1e-6, rtol=0)
    assert all(p.grad is None for p in acc_model.parameters())  # cleared after the real step


def test_flush_steps_pending_gradients():
    ds, model, stepper = _setup(accumulate=3)
    (batch,) = _batches(ds, 16)
    Joint().training_step(model, batch, stepper.context(0, 0, 1, {}))
    assert stepper.optimizer_steps == 0
    assert stepper.flush() == 1 and stepper.optimizer_steps == 1


def test_gradient_clipping_bounds_the_update():
    ds, model, stepper = _setup(accumulate=1, grad_clip=1e-3)
    (batch,) = _batches(ds, 16)
    before = [p.detach().clone() for p in model.parameters()]
    Joint().training_step(model, batch, stepper.context(0, 0, 1, {}))
    delta = torch.cat([(p.detach() - b).flatten() for p, b in zip(model.parameters(), before, strict=True)])
    assert float(delta.norm()) == pytest.approx(0.5 * 1e-3, rel=1e-3)  # lr * max_norm


def test_per_parameter_set_accumulation_counts():
    ds, model, stepper = _setup(accumulate=2)
    enc_a = list(model.encoders["a"].parameters())
    enc_b = list(model.encoders["b"].parameters())
    assert stepper.step(enc_a) is False and stepper.step(enc_b) is False
    assert stepper.step(enc_a) is True and stepper.step(enc_b) is True


def test_non_finite_loss_raises_before_backward():
    ds, model, stepper = _setup(accumulate=1)
    (batch,) = _batches(ds, 16)
    loss = model(batch).logits.sum() * float("nan")
    with pytest.raises(NonFiniteLoss):
        stepper.backward(loss)
    assert all(p.grad is None for p in model.parameters())
