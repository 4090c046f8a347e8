"""Every registered test-time rule: absent modalities drop out, their slots are never read, rows are mixes of the
present modalities' inputs (logits, or calibrated log-probabilities for the calibrated rules)."""

import pytest
import torch

from polymodal.inference import BATCH_LEVEL_RULES, CALIBRATED_RULES, FUSION_RULES, RULES, fuse


def _case():
    g = torch.Generator().manual_seed(1)
    logits = {m: torch.randn(6, 4, generator=g) * 2 for m in ("audio", "image", "text")}
    present = {
        "audio": torch.tensor([True, True, False, True, False, True]),
        "image": torch.tensor([True, False, False, True, True, False]),
        "text": torch.tensor([False, False, False, True, True, True]),
    }
    return logits, present


def _inputs(name, logits, tiny):
    """What the rule mixes: the logits, or log softmax(o_m / T_m) for a calibrated rule."""
    if name not in CALIBRATED_RULES:
        return logits
    temps = tiny["temperatures"]
    return {m: torch.log_softmax(x / temps[m], dim=-1) for m, x in logits.items()}


@pytest.mark.parametrize("name", FUSION_RULES.names())
def test_every_rule_mixes_the_present_modalities_only(name):
    entry = FUSION_RULES.get(name)
    assert entry.summary  # what `polymodal list` would print
    logits, present = _case()
    clean = entry.factory(logits, present, **entry.tiny)
    assert clean.shape == (6, 4) and torch.equal(clean, fuse(name, logits, present, **entry.tiny))
    # absent slots filled with NaN and inf change nothing
    dirty = {m: torch.where(present[m][:, None], x, float("nan")) for m, x in logits.items()}
    dirty["text"][0] = float("inf")
    assert torch.equal(entry.factory(dirty, present, **entry.tiny), clean)
    assert clean[2].tolist() == [0.0] * 4  # nothing present: zeros
    x = _inputs(name, logits, entry.tiny)
    assert torch.allclose(clean[1], x["audio"][1])  # one modality present: its own input
    # every other row mixes its present modalities' inputs with weights w >= 0 that sum to 1 (a convex mix),
    # or, for the calibrated product rule, all equal to 1 (a sum of log-likelihoods)
    for i in (0, 3, 4, 5):
        names = [m for m in logits if present[m][i]]
        stacked = torch.stack([x[m][i] for m in names], dim=1)  # (C, k)
        w = torch.linalg.lstsq(stacked, clean[i][:, None]).solution.squeeze(1)
        assert torch.allclose(stacked @ w, clean[i], atol=1e-5), (name, i)
        assert bool((w > -1e-5).all()), (name, i, w)
        if name == "calibrated":
            assert torch.allclose(w, torch.ones_like(w), atol=1e-4), (name, i, w)
        else:
            assert float(w.sum()) == pytest.approx(1.0, abs=1e-4), (name, i, w)


def test_the_registry_is_the_list_of_rules():
    assert RULES == tuple(FUSION_RULES.names()) == (
        "calibrated", "calibrated-entropy", "entropy", "entropy-batch", "fixed")
    assert set(BATCH_LEVEL_RULES) <= set(RULES) and set(CALIBRATED_RULES) <= set(RULES)
    with pytest.raises(ValueError, match=r"unknown fusion rule 'vote'; expected one of \('calibrated', "):
        fuse("vote", *_case())


def test_weights_reach_the_fixed_rule_only_and_temperatures_the_calibrated_rules_only():
    logits, present = _case()
    w = {"audio": 3.0, "image": 1.0, "text": 0.0}
    t = {"audio": 0.5, "image": 2.0, "text": 1.0}
    fixed = fuse("fixed", logits, present, w)
    assert torch.allclose(fixed[0], 0.75 * logits["audio"][0] + 0.25 * logits["image"][0])
    assert torch.equal(fuse("entropy", logits, present, w), fuse("entropy", logits, present))
    assert torch.equal(fuse("entropy", logits, present, temperatures=t), fuse("entropy", logits, present))
    assert torch.equal(fuse("fixed", logits, present, w, t), fixed)
    for name in CALIBRATED_RULES:
        assert torch.equal(fuse(name, logits, present, w, t), fuse(name, logits, present, temperatures=t))
