import math

import pytest
import torch

from polymodal.inference import entropy_batch_fusion, entropy_fusion, fixed_fusion, fuse


def _case(b=7, c=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    logits = {m: torch.randn(b, c, generator=g) * 3 for m in ("audio", "image", "text")}
    present = {m: torch.ones(b, dtype=torch.bool) for m in logits}
    present["image"][1] = False
    present["text"][[2, 3]] = False
    present["audio"][3] = False
    return logits, present


def test_entropy_fusion_equals_naive_loop():
    logits, present = _case()
    fast = entropy_fusion(logits, present)
    for i in range(fast.shape[0]):
        names = [m for m in logits if present[m][i]]
        ents = []
        for m in names:
            p = torch.softmax(logits[m][i], dim=0)
            ents.append(-sum(float(pc) * math.log(float(pc)) for pc in p))
        ws = [math.exp(-e) for e in ents]
        ws = [w / sum(ws) for w in ws]
        ref = sum(w * logits[m][i] for w, m in zip(ws, names, strict=True))
        assert torch.allclose(fast[i], ref, atol=1e-5), i


def test_entropy_batch_hand_computed():
    # two samples, two classes, two modalities
    a = torch.tensor([[2.0, 0.0], [0.0, 1.0]])
    v = torch.tensor([[1.0, 1.0], [4.0, 0.0]])
    logits = {"audio": a, "visual": v}
    present = {m: torch.ones(2, dtype=torch.bool) for m in logits}

    def batch_entropy(o):  # the reference formula: softmax over dim 0, entropy summed over everything
        total = 0.0
        for c in range(o.shape[1]):
            col = [math.exp(float(x)) for x in o[:, c]]
            s = sum(col)
            total -= sum((x / s) * math.log(x / s) for x in col)
        return total

    ea, ev = batch_entropy(a), batch_entropy(v)
    m = max(ea, ev)
    wa, wv = math.exp(m - ea), math.exp(m - ev)
    wa, wv = wa / (wa + wv), wv / (wa + wv)
    expected = wa * a + wv * v
    assert torch.allclose(entropy_batch_fusion(logits, present), expected, atol=1e-6)
    # the weights depend on the batch's composition: the first sample's fused output changes
    alone = entropy_batch_fusion({k: x[:1] for k, x in logits.items()}, {k: p[:1] for k, p in present.items()})
    assert not torch.allclose(alone[0], expected[0])


def test_fixed_weights_renormalised_over_present():
    logits, present = _case()
    w = {"audio": 0.35, "image": 0.25, "text": 0.40}
    out = fixed_fusion(logits, present, w)
    # row 2: text missing -> audio and image renormalised to 0.35/0.6 and 0.25/0.6
    ref = (0.35 * logits["audio"][2] + 0.25 * logits["image"][2]) / 0.6
    assert torch.allclose(out[2], ref, atol=1e-6)
    # row 3: only image present -> its logits unchanged
    assert torch.allclose(out[3], logits["image"][3], atol=1e-6)
    equal = fixed_fusion(logits, present)
    assert torch.allclose(equal[0], sum(logits[m][0] for m in logits) / 3, atol=1e-6)


def test_missing_modality_drops_out_and_nan_in_absent_slot_is_ignored():
    logits, present = _case()
    logits["image"][1] = float("nan")  # absent in row 1
    for rule in ("fixed", "entropy", "entropy-batch"):
        out = fuse(rule, logits, present)
        assert torch.isfinite(out).all(), rule
    solo = {m: torch.zeros(7, dtype=torch.bool) for m in logits}
    solo["audio"][:] = True
    assert torch.allclose(entropy_fusion(logits, solo), logits["audio"])


def test_row_with_nothing_present_gets_zeros_and_errors():
    logits, present = _case(b=4)
    nothing = {m: torch.zeros(4, dtype=torch.bool) for m in logits}
    for rule in ("fixed", "entropy", "entropy-batch"):
        assert torch.all(fuse(rule, logits, nothing) == 0), rule
    with pytest.raises(ValueError, match="unknown fusion rule 'vote'"):
        fuse("vote", logits, present)
    with pytest.raises(ValueError, match=r"lack modalities \['text'\]"):
        fixed_fusion(logits, present, {"audio": 1.0, "image": 1.0})


def test_calibrated_rule_is_the_sum_of_tempered_log_softmax_over_present_modalities():
    logits, present = _case()
    temps = {"audio": 0.7, "image": 1.9, "text": 3.2}
    fused = fuse("calibrated", logits, present, temperatures=temps)
    for i in range(fused.shape[0]):
        ref = torch.zeros(fused.shape[1])
        for m in logits:
            if present[m][i]:
                z = logits[m][i].double() / temps[m]
                ref += (z - torch.logsumexp(z, dim=0)).float()
        assert torch.allclose(fused[i], ref, atol=1e-5), i
    # an absent modality drops out: row 1 has no image, so its image logits can be anything
    moved = dict(logits, image=logits["image"].clone())
    moved["image"][1] = 1e6
    assert torch.equal(fuse("calibrated", moved, present, temperatures=temps)[1], fused[1])
    # the temperatures matter: they reweigh the modalities (unlike for one modality's own argmax)
    flat = fuse("calibrated", logits, present, temperatures={m: 1.0 for m in logits})
    assert not torch.allclose(flat, fused)


def test_calibrated_entropy_weighs_calibrated_probabilities():
    logits, present = _case(seed=3)
    temps = {"audio": 0.5, "image": 4.0, "text": 1.0}
    fused = fuse("calibrated-entropy", logits, present, temperatures=temps)
    logp = {m: torch.log_softmax(x / temps[m], dim=-1) for m, x in logits.items()}
    for i in range(fused.shape[0]):
        names = [m for m in logits if present[m][i]]
        ents = [-float((logp[m][i].exp() * logp[m][i]).sum()) for m in names]
        ws = [math.exp(-e) for e in ents]
        ref = sum(w / sum(ws) * logp[m][i] for w, m in zip(ws, names, strict=True))
        assert torch.allclose(fused[i], ref, atol=1e-5), i
    # a hot temperature flattens a modality, so it weighs less than under the uncalibrated entropy rule
    assert not torch.allclose(fused, fuse("calibrated-entropy", logits, present, temperatures={m: 1.0 for m in logits}))


@pytest.mark.parametrize("rule", ["calibrated", "calibrated-entropy"])
def test_calibrated_rules_refuse_missing_or_bad_temperatures(rule):
    logits, present = _case()
    with pytest.raises(ValueError, match="need a temperature per modality, fitted on the validation split"):
        fuse(rule, logits, present)
    with pytest.raises(ValueError, match=r"no temperature for modalities \['text'\]"):
        fuse(rule, logits, present, temperatures={"audio": 1.0, "image": 1.0})
    with pytest.raises(ValueError, match="positive finite"):
        fuse(rule, logits, present, temperatures={"audio": 1.0, "image": 0.0, "text": 1.0})
