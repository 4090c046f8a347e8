"""The task registry: every registered task meets the contract; classification and regression give the
numbers the engine gave before tasks were objects (reference formulas written out here)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from polymodal.data.datasets.synthetic import SyntheticDataset
from polymodal.report.metrics import Predictions, RegressionPredictions
from polymodal.tasks import TASKS, get_task, read_predictions, task_of, write_predictions

from ._contract import check_task_contract


@pytest.mark.parametrize("name", TASKS.names())
def test_every_task_meets_the_contract(name, tmp_path):
    check_task_contract(get_task(name), tmp_path)


def test_unknown_task_names_are_clear_errors(tmp_path):
    with pytest.raises(KeyError, match=r"unknown task 'regresion'.*close matches: regression"):
        get_task("regresion")
    ds = SyntheticDataset("val", size=8)
    ds.task = "ranking"
    with pytest.raises(ValueError, match=r"dataset task 'ranking'; expected one of classification, .*regression"):
        task_of(ds)
    with pytest.raises(ValueError, match=r"synthetic dataset: task='ranking'; expected one of"):
        SyntheticDataset("val", size=8, task="ranking")
    path = tmp_path / "p.npz"
    np.savez(path, y_true=np.zeros(2), pred=np.zeros(2), task=np.asarray("ranking"))
    with pytest.raises(ValueError, match=r"p\.npz names task 'ranking'; known tasks"):
        read_predictions(path)


def test_a_dataset_without_a_task_is_classification_and_tasks_are_not_their_names():
    assert task_of(None).name == "classification" and task_of(object()).name == "classification"
    assert task_of(SyntheticDataset("val", size=8, task="regression")) == get_task("regression")
    assert get_task("regression") == get_task("regression") and get_task("regression") != get_task("classification")
    # a task is compared with tasks: `task == "regression"` is False, so code that compares names fails its tests
    assert get_task("regression") != "regression" and "regression" not in {get_task("regression"): 1}


def test_classification_numbers_are_the_reference_formulas():
    task = get_task("classification")
    out = task.example_outputs(n=30, num_outputs=4, seed=3)
    m = task.metrics(out, ["a", "b"])
    logits, y = torch.from_numpy(out.logits), torch.from_numpy(out.label)
    assert m["loss"] == float(F.cross_entropy(logits, y))
    assert m["fused_acc"] == float(np.mean(out.logits.argmax(1) == out.label))
    rows = out.present["a"]
    assert m["a_acc"] == float(np.mean(out.per_modality["a"][rows].argmax(1) == out.label[rows]))
    from sklearn.metrics import f1_score

    pred = out.logits.argmax(1)
    assert m["macro_f1"] == pytest.approx(f1_score(out.label, pred, average="macro", labels=np.union1d(out.label, pred)),
                                          abs=1e-12)
    # the loss: plain cross-entropy, the masked one on the selected rows, class weights as F.cross_entropy's
    w = torch.tensor([1.0, 2.0, 0.5, 1.0])
    sel = torch.from_numpy(rows)
    assert torch.equal(task.loss(logits, y, class_weights=w), F.cross_entropy(logits, y, weight=w))
    assert torch.equal(task.loss(logits, y, rows=sel, class_weights=w), F.cross_entropy(logits[sel], y[sel], weight=w))


def test_regression_numbers_are_the_reference_formulas():
    task = get_task("regression")
    out = task.example_outputs(n=30, num_outputs=2, seed=4)
    m = task.metrics(out, ["a", "b"])
    err = out.logits.astype(np.float64) - out.label
    assert m["loss"] == float(np.mean(err ** 2))
    assert m["rmse"] == float(np.mean(np.sqrt(np.mean(err ** 2, axis=0))))
    assert m["mae"] == float(np.mean(np.abs(err)))
    rows = out.present["b"]
    err_b = out.per_modality["b"][rows].astype(np.float64) - out.label[rows]
    assert m["b_rmse"] == float(np.mean(np.sqrt(np.mean(err_b ** 2, axis=0))))
    pred, target = torch.from_numpy(out.logits), torch.from_numpy(out.label)
    assert torch.equal(task.loss(pred, target), F.mse_loss(pred, target))
    with pytest.raises(ValueError, match=r"data\.class_weights"):
        task.loss(pred, target, class_weights=torch.ones(2))
    assert task.strata(np.arange(10.0)).tolist() == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]


def test_files_written_before_tasks_were_named_are_read_by_their_arrays(tmp_path):
    cls = tmp_path / "cls.npz"  # the classification layout the engine wrote before (no task array)
    np.savez_compressed(cls, y_true=np.array([0, 1, 1]), probs=np.eye(3)[[0, 1, 2]][:, :2] + 0.0,
                        index=np.arange(3), modalities=np.array(["a"]), class_names=np.array(["x", "y"]),
                        probs_a=np.full((3, 2), 0.5), present_a=np.array([True, False, True]))
    pred = read_predictions(cls)
    assert isinstance(pred, Predictions) and pred.class_names == ("x", "y")
    assert pred.present["a"].tolist() == [True, False, True] and set(pred.per_modality) == {"a"}
    reg = tmp_path / "reg.npz"
    np.savez(reg, y_true=np.array([0.5, 1.5]), pred=np.array([0.0, 2.0]), pred_a=np.array([1.0, 1.0]))
    back = read_predictions(reg)
    assert isinstance(back, RegressionPredictions) and back.index is None
    write_predictions(back, tmp_path / "again.npz")
    np.testing.assert_array_equal(read_predictions(tmp_path / "again.npz").index, [0, 1])


def test_polymodal_list_tasks_names_every_task(capsys):
    from polymodal.cli import main
    from polymodal.registries import ALL

    assert ALL["tasks"] is TASKS
    assert main(["list", "tasks"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in TASKS.names()) and "cross-entropy" in out


def test_the_synthetic_dataset_serves_each_task_its_own_targets_or_refuses(monkeypatch):
    """The synthetic dataset's targets come from the task (never another task's: it once served N(0, 1)
    regression targets to any task without classes); a task that defines none is refused by name."""
    from polymodal.registry import Entry
    from polymodal.tasks import Regression

    for name in ("classification", "regression", "multilabel", "contrastive"):
        ds = SyntheticDataset("val", size=12, task=name)
        get_task(name).check_labels(ds.labels, ds.num_outputs, name)

    class Ranking(Regression):
        """A task of the test only: it inherits a loss but defines no synthetic data of its own."""

        name = "test-ranking"

        def synthetic_data(self, spec):  # what Task gives a task that defines none
            return super(Regression, self).synthetic_data(spec)

    monkeypatch.setitem(TASKS._entries, "test-ranking", Entry("test-ranking", Ranking, {}, "test"))
    with pytest.raises(ValueError, match=r"synthetic dataset has no test-ranking variant.*defines no synthetic_data"):
        SyntheticDataset("val", size=12, task="test-ranking")
