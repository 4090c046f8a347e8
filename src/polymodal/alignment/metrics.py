"""Scores of an alignment of audio frames to the digit positions of a string (docs/align_translate.md): frame-level
accuracy and boundary error in milliseconds, against the true recording boundaries of ``digitstrings``."""

from __future__ import annotations

import numpy as np

PAD = -1


def _check(pred: np.ndarray, truth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    p, t = np.asarray(pred), np.asarray(truth)
    if p.ndim != 1 or p.shape != t.shape:
        raise ValueError(f"a predicted alignment of shape {p.shape} for a truth of shape {t.shape}; expected the "
                         "same (frames,) shape")
    return p, t


def frame_accuracy(pred: np.ndarray, truth: np.ndarray) -> float:
    """Fraction of the frames inside a digit's recording (``truth`` != ``PAD``) aligned to that digit's
    position; frames in the silences between digits are not scored."""
    p, t = _check(pred, truth)
    keep = t != PAD
    if not keep.any():
        raise ValueError("no frame of the string lies inside a digit: nothing to score")
    return float((p[keep] == t[keep]).mean())


def predicted_onsets(pred: np.ndarray, length: int) -> np.ndarray:
    """(length - 1,) the first frame aligned to each position 1 .. length - 1 of a monotonic alignment
    (``pred`` (frames,) non-decreasing); a position no frame meets starts where the next one does."""
    p = np.asarray(pred)
    if p.ndim != 1 or (np.diff(p) < 0).any():
        raise ValueError("boundaries need a monotonic alignment: positions non-decreasing over the frames")
    return np.searchsorted(p, np.arange(1, length), side="left")


def boundary_errors(onsets: np.ndarray, boundaries: np.ndarray, hop: int, sample_rate: int) -> dict[str, np.ndarray]:
    """Errors in ms of the predicted onsets (frame t = sample ``hop * t``) of positions 1 .. L - 1 against the
    true ``boundaries`` (L, 2) (first and one-past-last sample of each digit):

    ``to_gap``: distance to the silence between digit k - 1 and digit k (0 inside it: the silence belongs to
    neither digit); ``to_onset``: distance to the true first sample of digit k."""
    b = np.asarray(boundaries)
    onset = np.asarray(onsets) * hop
    if len(onset) != len(b) - 1:
        raise ValueError(f"{len(onset)} predicted onsets for {len(b)} digits; expected {len(b) - 1}")
    gap_lo, gap_hi = b[:-1, 1], b[1:, 0]
    to_gap = np.maximum(gap_lo - onset, 0) + np.maximum(onset - gap_hi, 0)
    scale = 1000.0 / sample_rate
    return {"to_gap": to_gap * scale, "to_onset": np.abs(onset - gap_hi) * scale}


__all__ = ["boundary_errors", "frame_accuracy", "predicted_onsets"]
