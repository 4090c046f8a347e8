"""Survival on your own table: the time and event columns of a manifest, through the Predictor and the CLI
(train / eval / predict), with the cells at fault named; no scikit-survival needed."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import polymodal
from polymodal.cli import main
from polymodal.data.datasets.manifest import ManifestError, from_manifest
from polymodal.data.validation import DatasetValidationError
from polymodal.tasks import get_task


def _table(n: int = 160, seed: int = 0) -> pd.DataFrame:
    """Two groups of numeric columns and a Cox-model time to event with censoring."""
    rng = np.random.default_rng(seed)
    a, b = rng.standard_normal((n, 4)), rng.standard_normal((n, 3))
    eta = a[:, 0] + 0.8 * b[:, 0]
    event_time, censor = rng.exponential(100 / np.exp(eta)), rng.exponential(200, n)
    df = pd.DataFrame({**{f"a{i}": a[:, i] for i in range(4)}, **{f"b{i}": b[:, i] for i in range(3)}})
    df["time"] = np.round(np.minimum(event_time, censor), 1) + 0.5
    df["event"] = (event_time <= censor).astype(int)
    return df


GROUPS = {"a": [f"a{i}" for i in range(4)], "b": [f"b{i}" for i in range(3)]}


def test_predictor_trains_on_time_and_event_columns_and_predicts_curves(tmp_path):
    df = _table()
    predictor = polymodal.Predictor(label=["time", "event"], task="survival", path=tmp_path / "run",
                                    tabular_groups=GROUPS).fit(
        df, strategy="joint", max_epochs=4, overrides=["data.batch_size=128", "model.width=8"])
    metrics = predictor.test_metrics
    assert {"cindex", "ibs", "a_cindex", "b_cindex"} <= set(metrics) and metrics["ibs"] is not None
    new = df.drop(columns=["time", "event"]).head(4)
    out = predictor.predict(new)
    curves = out[[c for c in out if c.startswith("survival_")]].to_numpy()
    assert len(out) == 4 and np.isfinite(out["risk"]).all() and curves.shape == (4, 50)
    assert np.all(np.diff(curves, axis=1) <= 0)
    # a reloaded predictor gives the same curves (the baseline is kept in the run folder)
    again = polymodal.Predictor.load(tmp_path / "run").predict(new)
    np.testing.assert_allclose(again[curves_cols := [c for c in out if c.startswith("survival_")]].to_numpy(),
                               out[curves_cols].to_numpy())
    scored = predictor.evaluate(_table(n=60, seed=1))
    assert scored["n"] == 60 and 0.0 <= scored["cindex"] <= 1.0


def test_bad_time_and_event_cells_are_named_in_the_data_check():
    df = _table(n=40)
    df.loc[3, "time"] = -2.0
    df.loc[7, "event"] = 2
    df.loc[9, "event"] = None  # a time without an event
    with pytest.raises(DatasetValidationError) as err:
        from_manifest(df, label=["time", "event"], task="survival", tabular_groups=GROUPS)
    text = str(err.value)
    assert "| error | bad_target | time+event | 3 |" in text and "missing_label" not in text
    assert "row 4: (-2.0, 0.0), row 8: (" in text and "row 10: (" in text
    assert "a time (a finite number > 0) and an event (1 observed, 0 censored" in text


def test_a_label_of_several_columns_is_checked():
    df = _table(n=20)
    with pytest.raises(ManifestError, match=r"at least two different columns"):
        from_manifest(df, label=["time"], task="survival")
    with pytest.raises(ManifestError, match=r"label: column 'evnt' is not in manifest .*did you mean 'event'"):
        from_manifest(df, label=["time", "evnt"], task="survival")


def test_label_values_are_pairs_whatever_their_spelling():
    task = get_task("survival")
    assert task.label_value((120, 1)) == task.label_value(("120.0", "true")) == (120.0, 1.0)
    assert task.label_value(("soon", 1)) == "('soon', 1)"


def test_cli_trains_evaluates_and_predicts_a_survival_table(tmp_path, capsys):
    df = _table()
    df.insert(0, "patient", [f"p{i}" for i in range(len(df))])
    df.to_csv(tmp_path / "cohort.csv", index=False)
    df.drop(columns=["time", "event"]).head(5).to_csv(tmp_path / "new.csv", index=False)
    code = main(["train", f"data.manifest={tmp_path / 'cohort.csv'}", "data.label=[time,event]",
                 "data.options.task=survival", "data.options.id=patient", "strategy.name=joint",
                 "trainer.max_epochs=2", "data.batch_size=128", "model.width=8", f"out_dir={tmp_path}", "name=run"])
    assert code == 0
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    capsys.readouterr()
    assert main(["eval", str(tmp_path / "run")]) == 0  # the baseline is read back from the run folder
    shown = capsys.readouterr().out
    assert f"{results['test']['cindex']:.4f}" in shown and f"{results['test']['ibs']:.4f}" in shown
    assert main(["predict", str(tmp_path / "run"), "--manifest", str(tmp_path / "new.csv"),
                 "--out", str(tmp_path / "pred.csv")]) == 0
    pred = pd.read_csv(tmp_path / "pred.csv")
    assert list(pred["id"]) == [f"p{i}" for i in range(5)]
    assert "risk" in pred and sum(c.startswith("survival_") for c in pred) == 50
