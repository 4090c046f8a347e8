"""Reasoning components on real data through the engine and the CLI, and the AV-digits reasoning variants."""

from __future__ import annotations

import json

import numpy as np
import pytest

from polymodal.cli import main
from polymodal.data.base import build_dataset
from polymodal.reasoning import best_shift, concept_outputs, explain, intervention_accuracy, load_run

SHORT = ["trainer.progress=false", "trainer.num_threads=1", "trainer.patience=null", "data.split_options.train.pairs=1200"]


def test_avdigits_reasoning_variants_follow_the_concepts():
    sums = build_dataset("avdigits-sum", "val")
    compare = build_dataset("avdigits-compare", "val")
    hard = build_dataset("avdigits-sum-hard", "val")
    a, b = sums.concept_labels["audio"]["digit"], sums.concept_labels["image"]["digit"]
    assert np.array_equal(sums.labels, (a + b) % 10)
    assert np.array_equal(compare.labels, np.sign(a - b) + 1) and compare.num_outputs == 3
    assert compare.class_names == ("less", "equal", "greater")
    assert np.array_equal(hard.labels, sums.labels) and np.array_equal(hard.image_rows["image"], sums.image_rows["image"])
    assert not np.allclose(hard.tensor("image").numpy(), sums.tensor("image").numpy())  # corrupted
    sub = build_dataset("avdigits-sum", "train", pairs=300)
    full = build_dataset("avdigits-sum", "train")
    assert len(sub) == 300 and set(sub.files) < set(full.files) and sub.provenance["pairs"] == 300
    with pytest.raises(ValueError, match="pairs=0"):
        build_dataset("avdigits-sum", "train", pairs=0)


def test_short_real_training_through_the_cli_beats_chance(tmp_path, capsys):
    """Program fusion, concepts supervised by the digits (cbm, joint mode): 4 epochs on 1200 pairs."""
    args = ["train", "data.dataset=avdigits-sum", "model.fusion=program", "model.fusion_args.rule=sum_mod10",
            "strategy.name=cbm", "trainer.max_epochs=4", "optim.lr=0.004", "optim.scheduler=none", f"out_dir={tmp_path}", "name=sum", *SHORT]
    assert main(args) == 0, capsys.readouterr().err
    res = json.loads((tmp_path / "sum" / "results.json").read_text())
    assert res["test"]["fused_acc"] > 0.25  # chance: about 0.1

    model, datasets = load_run(tmp_path / "sum", ["test"])
    test = datasets["test"]
    outs = concept_outputs(model, test)
    assert abs(outs.accuracy - res["test"]["fused_acc"]) < 1e-6
    truth = {"audio.concept": test.concept_labels["audio"]["digit"], "image.concept": test.concept_labels["image"]["digit"]}
    pa, pi = outs.probs["audio.concept"].argmax(1), outs.probs["image.concept"].argmax(1)
    assert best_shift(pa, truth["audio.concept"], pi, truth["image.concept"]) == 0  # supervised: no shift
    curve = intervention_accuracy(model, outs, truth, [0.0, 0.3, 1.0])
    assert curve[0.0] == pytest.approx(outs.accuracy) and curve[1.0] == 1.0 and curve[0.3] >= curve[0.0]
    table = explain(model, test)
    assert len(table) == len(test) and {"prediction", "audio.concept", "audio.concept_prob", "image.concept"} <= set(table.columns)
    assert (table["prediction"] == outs.logits.argmax(1)).all()


def test_predictions_file_and_report_carry_the_predicted_concepts(tmp_path, capsys):
    from polymodal.report.metrics import load_predictions

    args = ["train", "data.dataset=avdigits-sum", "model.fusion=program", "model.fusion_args.rule=sum_mod10",
            "strategy.name=cbm", "trainer.max_epochs=1", "trainer.max_steps_per_epoch=3", f"out_dir={tmp_path}",
            "name=concepts", *SHORT]
    assert main(args) == 0, capsys.readouterr().err
    run = tmp_path / "concepts"
    pred = load_predictions(run / "predictions_test.npz")
    # the concepts are extras of the outputs (the "concept" group), kept per sample in the predictions file
    assert set(pred.extras) == {"concept.audio.concept", "concept.image.concept"}
    model, datasets = load_run(run, ["test"])
    outs = concept_outputs(model, datasets["test"])
    order = np.argsort(pred.index)
    for key, p in pred.extras.items():
        assert p.shape == (len(datasets["test"]), 10)
        np.testing.assert_allclose(p[order], outs.probs[key.removeprefix("concept.")], atol=1e-5)
    report = (run / "report.md").read_text()
    assert "## Concepts (test)" in report and "| audio.concept | 300 |" in report
