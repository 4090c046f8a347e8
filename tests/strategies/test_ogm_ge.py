import math

import pytest
import torch
import torch.nn.functional as F

from polymodal.strategies.ogm_ge import OGMGE, ogm_coefficients

from ._baselines import Ctx, full_batch, make_setup, plain_grads


def _official(score_a: float, score_v: float, alpha: float) -> tuple[float, float]:
    """Transcription of the official main.py (ratio_v = score_v / score_a, Eq. 10)."""
    ratio_v = score_v / score_a
    ratio_a = 1 / ratio_v
    if ratio_v > 1:
        return 1.0, 1 - math.tanh(alpha * max(ratio_v, 0.0))
    return 1 - math.tanh(alpha * max(ratio_a, 0.0)), 1.0


def test_coefficient_hand_example():
    ratios, coeffs = ogm_coefficients({"audio": 6.0, "visual": 3.0}, alpha=0.8)
    assert ratios == {"audio": 2.0, "visual": 0.5}
    assert coeffs["audio"] == pytest.approx(1 - math.tanh(1.6))  # 0.0783...
    assert coeffs["visual"] == 1.0


@pytest.mark.parametrize("seed", range(5))
def test_two_modalities_match_the_official_rule(seed):
    g = torch.Generator().manual_seed(seed)
    a, v = (float(x) for x in torch.rand(2, generator=g) * 10 + 0.1)
    _, coeffs = ogm_coefficients({"a": a, "v": v}, alpha=0.3)
    assert (coeffs["a"], coeffs["v"]) == pytest.approx(_official(a, v, 0.3))


def test_three_modalities_compare_with_the_mean_of_the_others():
    ratios, coeffs = ogm_coefficients({"a": 3.0, "b": 1.0, "c": 2.0}, alpha=0.5)
    assert ratios == pytest.approx({"a": 2.0, "b": 0.4, "c": 1.0})
    assert coeffs == pytest.approx({"a": 1 - math.tanh(1.0), "b": 1.0, "c": 1.0})


def _scores(model, batch):
    with torch.no_grad():
        out = model(batch)
        return {m: float(torch.softmax(out.per_modality[m], 1).gather(1, batch.label[:, None]).sum()) for m in "ab"}


def test_ogm_scales_encoder_weight_gradients_by_the_coefficient():
    strategy = OGMGE(alpha=0.8, ge=False)
    model, ds = make_setup(strategy)
    model.eval()  # no dropout: the direct computation below sees the same forward
    batch = full_batch(ds, 32)
    _, coeffs = ogm_coefficients(_scores(model, batch), 0.8)
    expected = plain_grads(model, F.cross_entropy(model(batch).logits, batch.label))
    ctx = Ctx(model)
    logs = strategy.training_step(model, batch, ctx.make())
    got = ctx.captured[0]
    assert min(coeffs.values()) < 1.0  # one modality dominates this batch
    for name, g in got.items():
        m = name.split(".")[1] if name.startswith("encoders.") else None
        scale = coeffs[m] if m is not None and g.ndim >= 2 else 1.0  # biases and heads untouched
        assert torch.allclose(g, expected[name] * scale, atol=1e-6), name
    assert logs["coeff/a"] == pytest.approx(coeffs["a"]) and logs["coeff/b"] == pytest.approx(coeffs["b"])


def test_no_modulation_outside_the_window():
    strategy = OGMGE(modulation_starts=1, modulation_ends=2)
    model, ds = make_setup(strategy)
    model.eval()
    batch = full_batch(ds, 32)
    expected = plain_grads(model, F.cross_entropy(model(batch).logits, batch.label))
    ctx = Ctx(model)
    strategy.training_step(model, batch, ctx.make(epoch=3))
    assert all(torch.allclose(g, expected[n], atol=1e-6) for n, g in ctx.captured[0].items())


def _one_step(strategy, state=None):
    model, ds = make_setup(None)  # same seed: same initial model for every call
    strategy.setup(model, ds)
    model.eval()
    if state is not None:
        strategy.load_state_dict(state)
    ctx = Ctx(model)
    logs = strategy.training_step(model, full_batch(ds, 32), ctx.make())
    return ctx.captured[0], logs


def test_ge_noise_has_the_gradient_std_and_is_reproducible():
    grads, logs = _one_step(OGMGE(seed=3))
    again, _ = _one_step(OGMGE(seed=3))
    assert all(torch.equal(grads[n], again[n]) for n in grads)  # same seed, same noise
    noiseless, _ = _one_step(OGMGE(ge=False))
    slow = "a" if logs["coeff/a"] == 1.0 else "b"  # coefficient 1: noise is added all the same
    name = f"encoders.{slow}.net.0.weight"
    noise = grads[name] - noiseless[name]
    assert float(noise.std()) == pytest.approx(float(noiseless[name].std()), rel=0.3)
    assert torch.equal(grads[f"encoders.{slow}.net.0.bias"], noiseless[f"encoders.{slow}.net.0.bias"])


def test_ge_noise_generator_resumes_exactly():
    first = OGMGE(seed=3)
    _one_step(first)  # advances the noise generator
    state = first.state_dict()
    continued, _ = _one_step(first)
    resumed, _ = _one_step(OGMGE(seed=3), state)
    fresh, _ = _one_step(OGMGE(seed=3))
    assert all(torch.equal(continued[n], resumed[n]) for n in continued)
    assert not all(torch.equal(continued[n], fresh[n]) for n in continued)


def test_modulated_scope_adds_noise_only_to_the_slowed_encoder():
    strategy = OGMGE(ge=True, ge_scope="modulated")
    model, ds = make_setup(strategy)
    model.eval()
    batch = full_batch(ds, 32)
    _, coeffs = ogm_coefficients(_scores(model, batch), 0.8)
    fast = min(coeffs, key=coeffs.get)
    slow = "b" if fast == "a" else "a"
    expected = plain_grads(model, F.cross_entropy(model(batch).logits, batch.label))
    ctx = Ctx(model)
    strategy.training_step(model, batch, ctx.make())
    got = ctx.captured[0]
    assert torch.allclose(got[f"encoders.{slow}.net.0.weight"], expected[f"encoders.{slow}.net.0.weight"], atol=1e-6)
    assert not torch.allclose(
        got[f"encoders.{fast}.net.0.weight"], coeffs[fast] * expected[f"encoders.{fast}.net.0.weight"], atol=1e-6
    )
