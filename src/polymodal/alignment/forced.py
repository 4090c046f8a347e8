"""Forced alignment of per-frame CTC posteriors to a sequence of positions whose content is itself uncertain
(docs/align_translate.md, "polymodal align"): the audio frames of a spoken digit string against the digit
posteriors of the positions of its handwritten row (or the one-hot digits of a known text).

The CTC topology (Graves et al., 2006): states blank, position 0, blank, position 1, ..., position L - 1,
blank; a path starts in the first blank or position 0, ends in position L - 1 or the last blank, and each
frame stays in its state, moves to the next or skips a blank between two positions (not between two
positions that read the same digit: CTC needs a blank between repeats). A frame in position k scores
``log sum_d p_t(d) q_k(d)`` (the probability that frame and position show the same digit), a frame in a
blank ``log p_t(blank)``; the Viterbi path maximises the sum.

A labelling is an (T,) int64 array: the position of each frame, ``BLANK`` (-1) on a blank frame, the
positions non-decreasing over the non-blank frames.
"""

from __future__ import annotations

import numpy as np

BLANK = -1
EPS = 1e-12


def _check_posteriors(frames: np.ndarray, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    p, q = np.asarray(frames, dtype=np.float64), np.asarray(positions, dtype=np.float64)
    if p.ndim != 2 or q.ndim != 2 or p.shape[1] != q.shape[1] + 1 or len(p) == 0 or len(q) == 0:
        raise ValueError(f"forced alignment takes frame posteriors (T, K + 1) (the K tokens, then the blank) and "
                         f"position posteriors (L, K) with T, L >= 1; got {p.shape} and {q.shape}")
    if not (np.isfinite(p).all() and np.isfinite(q).all()) or (p < 0).any() or (q < 0).any():
        raise ValueError("forced alignment takes probabilities: finite and non-negative")
    return p, q


def min_frames(positions: np.ndarray) -> int:
    """The fewest frames a CTC path through the (L, K) positions needs: one per position, plus a blank between
    two neighbours that read the same digit (argmax)."""
    best = np.asarray(positions).argmax(1)
    return int(len(best) + (best[1:] == best[:-1]).sum())


def ctc_forced_align(frames: np.ndarray, positions: np.ndarray) -> tuple[np.ndarray, float]:
    """The Viterbi CTC path of ``frames`` (T, K + 1) (per-frame posteriors of the K tokens and the blank, rows
    summing to 1) through ``positions`` (L, K) (per-position token posteriors): the labelling (T,) (see the
    module docstring) and its log score. Raises ValueError when T is below :func:`min_frames`."""
    p, q = _check_posteriors(frames, positions)
    t_len, length = len(p), len(q)
    need = min_frames(q)
    if t_len < need:
        raise ValueError(f"{t_len} frames cannot hold {length} positions ({need} frames needed: one per position and "
                         "a blank between two equal neighbours)")
    states = 2 * length + 1
    score = np.empty((t_len, states))
    score[:, 0::2] = np.log(p[:, -1:] + EPS)  # blanks
    score[:, 1::2] = np.log(p[:, :-1] @ q.T + EPS)  # positions
    best = q.argmax(1)
    skip = np.zeros(states, dtype=bool)  # state s may be entered from s - 2
    skip[3::2] = best[1:] != best[:-1]
    acc = np.full((t_len, states), -np.inf)
    back = np.zeros((t_len, states), dtype=np.int64)
    acc[0, :2] = score[0, :2]
    for t in range(1, t_len):
        prev = acc[t - 1]
        cand = np.stack([prev, np.concatenate([[-np.inf], prev[:-1]]),
                         np.where(skip, np.concatenate([[-np.inf, -np.inf], prev[:-2]]), -np.inf)])
        step = cand.argmax(0)  # 0 stay, 1 from s - 1, 2 from s - 2 (ties: stay)
        acc[t] = cand[step, np.arange(states)] + score[t]
        back[t] = step
    ends = [states - 1, states - 2]
    s = max(ends, key=lambda e: acc[-1, e])
    total = float(acc[-1, s])
    path = np.empty(t_len, dtype=np.int64)
    for t in range(t_len - 1, -1, -1):
        path[t] = s
        s -= back[t, s]
    return np.where(path % 2 == 1, path // 2, BLANK).astype(np.int64), total


def boundaries_of(labels: np.ndarray, length: int) -> np.ndarray:
    """(length - 1,) float: the boundary between positions k and k + 1 of a labelling, in frames (a frame
    ``t`` spans [t, t + 1)): the middle of the frames between the last frame of k and the first of k + 1
    (the blank run between their spikes), or the first frame of k + 1 when they touch. A position no frame
    holds gets the boundary of its neighbours (zero width)."""
    lab = np.asarray(labels)
    if lab.ndim != 1 or len(lab) == 0:
        raise ValueError(f"a labelling is a (T,) array with T >= 1; got shape {lab.shape}")
    used = lab[lab != BLANK]
    if (np.diff(used) < 0).any() or (used >= length).any() or (lab < BLANK).any():
        raise ValueError(f"a labelling holds positions 0..{length - 1} non-decreasing over its frames and -1 on blanks")
    out = np.empty(max(length - 1, 0))
    for k in range(length - 1):
        before = np.flatnonzero((lab != BLANK) & (lab <= k))
        after = np.flatnonzero(lab > k)
        end = before[-1] + 1 if len(before) else 0
        start = after[0] if len(after) else len(lab)
        out[k] = (end + start) / 2.0 if start > end else float(start)
    return out


def segments_of(labels: np.ndarray, length: int, end: float | None = None, shift: float = 0.0) -> np.ndarray:
    """(length, 2) float: each position's span [start, stop) in frames, cut at :func:`boundaries_of` moved later by
    ``shift`` frames (kept inside the labelling); the first starts at its first frame (0 when it has none), the
    last stops at ``end`` (default: one past its last frame)."""
    lab = np.asarray(labels)
    cuts = np.clip(boundaries_of(lab, length) + shift, 0.0, float(len(lab)))
    held = np.flatnonzero(lab != BLANK)
    first = float(held[0]) if len(held) and lab[held[0]] == 0 else 0.0
    last = float(held[-1] + 1) if len(held) else float(len(lab))
    stop = last if end is None else float(end)
    starts = np.concatenate([[min(first, cuts[0]) if length > 1 else first], cuts])
    stops = np.concatenate([cuts, [max(stop, cuts[-1]) if length > 1 else max(stop, first)]])
    return np.stack([starts, stops], axis=1)


__all__ = ["BLANK", "boundaries_of", "ctc_forced_align", "min_frames", "segments_of"]
