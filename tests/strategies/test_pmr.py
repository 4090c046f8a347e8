import math

import pytest
import torch
import torch.nn.functional as F

from polymodal.strategies.pmr import PMR, pmr_coefficients, prototype_logits

from ._baselines import Ctx, full_batch, make_setup


def test_prototype_logits_and_pce_match_a_naive_loop():
    g = torch.Generator().manual_seed(0)
    feats, protos = torch.randn(5, 3, generator=g), torch.randn(4, 3, generator=g)
    labels = torch.tensor([0, 3, 1, 1, 2])
    naive = torch.tensor([[-math.sqrt(sum((feats[i, d] - protos[k, d]) ** 2 for d in range(3))) for k in range(4)]
                          for i in range(5)])
    assert torch.allclose(prototype_logits(feats, protos), naive, atol=1e-5)
    assert torch.allclose(prototype_logits(feats, protos, "squared"), -(naive**2), atol=1e-5)
    pce = sum(-math.log(math.exp(naive[i, labels[i]]) / sum(math.exp(naive[i, k]) for k in range(4)))
              for i in range(5)) / 5
    assert float(F.cross_entropy(prototype_logits(feats, protos), labels)) == pytest.approx(pce, rel=1e-5)


def test_coefficients_hand_example():
    rho, beta, gamma = pmr_coefficients({"audio": 0.5, "visual": 0.4})
    assert rho == pytest.approx({"audio": 1.25, "visual": 0.8})
    assert beta == pytest.approx({"audio": 0.0, "visual": 0.25})  # PCE speeds up the slow visual branch
    assert gamma == pytest.approx({"audio": 0.25, "visual": 0.0})  # PER holds back the dominant audio
    _, beta, gamma = pmr_coefficients({"audio": 0.9, "visual": 0.3})
    assert beta["visual"] == 1.0 and gamma["audio"] == 1.0  # clipped to 1


def test_prototypes_are_class_means_smoothed_by_momentum():
    strategy = PMR(momentum=0.25)
    model, ds = make_setup(strategy)
    batch = full_batch(ds)
    model.eval()
    with torch.no_grad():
        feats = model(batch).features
    means = {m: torch.stack([feats[m][batch.label == k].mean(0) for k in range(4)]) for m in "ab"}
    strategy.on_epoch_start(model, 0)
    assert all(torch.allclose(strategy.prototypes[m], means[m], atol=1e-5) for m in "ab")
    old = {m: p.clone() for m, p in strategy.prototypes.items()}
    with torch.no_grad():
        for p in model.encoders["a"].parameters():
            p.add_(0.1)
        new_a = model(batch).features["a"]
    strategy.on_epoch_start(model, 1)
    expected = 0.75 * torch.stack([new_a[batch.label == k].mean(0) for k in range(4)]) + 0.25 * old["a"]
    assert torch.allclose(strategy.prototypes["a"], expected, atol=1e-5)
    assert torch.allclose(strategy.prototypes["b"], old["b"], atol=1e-5)


def test_training_loss_matches_the_published_objective():
    strategy = PMR(alpha=0.7, mu=0.3, per_epochs=2)
    model, ds = make_setup(strategy)
    model.eval()
    strategy.on_epoch_start(model, 0)
    batch = full_batch(ds, 32)
    with torch.no_grad():
        out = model(batch)
    logits = {m: prototype_logits(out.features[m], strategy.prototypes[m]) for m in "ab"}
    scores = {m: float(torch.softmax(logits[m], 1).gather(1, batch.label[:, None]).mean()) for m in "ab"}
    _, beta, gamma = pmr_coefficients(scores)
    assert max(beta.values()) > 0
    ent = {m: float(-(torch.softmax(logits[m], 1) * torch.log_softmax(logits[m], 1)).sum(1).mean()) for m in "ab"}
    ce = float(F.cross_entropy(out.logits, batch.label))
    pce = {m: float(F.cross_entropy(logits[m], batch.label)) for m in "ab"}
    with_per = ce + sum(0.7 * beta[m] * pce[m] - 0.3 * gamma[m] * ent[m] for m in "ab")
    without_per = ce + sum(0.7 * beta[m] * pce[m] for m in "ab")
    logs = strategy.training_step(model, batch, Ctx(model, lr=0.0).make(epoch=1))
    assert float(logs["loss"]) == pytest.approx(with_per, rel=1e-4)
    logs = strategy.training_step(model, batch, Ctx(model, lr=0.0).make(epoch=2))  # PER only in epochs 0, 1
    assert float(logs["loss"]) == pytest.approx(without_per, rel=1e-4)


def test_state_round_trip_and_setup_errors():
    strategy = PMR()
    model, ds = make_setup(strategy)
    strategy.on_epoch_start(model, 0)
    fresh = PMR()
    fresh.load_state_dict(strategy.state_dict())
    assert set(fresh.prototypes) == {"a", "b"}
    assert all(torch.equal(fresh.prototypes[m], strategy.prototypes[m]) for m in "ab")
    with pytest.raises(ValueError, match="training dataset"):
        PMR().setup(model, None)
