"""Metrics on collected predictions and the Markdown + PNG report of a training run.

The metrics (numpy only) import at once; the report and plotting functions load matplotlib on first
use, so code that only computes metrics (the training engine) does not pay for it.
"""

from __future__ import annotations

import importlib
from typing import Any

from polymodal.report.metrics import (
    accuracy,
    confusion_matrix,
    expected_calibration_error,
    load_predictions,
    macro_f1,
    mean_absolute_error,
    mean_squared_error,
    mean_std,
    per_class_report,
    r2_score,
    reliability_bins,
    root_mean_squared_error,
    save_predictions,
    summarize,
)

_LAZY = {
    "Predictions": "polymodal.tasks.classification",  # the predictions containers live with their tasks
    "RegressionPredictions": "polymodal.tasks.regression",
    "summarize_regression": "polymodal.tasks.regression",
    "load_run": "polymodal.report.markdown",
    "render_report": "polymodal.report.markdown",
    "write_report": "polymodal.report.markdown",
    "plot_grad_norms": "polymodal.report.plots",
    "plot_learning_curves": "polymodal.report.plots",
    "plot_regression_scatter": "polymodal.report.plots",
    "plot_reliability": "polymodal.report.plots",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'polymodal.report' has no attribute {name!r}")


__all__ = [
    "Predictions",
    "RegressionPredictions",
    "accuracy",
    "confusion_matrix",
    "expected_calibration_error",
    "load_predictions",
    "load_run",
    "macro_f1",
    "mean_absolute_error",
    "mean_squared_error",
    "mean_std",
    "per_class_report",
    "plot_grad_norms",
    "plot_learning_curves",
    "plot_regression_scatter",
    "plot_reliability",
    "r2_score",
    "reliability_bins",
    "render_report",
    "root_mean_squared_error",
    "save_predictions",
    "summarize",
    "summarize_regression",
    "write_report",
]
