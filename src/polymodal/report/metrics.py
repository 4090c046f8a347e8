"""Classification metrics on collected predictions (accuracy, macro F1, confusion, ECE).

numpy only. Class ids are ints in ``[0, C)``; probabilities are rows that sum to 1. Every metric
returns plain Python floats (fractions in [0, 1], not percentages).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


@dataclass
class Predictions:
    """Everything evaluation collects on one split, one row per dataset sample (no duplicates).

    y_true:      (N,) int class ids
    probs:       (N, C) fused class probabilities under the strategy's fusion rule
    per_modality:name -> (N, C) probabilities with every other modality marked absent
                 (absent from the dict when the fusion cannot run with a modality alone)
    index:       (N,) dataset positions, sorted
    class_names: C names (may be empty: then "0".."C-1")
    """

    y_true: np.ndarray
    probs: np.ndarray
    per_modality: dict[str, np.ndarray] = field(default_factory=dict)
    index: np.ndarray | None = None
    class_names: tuple[str, ...] = ()


# ----------------------------------------------------------------------------- input checks


def _labels(y: np.ndarray | Sequence[int], what: str) -> np.ndarray:
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


def _probs(probs: np.ndarray, n: int, what: str = "probs") -> np.ndarray:
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
    t, p = _labels(y_true, "y_true"), _labels(y_pred, "y_pred")
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
    t = _labels(y_true, "y_true")
    arr = np.asarray(probs_or_pred)
    pred = _probs(arr, len(t), "probs_or_pred").argmax(axis=1) if arr.ndim == 2 else _labels(arr, "probs_or_pred")
    if pred.shape != t.shape:
        raise ValueError(f"y_true has shape {t.shape} but predictions have shape {pred.shape}; expected the same N")
    return float(np.mean(pred == t))


def confusion_matrix(y_true: np.ndarray | Sequence[int], y_pred: np.ndarray | Sequence[int], num_classes: int) -> np.ndarray:
    """Counts (C, C) int64: rows are true classes, columns predicted classes."""
    t, p = _pair(y_true, y_pred, num_classes)
    return np.bincount(t * num_classes + p, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def per_class_report(
    y_true: np.ndarray | Sequence[int], y_pred: np.ndarray | Sequence[int], num_classes: int
) -> dict[str, np.ndarray]:
    """Per-class ``precision``, ``recall``, ``f1`` (float64, (C,)) and ``support`` (int64, (C,)).

    Support counts true samples of each class. A ratio whose denominator is 0 (a class never
    predicted, or never present) is 0.0, as scikit-learn's ``zero_division=0``.
    """
    cm = confusion_matrix(y_true, y_pred, num_classes)
    tp = np.diag(cm).astype(np.float64)
    predicted, support = cm.sum(axis=0), cm.sum(axis=1)
    precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
    recall = np.divide(tp, support, out=np.zeros_like(tp), where=support > 0)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros_like(tp), where=denom > 0)
    return {"precision": precision, "recall": recall, "f1": f1, "support": support.astype(np.int64)}


def macro_f1(y_true: np.ndarray | Sequence[int], y_pred: np.ndarray | Sequence[int], num_classes: int) -> float:
    """Unweighted mean of per-class F1 over the classes that occur in ``y_true`` or ``y_pred``.

    Classes absent from both are left out of the mean (scikit-learn's default ``labels``: the
    classes present), so a small evaluation split that lacks a class is not penalised for it.
    """
    t, p = _pair(y_true, y_pred, num_classes)
    f1 = per_class_report(t, p, num_classes)["f1"]
    seen = np.zeros(num_classes, dtype=bool)
    seen[t] = True
    seen[p] = True
    return float(f1[seen].mean())


def reliability_bins(y_true: np.ndarray | Sequence[int], probs: np.ndarray, n_bins: int = 15) -> dict[str, np.ndarray]:
    """Top-1 confidence binned into ``n_bins`` equal-width bins ``(lo, hi]`` over [0, 1].

    Returns ``edges`` (n_bins + 1,), ``count`` (n_bins,) int, and per bin the mean ``confidence``
    and ``accuracy`` (n_bins,), NaN for empty bins. A confidence of exactly 0 falls in the first bin.
    """
    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1; got {n_bins}")
    t = _labels(y_true, "y_true")
    p = _probs(probs, len(t))
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


def summarize(pred: Predictions, n_bins: int = 15) -> dict[str, float | int]:
    """Headline metrics of one split: ``fused_acc``, ``macro_f1``, ``ece``, ``<modality>_acc``, ``n``.

    ``<modality>_acc`` appears only for the modalities in ``pred.per_modality`` (a fusion that cannot
    run with a modality alone has no entry; callers that need a ``None`` for it add it themselves).
    """
    y = _labels(pred.y_true, "Predictions.y_true")
    probs = _probs(pred.probs, len(y), "Predictions.probs")
    num_classes = probs.shape[1]
    out: dict[str, float | int] = {
        "fused_acc": accuracy(y, probs),
        "macro_f1": macro_f1(y, probs.argmax(axis=1), num_classes),
        "ece": expected_calibration_error(y, probs, n_bins),
    }
    for name, p in pred.per_modality.items():
        out[f"{name}_acc"] = accuracy(y, _probs(p, len(y), f"Predictions.per_modality[{name!r}]"))
    out["n"] = len(y)
    return out


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


def save_predictions(pred: Predictions, path: str | Path) -> Path:
    """Write ``pred`` as ``.npz``: ``y_true``, ``probs``, ``index``, ``probs_<modality>``, ``class_names``."""
    arrays: dict[str, np.ndarray] = {"y_true": np.asarray(pred.y_true), "probs": np.asarray(pred.probs)}
    arrays["index"] = np.asarray(pred.index) if pred.index is not None else np.arange(len(arrays["y_true"]))
    for name, p in pred.per_modality.items():
        arrays[f"probs_{name}"] = np.asarray(p)
    if pred.class_names:
        arrays["class_names"] = np.asarray(pred.class_names, dtype=str)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:  # a file object keeps numpy from appending a second ".npz"
        np.savez(f, **arrays)
    return path


def load_predictions(path: str | Path) -> Predictions:
    """Read a predictions ``.npz`` written by :func:`save_predictions` (or the training engine)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"predictions file {path} does not exist")
    with np.load(path, allow_pickle=False) as z:
        missing = [k for k in ("y_true", "probs") if k not in z.files]
        if missing:
            raise ValueError(f"predictions file {path} lacks arrays {missing}; it holds {sorted(z.files)}")
        y, probs = z["y_true"], z["probs"]
        if probs.ndim != 2 or y.shape != (probs.shape[0],):
            raise ValueError(f"predictions file {path}: y_true {y.shape} and probs {probs.shape}; expected (N,) and (N, C)")
        per = {k[len("probs_"):]: z[k] for k in z.files if k.startswith("probs_")}
        index = z["index"] if "index" in z.files else None
        names = tuple(str(c) for c in z["class_names"]) if "class_names" in z.files else ()
    return Predictions(y_true=y, probs=probs, per_modality=per, index=index, class_names=names)

