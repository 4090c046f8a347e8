"""The survival task: its targets, loss and predictions file, and runs on the breast-cancer data through the engine
(joint, unimodal and MLA train it; MLA's entropy rule is refused with the key to change)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from polymodal.tasks import get_task, read_predictions, write_predictions
from polymodal.tasks.survival import SurvivalPredictions, SurvivalReference
from polymodal.tasks.survival.task import bootstrap_cindex, ibs_of

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def task():
    return get_task("survival")


def test_targets_are_checked_with_the_rows_at_fault(task):
    good = task.read_targets(np.array([[3.0, 1], [5.0, 0]]))
    assert good.dtype == np.float32 and good.shape == (2, 2)
    with pytest.raises(ValueError, match=r"times must be finite and > 0; rows \[1\]"):
        task.read_targets(np.array([[3.0, 1], [0.0, 0]]))
    with pytest.raises(ValueError, match=r"events must be 0 \(censored\) or 1 \(observed\); rows \[0\] have \[2.0\]"):
        task.read_targets(np.array([[3.0, 2], [4.0, 0]]))
    with pytest.raises(ValueError, match=r"shape \(3,\); expected \(N, 2\)"):
        task.read_targets(np.array([3.0, 4.0, 5.0]))
    np.testing.assert_array_equal(task.strata(good), [1, 0])


def test_loss_is_the_cox_likelihood_and_refuses_class_weights(task):
    out = torch.tensor([[0.3], [-0.2], [1.0]], requires_grad=True)
    target = torch.tensor([[2.0, 1.0], [3.0, 0.0], [1.0, 1.0]])
    loss = task.loss(out, target)
    # events at t=1 (risk set: all three) and t=2 (risk set: rows 0, 1), mean over the two events
    r = out.detach()[:, 0].numpy().astype(np.float64)
    want = -((r[2] - np.log(np.exp(r).sum())) + (r[0] - np.log(np.exp(r[:2]).sum()))) / 2
    assert loss.item() == pytest.approx(want, rel=1e-6)
    loss.backward()
    assert out.grad is not None and torch.isfinite(out.grad).all()
    with pytest.raises(ValueError, match="class weights"):
        task.loss(out, target, class_weights=torch.ones(2))


def test_predictions_file_keeps_the_reference_curves_and_scores(task, tmp_path):
    out = task.example_outputs(n=60)
    pred = task.predictions(out)
    pred.reference = task.fit_state(out)
    summary = task.summarize(pred)
    assert summary["ibs"] is not None and 0 < summary["ibs"] < 0.25
    path = write_predictions(pred, tmp_path / "predictions_test.npz")
    with np.load(path) as z:
        assert z["survival"].shape == (60, len(pred.reference.grid)) and z["grid"].shape == pred.reference.grid.shape
    back = read_predictions(path)
    assert isinstance(back, SurvivalPredictions) and task.summarize(back) == summary
    np.testing.assert_allclose(back.survival(), pred.survival(), rtol=1e-6)
    section = "\n".join(task.report_section(back, tmp_path))
    assert "Breslow baseline hazard of the training split" in section and "95 % bootstrap interval" in section
    pred.reference = None
    assert ibs_of(pred) is None and "No survival curves" in "\n".join(task.report_section(pred, tmp_path))


def test_reference_needs_events_and_round_trips_as_json():
    time, event = np.array([1.0, 2.0, 3.0, 4.0]), np.array([1.0, 0.0, 1.0, 1.0])
    ref = SurvivalReference.fit(np.zeros(4), time, event, points=5)
    again = SurvivalReference.from_json(ref.to_json(), "x.json")
    np.testing.assert_array_equal(again.curves(np.array([0.5])), ref.curves(np.array([0.5])))
    with pytest.raises(ValueError, match="no observed event"):
        SurvivalReference.fit(np.zeros(4), time, np.zeros(4))


def test_bootstrap_interval_brackets_the_estimate(task):
    pred = task.predictions(task.example_outputs(n=80))
    c = task.summarize(pred)["cindex"]
    lo, hi = bootstrap_cindex(pred.time, pred.event, pred.risk, resamples=200)
    assert lo < c < hi and hi - lo < 0.4


# ------------------------------------------------------------------ through the engine, on the real data


def _train(tmp_path, name, *overrides):
    pytest.importorskip("sksurv", reason="the survival extra (scikit-survival) is not installed")
    from polymodal.config import load_config
    from polymodal.engine.loop import train

    cfg = load_config(ROOT / "configs" / "breast_cancer_survival.yaml",
                      ["trainer.max_epochs=3", "model.width=8", f"name={name}", f"out_dir={tmp_path}",
                       "trainer.progress=false", *overrides])
    return train(cfg)


@pytest.mark.slow
@pytest.mark.parametrize("strategy", ["joint", "unimodal", "mla"])
def test_strategies_train_a_survival_model_on_the_breast_cancer_data(tmp_path, strategy):
    extra = {"mla": ["strategy.name=mla", "model.fusion=shared_head", "strategy.args.fusion_rule=fixed"],
             "unimodal": ["strategy.name=unimodal"]}.get(strategy, [])
    result = _train(tmp_path, strategy, *extra)
    assert result.task == "survival" and result.selection == "val cindex"
    test = result.metrics
    assert test["n"] == 40 and test["events"] == 10 and 0.0 <= test["cindex"] <= 1.0
    assert {"genes_cindex", "clinical_cindex"} <= set(test)
    pred = read_predictions(result.run_dir / "predictions_test.npz")
    assert isinstance(pred, SurvivalPredictions) and pred.risk.shape == (40,)
    assert pred.y_true[:, 1].sum() == 10
    report = (result.run_dir / "report.md").read_text()
    assert "C-index" in report


def test_mla_entropy_rule_is_refused_for_survival(tmp_path):
    with pytest.raises(ValueError, match="strategy.args.fusion_rule=fixed"):
        _train(tmp_path, "mla-entropy", "strategy.name=mla", "model.fusion=shared_head")


def test_a_model_learns_the_synthetic_cox_data_without_the_extra(tmp_path):
    """The synthetic dataset's survival variant (a Cox model of both modalities): a joint model trained on it ranks
    held-out samples well above chance, and its curves beat the constant 0.5 (no scikit-survival needed)."""
    from polymodal.config import load_config
    from polymodal.engine.loop import train

    cfg = load_config(None, [
        "data.dataset=synthetic", "data.options.task=survival", "data.options.size=256",
        "data.split_options.val.size=128", "data.split_options.test.size=256", "strategy.name=joint",
        "model.fusion=late", "model.width=16", "data.batch_size=64", "optim.name=adamw", "optim.lr=0.01",
        "trainer.max_epochs=25", "trainer.accelerator=cpu", "trainer.progress=false", f"out_dir={tmp_path}", "name=syn"])
    result = train(cfg)
    assert result.metrics["n"] == 256
    assert result.metrics["cindex"] > 0.65, result.metrics  # 0.69 here; the true log-risk scores 0.79
    assert result.metrics["ibs"] < 0.22, result.metrics  # 0.19 here; a constant 0.5 scores 0.25
    columns = get_task("survival").prediction_columns(get_task("survival").example_outputs(n=5), ())
    curves = np.stack([v for k, v in columns.items() if k.startswith("survival_")], axis=1)
    assert columns["risk"].shape == (5,) and curves.shape == (5, 50)
    assert np.all(np.diff(curves, axis=1) <= 0) and np.all((curves > 0) & (curves <= 1))  # curves never rise
