"""Regression: one or K float targets per sample; mean squared error, RMSE / MAE / R^2 (as scikit-learn
defines them), the best epoch on the lowest validation RMSE (docs/architecture.md, "A task")."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from polymodal.report.metrics import (
    check_targets,
    mean_absolute_error,
    mean_squared_error,
    r2_score,
    root_mean_squared_error,
)
from polymodal.report.table import is_number, markdown_table, modality_names, num
from polymodal.tasks.base import TASKS, SyntheticData, SyntheticSpec, Task, mean_of_present_heads
from polymodal.tasks.labels import Claim, finite
from polymodal.tasks.labels import is_number as is_number_cell
from polymodal.tasks.outputs import EvalOutputs, ModelOutput


@dataclass
class RegressionPredictions:
    """A regression run's predictions on one split, one row per dataset sample.

    y_true:       (N,) or (N, K) float targets
    pred:         fused predictions, the shape of ``y_true``
    per_modality: name -> predictions with every other modality marked absent (the shape of ``y_true``;
                  absent from the dict when the fusion cannot run with a modality alone)
    present:      name -> (N,) bool, whether the modality was present (per-modality metrics use these
                  rows; all rows when a modality has no entry)
    index:        (N,) dataset positions, sorted
    extras:       name -> (N, ...) per-sample outputs beside the prediction
    """

    y_true: np.ndarray
    pred: np.ndarray
    per_modality: dict[str, np.ndarray] = field(default_factory=dict)
    present: dict[str, np.ndarray] = field(default_factory=dict)
    index: np.ndarray | None = None
    extras: dict[str, np.ndarray] = field(default_factory=dict)
    task: ClassVar[str] = "regression"


def summarize_regression(pred: RegressionPredictions) -> dict[str, float | int | None]:
    """Headline metrics of one split: fused ``mse``, ``rmse``, ``mae``, ``r2``; per modality ``<m>_rmse``
    and ``<m>_r2`` over the rows where the modality is present (None with no such row; ``<m>_r2`` None
    with fewer than two); ``n``. Modalities without predictions get no entry."""
    y = check_targets(pred.y_true, "RegressionPredictions.y_true")
    fused = np.asarray(pred.pred)
    out: dict[str, float | int | None] = {
        "mse": mean_squared_error(y, fused),
        "rmse": root_mean_squared_error(y, fused),
        "mae": mean_absolute_error(y, fused),
        "r2": r2_score(y, fused),
    }
    for name, p in pred.per_modality.items():
        rows = np.asarray(pred.present[name], dtype=bool) if name in pred.present else np.ones(len(y), dtype=bool)
        if rows.shape != (len(y),):
            raise ValueError(f"present[{name!r}] has shape {rows.shape}; expected ({len(y)},)")
        p = np.asarray(p)
        if p.shape != y.shape:
            raise ValueError(f"per_modality[{name!r}] has shape {p.shape}; y_true has {y.shape}")
        out[f"{name}_rmse"] = root_mean_squared_error(y[rows], p[rows]) if rows.any() else None
        out[f"{name}_r2"] = r2_score(y[rows], p[rows]) if rows.sum() >= 2 else None
    out["n"] = len(y)
    return out




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
    infer_priority = 10
    bench_extra = ("mae", "r2")
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

    def claim(self, cells: Sequence[Any]) -> Claim | None:
        """A column whose cells are mostly numbers (asked after classification: not a few whole numbers)."""
        numbers = sum(1 for v in cells if is_number_cell(v))
        if 2 * numbers <= len(cells):
            return None
        finite_values = {finite(v) for v in cells} - {None}
        return Claim(f"{numbers} of {len(cells)} cells are numbers with {len(finite_values)} distinct values "
                     "(not a few whole numbers)")

    def synthetic_data(self, spec: SyntheticSpec) -> SyntheticData:
        """Each modality's features are standard normal and carry one part of the target, read out along a fixed
        random unit direction per modality and target (drawn from ``seed``): ``y_k = sum_m x_m . w_mk +
        target_noise * eps``. Each part has unit variance, so no modality alone explains more than about half
        of the target's variance; ``num_targets`` sets K (labels (N,) for one target, (N, K) otherwise)."""
        if spec.num_targets < 1:
            raise ValueError(f"synthetic dataset: num_targets={spec.num_targets}; expected >= 1")
        if spec.target_noise < 0:
            raise ValueError(f"synthetic dataset: target_noise={spec.target_noise}; expected >= 0")
        dir_rng = np.random.default_rng((spec.seed, 7))  # the same read-out directions in every split
        directions = []
        for d in spec.dims:
            w = dir_rng.standard_normal((d, spec.num_targets))
            directions.append(w / np.linalg.norm(w, axis=0, keepdims=True))
        x = [spec.rng.standard_normal((spec.n, d)).astype(np.float32) for d in spec.dims]
        y = sum(xm.astype(np.float64) @ w for xm, w in zip(x, directions, strict=True))
        y = y + spec.target_noise * spec.rng.standard_normal((spec.n, spec.num_targets))
        labels = (y[:, 0] if spec.num_targets == 1 else y).astype(np.float32)
        return SyntheticData(labels, x, spec.num_targets, (),
                             {"num_targets": spec.num_targets, "target_noise": spec.target_noise})

    def fuse_unimodal_heads(self, out: ModelOutput, present: Mapping[str, Tensor]) -> ModelOutput:
        """The mean of the per-modality outputs over the present modalities (:func:`mean_of_present_heads`):
        every head is trained alone to predict the whole target."""
        return mean_of_present_heads(out, present)

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


__all__ = ["Regression", "RegressionPredictions", "masked_mse", "shaped_outputs", "summarize_regression"]
