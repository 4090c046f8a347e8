"""The multilabel task end to end: its numbers against scikit-learn, the threshold chosen on validation, the
engine (`polymodal train` / `eval`), the `avdigits-multilabel` variant, a manifest with label cells such as
``cat|dog`` through the `Predictor` (and `polymodal predict`)."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F

import polymodal
from polymodal import load_run
from polymodal.cli import main
from polymodal.data.base import build_dataset
from polymodal.engine import train
from polymodal.runpaths import RunPaths
from polymodal.tasks import get_task, read_task_state
from polymodal.tasks.multilabel import THRESHOLDS, f1_scores

from ..engine._helpers import tiny_config


def test_metrics_are_scikit_learns():
    from sklearn.metrics import average_precision_score, f1_score

    task = get_task("multilabel")
    out = task.example_outputs(n=40, num_outputs=4, seed=2)
    m = task.metrics(out, ["a", "b"])
    y, p = out.label, torch.sigmoid(torch.from_numpy(out.logits)).numpy()
    assert m["threshold"] == 0.5  # nothing fitted yet
    assert m["micro_f1"] == pytest.approx(f1_score(y, p >= 0.5, average="micro"), abs=1e-12)
    assert m["macro_f1"] == pytest.approx(f1_score(y, p >= 0.5, average="macro", zero_division=0), abs=1e-12)
    assert m["mAP"] == pytest.approx(average_precision_score(y, p, average="macro"), abs=1e-12)
    rows = out.present["a"]
    pa = torch.sigmoid(torch.from_numpy(out.per_modality["a"])).numpy()
    assert m["a_mAP"] == pytest.approx(average_precision_score(y[rows], pa[rows], average="macro"), abs=1e-12)
    logits, target = torch.from_numpy(out.logits), torch.from_numpy(out.label)
    assert m["loss"] == pytest.approx(float(F.binary_cross_entropy_with_logits(logits, target)), abs=1e-7)
    # class weights are each label's pos_weight (negatives over positives)
    w = task.class_weights(out.label, 4)
    np.testing.assert_allclose(w.numpy(), (40 - y.sum(0)) / y.sum(0), rtol=1e-6)
    assert torch.equal(task.loss(logits, target, class_weights=w),
                       F.binary_cross_entropy_with_logits(logits, target, pos_weight=w))


def test_the_threshold_is_the_best_micro_f1_on_validation():
    task = get_task("multilabel")
    val = task.example_outputs(n=60, num_outputs=5, seed=3)
    probs = torch.sigmoid(torch.from_numpy(val.logits)).numpy()
    scores = {float(t): f1_scores(val.label, probs >= t)[0] for t in THRESHOLDS}
    state = task.fit_state(val)
    assert scores[state["threshold"]] == max(scores.values())
    test = task.example_outputs(n=60, num_outputs=5, seed=4)
    test.fitted = state
    assert task.metrics(test, ["a", "b"])["micro_f1"] == f1_scores(
        test.label, torch.sigmoid(torch.from_numpy(test.logits)).numpy() >= state["threshold"])[0]
    # a dataset's labels are checked as multi-hot rows of the declared width
    with pytest.raises(ValueError, match=r"labels of shape \(60, 5\); expected \(N, 4\)"):
        task.check_labels(val.label, 4)
    with pytest.raises(ValueError, match="must be 0 or 1"):
        task.check_labels(val.label * 2, 5)


def test_the_engine_trains_multilabel_and_applies_the_validation_threshold(tmp_path, capsys):
    cfg = tiny_config(tmp_path, "name=ml", "data.options={task: multilabel, size: 96}", "trainer.max_epochs=3",
                      "optim.lr=0.05")
    result = train(cfg)
    assert result.task == "multilabel" and result.selection == "val mAP"
    run = load_run(tmp_path / "ml")
    state = read_task_state(get_task("multilabel"), RunPaths(run.run_dir).task_state)
    assert state["threshold"] in THRESHOLDS
    assert run.results["val"]["threshold"] == run.results["test"]["threshold"] == state["threshold"]
    pred = run.predictions["test"]
    assert pred.threshold == state["threshold"] and pred.probs.shape == (result.metrics["n"], 4)
    assert result.metrics["micro_f1"] == f1_scores(pred.y_true, pred.probs >= pred.threshold)[0]
    # the best epoch has the highest validation mAP
    maps = [r["val/mAP"] for r in run.records]
    assert run.results["best_epoch"] == 1 + int(np.argmax(maps))
    report = (tmp_path / "ml" / "report.md").read_text()
    assert "| fused mAP (%) |" in report and "Per-label report" in report and "chosen on validation" in report
    # polymodal eval re-scores the test split with the stored threshold
    assert main(["eval", str(tmp_path / "ml")]) == 0
    shown = capsys.readouterr().out
    assert re.search(rf"micro_f1 +{result.metrics['micro_f1']:.4f}", shown) and "threshold" in shown


def test_avdigits_multilabel_is_the_set_of_shown_digits():
    ds = build_dataset("avdigits-multilabel", "val")
    image = ds.concept_labels["image"]["digit"]
    assert ds.task == "multilabel" and ds.num_outputs == 10 and ds.labels.shape == (len(ds), 10)
    np.testing.assert_array_equal(ds.labels.argmax(1) == np.minimum(ds.audio_digits, image), True)
    np.testing.assert_array_equal(ds.labels.sum(1), np.where(ds.audio_digits == image, 1, 2))
    get_task("multilabel").check_labels(ds.labels, ds.num_outputs, "avdigits-multilabel")


def _sets_table(n: int = 120, seed: int = 0) -> pd.DataFrame:
    """Two numeric columns that carry the labels (cat: x1 > 0, dog: x2 > 0, fish: both below -0.5)."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 2))
    cells = []
    for a, b in x:
        labels = [name for name, on in (("cat", a > 0), ("dog", b > 0), ("fish", a < -0.5 and b < -0.5)) if on]
        cells.append("|".join(labels) if len(labels) != 1 else labels[0] + "|")
    return pd.DataFrame({"id": [f"r{i}" for i in range(n)], "x1": x[:, 0].round(4), "x2": x[:, 1].round(4),
                         "tags": cells})


def test_a_table_of_label_sets_through_the_predictor_and_the_cli(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    df = _sets_table()
    p = polymodal.Predictor(label="tags", id="id", path=tmp_path / "p").fit(
        df, strategy="joint", max_epochs=4, overrides=["model.width=8", "trainer.progress=false", "optim.lr=0.02"])
    assert p.task == "multilabel" and p.class_names == ("cat", "dog", "fish")
    assert {"mAP", "micro_f1", "macro_f1", "threshold", "tabular_mAP"} <= set(p.test_metrics)
    check = (tmp_path / "p" / "data_check.md").read_text()
    assert "multilabel, inferred:" in check
    new = df.drop(columns="tags").head(5)
    pred = p.predict(new)
    threshold = p.test_metrics["threshold"]
    probs = p.predict_proba(new)
    assert probs.shape == (5, 3) and list(pred.columns[:5]) == ["id", "prediction", "prob_cat", "prob_dog", "prob_fish"]
    expected = ["|".join(c for c, on in zip(p.class_names, row >= threshold, strict=True) if on) for row in probs]
    assert list(pred["prediction"]) == expected
    own = p.evaluate()  # the stored test rows, at the stored threshold
    assert own["mAP"] == pytest.approx(p.test_metrics["mAP"], abs=1e-6) and own["threshold"] == threshold
    again = polymodal.Predictor.load(tmp_path / "p")
    assert list(again.predict(new)["prediction"]) == expected
    # polymodal predict writes the same columns
    new.to_csv(tmp_path / "new.csv", index=False)
    assert main(["predict", str(tmp_path / "p"), "--manifest", str(tmp_path / "new.csv"), "--out", str(tmp_path / "out.csv")]) == 0
    written = pd.read_csv(tmp_path / "out.csv", keep_default_na=False)
    assert list(written["prediction"]) == expected


def test_polymodal_bench_tabulates_multilabel_with_paired_per_sample_f1(tmp_path):
    import json

    out = tmp_path / "ml"
    code = main(["bench", "--strategies", "joint,unimodal", "--dataset", "synthetic", "--seeds", "0,1", "--out",
                 str(out), "--runs-dir", str(tmp_path / "runs"), "--processes", "1", "data.options={task: multilabel}",
                 "trainer.max_epochs=2", "model.width=8", "trainer.patience=null"])
    assert code == 0
    doc = json.loads(out.with_suffix(".json").read_text())
    metrics = {(r["method"], r["metric"]) for r in doc["rows"]}
    assert {("joint", "mAP"), ("joint", "a_mAP"), ("joint", "samples_f1"), ("unimodal", "micro_f1")} <= metrics
    assert all(r["task"] == "multilabel" and len(r["test_scores"]) == r["test"]["n"] for r in doc["runs"])
    for r in doc["runs"]:  # the paired score is the mean of the stored per-sample scores
        assert r["test"]["samples_f1"] == pytest.approx(np.mean(r["test_scores"]), abs=1e-6)
    (diff,) = doc["differences"]
    assert diff["method"] == "unimodal" and diff["metric"] == "samples_f1" and diff["n_seeds"] == 2
    md = out.with_suffix(".md").read_text()
    header = next(line for line in md.splitlines() if line.startswith("| method"))
    assert [c.strip() for c in header.split("|")[3:6]] == ["mAP (%)", "a_mAP (%)", "b_mAP (%)"]
    assert "in per-sample F1 (samples_f1) (points)" in md
    assert main(["bench", "--recompute", str(out.with_suffix(".json"))]) == 0
    assert out.with_suffix(".md").read_text() == md
