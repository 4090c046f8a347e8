"""Regression metrics against scikit-learn, their predictions file, and the report of a regression run."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image
from sklearn import metrics as skm

from polymodal.report import write_report
from polymodal.report.metrics import (
    RegressionPredictions,
    load_predictions,
    mean_absolute_error,
    mean_squared_error,
    r2_score,
    root_mean_squared_error,
    save_predictions,
    summarize,
)


@pytest.mark.parametrize("shape", [(30,), (30, 4)])
def test_regression_metrics_equal_sklearn(shape):
    rng = np.random.default_rng(1)
    y = rng.standard_normal(shape)
    p = y + 0.7 * rng.standard_normal(shape)
    assert mean_squared_error(y, p) == pytest.approx(skm.mean_squared_error(y, p))
    assert root_mean_squared_error(y, p) == pytest.approx(skm.root_mean_squared_error(y, p))
    assert mean_absolute_error(y, p) == pytest.approx(skm.mean_absolute_error(y, p))
    assert r2_score(y, p) == pytest.approx(skm.r2_score(y, p))


def test_r2_edge_cases_follow_sklearn():
    const = np.full(5, 2.0)
    assert r2_score(const, const) == skm.r2_score(const, const) == 1.0
    assert r2_score(const, const + 0.1) == skm.r2_score(const, const + 0.1) == 0.0
    y = np.c_[const, np.arange(5.0)]
    p = np.c_[const + 0.1, np.arange(5.0) + 0.5]
    assert r2_score(y, p) == pytest.approx(skm.r2_score(y, p))
    assert np.isnan(r2_score([1.0], [2.0]))
    with pytest.raises(ValueError, match="y_true has shape"):
        r2_score(np.zeros(3), np.zeros((3, 1)))
    with pytest.raises(ValueError, match="NaN or inf"):
        r2_score([1.0, np.nan], [1.0, 2.0])


def _predictions(n: int = 50, seed: int = 0) -> RegressionPredictions:
    rng = np.random.default_rng(seed)
    y = 2.0 * rng.standard_normal(n)
    present_b = np.arange(n) % 4 != 0
    return RegressionPredictions(
        y_true=y, pred=y + 0.5 * rng.standard_normal(n),
        per_modality={"a": 0.6 * y + rng.standard_normal(n), "b": 0.5 * y + rng.standard_normal(n)},
        present={"a": np.ones(n, dtype=bool), "b": present_b}, index=np.arange(n),
    )


def test_summary_and_file_round_trip(tmp_path: Path):
    pred = _predictions()
    s = summarize(pred)
    rows = pred.present["b"]
    assert s["r2"] == pytest.approx(skm.r2_score(pred.y_true, pred.pred))
    assert s["b_rmse"] == pytest.approx(skm.root_mean_squared_error(pred.y_true[rows], pred.per_modality["b"][rows]))
    assert s["b_r2"] == pytest.approx(skm.r2_score(pred.y_true[rows], pred.per_modality["b"][rows]))
    assert s["n"] == 50 and "fused_acc" not in s
    save_predictions(pred, tmp_path / "p.npz")
    back = load_predictions(tmp_path / "p.npz")
    assert isinstance(back, RegressionPredictions)
    np.testing.assert_array_equal(back.pred, pred.pred)
    np.testing.assert_array_equal(back.present["b"], rows)
    assert set(back.per_modality) == {"a", "b"}


def _make_run(run_dir: Path, with_results: bool = True) -> RegressionPredictions:
    run_dir.mkdir(parents=True)
    cfg = {"name": "reg", "seed": 0, "data": {"dataset": "synthetic"}, "strategy": {"name": "joint"},
           "model": {"fusion": "late"}}
    (run_dir / "config.yaml").write_text(yaml.safe_dump(cfg))
    recs = [{"type": "epoch", "epoch": e, "train/loss": 2.0 / e, "val/loss": 2.2 / e, "val/rmse": 1.5 / e,
             "val/r2": -0.5 + 0.4 * e, "val/a_r2": 0.1 * e, "val/b_r2": 0.08 * e, "train/grad_norm/a": 1.0,
             "train/grad_norm/b": 0.5} for e in (1, 2, 3)]
    (run_dir / "metrics.jsonl").write_text("\n".join(json.dumps(r) for r in recs) + "\n")
    pred = _predictions()
    if with_results:
        metrics = {"loss": 0.25, "rmse": 0.5, "mae": 0.4, "r2": 0.9123, "a_rmse": 1.2, "a_r2": 0.45, "b_rmse": 1.3,
                   "b_r2": None, "n": 50}
        results = {"val": metrics, "test": dict(metrics, r2=0.8765), "best_epoch": 3, "epochs_run": 3,
                   "selection": "val rmse", "task": "regression", "stopped_reason": "max_epochs"}
        (run_dir / "results.json").write_text(json.dumps(results))
    save_predictions(pred, run_dir / "predictions_test.npz")
    return pred


def _assert_png(path: Path) -> None:
    with Image.open(path) as im:
        assert im.format == "PNG" and im.size[0] > 100
        im.verify()


def test_regression_report(tmp_path: Path):
    run_dir = tmp_path / "reg"
    pred = _make_run(run_dir)
    text = write_report(run_dir).read_text()
    assert "| fused R^2 | 0.9123 | 0.8765 |" in text
    assert "| fused RMSE | 0.5 | 0.5 |" in text and "| fused MAE | 0.4 | 0.4 |" in text
    assert "| a R^2 | 0.45 | 0.45 |" in text and "| b R^2 | n/a | n/a |" in text
    assert "| loss (fused MSE) | 0.25 | 0.25 |" in text
    assert "selected on the lowest val rmse" in text
    assert "Confusion" not in text and "accuracy" not in text
    assert f"R^2 {skm.r2_score(pred.y_true, pred.pred):.4f}" in text  # the test predictions' own section
    assert "](figures/scatter_test.png)" in text and "reliability" not in text
    for name in ("scatter_test.png", "learning_curves.png", "grad_norms.png"):
        _assert_png(run_dir / "figures" / name)
    assert not (run_dir / "figures" / "reliability_test.png").exists()


def test_regression_report_from_predictions_only(tmp_path: Path):
    run_dir = tmp_path / "reg"
    pred = _make_run(run_dir, with_results=False)
    text = write_report(run_dir).read_text()
    r2 = skm.r2_score(pred.y_true, pred.pred)
    assert f"| fused R^2 | n/a | {r2:.4g} |" in text
    assert "test mse, rmse, mae, r2" in text  # noted as computed from predictions_test.npz
    _assert_png(run_dir / "figures" / "scatter_test.png")
