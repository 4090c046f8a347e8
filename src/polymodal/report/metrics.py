"""Metrics on collected predictions: classification (accuracy, macro F1, confusion, ECE) and
regression (MSE, RMSE, MAE, R^2, as scikit-learn defines them). The predictions objects they are applied
to belong to the tasks (:class:`polymodal.tasks.Predictions`, :class:`polymodal.tasks.RegressionPredictions`;
still importable from here).

numpy only. Class ids are ints in ``[0, C)``; probabilities are rows that sum to 1. Regression targets
are floats, (N,) for one target or (N, K). Every metric returns plain Python floats (fractions in
[0, 1], not percentages).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

# ----------------------------------------------------------------------------- input checks


def check_class_ids(y: np.ndarray | Sequence[int], what: str) -> np.ndarray:
    arr = np.asarray(y)
    if arr.ndim != 1:
        raise ValueError(f"{what} must be 1-D (N,) class ids; got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{what} is empty; a metric needs at least one sample")
    if arr.dtype.kind == "f":
        if not np.all(np.isfinite(arr)) or not np.all(arr == np.round(arr)):
            raise ValueError(f"{what} must hold integer class ids; got non-integer values (dtype {arr.dtype})")
    elif arr.dtype.kind not in "iub":
        raise ValueError(f"{what} must hold integer class ids; got dtype {arr.dtype}")
    return arr.astype(np.int64)


def check_probs(probs: np.ndarray, n: int, what: str = "probs") -> np.ndarray:
    arr = np.asarray(probs, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[0] != n or arr.shape[1] < 1:
        raise ValueError(f"{what} must have shape (N, C) = ({n}, C) with C >= 1; got {arr.shape}")
    return arr


def _check_range(y: np.ndarray, num_classes: int, what: str) -> None:
    if num_classes < 1:
        raise ValueError(f"num_classes must be >= 1; got {num_classes}")
    if y.min() < 0 or y.max() >= num_classes:
        raise ValueError(
            f"{what} holds class ids in [{y.min()}, {y.max()}]; expected ids in [0, {num_classes - 1}] "
            f"(is num_classes={num_classes} right?)"
        )


def _pair(y_true: np.ndarray | Sequence[int], y_pred: np.ndarray | Sequence[int], num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    t, p = check_class_ids(y_true, "y_true"), check_class_ids(y_pred, "y_pred")
    if t.shape != p.shape:
        raise ValueError(f"y_true has shape {t.shape} but y_pred has shape {p.shape}; expected the same (N,)")
    _check_range(t, num_classes, "y_true")
    _check_range(p, num_classes, "y_pred")
    return t, p


# ----------------------------------------------------------------------------- metrics


def accuracy(y_true: np.ndarray | Sequence[int], probs_or_pred: np.ndarray | Sequence[int]) -> float:
    """Fraction of correct predictions.

    ``probs_or_pred`` is either (N, C) probabilities or logits (argmax is taken) or (N,) predicted ids.
    """
    t = check_class_ids(y_true, "y_true")
    arr = np.asarray(probs_or_pred)
    pred = check_probs(arr, len(t), "probs_or_pred").argmax(axis=1) if arr.ndim == 2 else check_class_ids(arr, "probs_or_pred")
    if pred.shape != t.shape:
        raise ValueError(f"y_true has shape {t.shape} but predictions have shape {pred.shape}; expected the same N")
    return float(np.mean(pred == t))


def confusion_matrix(y_true: np.ndarray | Sequence[int], y_pred: np.ndarray | Sequence[int], num_classes: int) -> np.ndarray:
    """Counts (C, C) int64: rows are true classes, columns predicted classes (scikit-learn's)."""
    from sklearn.metrics import confusion_matrix as sk_confusion_matrix

    t, p = _pair(y_true, y_pred, num_classes)
    return sk_confusion_matrix(t, p, labels=np.arange(num_classes)).astype(np.int64)


def per_class_report(
    y_true: np.ndarray | Sequence[int], y_pred: np.ndarray | Sequence[int], num_classes: int
) -> dict[str, np.ndarray]:
    """Per-class ``precision``, ``recall``, ``f1`` (float64, (C,)) and ``support`` (int64, (C,)).

    Support counts true samples of each class. A ratio whose denominator is 0 (a class never
    predicted, or never present) is 0.0: scikit-learn's ``precision_recall_fscore_support`` with
    ``zero_division=0``.
    """
    from sklearn.metrics import precision_recall_fscore_support

    t, p = _pair(y_true, y_pred, num_classes)
    precision, recall, f1, support = precision_recall_fscore_support(
        t, p, labels=np.arange(num_classes), zero_division=0
    )
    return {"precision": precision.astype(np.float64), "recall": recall.astype(np.float64),
            "f1": f1.astype(np.float64), "support": support.astype(np.int64)}


def macro_f1(y_true: np.ndarray | Sequence[int], y_pred: np.ndarray | Sequence[int], num_classes: int) -> float:
    """Unweighted mean of per-class F1 over the classes that occur in ``y_true`` or ``y_pred``.

    Classes absent from both are left out of the mean (scikit-learn's ``f1_score(average="macro")``
    with its default ``labels``: the classes present), so a small evaluation split that lacks a class is
    not penalised for it.
    """
    from sklearn.metrics import f1_score

    t, p = _pair(y_true, y_pred, num_classes)
    return float(f1_score(t, p, average="macro", labels=np.union1d(t, p), zero_division=0))


def reliability_bins(y_true: np.ndarray | Sequence[int], probs: np.ndarray, n_bins: int = 15) -> dict[str, np.ndarray]:
    """Top-1 confidence binned into ``n_bins`` equal-width bins ``(lo, hi]`` over [0, 1].

    Returns ``edges`` (n_bins + 1,), ``count`` (n_bins,) int, and per bin the mean ``confidence``
    and ``accuracy`` (n_bins,), NaN for empty bins. A confidence of exactly 0 falls in the first bin.
    """
    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1; got {n_bins}")
    t = check_class_ids(y_true, "y_true")
    p = check_probs(probs, len(t))
    conf = p.max(axis=1)
    correct = (p.argmax(axis=1) == t).astype(np.float64)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    idx = np.searchsorted(edges[1:-1], conf, side="left")  # bin b holds edges[b] < conf <= edges[b + 1]
    count = np.bincount(idx, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_conf = np.bincount(idx, weights=conf, minlength=n_bins) / count
        mean_acc = np.bincount(idx, weights=correct, minlength=n_bins) / count
    return {"edges": edges, "count": count, "confidence": mean_conf, "accuracy": mean_acc}


def expected_calibration_error(y_true: np.ndarray | Sequence[int], probs: np.ndarray, n_bins: int = 15) -> float:
    """ECE: sum over equal-width confidence bins of (bin size / N) * |bin accuracy - bin mean confidence|.

    Confidence is the top-1 probability of each row of ``probs`` (N, C); bins as
    :func:`reliability_bins`. 0 means perfectly calibrated; the result is a fraction in [0, 1].
    """
    bins = reliability_bins(y_true, probs, n_bins)
    full = bins["count"] > 0
    gap = np.abs(bins["accuracy"][full] - bins["confidence"][full])
    return float(np.sum(bins["count"][full] * gap) / bins["count"].sum())


def present_rows(rows: np.ndarray | None, n: int, name: str) -> np.ndarray:
    if rows is None:
        return np.ones(n, dtype=bool)
    rows = np.asarray(rows, dtype=bool)
    if rows.shape != (n,):
        raise ValueError(f"presence mask of {name!r} has shape {rows.shape}; expected ({n},)")
    return rows


def summarize(pred: Any) -> dict[str, float | int | None]:
    """Headline metrics of one split's predictions object, whatever its task: the task's own
    :meth:`~polymodal.tasks.Task.summarize` (``fused_acc``, ``macro_f1``, ``ece``, ``<modality>_acc``, ``n`` for
    classification; ``mse``, ``rmse``, ``mae``, ``r2``, ... for regression)."""
    from polymodal.tasks import get_task

    return get_task(pred.task).summarize(pred)


# ----------------------------------------------------------------------------- regression


def check_targets(y: np.ndarray | Sequence[float], what: str, finite: bool = True) -> np.ndarray:
    arr = np.asarray(y, dtype=np.float64)
    if arr.ndim not in (1, 2):
        raise ValueError(f"{what} must have shape (N,) or (N, K); got {arr.shape}")
    if arr.shape[0] == 0:
        raise ValueError(f"{what} is empty; a metric needs at least one sample")
    if finite and not np.all(np.isfinite(arr)):
        raise ValueError(f"{what} holds NaN or inf")
    return arr


def _reg_pair(y_true: np.ndarray | Sequence[float], y_pred: np.ndarray | Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """(N, K) float64 views of targets and predictions of the same shape (non-finite predictions give
    non-finite metrics; non-finite targets are an error)."""
    t, p = check_targets(y_true, "y_true"), check_targets(y_pred, "y_pred", finite=False)
    if t.shape != p.shape:
        raise ValueError(f"y_true has shape {t.shape} but y_pred has shape {p.shape}; expected the same shape")
    return t.reshape(len(t), -1), p.reshape(len(p), -1)


def mean_squared_error(y_true: np.ndarray | Sequence[float], y_pred: np.ndarray | Sequence[float]) -> float:
    """Mean of squared errors over samples and targets (scikit-learn's ``mean_squared_error``)."""
    t, p = _reg_pair(y_true, y_pred)
    return float(np.mean((t - p) ** 2))


def root_mean_squared_error(y_true: np.ndarray | Sequence[float], y_pred: np.ndarray | Sequence[float]) -> float:
    """RMSE; with K targets the mean of the K per-target RMSEs (scikit-learn's ``root_mean_squared_error``)."""
    t, p = _reg_pair(y_true, y_pred)
    return float(np.mean(np.sqrt(np.mean((t - p) ** 2, axis=0))))


def mean_absolute_error(y_true: np.ndarray | Sequence[float], y_pred: np.ndarray | Sequence[float]) -> float:
    """Mean of absolute errors over samples and targets (scikit-learn's ``mean_absolute_error``)."""
    t, p = _reg_pair(y_true, y_pred)
    return float(np.mean(np.abs(t - p)))


def r2_score(y_true: np.ndarray | Sequence[float], y_pred: np.ndarray | Sequence[float]) -> float:
    """Coefficient of determination 1 - SS_res / SS_tot, averaged over targets (scikit-learn's ``r2_score``).

    A target with constant truth scores 1.0 when predicted exactly, else 0.0 (scikit-learn's
    ``force_finite``); with fewer than two samples R^2 is undefined and the result is NaN.
    """
    t, p = _reg_pair(y_true, y_pred)
    if len(t) < 2:
        return float("nan")
    ss_res = np.sum((t - p) ** 2, axis=0)
    ss_tot = np.sum((t - t.mean(axis=0)) ** 2, axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        r2 = np.where(ss_tot > 0, 1.0 - ss_res / np.where(ss_tot > 0, ss_tot, 1.0), np.where(ss_res > 0, 0.0, 1.0))
    return float(np.mean(r2))


def mean_std(values: Sequence[float] | np.ndarray) -> tuple[float, float, int]:
    """(mean, sample standard deviation with ddof = 1, n) of a list of numbers (e.g. one per seed).

    With a single value the spread is unknown; the std is reported as 0.0 by convention.
    """
    arr = np.asarray(values, dtype=np.float64).reshape(-1)
    if arr.size == 0:
        raise ValueError("mean_std needs at least one value; got an empty list")
    std = float(np.std(arr, ddof=1)) if arr.size > 1 else 0.0
    return float(np.mean(arr)), std, int(arr.size)


# ----------------------------------------------------------------------------- file format


def save_predictions(pred: Any, path: str | Path) -> Path:
    """Write ``pred`` as ``.npz`` (:func:`polymodal.tasks.write_predictions`, the one writer of the file):
    ``y_true``, ``probs``, ``index``, ``probs_<modality>``, ``present_<modality>``, ``class_names``;
    for regression ``y_true``, ``pred``, ``index``, ``pred_<modality>``, ``present_<modality>``; ``task``."""
    from polymodal.tasks import write_predictions

    return write_predictions(pred, path)


def load_predictions(path: str | Path) -> Any:
    """Read a predictions ``.npz`` written by :func:`save_predictions` (or the training engine):
    :class:`RegressionPredictions` when it holds ``pred``, else :class:`Predictions`
    (:func:`polymodal.tasks.read_predictions`, the one reader of the file)."""
    from polymodal.tasks import read_predictions

    return read_predictions(path)


_MOVED = {"Predictions": "polymodal.tasks.classification", "RegressionPredictions": "polymodal.tasks.regression",
          "summarize_regression": "polymodal.tasks.regression"}


def __getattr__(name: str) -> Any:
    """The predictions containers and their summaries, which live with their tasks."""
    if name in _MOVED:
        import importlib

        return getattr(importlib.import_module(_MOVED[name]), name)
    raise AttributeError(f"module 'polymodal.report.metrics' has no attribute {name!r}")
