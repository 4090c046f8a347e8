import numpy as np
import pytest
import torch

from polymodal.data.base import build_dataset
from polymodal.models import build_model
from polymodal.strategies.base import StepContext
from polymodal.strategies.mla import MLA, HGMProjector


def _naive_update(P: np.ndarray, r: np.ndarray, alpha: float, normalize: bool) -> np.ndarray:
    d = P.shape[0]
    k = [sum(P[i, j] * r[j] for j in range(d)) for i in range(d)]
    denom = alpha + sum(r[i] * k[i] for i in range(d))
    out = np.array([[P[i, j] - k[i] * k[j] / denom for j in range(d)] for i in range(d)])
    if normalize:
        out = out / np.sqrt((out**2).sum())
    return out


@pytest.mark.parametrize("normalize", [False, True])
def test_projector_matches_naive_dense_implementation(normalize):
    g = np.random.default_rng(0)
    d = 6
    proj = HGMProjector(d, normalize=normalize)
    P = np.eye(d)
    for step in range(4):
        r = g.standard_normal(d)
        alpha = 0.1 ** (1 + step / 4)
        proj.update(torch.tensor(r, dtype=torch.float32), alpha)
        P = _naive_update(P, r, alpha, normalize)
        assert np.allclose(proj.P.numpy(), P, atol=1e-5)
    if normalize:
        assert float(torch.linalg.matrix_norm(proj.P)) == pytest.approx(1.0, abs=1e-5)
    assert not proj.P.requires_grad


def test_projected_update_keeps_analytic_fraction_along_absorbed_direction():
    """After a step on A, B's projected head update changes W r_A^T by alpha / (alpha + r_A P r_A^T)
    of what the unprojected update would (bias excluded)."""
    g = torch.Generator().manual_seed(1)
    d, c = 8, 5
    proj = HGMProjector(d, normalize=False)
    for _ in range(3):  # some history so that P is not the identity
        proj.update(torch.randn(d, generator=g), 0.05)
    r_a = torch.randn(d, generator=g)
    P_before = proj.P.clone()
    alpha = 0.07
    proj.update(r_a, alpha)
    frac = alpha / (alpha + float(r_a @ P_before @ r_a))
    grad_b = torch.randn(c, d, generator=g)  # head weight gradient from modality B's batch
    unprojected = grad_b @ P_before.T @ r_a  # what the update along r_A was before absorbing r_A
    projected = proj.project(grad_b) @ r_a
    assert torch.allclose(projected, frac * unprojected, atol=1e-5)
    assert projected.abs().max() <= frac * unprojected.abs().max() + 1e-6


class _Ctx:
    def __init__(self, model, lr=0.1, momentum=0.9, weight_decay=1e-3):
        self.opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay)

    def make(self, batch_idx=0, n=10):
        def step(params=None, set_to_none=True):
            self.opt.step()
            self.opt.zero_grad(set_to_none=set_to_none)
            return True

        return StepContext(
            epoch=0, batch_idx=batch_idx, batches_per_epoch=n, optimizer=self.opt,
            backward=lambda loss: loss.backward(), step=step,
            zero_grad=lambda set_to_none: self.opt.zero_grad(set_to_none=set_to_none),
            all_reduce_mean=lambda t: t,
        )


def _setup(**mla_args):
    torch.manual_seed(0)
    ds = build_dataset("synthetic", "train", size=32)
    batch = ds.collate_fn()([ds[i] for i in range(16)])
    model = build_model(ds.schema, ds.num_outputs, fusion="shared_head", width=8)
    mla = MLA(**mla_args)
    mla.setup(model, ds)
    return model, batch, mla


def _snapshot(module):
    return [p.detach().clone() for p in module.parameters()]


def test_hgm_off_gives_plain_gradient_and_on_projects_it():
    model, batch, mla = _setup(hgm=False)
    captured = {}
    ctx = _Ctx(model).make()
    inner = ctx.step

    def capture_then_step(params=None, set_to_none=True):
        captured.setdefault("g", model.fusion.head.weight.grad.clone())
        return inner(params, set_to_none)

    ctx.step = capture_then_step
    mla.training_step(model, batch, ctx)
    model2, batch2, _ = _setup(hgm=False)
    out = model2(batch2, modalities=["a"])
    torch.nn.functional.cross_entropy(out.per_modality["a"], batch2.label).backward()
    assert torch.allclose(captured["g"], model2.fusion.head.weight.grad, atol=1e-6)

    model3, batch3, mla3 = _setup(hgm=True)
    mla3.steps = 1  # not the very first step: P absorbs the batch mean before projecting
    grads = []
    ctx3 = _Ctx(model3).make()
    inner3 = ctx3.step
    ctx3.step = lambda params=None, set_to_none=True: (grads.append(model3.fusion.head.weight.grad.clone()), inner3())
    mla3.training_step(model3, batch3, ctx3)
    assert not torch.allclose(grads[0], captured["g"])
    assert mla3.steps == 3


def test_clear_mode_moves_only_the_current_encoder_and_zero_mode_moves_others():
    model, batch, mla = _setup(grad_mode="clear")
    ctx = _Ctx(model).make()
    mla.training_step(model, batch, ctx)  # both encoders get momentum buffers
    before_b = _snapshot(model.encoders["b"])
    mla.order = ["a"]  # a step on "a" only
    mla.training_step(model, batch, ctx)
    assert all(torch.equal(x, y) for x, y in zip(before_b, model.encoders["b"].parameters(), strict=True))

    model, batch, mla = _setup(grad_mode="zero")
    ctx = _Ctx(model).make()
    mla.training_step(model, batch, ctx)
    before_b = _snapshot(model.encoders["b"])
    mla.order = ["a"]
    mla.training_step(model, batch, ctx)
    moved = [not torch.equal(x, y) for x, y in zip(before_b, model.encoders["b"].parameters(), strict=True)]
    assert any(moved)  # momentum + weight decay keep moving b during a's step


def test_modality_absent_from_batch_makes_no_step_and_no_hgm_update():
    model, batch, mla = _setup()
    batch.present["b"][:] = False
    ctx = _Ctx(model).make()
    mla.steps = 1
    P0 = mla.projector.P.clone()
    before_b = _snapshot(model.encoders["b"])
    logs = mla.training_step(model, batch, ctx)
    assert mla.steps == 2 and "loss/b" not in logs and "loss/a" in logs
    assert all(torch.equal(x, y) for x, y in zip(before_b, model.encoders["b"].parameters(), strict=True))
    assert not torch.equal(P0, mla.projector.P)  # updated once, for "a"


def test_step_uses_only_rows_that_have_the_modality():
    model, batch, mla = _setup()
    batch.present["a"][::2] = False
    batch.inputs["a"][::2] = float("nan")  # never read
    logs = mla.training_step(model, batch, _Ctx(model).make())
    assert torch.isfinite(torch.as_tensor(logs["loss/a"]))
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_predict_uses_fusion_rule_and_config_errors():
    model, batch, mla = _setup(fusion_rule="fixed", fusion_weights={"a": 0.55, "b": 0.45})
    out = mla.predict(model, batch)
    per = out.per_modality
    assert torch.allclose(out.logits, 0.55 * per["a"] + 0.45 * per["b"], atol=1e-6)
    with pytest.raises(ValueError, match="grad_mode='sometimes'"):
        MLA(grad_mode="sometimes")
    with pytest.raises(ValueError, match="fusion_rule='vote'"):
        MLA(fusion_rule="vote")
    ds = build_dataset("synthetic", "train", size=16)
    late = build_model(ds.schema, ds.num_outputs, fusion="late", width=8)
    with pytest.raises(ValueError, match="model.fusion=shared_head"):
        MLA().setup(late, ds)


def test_state_round_trip():
    model, batch, mla = _setup(hgm_mean="running")
    mla.training_step(model, batch, _Ctx(model).make())
    mla.training_step(model, batch, _Ctx(model).make(batch_idx=1))
    state = mla.state_dict()
    fresh = MLA(hgm_mean="running")
    fresh.setup(model, None)
    fresh.load_state_dict(state)
    assert fresh.steps == mla.steps and torch.equal(fresh.projector.P, mla.projector.P)
    assert set(fresh._running) == {"a", "b"}
