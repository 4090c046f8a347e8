"""A third task defined here, in one class plus a registry line, trained end-to-end by the engine: it proves
that a new task needs no change anywhere else (its loss trains, its metric selects the best epoch, its
predictions file round-trips and its section is in the run report)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest
import torch
from torch import Tensor

from polymodal import load_run
from polymodal.engine import train
from polymodal.registry import Entry
from polymodal.report.table import markdown_table, num
from polymodal.tasks import TASKS, Task, get_task
from polymodal.tasks.classification import ClassLabels

from ..engine._helpers import tiny_config
from ._contract import check_task_contract

NAME = "toy-ordinal"


@dataclass
class OrdinalPredictions:
    """Predicted class ids of ordered classes: ``pred`` (N,), ``per_modality`` name -> (N,)."""

    y_true: np.ndarray
    pred: np.ndarray
    per_modality: dict[str, np.ndarray] = field(default_factory=dict)
    present: dict[str, np.ndarray] = field(default_factory=dict)
    index: np.ndarray | None = None
    task: ClassVar[str] = NAME


class ToyOrdinal(ClassLabels, Task):
    """Ordered classes: squared error of the expected class; mean absolute class error, lowest is best."""

    name = NAME
    monitor = "mae"
    mode = "min"
    log_suffix = "mae"  # its labels are class ids: the label side of classification (ClassLabels)
    results_intro = "Mean absolute error in classes; n/a: the fusion cannot run on that modality alone."

    def loss(self, output: Tensor | dict[str, Tensor], target: Tensor, *, rows: Tensor | None = None,
             class_weights: Tensor | None = None) -> Tensor:
        if class_weights is not None:
            raise ValueError("toy-ordinal has no class weights")
        assert isinstance(output, Tensor)
        expected = output.float().softmax(dim=1) @ torch.arange(output.shape[1], dtype=torch.float32)
        err = (expected - target.float()) ** 2
        if rows is None:
            return err.mean()
        return err[rows].mean() if bool(rows.any()) else output.sum() * 0.0

    def predictions(self, out: Any, class_names: Sequence[str] = ()) -> OrdinalPredictions:
        return OrdinalPredictions(out.label, out.logits.argmax(1), {m: v.argmax(1) for m, v in out.per_modality.items()},
                                  dict(out.present), out.index)

    def summarize(self, pred: OrdinalPredictions) -> dict[str, float | int | None]:
        y = np.asarray(pred.y_true)
        summary: dict[str, float | int | None] = {"mae": float(np.mean(np.abs(pred.pred - y)))}
        for m, p in pred.per_modality.items():
            rows = np.asarray(pred.present.get(m, np.ones(len(y), bool)), bool)
            summary[f"{m}_mae"] = float(np.mean(np.abs(p[rows] - y[rows]))) if rows.any() else None
        summary["n"] = len(y)
        return summary

    def metrics(self, out: Any, modalities: list[str]) -> dict[str, float | None]:
        loss = float(self.loss(torch.from_numpy(out.logits), torch.from_numpy(out.label)))
        summary = self.summarize(self.predictions(out))
        return {"loss": loss, **{k: summary.get(k) for k in ["mae", *(f"{m}_mae" for m in modalities)]},
                "n": int(len(out.label))}

    def to_arrays(self, pred: OrdinalPredictions) -> dict[str, np.ndarray]:
        return {"y_true": pred.y_true, "pred": pred.pred, **{f"pred_{m}": p for m, p in pred.per_modality.items()},
                **{f"present_{m}": p for m, p in pred.present.items()}}

    def from_arrays(self, arrays: Mapping[str, np.ndarray], path: Path) -> OrdinalPredictions:
        return OrdinalPredictions(arrays["y_true"], arrays["pred"],
                                  {k[5:]: v for k, v in arrays.items() if k.startswith("pred_")},
                                  {k[8:]: v.astype(bool) for k, v in arrays.items() if k.startswith("present_")},
                                  arrays.get("index"))

    def results_table(self, results: dict[str, Any]) -> list[str]:
        val, test = results.get("val") or {}, results.get("test") or {}
        keys = [k for k in dict.fromkeys([*val, *test]) if k != "n"]
        return markdown_table(["metric", "val", "test"], [[k, num(val.get(k)), num(test.get(k))] for k in keys])

    def report_section(self, pred: OrdinalPredictions, run_dir: Path) -> list[str]:
        err = np.abs(pred.pred - pred.y_true)
        rows = [[str(e), str(int((err == e).sum()))] for e in range(int(err.max()) + 1)]
        return ["## Ordinal errors (test)", "", *markdown_table(["|error| in classes", "samples"], rows), ""]


@pytest.fixture
def toy_task(monkeypatch):
    """The toy task in TASKS for one test only (the registry line a real task puts on its class)."""
    monkeypatch.setitem(TASKS._entries, NAME, Entry(NAME, ToyOrdinal, {}, "Ordered classes (test-only)."))
    return get_task(NAME)


def test_toy_task_meets_the_contract(toy_task, tmp_path):
    check_task_contract(toy_task, tmp_path)


def test_the_engine_trains_a_new_task_end_to_end(toy_task, tmp_path):
    cfg = tiny_config(tmp_path, "name=toy", f"data.options.task={NAME}", "trainer.max_epochs=3",
                      "trainer.max_steps_per_epoch=2", "optim.lr=0.05")
    result = train(cfg)
    assert result.task == NAME and result.selection == "val mae"
    assert set(result.metrics) == {"loss", "mae", "a_mae", "b_mae", "n"}
    run = load_run(tmp_path / "toy")
    assert run.task.name == NAME and run.results["selection"] == "val mae"
    # the task's metric selected the best epoch: the lowest validation MAE, ties keeping the earlier epoch
    maes = [r["val/mae"] for r in run.records]
    assert len(maes) == 3 and run.results["best_epoch"] == 1 + int(np.argmin(maes))
    # its loss trained the model: the training loss of the last epoch is below the first one's
    assert run.records[-1]["train/loss"] < run.records[0]["train/loss"]
    # the predictions files are the task's, and the best checkpoint's test metrics come from them
    pred = run.predictions["test"]
    assert isinstance(pred, OrdinalPredictions) and len(pred.y_true) == result.metrics["n"]
    assert result.metrics["mae"] == pytest.approx(float(np.mean(np.abs(pred.pred - pred.y_true))))
    # the report has the task's table and section
    report = (tmp_path / "toy" / "report.md").read_text()
    assert "## Ordinal errors (test)" in report and "| mae |" in report and "Mean absolute error in classes" in report
    assert "lowest val mae" in report and "![Learning curves](figures/learning_curves.png)" in report
    # data.class_weights reaches the task's loss (through StepContext.class_weights); this task refuses them
    with pytest.raises(ValueError, match="toy-ordinal has no class weights"):
        train(tiny_config(tmp_path, "name=toy-weights", f"data.options.task={NAME}", "data.class_weights=true",
                          "trainer.max_epochs=1", "trainer.max_steps_per_epoch=1"))
