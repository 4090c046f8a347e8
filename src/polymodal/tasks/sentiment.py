"""Sentiment intensity: one score in [-3, 3] per sample (CMU-MOSI, CMU-MOSEI; docs/datasets.md). The regression
task (its mean-squared-error loss, RMSE / MAE / R^2, predictions file and figures) plus the metrics the
sentiment literature derives from the score, computed as the common evaluation code computes them:

- ``corr``: Pearson correlation of prediction and truth (None when either is constant);
- ``acc2``: binary accuracy, negative (< 0) against non-negative (>= 0); ``f1`` its weighted F1;
- ``acc2_nonzero``: binary accuracy over the samples whose truth is not 0, negative (< 0) against positive
  (> 0); ``f1_nonzero`` its weighted F1 (papers print both Acc-2 figures, often as "a / b");
- ``acc7`` and ``acc5``: both clipped to [-3, 3] (or [-2, 2]) and rounded to the nearest integer with
  ``numpy.round`` (halves to even), the fraction that agree.

The best epoch is the one with the lowest validation MAE (the published models train on the L1 loss and
select on it; this task keeps the regression task's squared-error loss).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from polymodal.report.metrics import check_targets
from polymodal.report.table import num
from polymodal.tasks.base import TASKS, SyntheticData, SyntheticSpec
from polymodal.tasks.outputs import EvalOutputs
from polymodal.tasks.regression import Regression, RegressionPredictions, shaped_outputs, summarize_regression

LOW, HIGH = -3.0, 3.0
METRIC_NAMES = {"corr": "correlation (Pearson)", "acc2": "Acc-2 (negative / non-negative)",
                "f1": "F1 (negative / non-negative, weighted)", "acc2_nonzero": "Acc-2 (negative / positive, no 0)",
                "f1_nonzero": "F1 (negative / positive, weighted)", "acc7": "Acc-7", "acc5": "Acc-5"}


@dataclass
class SentimentPredictions(RegressionPredictions):
    """A sentiment run's predictions on one split (the fields of :class:`RegressionPredictions`)."""

    task: ClassVar[str] = "sentiment"


def _weighted_f1(truth: np.ndarray, pred: np.ndarray) -> float:
    """F1 of each of the two classes weighted by its share of the truth (scikit-learn's ``average='weighted'``)."""
    total = 0.0
    for c in (False, True):
        tp = float(np.sum((pred == c) & (truth == c)))
        fp, fn = float(np.sum((pred == c) & (truth != c))), float(np.sum((pred != c) & (truth == c)))
        f1 = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0
        total += f1 * float(np.sum(truth == c))
    return total / len(truth)


def sentiment_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float | None]:
    """``corr``, ``acc2``, ``f1``, ``acc2_nonzero``, ``f1_nonzero``, ``acc7``, ``acc5`` of one split (module
    docstring); None where undefined (a constant series, no non-zero truth)."""
    y = check_targets(y_true, "y_true").reshape(-1)
    p = np.asarray(y_pred, dtype=np.float64).reshape(-1)
    if p.shape != y.shape:
        raise ValueError(f"y_pred has {p.size} values but y_true has {y.size}; sentiment takes one score per sample")
    corr = None
    if len(y) >= 2 and np.all(np.isfinite(p)) and np.std(y) > 0 and np.std(p) > 0:
        corr = float(np.corrcoef(p, y)[0, 1])
    nonzero = y != 0
    t2, p2 = y >= 0, p >= 0
    out: dict[str, float | None] = {
        "corr": corr,
        "acc2": float(np.mean(t2 == p2)),
        "f1": _weighted_f1(t2, p2),
        "acc2_nonzero": float(np.mean((y[nonzero] > 0) == (p[nonzero] > 0))) if nonzero.any() else None,
        "f1_nonzero": _weighted_f1(y[nonzero] > 0, p[nonzero] > 0) if nonzero.any() else None,
    }
    for key, bound in (("acc7", 3.0), ("acc5", 2.0)):
        out[key] = float(np.mean(np.round(np.clip(p, -bound, bound)) == np.round(np.clip(y, -bound, bound))))
    return out


@TASKS.register("sentiment")
class Sentiment(Regression):
    """Sentiment intensity in [-3, 3]: squared-error loss; MAE (selects), correlation, Acc-2, F1, Acc-7, Acc-5."""

    name = "sentiment"
    monitor = "mae"
    mode = "min"
    infer_priority = None  # only chosen by name (a dataset's task); a table's numbers are a regression
    bench_extra = ("corr", "acc2", "acc2_nonzero", "f1", "acc7", "rmse")
    results_intro = ("MAE and RMSE in sentiment units ([-3, 3]), R^2 and correlation as fractions; Acc-2 "
                     "(negative / non-negative, and negative / positive without the samples scored 0), F1 "
                     "(weighted) and Acc-7 / Acc-5 (rounded scores) as fractions; n/a: not logged, or the "
                     "fusion cannot run on that modality alone.")

    # -- labels ----------------------------------------------------------------------------------
    def check_labels(self, labels: np.ndarray, num_outputs: int, where: str = "dataset") -> None:
        """The regression task's check, one score per sample, every score in [-3, 3]."""
        if num_outputs != 1:
            raise ValueError(f"{where}: a sentiment task has one score per sample; got num_outputs={num_outputs}")
        super().check_labels(labels, num_outputs, where)
        y = np.asarray(labels, dtype=np.float64)
        if y.size and (y.min() < LOW - 1e-6 or y.max() > HIGH + 1e-6):
            raise ValueError(f"{where}: sentiment labels range from {y.min():.4g} to {y.max():.4g}; expected scores "
                             f"in [{LOW:g}, {HIGH:g}] (the CMU-MOSI / MOSEI scale)")

    def synthetic_data(self, spec: SyntheticSpec) -> SyntheticData:
        """The regression task's synthetic targets (one), clipped to [-3, 3]."""
        if spec.num_targets != 1:
            raise ValueError(f"synthetic dataset: num_targets={spec.num_targets}; a sentiment task has one score")
        data = super().synthetic_data(spec)
        data.labels = np.clip(data.labels, LOW, HIGH).astype(np.float32)
        return data

    def example_labels(self, rng: np.random.Generator, n: int, num_outputs: int) -> np.ndarray:
        """Scores on the annotation grid (thirds of a point in [-3, 3], zeros included)."""
        return self.read_targets(rng.integers(-9, 10, n) / 3.0)

    def example_outputs(self, n: int = 24, modalities: Any = ("a", "b"), num_outputs: int = 1,
                        seed: int = 0) -> EvalOutputs:
        """The regression task's example with one score per sample."""
        return super().example_outputs(n, modalities, 1, seed)

    # -- evaluation ------------------------------------------------------------------------------
    def predictions(self, out: EvalOutputs, class_names: Any = ()) -> SentimentPredictions:
        return SentimentPredictions(**vars(super().predictions(out, class_names)))

    def summarize(self, pred: RegressionPredictions) -> dict[str, float | int | None]:
        """The regression task's summary plus :func:`sentiment_metrics` of the fused prediction."""
        return {**summarize_regression(pred), **sentiment_metrics(pred.y_true, pred.pred)}

    def metrics(self, out: EvalOutputs, modalities: list[str]) -> dict[str, float | None]:
        """The regression task's metrics plus :func:`sentiment_metrics` of the fused prediction."""
        return {**super().metrics(out, modalities),
                **sentiment_metrics(out.label, shaped_outputs(out.logits, out.label))}

    def from_arrays(self, arrays: Any, path: Path) -> SentimentPredictions:
        base = super().from_arrays(arrays, path)
        return SentimentPredictions(**{f.name: getattr(base, f.name) for f in fields(base)})

    def owns_file(self, files: set[str]) -> bool:
        return False  # files of this task always name it

    # -- report ----------------------------------------------------------------------------------
    def results_table(self, results: dict[str, Any]) -> list[str]:
        lines = super().results_table(results)
        for i, line in enumerate(lines):
            key = line.split("|")[1].strip() if line.count("|") > 2 else ""
            if key in METRIC_NAMES:
                lines[i] = line.replace(f"| {key} |", f"| {METRIC_NAMES[key]} |", 1)
        return lines

    def report_section(self, pred: RegressionPredictions, run_dir: Path) -> list[str]:
        out = super().report_section(pred, run_dir)
        m = sentiment_metrics(pred.y_true, pred.pred)
        line = ", ".join(f"{METRIC_NAMES[k]} {num(m[k])}" for k in ("corr", "acc2", "acc2_nonzero", "f1", "acc7", "acc5"))
        return [*out, f"Sentiment metrics (fused): {line}.", ""]


__all__ = ["Sentiment", "SentimentPredictions", "sentiment_metrics"]
