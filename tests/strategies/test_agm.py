import math

import pytest
import torch
import torch.nn.functional as F

from polymodal.strategies.agm import AGM, agm_coefficients, shapley_values

from ._baselines import Ctx, full_batch, make_setup, plain_grads


def test_shapley_matches_the_official_two_and_three_modality_forms():
    g = torch.Generator().manual_seed(0)
    v = {k: torch.randn(4, 3, generator=g) for k in ("a", "b", "ab")}
    values = {frozenset("a"): v["a"], frozenset("b"): v["b"], frozenset("ab"): v["ab"]}
    phi = shapley_values(values, ["a", "b"])
    assert torch.allclose(phi["a"], 0.5 * (v["ab"] - v["b"] + v["a"]))  # official GradMod_2
    assert torch.allclose(phi["b"], 0.5 * (v["ab"] - v["a"] + v["b"]))
    w = {k: torch.randn(4, 3, generator=g) for k in ("A", "V", "T", "AV", "AT", "VT", "AVT")}
    values3 = {frozenset(k): t for k, t in w.items()}
    phi3 = shapley_values(values3, ["A", "V", "T"])
    official_a = (w["AVT"] - w["VT"]) / 3 + (w["AV"] - w["V"] + w["AT"] - w["T"]) / 6 + w["A"] / 3
    assert torch.allclose(phi3["A"], official_a, atol=1e-6)
    assert torch.allclose(phi3["A"] + phi3["V"] + phi3["T"], w["AVT"], atol=1e-6)  # efficiency


def test_coefficients_match_the_official_loops():
    s_a, s_v, r_a, r_v, alpha = 0.9, 1.4, 1.1, 1.2, 0.5
    ratio, eta, k = agm_coefficients({"a": s_a, "v": s_v}, {"a": r_a, "v": r_v}, alpha, clip=10)
    # official CREMA-D loop: ratio_a = exp(s_v - s_a), optimal_ratio_a = exp(r_v - r_a)
    assert ratio["a"] == pytest.approx(math.exp(s_v - s_a)) and eta["a"] == pytest.approx(math.exp(r_v - r_a))
    assert k["a"] == pytest.approx(math.exp(alpha * min(math.exp(r_v - r_a) - math.exp(s_v - s_a), 10)))
    assert k["a"] < 1 < k["v"]  # audio learns faster than its average: slowed; visual sped up
    s = {"a": 0.5, "v": 1.0, "t": 2.0}
    ratio3, _, _ = agm_coefficients(s, {m: 0.0 for m in s}, alpha, clip=7)
    mean = sum(s.values()) / 3
    assert ratio3["t"] == pytest.approx(math.exp((mean - s["t"]) * 3 / 2))  # official 3-modality loop
    _, _, capped = agm_coefficients({"a": 1.0, "v": 1.0}, {"a": 0.0, "v": 5.0}, 1.0, clip=2.0)  # eta - r = e^5 - 1
    assert capped["a"] == pytest.approx(math.exp(2.0))


def test_step_scales_each_encoder_by_its_coefficient_and_tracks_running_scores():
    strategy = AGM(alpha=0.7)
    model, ds = make_setup(strategy)
    model.eval()
    batch = full_batch(ds, 32)
    out = model(batch)
    expected = plain_grads(model, F.cross_entropy(out.logits, batch.label))
    # late (sum) fusion: the Shapley response of a modality is its own head's logits
    scores = {m: float(F.cross_entropy(out.per_modality[m].detach(), batch.label)) for m in "ab"}
    strategy.running = {"a": 1.0, "b": 1.5}
    strategy.counts = {"a": 3, "b": 3}
    _, _, k = agm_coefficients(scores, {"a": 1.0, "b": 1.5}, 0.7, 10.0)
    ctx = Ctx(model)
    logs = strategy.training_step(model, batch, ctx.make())
    assert logs["score/a"] == pytest.approx(scores["a"], rel=1e-5)
    for name, g in ctx.captured[0].items():
        scale = k[name.split(".")[1]] if name.startswith("encoders.") else 1.0
        assert torch.allclose(g, expected[name] * scale, atol=1e-6), name
    assert strategy.running["a"] == pytest.approx((3 * 1.0 + scores["a"]) / 4, rel=1e-5)
    assert strategy.counts == {"a": 4, "b": 4}
    fresh = AGM()
    fresh.load_state_dict(strategy.state_dict())
    assert fresh.running == strategy.running and fresh.counts == strategy.counts


def test_outside_the_window_gradients_are_plain_but_scores_still_tracked():
    strategy = AGM(modulation_starts=0, modulation_ends=0)
    model, ds = make_setup(strategy)
    model.eval()
    batch = full_batch(ds, 32)
    expected = plain_grads(model, F.cross_entropy(model(batch).logits, batch.label))
    ctx = Ctx(model)
    logs = strategy.training_step(model, batch, ctx.make(epoch=1))
    assert all(torch.allclose(g, expected[n], atol=1e-6) for n, g in ctx.captured[0].items())
    assert logs["coeff/a"] == 1.0 and strategy.counts == {"a": 1, "b": 1}
