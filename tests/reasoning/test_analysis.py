"""Interventions and per-sample explanations on a small model (no training needed: the rule is exact)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from polymodal.data.base import build_dataset
from polymodal.models import build_model
from polymodal.reasoning import concept_outputs, explain, intervene, intervention_accuracy


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
