"""PNG figures of a run: learning curves, per-modality gradient norms, reliability diagram.

Figures are drawn on matplotlib's Agg canvas (no screen, no pyplot global state). ``records`` are
the epoch records of ``metrics.jsonl``: dicts with an int ``"epoch"`` and scalar keys such as
``train/loss``, ``val/loss``, ``val/fused_acc``, ``val/<modality>_acc``, ``grad_norm/<modality>`` (also
read as ``train/grad_norm/<modality>``, the engine's name for a strategy's per-step scalar).
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


def plot_learning_curves(records: Sequence[dict[str, Any]], path: str | Path) -> Path:
    """Two panels over epochs: train/val loss; val accuracy, fused (solid) and per modality (dashed)."""
    fig = Figure(figsize=(10, 4), layout="constrained")
    ax_loss, ax_acc = fig.subplots(1, 2)
    for key, style in (("train/loss", "-"), ("val/loss", "--")):
        x, y = _series(records, key)
        if len(x):
            ax_loss.plot(x, y, style, marker="o", ms=3, label=key)
    ax_loss.set(xlabel="epoch", ylabel="loss", title="Loss")
    x, y = _series(records, "val/fused_acc")
    if len(x):
        ax_acc.plot(x, y, "-", marker="o", ms=3, lw=2, color="black", label="val/fused_acc")
    for key in modality_accuracy_keys(records):
        x, y = _series(records, key)
        if len(x):
            ax_acc.plot(x, y, "--", marker=".", label=key)
    ax_acc.set(xlabel="epoch", ylabel="accuracy", title="Validation accuracy", ylim=(-0.02, 1.02))
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
