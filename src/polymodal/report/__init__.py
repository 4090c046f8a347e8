"""Metrics on collected predictions and the Markdown + PNG report of a training run.

The metrics (numpy only) import at once; the report and plotting functions load matplotlib on first
use, so code that only computes metrics (the training engine) does not pay for it.
"""

from __future__ import annotations

import importlib
from typing import Any

from polymodal.report.metrics import (
    Predictions,
    accuracy,
    confusion_matrix,
    expected_calibration_error,
    load_predictions,
    macro_f1,
    mean_std,
    per_class_report,
    reliability_bins,
    save_predictions,
    summarize,
)

_LAZY = {
    "load_run": "polymodal.report.markdown",
    "render_report": "polymodal.report.markdown",
    "write_report": "polymodal.report.markdown",
    "plot_grad_norms": "polymodal.report.plots",
    "plot_learning_curves": "polymodal.report.plots",
    "plot_reliability": "polymodal.report.plots",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'polymodal.report' has no attribute {name!r}")


__all__ = [
    "Predictions",
    "accuracy",
    "confusion_matrix",
    "expected_calibration_error",
    "load_predictions",
    "load_run",
    "macro_f1",
    "mean_std",
    "per_class_report",
    "plot_grad_norms",
    "plot_learning_curves",
    "plot_reliability",
    "reliability_bins",
    "render_report",
    "save_predictions",
    "summarize",
    "write_report",
]
