"""The survival task's figure: observed and predicted survival of the test samples by predicted risk group."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from polymodal.tasks.survival.metrics import kaplan_meier

if TYPE_CHECKING:
    from polymodal.tasks.survival.task import SurvivalPredictions


def plot_risk_groups(pred: SurvivalPredictions, path: str | Path) -> Path:
    """Kaplan-Meier curves (steps) of the samples at or below and above the median predicted risk, and the mean
    predicted survival curve of each group (dashed, when the predictions have a reference). Drawn on
    matplotlib's Agg canvas; returns ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig = Figure(figsize=(5.5, 4.0))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    risk = np.asarray(pred.risk, dtype=np.float64)
    high = risk > np.median(risk)
    surv = pred.survival()
    for rows, label, colour in ((~high, "low risk", "tab:blue"), (high, "high risk", "tab:red")):
        if not rows.any():
            continue
        times, s = kaplan_meier(pred.time[rows], pred.event[rows])
        ax.step(np.r_[0.0, times], np.r_[1.0, s], where="post", color=colour,
                label=f"{label}: observed (n={int(rows.sum())})")
        if surv is not None:
            ax.plot(pred.grid, surv[rows].mean(axis=0), "--", color=colour, label=f"{label}: predicted mean")
    ax.set_xlabel("time")
    ax.set_ylabel("survival probability")
    ax.set_ylim(0.0, 1.02)
    ax.set_title("test: split at the median predicted risk")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path


__all__ = ["plot_risk_groups"]
