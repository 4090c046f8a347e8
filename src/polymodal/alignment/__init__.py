"""Alignment between the elements of two modalities (docs/align_translate.md): exact DTW with an optional
Sakoe-Chiba band and its monotonic path, differentiable soft-DTW, and the metrics of the digit-string
alignment task (frame accuracy, boundary error in ms)."""

from polymodal.alignment.dtw import (
    assignment,
    band_mask,
    dtw,
    is_monotonic_path,
    pairwise_cost,
    path_cost,
    soft_alignment,
    soft_dtw,
    soft_dtw_batch,
)
from polymodal.alignment.metrics import boundary_errors, frame_accuracy, predicted_onsets

__all__ = ["assignment", "band_mask", "boundary_errors", "dtw", "frame_accuracy", "predicted_onsets", "is_monotonic_path", "pairwise_cost", "path_cost", "soft_alignment",
           "soft_dtw", "soft_dtw_batch"]
