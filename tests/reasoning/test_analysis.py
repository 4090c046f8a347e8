"""Interventions and per-sample explanations on a small model (no training needed: the rule is exact)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from polymodal.data.base import build_dataset
from polymodal.models import build_model
from polymodal.reasoning import ConceptOutputs, concept_outputs, explain, intervene, intervention_accuracy


@pytest.fixture
def setup():
    ds = build_dataset("synthetic", "val", size=24, num_classes=4, missing=0.3)
    torch.manual_seed(0)
    model = build_model(ds.schema, 4, fusion="program", width=8, fusion_args={"rule": "sum_mod"}).eval()
    batch = ds.collate_fn()([ds[i] for i in range(len(ds))])
    return ds, model, batch


def test_intervention_sets_the_prediction_the_rule_implies(setup):
    ds, model, batch = setup
    a, b = ds.modalities
    logits = intervene(model, batch, {a: 1, b: 2})  # both concepts fixed: (1 + 2) mod 4, on every row
    assert (logits.argmax(1) == 3).all() and torch.allclose(logits.exp()[:, 3], torch.ones(len(ds)))
    # one concept fixed: the prediction shifts with the value given, the other concept as predicted
    with torch.no_grad():
        probs = model.fusion.concept_probs(
            {m: model.encode(m, batch.inputs[m], batch.present[m]) for m in model.modalities}, batch.present)
    both = batch.present[a] & batch.present[b]
    for v in range(4):
        out = intervene(model, batch, {f"{a}.concept": v})
        expected = (probs[f"{b}.concept"].argmax(1) + v) % 4
        assert torch.equal(out.argmax(1)[both], expected[both])
    # -1 leaves a row alone
    rows = torch.full((len(ds),), -1)
    rows[0] = 2
    out = intervene(model, batch, {a: rows})
    assert torch.equal(out[1:], model(batch).logits[1:])
    with pytest.raises(ValueError, match="unknown concept 'nope'"):
        intervene(model, batch, {"nope": 1})
    with pytest.raises(ValueError, match="value 7 out of range"):
        intervene(model, batch, {a: 7})


def test_correcting_the_least_confident_concepts(setup):
    ds, model, _ = setup
    outs = concept_outputs(model, ds)
    a, b = ds.modalities
    # concept labels that explain the labels: a = label, b = 0
    truth = {f"{a}.concept": ds.labels, f"{b}.concept": np.zeros(len(ds), dtype=np.int64)}
    curve = intervention_accuracy(model, outs, truth, [0.0, 0.5, 1.0])
    assert curve[0.0] == pytest.approx(outs.accuracy)
    both = outs.present[a] & outs.present[b]
    # everything corrected: every row with both modalities is right; a row missing one modality is
    # uniform over classes (argmax 0) unless its present concept was corrected and the other marginalised
    assert curve[1.0] >= both.mean() and curve[0.5] >= curve[0.0] - 1e-9


def test_explain_lists_each_concept_per_sample(setup):
    ds, model, _ = setup
    table = explain(model, ds)
    a, b = ds.modalities
    assert list(table.columns) == ["index", "label", "prediction", "prob", f"{a}.concept", f"{a}.concept_prob",
                                   f"{b}.concept", f"{b}.concept_prob"]
    absent = ~ds.present[:, 0]
    assert absent.any() and table[f"{a}.concept"][absent].isna().all() and table[f"{a}.concept_prob"][absent].isna().all()
    assert table[f"{a}.concept_prob"][~absent].between(0.25, 1).all()


def hand_made_outputs(n: int = 40, wrong: int = 8):
    """Concept outputs where the ``wrong`` least confident audio slots (and only they) are misread."""
    rng = np.random.default_rng(1)
    true_a, true_b = rng.integers(0, 4, n), rng.integers(0, 4, n)
    read_a = true_a.copy()
    read_a[:wrong] = (true_a[:wrong] + 1) % 4
    za = np.where(np.eye(4)[read_a] > 0, np.where(np.arange(n) < wrong, 1.0, 8.0)[:, None], 0.0)
    zb = np.eye(4)[true_b] * 8.0
    logits = {"a.concept": za.astype(np.float32), "b.concept": zb.astype(np.float32)}
    probs = {k: torch.from_numpy(v).softmax(-1).numpy() for k, v in logits.items()}
    label = (true_a + true_b) % 4
    present = {"a": np.ones(n, dtype=bool), "b": np.ones(n, dtype=bool)}
    outs = ConceptOutputs(probs, present, np.zeros((n, 4), dtype=np.float32), label, concept_logits=logits)
    return outs, {"a.concept": true_a, "b.concept": true_b}


def test_uncertainty_guided_and_random_intervention_orders():
    ds = build_dataset("synthetic", "val", size=8, num_classes=4)
    torch.manual_seed(0)
    model = build_model(ds.schema, 4, fusion="program", width=8, fusion_args={"rule": "sum_mod"}).eval()
    assert list(ds.modalities) == ["a", "b"]
    outs, truth = hand_made_outputs()
    fractions = [0.0, 0.1, 0.5, 1.0]
    guided = intervention_accuracy(model, outs, truth, fractions)
    assert guided == intervention_accuracy(model, outs, truth, fractions, order="uncertainty")
    # the 8 misread slots are the least confident of 80: correcting 10 % of the slots fixes every row
    assert guided == {0.0: 0.8, 0.1: 1.0, 0.5: 1.0, 1.0: 1.0}
    rand = intervention_accuracy(model, outs, truth, fractions, order="random", seed=0)
    assert rand == intervention_accuracy(model, outs, truth, fractions, order="random", seed=0)  # seeded
    assert rand[0.0] == 0.8 and rand[1.0] == 1.0 and rand[0.1] < 1.0  # a random tenth misses misread slots
    draws = [intervention_accuracy(model, outs, truth, [0.5], order="random", seed=s)[0.5] for s in range(20)]
    assert len(set(draws)) > 1 and np.mean(draws) == pytest.approx(0.9, abs=0.05)  # about half the errors fixed
    with pytest.raises(ValueError, match="intervention order 'confidence'"):
        intervention_accuracy(model, outs, truth, fractions, order="confidence")
    with pytest.raises(ValueError, match=r"expected \(40,\), one per row"):
        intervention_accuracy(model, outs, {"a.concept": truth["a.concept"][:5]}, fractions)
