"""Alignment between the elements of two modalities (docs/align_translate.md): exact DTW with an optional
Sakoe-Chiba band and its monotonic path, differentiable soft-DTW, and the metrics of the digit-string
alignment task (frame accuracy, boundary error in ms), CTC forced alignment against soft positions, and the
attention maps of the ``mult`` fusion. ``polymodal align`` lives in :mod:`polymodal.alignment.align`."""

from polymodal.alignment.attention import AttentionMap, attention_maps
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
from polymodal.alignment.forced import boundaries_of, ctc_forced_align, segments_of
from polymodal.alignment.metrics import boundary_errors, frame_accuracy, predicted_onsets

__all__ = ["AttentionMap", "assignment", "attention_maps", "boundaries_of", "ctc_forced_align", "segments_of", "band_mask", "boundary_errors", "dtw", "frame_accuracy", "predicted_onsets", "is_monotonic_path", "pairwise_cost", "path_cost", "soft_alignment",
           "soft_dtw", "soft_dtw_batch"]
