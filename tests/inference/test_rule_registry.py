"""Every registered test-time rule: absent modalities drop out, their slots are never read, rows are convex mixes."""

import pytest
import torch

from polymodal.inference import BATCH_LEVEL_RULES, FUSION_RULES, RULES, fuse


def _case():
    g = torch.Generator().manual_seed(1)
    logits = {m: torch.randn(6, 4, generator=g) * 2 for m in ("audio", "image", "text")}
    present = {
        "audio": torch.tensor([True, True, False, True, False, True]),
        "image": torch.tensor([True, False, False, True, True, False]),
        "text": torch.tensor([False, False, False, True, True, True]),
    }
    return logits, present


@pytest.mark.parametrize("name", FUSION_RULES.names())
def test_every_rule_mixes_the_present_modalities_only(name):
    entry = FUSION_RULES.get(name)
    assert entry.summary  # what `polymodal list` would print
    logits, present = _case()
    clean = entry.factory(logits, present, **entry.tiny)
    assert clean.shape == (6, 4) and torch.equal(clean, fuse(name, logits, present))
    # absent slots filled with NaN and inf change nothing
    dirty = {m: torch.where(present[m][:, None], x, float("nan")) for m, x in logits.items()}
    dirty["text"][0] = float("inf")
    assert torch.equal(entry.factory(dirty, present, **entry.tiny), clean)
    assert clean[2].tolist() == [0.0] * 4  # nothing present: zeros
    assert torch.allclose(clean[1], logits["audio"][1])  # one modality present: its own logits
    # every other row is a convex combination of its present modalities' logits: w >= 0, sum 1
    for i in (0, 3, 4, 5):
        names = [m for m in logits if present[m][i]]
        stacked = torch.stack([logits[m][i] for m in names], dim=1)  # (C, k)
        w = torch.linalg.lstsq(stacked, clean[i][:, None]).solution.squeeze(1)
        assert torch.allclose(stacked @ w, clean[i], atol=1e-5), (name, i)
        assert float(w.sum()) == pytest.approx(1.0, abs=1e-4) and bool((w > -1e-5).all()), (name, i, w)


def test_the_registry_is_the_list_of_rules():
    assert RULES == tuple(FUSION_RULES.names()) == ("entropy", "entropy-batch", "fixed")
    assert set(BATCH_LEVEL_RULES) <= set(RULES)
    with pytest.raises(ValueError, match=r"unknown fusion rule 'vote'; expected one of \('entropy', 'entropy-batch', 'fixed'\)"):
        fuse("vote", *_case())


def test_weights_reach_the_fixed_rule_only():
    logits, present = _case()
    w = {"audio": 3.0, "image": 1.0, "text": 0.0}
    fixed = fuse("fixed", logits, present, w)
    assert torch.allclose(fixed[0], 0.75 * logits["audio"][0] + 0.25 * logits["image"][0])
    assert torch.equal(fuse("entropy", logits, present, w), fuse("entropy", logits, present))
