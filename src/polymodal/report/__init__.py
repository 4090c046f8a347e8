"""Metrics on collected predictions and the Markdown + PNG report of a training run."""

from polymodal.report.markdown import load_run, render_report, write_report
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
from polymodal.report.plots import plot_grad_norms, plot_learning_curves, plot_reliability

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
