"""PNG figures of a run: learning curves, per-modality gradient norms, reliability diagram, and for
regression a predicted-vs-true scatter plot.

Figures are drawn on matplotlib's Agg canvas (no screen, no pyplot global state). ``records`` are
the epoch records of ``metrics.jsonl``: dicts with an int ``"epoch"`` and scalar keys such as
``train/loss``, ``val/loss``, ``val/fused_acc``, ``val/<modality>_acc``, ``grad_norm/<modality>`` (also
read as ``train/grad_norm/<modality>``, the engine's name for a strategy's per-step scalar); a regression
run logs ``val/r2`` and ``val/<modality>_r2`` instead of the accuracies.
Missing keys, ``None`` and non-finite values are skipped, so partial runs still plot.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, MaxNLocator

from polymodal.report.metrics import expected_calibration_error, reliability_bins

_MODALITY_ACC = re.compile(r"^val/(?P<name>[^/@]+)_acc$")
_MODALITY_R2 = re.compile(r"^val/(?P<name>[^/@]+)_r2$")
_GRAD_NORM = re.compile(r"^(?:train/)?grad_norm/(?P<name>[^/]+)$")


def _is_number(v: object) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _series(records: Sequence[dict[str, Any]], key: str) -> tuple[np.ndarray, np.ndarray]:
    """(epochs, values) of ``key`` over the records that hold a finite number for it."""
    xs, ys = [], []
    for r in records:
        v, epoch = r.get(key), r.get("epoch")
        if _is_number(v) and math.isfinite(v) and _is_number(epoch):
            xs.append(epoch)
            ys.append(float(v))
    return np.asarray(xs), np.asarray(ys)


def _keys_in_order(records: Sequence[dict[str, Any]]) -> list[str]:
    seen: dict[str, None] = {}
    for r in records:
        seen.update(dict.fromkeys(r))
    return list(seen)


def modality_accuracy_keys(records: Sequence[dict[str, Any]]) -> list[str]:
    """``val/<modality>_acc`` keys in order of first appearance (``val/fused_acc`` excluded)."""
    return [k for k in _keys_in_order(records) if (m := _MODALITY_ACC.match(k)) and m["name"] != "fused"]


def modality_r2_keys(records: Sequence[dict[str, Any]]) -> list[str]:
    """``val/<modality>_r2`` keys in order of first appearance (regression runs)."""
    return [k for k in _keys_in_order(records) if _MODALITY_R2.match(k)]


def grad_norm_keys(records: Sequence[dict[str, Any]]) -> dict[str, str]:
    """modality -> its ``grad_norm/<modality>`` (or ``train/grad_norm/<modality>``) key, in order of first appearance."""
    found: dict[str, str] = {}
    for k in _keys_in_order(records):
        if (m := _GRAD_NORM.match(k)) and m["name"] not in found:
            found[m["name"]] = k
    return found


def _epoch_axis(ax: Axes) -> None:
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def _plain_log_labels(ax: Axes) -> None:
    """Log-axis labels as "0.2", "30", "1e-05" instead of "2 x 10^-1"; fewer minor labels on wide ranges."""

    def minor(v: float, _: object) -> str:
        lo, hi = ax.get_ylim()
        span = hi / lo if lo > 0 else math.inf
        mantissa = round(v / 10 ** math.floor(math.log10(v) + 1e-9)) if v > 0 else 0
        return f"{v:g}" if span < 10 or (span < 300 and mantissa in (2, 5)) else ""

    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.yaxis.set_minor_formatter(FuncFormatter(minor))


def _save(fig: Figure, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(fig)
    fig.savefig(path, format="png", dpi=110)
    return path


def plot_learning_curves(records: Sequence[dict[str, Any]], path: str | Path,
                         curve: tuple[str, str, str] | None = None) -> Path:
    """Two panels over epochs: train/val loss; val accuracy, fused (solid) and per modality (dashed).

    ``curve`` (the run's task's :meth:`~polymodal.tasks.Task.learning_curve`: fused metric, per-modality
    suffix, axis label) names the metric of the second panel; without it, a run whose records hold
    ``val/r2`` and no ``val/fused_acc`` (a regression) shows validation R^2, any other validation accuracy.
    """
    fig = Figure(figsize=(10, 4), layout="constrained")
    ax_loss, ax_acc = fig.subplots(1, 2)
    for key, style in (("train/loss", "-"), ("val/loss", "--")):
        x, y = _series(records, key)
        if len(x):
            ax_loss.plot(x, y, style, marker="o", ms=3, label=key)
    ax_loss.set(xlabel="epoch", ylabel="loss", title="Loss")
    if curve is None:
        r2 = len(_series(records, "val/r2")[0]) > 0 and len(_series(records, "val/fused_acc")[0]) == 0
        curve = ("r2", "r2", "R^2") if r2 else ("fused_acc", "acc", "accuracy")
    fused, suffix, label = curve
    fused_key = f"val/{fused}"
    if suffix == "acc":
        per_keys = modality_accuracy_keys(records)
    elif suffix == "r2":
        per_keys = modality_r2_keys(records)
    else:
        per_keys = [k for k in _keys_in_order(records) if k.startswith("val/") and k.endswith(f"_{suffix}")
                    and k not in (fused_key, f"val/fused_{suffix}") and "/" not in k[4:]] if suffix else []
    x, y = _series(records, fused_key)
    if len(x):
        ax_acc.plot(x, y, "-", marker="o", ms=3, lw=2, color="black", label=fused_key)
    for key in per_keys:
        x, y = _series(records, key)
        if len(x):
            ax_acc.plot(x, y, "--", marker=".", label=key)
    if fused == "r2":
        lows = [float(np.min(line.get_ydata())) for line in ax_acc.lines]
        low = max(min([0.0, *lows]) - 0.05, -1.0)  # very negative R^2 early on would hide the rest
        ax_acc.set(xlabel="epoch", ylabel="R^2", title="Validation R^2", ylim=(low, 1.02))
    elif fused == "fused_acc":
        ax_acc.set(xlabel="epoch", ylabel="accuracy", title="Validation accuracy", ylim=(-0.02, 1.02))
    else:
        ax_acc.set(xlabel="epoch", ylabel=label, title=f"Validation {label}")
    for ax in (ax_loss, ax_acc):
        _epoch_axis(ax)
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=8)
        else:
            ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes)
    return _save(fig, path)


def plot_grad_norms(records: Sequence[dict[str, Any]], path: str | Path) -> Path | None:
    """Per-modality encoder gradient norms over epochs (log scale); ``None`` if the run logged none.

    With two or more modalities a second panel shows each norm divided by the first modality's
    (first in order of appearance in the records): a ratio drifting far from 1 flags a lazy
    modality whose encoder barely learns.
    """
    keys = grad_norm_keys(records)
    names = list(keys)
    if not names:
        return None
    fig = Figure(figsize=(10 if len(names) > 1 else 5, 4), layout="constrained")
    axes = fig.subplots(1, 2 if len(names) > 1 else 1, squeeze=False)[0]
    series = {m: dict(zip(*_series(records, keys[m]), strict=True)) for m in names}
    for m in names:
        epochs = sorted(e for e, v in series[m].items() if v > 0)  # log scale: positive values only
        axes[0].plot(epochs, [series[m][e] for e in epochs], marker="o", ms=3, label=m)
    axes[0].set(xlabel="epoch", ylabel="gradient norm", title="Encoder gradient norm", yscale="log")
    if len(names) > 1:
        ref = names[0]
        for m in names[1:]:
            epochs = sorted(e for e in series[m] if series[m][e] > 0 and series[ref].get(e, 0) > 0)
            axes[1].plot(epochs, [series[m][e] / series[ref][e] for e in epochs], marker="o", ms=3, label=f"{m} / {ref}")
        axes[1].axhline(1.0, color="grey", lw=1, ls=":")
        axes[1].set(xlabel="epoch", ylabel="ratio", title=f"Gradient norm relative to {ref}", yscale="log")
    for ax in axes:
        _epoch_axis(ax)
        _plain_log_labels(ax)
        ax.grid(alpha=0.3, which="both")
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    return _save(fig, path)


def plot_reliability(y_true: np.ndarray, probs: np.ndarray, path: str | Path, n_bins: int = 15, title: str = "") -> Path:
    """Reliability diagram of top-1 confidence: per-bin accuracy bars against the diagonal.

    ``y_true`` (N,) class ids, ``probs`` (N, C). The lower panel shows how many samples fall in each
    bin; the title carries the ECE with the same bins.
    """
    bins = reliability_bins(y_true, probs, n_bins)
    ece = expected_calibration_error(y_true, probs, n_bins)
    edges, width = bins["edges"], 1.0 / n_bins
    full = bins["count"] > 0
    fig = Figure(figsize=(5, 5.5), layout="constrained")
    ax, ax_n = fig.subplots(2, 1, sharex=True, height_ratios=(3, 1))
    ax.bar(edges[:-1][full], bins["accuracy"][full], width=width, align="edge", edgecolor="black", label="accuracy")
    centers = edges[:-1][full] + width / 2
    ax.plot(centers, bins["confidence"][full], "D", ms=4, color="tab:red", label="mean confidence")
    ax.plot([0, 1], [0, 1], ls="--", color="grey", label="perfect calibration")
    ax.set(ylabel="accuracy", xlim=(0, 1), ylim=(0, 1), title=f"{title + ': ' if title else ''}ECE = {ece:.4f} ({n_bins} bins)")
    ax.legend(fontsize=8, loc="upper left")
    ax_n.bar(edges[:-1], bins["count"], width=width, align="edge", edgecolor="black", color="tab:grey")
    ax_n.set(xlabel="top-1 confidence", ylabel="samples")
    return _save(fig, path)


def plot_regression_scatter(
    y_true: np.ndarray, pred: np.ndarray, path: str | Path, title: str = "", max_targets: int = 4
) -> Path:
    """Predicted against true values with the identity line, one panel per target (the first
    ``max_targets`` of (N, K) targets); each panel's title carries its RMSE and R^2."""
    from polymodal.report.metrics import r2_score, root_mean_squared_error

    t = np.asarray(y_true, dtype=np.float64)
    p = np.asarray(pred, dtype=np.float64)
    if t.shape != p.shape or t.ndim not in (1, 2):
        raise ValueError(f"y_true {t.shape} and pred {p.shape} must share one shape, (N,) or (N, K)")
    t2, p2 = t.reshape(len(t), -1), p.reshape(len(p), -1)
    k = min(t2.shape[1], max_targets)
    fig = Figure(figsize=(4.5 * k, 4.5), layout="constrained")
    axes = fig.subplots(1, k, squeeze=False)[0]
    for j, ax in enumerate(axes):
        tj, pj = t2[:, j], p2[:, j]
        ok = np.isfinite(pj)
        ax.scatter(tj[ok], pj[ok], s=10, alpha=0.6, edgecolors="none")
        both = np.concatenate([tj[ok], pj[ok]]) if ok.any() else tj
        lo, hi = float(both.min()), float(both.max())
        pad = 0.05 * (hi - lo) if hi > lo else 1.0
        ax.plot([lo - pad, hi + pad], [lo - pad, hi + pad], ls="--", color="grey", label="predicted = true")
        ax.set(xlim=(lo - pad, hi + pad), ylim=(lo - pad, hi + pad), xlabel="true", ylabel="predicted")
        ax.set_aspect("equal", adjustable="box")
        name = f"target {j}" if t2.shape[1] > 1 else ""
        prefix = ", ".join(x for x in (title, name) if x)
        ax.set_title(f"{prefix + ': ' if prefix else ''}RMSE {root_mean_squared_error(tj, pj):.4g}, "
                     f"R^2 {r2_score(tj, pj):.3f}", fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="upper left")
    return _save(fig, path)
