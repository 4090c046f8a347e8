"""The engine on regression datasets: metrics, model selection, predictions files, report."""

import json

import numpy as np
import pytest
import torch
from lightning_fabric import Fabric
from sklearn import metrics as skm

from polymodal.data.datasets.synthetic import SyntheticDataset
from polymodal.engine import evaluate_run, load_predictions, train
from polymodal.engine.build import build_datasets
from polymodal.engine.data import make_loader
from polymodal.engine.evaluate import (
    EvalOutputs,
    collect_outputs,
    compute_metrics,
    save_predictions,
    to_predictions,
)
from polymodal.engine.loop import is_improvement, selection_name
from polymodal.models import build_model
from polymodal.report.metrics import RegressionPredictions
from polymodal.strategies.joint import Joint

from ._helpers import tiny_config

REGRESSION = ["data.options={task: regression, size: 128}", "data.split_options={val: {size: 48}, test: {size: 48}}"]


def _outputs(n: int, k: int | None, seed: int = 0) -> EvalOutputs:
    """Hand-made regression outputs: modality a missing in a third of the rows, b with no prediction."""
    rng = np.random.default_rng(seed)
    shape = (n,) if k is None else (n, k)
    label = rng.standard_normal(shape).astype(np.float32)
    noisy = lambda s: (label + s * rng.standard_normal(shape)).reshape(n, -1).astype(np.float32)  # noqa: E731
    present_a = np.arange(n) % 3 != 0
    return EvalOutputs(
        index=np.arange(n), label=label, logits=noisy(0.5), per_modality={"a": noisy(1.0)},
        present={"a": present_a, "b": np.ones(n, dtype=bool)}, task="regression",
    )


@pytest.mark.parametrize("k", [None, 3])
def test_regression_metrics_equal_sklearn(k):
    out = _outputs(40, k)
    m = compute_metrics(out, ["a", "b"])
    y = out.label.astype(np.float64)  # the metrics are computed in float64
    pred = out.logits.reshape(y.shape).astype(np.float64)
    assert m["loss"] == pytest.approx(skm.mean_squared_error(y, pred), rel=1e-6)
    assert m["rmse"] == pytest.approx(skm.root_mean_squared_error(y, pred), rel=1e-6)
    assert m["mae"] == pytest.approx(skm.mean_absolute_error(y, pred), rel=1e-6)
    assert m["r2"] == pytest.approx(skm.r2_score(y, pred), rel=1e-6)
    rows = out.present["a"]
    pa = out.per_modality["a"].reshape(y.shape).astype(np.float64)
    assert m["a_rmse"] == pytest.approx(skm.root_mean_squared_error(y[rows], pa[rows]), rel=1e-6)
    assert m["a_r2"] == pytest.approx(skm.r2_score(y[rows], pa[rows]), rel=1e-6)
    assert m["a_r2"] != pytest.approx(skm.r2_score(y, pa), rel=1e-3)  # over present rows, not all
    assert m["b_rmse"] is None and m["b_r2"] is None  # no unimodal prediction for b
    assert m["n"] == 40 and "fused_acc" not in m


def test_modality_present_in_one_row_has_rmse_but_no_r2():
    out = _outputs(10, None)
    out.present["a"] = np.eye(10, dtype=bool)[0]
    m = compute_metrics(out, ["a"])
    assert m["a_rmse"] == pytest.approx(abs(float(out.per_modality["a"][0, 0] - out.label[0])), rel=1e-6)
    assert m["a_r2"] is None
    out.present["a"] = np.zeros(10, dtype=bool)
    assert compute_metrics(out, ["a"])["a_rmse"] is None


def test_selection_rule():
    assert selection_name("classification") == "val fused_acc" and selection_name("regression") == "val rmse"
    assert is_improvement("regression", 0.9, None) and is_improvement("regression", 0.5, 0.6)
    assert not is_improvement("regression", 0.6, 0.6)  # ties keep the earlier epoch
    assert not is_improvement("regression", 0.7, 0.6) and not is_improvement("regression", float("nan"), 0.6)
    assert is_improvement("classification", 0.7, 0.6) and not is_improvement("classification", 0.6, 0.6)


@pytest.mark.parametrize("k", [1, 2])
def test_collect_outputs_and_predictions_file(tmp_path, k):
    torch.manual_seed(0)
    ds = SyntheticDataset("test", size=21, missing=0.3, task="regression", num_targets=k)
    model = build_model(ds.schema, ds.num_outputs, fusion="late", width=8)
    strategy = Joint()
    strategy.setup(model, ds)
    fabric = Fabric(accelerator="cpu", devices=1)
    loader = fabric.setup_dataloaders(make_loader(ds, batch_size=8, seed=0, shuffle=False),
                                      use_distributed_sampler=False)
    out = collect_outputs(fabric, fabric.setup_module(model), strategy, loader, ds.schema)
    assert out.task == "regression" and out.label.dtype == np.float32
    np.testing.assert_allclose(out.label, ds.labels)
    assert out.logits.shape == (21, k)
    preds = to_predictions(out)
    assert isinstance(preds, RegressionPredictions)
    assert preds.pred.shape == ds.labels.shape and preds.per_modality["a"].shape == ds.labels.shape
    save_predictions(tmp_path / "p.npz", out, ds.class_names)
    with np.load(tmp_path / "p.npz") as z:
        assert {"y_true", "pred", "pred_a", "pred_b", "present_a", "present_b", "index"} <= set(z.files)
        assert "probs" not in z.files
        np.testing.assert_array_equal(z["present_a"], ds.present[:, 0])
    loaded = load_predictions(tmp_path / "p.npz")
    assert isinstance(loaded, RegressionPredictions)
    np.testing.assert_array_equal(loaded.pred, preds.pred)
    np.testing.assert_array_equal(loaded.present["a"], ds.present[:, 0])
    np.testing.assert_array_equal(loaded.index, np.arange(21))


def test_train_regression_end_to_end(tmp_path):
    cfg = tiny_config(tmp_path, *REGRESSION, "trainer.max_epochs=4")
    result = train(cfg)
    run = cfg.run_dir
    results = json.loads((run / "results.json").read_text())
    assert results["task"] == "regression" and results["selection"] == "val rmse"
    for split in ("val", "test"):
        assert {"loss", "rmse", "mae", "r2", "a_rmse", "a_r2", "b_rmse", "b_r2", "n"} <= set(results[split])
        assert "fused_acc" not in results[split]
    assert results["test"]["r2"] > 0.5
    # the best epoch is the one with the lowest validation RMSE (ties -> earlier)
    rmses = [r["val/rmse"] for r in result.history]
    assert result.best_epoch == int(np.argmin(rmses)) + 1
    assert results["val"]["rmse"] == pytest.approx(min(rmses))
    # evaluate_run reloads the best checkpoint and reproduces the saved predictions
    saved = load_predictions(run / "predictions_test.npz")
    again = evaluate_run(run, "test")
    assert isinstance(saved, RegressionPredictions) and saved.pred.shape == (48,)
    np.testing.assert_allclose(again.pred, saved.pred, atol=1e-6)
    assert float(np.sqrt(np.mean((saved.pred - saved.y_true) ** 2))) == pytest.approx(results["test"]["rmse"], rel=1e-5)
    report = (run / "report.md").read_text()
    assert "fused R^2" in report and "Confusion" not in report
    assert (run / "figures" / "scatter_test.png").is_file()
    assert not (run / "figures" / "reliability_test.png").exists()


def test_classification_results_name_their_selection(tmp_path):
    cfg = tiny_config(tmp_path, "trainer.max_epochs=1", "data.options={size: 32}")
    train(cfg)
    results = json.loads((cfg.run_dir / "results.json").read_text())
    assert results["selection"] == "val fused_acc" and results["task"] == "classification"


@pytest.mark.parametrize("key", ["class_weights", "balanced_sampling"])
def test_class_options_are_rejected_for_regression(tmp_path, key):
    cfg = tiny_config(tmp_path, *REGRESSION, f"data.{key}=true")
    with pytest.raises(ValueError, match=f"data.{key}=true needs classes.*regression"):
        train(cfg)


def test_classification_only_strategy_is_rejected_by_the_engine(tmp_path):
    cfg = tiny_config(tmp_path, *REGRESSION, "strategy.name=ogm_ge")
    with pytest.raises(ValueError, match=r"'ogm_ge' needs single_label.*strategy\.name=joint or strategy\.name=joint-concat "
                                         r"or strategy\.name=mla \(with strategy\.args\.fusion_rule=fixed\) or strategy\.name=unimodal"):
        train(cfg)


def test_splits_must_share_one_task(tmp_path):
    cfg = tiny_config(tmp_path, "data.options={task: regression}", "data.split_options={test: {task: classification}}")
    with pytest.raises(ValueError, match="every split must share one task"):
        build_datasets(cfg)


def test_eval_outputs_infer_the_task_from_the_labels():
    out = _outputs(6, None)
    plain = EvalOutputs(index=out.index, label=out.label, logits=out.logits, per_modality={}, present=out.present)
    assert plain.task == "regression" and "rmse" in compute_metrics(plain, [])
    ids = EvalOutputs(index=out.index, label=np.arange(6) % 2, logits=np.zeros((6, 2), np.float32),
                      per_modality={}, present=out.present)
    assert ids.task == "classification"
