import math

import pytest
import torch
import torch.nn.functional as F

from polymodal.strategies.qmf import QMF, energy_confidence, energy_fusion, rank_loss

from ._baselines import Ctx, full_batch, make_setup


def test_energy_confidence_and_fusion_hand_example():
    o_a = torch.tensor([[1.0, 2.0, 0.0], [0.0, 0.0, 0.0]])
    o_b = torch.tensor([[3.0, 0.0, 1.0], [1.0, 1.0, 5.0]])
    lse = lambda row: math.log(sum(math.exp(x) for x in row))  # noqa: E731
    conf_a = torch.tensor([lse([1, 2, 0]), lse([0, 0, 0])]) / 10  # -energy / T
    assert torch.allclose(energy_confidence(o_a), conf_a)
    present = {"a": torch.tensor([True, False]), "b": torch.tensor([True, True])}
    fused = energy_fusion({"a": o_a, "b": o_b}, present)
    conf_b = energy_confidence(o_b)
    assert torch.allclose(fused[0], conf_a[0] * o_a[0] + conf_b[0] * o_b[0])
    assert torch.allclose(fused[1], conf_b[1] * o_b[1])  # absent "a" drops out of row 1


def _official_rank_loss(conf, hist):
    """Transcription of the official rank_loss with History.get_target_margin (normalised history given)."""
    conf2, hist2 = torch.roll(conf, -1), torch.roll(hist, -1)
    target = (hist > hist2).float() - (hist < hist2).float()
    margin = (hist - hist2).abs()
    nonzero = torch.where(target == 0, torch.ones_like(target), target)
    return torch.nn.MarginRankingLoss(margin=0.0)(conf, conf2 + margin / nonzero, -target)


def test_rank_loss_matches_the_code_and_the_paper():
    g = torch.Generator().manual_seed(0)
    conf, hist = torch.randn(7, generator=g), torch.rand(7, generator=g)
    hist[3] = hist[4]  # a tie: no ranking constraint for that pair
    assert torch.allclose(rank_loss(conf, hist, "reference"), _official_rank_loss(conf, hist), atol=1e-6)
    c, h = conf.tolist(), hist.tolist()
    naive = 0.0
    for i in range(7):  # CRL's form: max(0, g (w_i - w_j) + |h_i - h_j|), g = sign(h_i - h_j)
        j = (i + 1) % 7
        sign = (h[i] > h[j]) - (h[i] < h[j])
        naive += max(0.0, sign * (c[i] - c[j]) + abs(h[i] - h[j])) if sign else 0.0
    assert float(rank_loss(conf, hist, "paper")) == pytest.approx(naive / 7, rel=1e-5)


def test_training_loss_history_and_state():
    strategy = QMF(lam=0.5)
    model, ds = make_setup(strategy)
    model.eval()
    batch = full_batch(ds, 16)
    strategy.history["a"][batch.index] = torch.linspace(0, 3, 16, dtype=torch.float64)
    with torch.no_grad():
        out = model(batch)
    fused = energy_fusion(out.per_modality, batch.present)
    expected = float(F.cross_entropy(fused, batch.label))
    per_sample = {}
    for m in "ab":
        ce = F.cross_entropy(out.per_modality[m], batch.label, reduction="none")
        per_sample[m] = ce.double()
        hist = strategy.history[m]
        span = float(hist.max() - hist.min())
        norm = (hist - hist.min()) / span if span > 0 else torch.zeros_like(hist)
        expected += float(ce.mean()) + 0.5 * float(rank_loss(energy_confidence(out.per_modality[m]),
                                                             norm[batch.index], "paper"))
    before = {m: strategy.history[m].clone() for m in "ab"}
    logs = strategy.training_step(model, batch, Ctx(model).make())
    assert float(logs["loss"]) == pytest.approx(expected, rel=1e-5)
    for m in "ab":  # the history accumulates each sample's unimodal loss after the step's loss
        assert torch.allclose(strategy.history[m][batch.index], before[m][batch.index] + per_sample[m], atol=1e-6)
    fresh = QMF()
    fresh.load_state_dict(strategy.state_dict())
    assert all(torch.equal(fresh.history[m], strategy.history[m]) for m in "ab")


def test_predict_uses_energy_weighted_fusion():
    strategy = QMF()
    model, ds = make_setup(strategy, missing=0.3)
    batch = full_batch(ds, 16)
    out = strategy.predict(model, batch)
    assert torch.allclose(out.logits, energy_fusion(out.per_modality, batch.present))
    assert strategy.fusion_rule == "energy"
