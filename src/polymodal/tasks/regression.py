"""Regression: one or K float targets per sample; mean squared error, RMSE / MAE / R^2 (as scikit-learn
defines them), the best epoch on the lowest validation RMSE (docs/architecture.md, "A task")."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from polymodal.report.metrics import RegressionPredictions, summarize_regression
from polymodal.report.table import is_number, markdown_table, modality_names, num
from polymodal.tasks.base import TASKS, Task

if TYPE_CHECKING:
    from polymodal.engine.evaluate import EvalOutputs


def masked_mse(pred: Tensor, target: Tensor, rows: Tensor | None = None) -> Tensor:
    """Mean squared error of ``pred`` (B, K) against ``target`` (B,) or (B, K) on the rows where ``rows``
    (B,) is True (all rows if None); the mean is over rows and targets.

    With no row selected the result is a zero that still depends on ``pred`` (as
    :func:`polymodal.tasks.classification.masked_cross_entropy`).
    """
    if target.shape[0] != pred.shape[0] or target.numel() != pred.numel():
        raise ValueError(
            f"regression targets of shape {tuple(target.shape)} do not match the model's outputs "
            f"{tuple(pred.shape)}; the dataset's num_outputs must equal the number of targets"
        )
    dtype = torch.promote_types(pred.dtype, torch.float32)  # targets keep full precision under bf16/fp16
    pred, target = pred.to(dtype), target.reshape(pred.shape).to(dtype)
    if rows is None:
        return F.mse_loss(pred, target)
    if not bool(rows.any()):
        return pred.sum() * 0.0
    return F.mse_loss(pred[rows], target[rows])


def shaped_outputs(values: np.ndarray, label: np.ndarray) -> np.ndarray:
    """Model outputs (N, K) in the shape of the targets ``label``: (N,) or (N, K)."""
    if values.size != label.size:
        raise ValueError(
            f"the model gives {values.shape[-1]} outputs per sample but the targets have shape "
            f"{label.shape[1:] or '()'}; the dataset's num_outputs must equal the number of targets"
        )
    return values.reshape(label.shape)


def _finite_or_none(x: float | int | None) -> float | None:
    return float(x) if x is not None and np.isfinite(x) else None


@TASKS.register("regression")
class Regression(Task):
    """Float targets: mean squared error; RMSE, MAE and R^2; best epoch on the lowest val RMSE."""

    name = "regression"
    monitor = "rmse"
    mode = "min"
    log_suffix = "rmse"
    label_dtype = np.float32
    uses_classes = False
    mean_of_heads = True
    results_intro = ("RMSE and MAE in target units, R^2 as a fraction (1 = perfect, 0 = predicting the mean); "
                     "per-modality metrics over the samples where the modality is present; "
                     "n/a: not logged, or the fusion cannot run on that modality alone.")

    def loss(self, output: Tensor | dict[str, Tensor], target: Tensor, *, rows: Tensor | None = None,
             class_weights: Tensor | None = None) -> Tensor:
        """:func:`masked_mse`; class weights are not defined for a regression (ValueError)."""
        if class_weights is not None:
            raise ValueError("class weights (data.class_weights) are not defined for a regression task")
        if not isinstance(output, Tensor):
            raise TypeError(f"the regression loss takes a (B, K) output tensor; got {type(output).__name__}")
        return masked_mse(output, target, rows)

    def predictions(self, out: EvalOutputs, class_names: Sequence[str] = ()) -> RegressionPredictions:
        """The outputs in the shape of the targets as :class:`RegressionPredictions`."""
        return RegressionPredictions(
            y_true=out.label,
            pred=shaped_outputs(out.logits, out.label),
            per_modality={m: shaped_outputs(v, out.label) for m, v in out.per_modality.items()},
            present=dict(out.present),
            index=out.index,
        )

    def summarize(self, pred: RegressionPredictions) -> dict[str, float | int | None]:
        """:func:`polymodal.report.metrics.summarize_regression`."""
        return summarize_regression(pred)

    def metrics(self, out: EvalOutputs, modalities: list[str]) -> dict[str, float | None]:
        """``loss`` (fused mean squared error over samples and targets), ``rmse``, ``mae``, ``r2`` of the fused
        prediction; per modality ``<m>_rmse`` and ``<m>_r2`` over the samples where m is present (None if
        n/a, or for R^2 with fewer than two such samples); ``n``. RMSE and R^2 average over targets as
        scikit-learn's defaults do."""
        summary = summarize_regression(self.predictions(out))
        metrics: dict[str, float | None] = {
            "loss": summary["mse"],  # type: ignore[dict-item]
            "rmse": summary["rmse"],  # type: ignore[dict-item]
            "mae": summary["mae"],  # type: ignore[dict-item]
            "r2": _finite_or_none(summary["r2"]),
        }
        for m in modalities:
            metrics[f"{m}_rmse"] = summary.get(f"{m}_rmse")  # type: ignore[assignment]
            metrics[f"{m}_r2"] = _finite_or_none(summary.get(f"{m}_r2"))
        metrics["n"] = int(len(out.label))
        return metrics

    # -- predictions file ------------------------------------------------------------------------
    def to_arrays(self, pred: RegressionPredictions) -> dict[str, np.ndarray]:
        """``y_true`` and ``pred`` (N,) or (N, K), ``modalities``, ``class_names`` (empty), ``pred_<m>`` per
        available modality, ``present_<m>`` (N,) bool."""
        names = list(dict.fromkeys([*pred.present, *pred.per_modality]))
        arrays: dict[str, np.ndarray] = {
            "y_true": np.asarray(pred.y_true),
            "pred": np.asarray(pred.pred),
            "modalities": np.array(names, dtype=str),
            "class_names": np.array([], dtype=str),
        }
        arrays.update({f"pred_{m}": np.asarray(p) for m, p in pred.per_modality.items()})
        arrays.update({f"present_{m}": np.asarray(p, dtype=bool) for m, p in pred.present.items()})
        return arrays

    def from_arrays(self, arrays: Mapping[str, np.ndarray], path: Path) -> RegressionPredictions:
        missing = [k for k in ("y_true", "pred") if k not in arrays]
        if missing:
            raise ValueError(f"predictions file {path} lacks arrays {missing}; it holds {sorted(arrays)}")
        y, pred = arrays["y_true"], arrays["pred"]
        if y.ndim not in (1, 2) or pred.shape != y.shape:
            raise ValueError(f"predictions file {path}: y_true {y.shape} and pred {pred.shape}; expected the same (N,) or (N, K)")
        return RegressionPredictions(
            y_true=y,
            pred=pred,
            per_modality={k[len("pred_"):]: v for k, v in arrays.items() if k.startswith("pred_")},
            present={k[len("present_"):]: v.astype(bool) for k, v in arrays.items() if k.startswith("present_")},
            index=arrays.get("index"),
        )

    def owns_file(self, files: set[str]) -> bool:
        return "pred" in files and "probs" not in files

    # -- data ------------------------------------------------------------------------------------
    def strata(self, y: np.ndarray) -> np.ndarray:
        """Five quantile bins of the target."""
        y = np.asarray(y).astype(np.float64)
        edges = np.unique(np.quantile(y, [0.2, 0.4, 0.6, 0.8]))
        return np.searchsorted(edges, y, side="right")

    # -- report ----------------------------------------------------------------------------------
    def infer_from_metrics(self, splits: list[dict[str, Any]]) -> bool:
        return any("rmse" in d or "r2" in d for d in splits) and not any("fused_acc" in d for d in splits)

    def results_table(self, results: dict[str, Any]) -> list[str]:
        val, test = results.get("val") or {}, results.get("test") or {}
        rows = [[label, num(val.get(key), ".4g"), num(test.get(key), ".4g")]
                for key, label in (("rmse", "fused RMSE"), ("mae", "fused MAE"), ("r2", "fused R^2"))]
        modalities = modality_names(results, ("_rmse", "_r2"))
        for m in modalities:
            rows.append([f"{m} RMSE", num(val.get(f"{m}_rmse"), ".4g"), num(test.get(f"{m}_rmse"), ".4g")])
            rows.append([f"{m} R^2", num(val.get(f"{m}_r2"), ".4g"), num(test.get(f"{m}_r2"), ".4g")])
        known = {"rmse", "mae", "r2"} | {f"{m}_{k}" for m in modalities for k in ("rmse", "r2")}
        for key in dict.fromkeys([*val, *test]):
            if key not in known and (is_number(val.get(key)) or is_number(test.get(key))):
                label = {"loss": "loss (fused MSE)", "mse": "fused MSE", "n": "samples"}.get(key, key)
                rows.append([label, num(val.get(key), ".4g"), num(test.get(key), ".4g")])
        return markdown_table(["metric", "val", "test"], rows)

    def report_section(self, pred: RegressionPredictions, run_dir: Path) -> list[str]:
        """Test RMSE, MAE and R^2, fused and per modality."""
        y = np.asarray(pred.y_true)
        k = 1 if y.ndim == 1 else y.shape[1]
        summary = summarize_regression(pred)
        parts = [f"fused RMSE {num(summary['rmse'], '.4g')}, MAE {num(summary['mae'], '.4g')}, R^2 {num(summary['r2'])}"]
        parts += [f"{m} alone RMSE {num(summary.get(f'{m}_rmse'), '.4g')}, R^2 {num(summary.get(f'{m}_r2'))}"
                  for m in pred.per_modality]
        noun = "target" if k == 1 else "targets"
        out = ["## Test predictions (fused)", "", f"{len(y)} test samples, {k} regression {noun}; " + "; ".join(parts) + ".", ""]
        if pred.per_modality:
            out += ["Per-modality metrics are taken over the samples where the modality is present.", ""]
        return out

    def learning_curve(self) -> tuple[str, str, str]:
        return ("r2", "r2", "R^2")

    def figures(self, pred: RegressionPredictions, fig_dir: Path) -> dict[str, tuple[Path, str]]:
        """The predicted-vs-true scatter plot of the fused test prediction."""
        from polymodal.report.plots import plot_regression_scatter

        path = plot_regression_scatter(pred.y_true, pred.pred, fig_dir / "scatter_test.png", title="test, fused")
        return {"scatter": (path, "Predicted vs true, test")}


__all__ = ["Regression", "masked_mse", "shaped_outputs"]
