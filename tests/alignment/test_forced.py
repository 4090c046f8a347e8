"""CTC forced alignment against soft positions: the Viterbi path is the best of every CTC path enumerated on small
inputs, and the boundaries / segments read off a labelling."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from polymodal.alignment.forced import BLANK, boundaries_of, ctc_forced_align, min_frames, segments_of


def _valid(labels: tuple[int, ...], positions: np.ndarray) -> bool:
    """Whether a labelling is a CTC path through the positions: every position in order, each once as a run, and a
    blank between two neighbours that read the same digit."""
    best = positions.argmax(1)
    runs = [k for i, k in enumerate(labels) if i == 0 or k != labels[i - 1]]  # collapse repeats
    seen = [k for k in runs if k != BLANK]
    if seen != list(range(len(positions))):
        return False
    for i in range(1, len(labels)):  # neighbours with the same digit must be parted by a blank
        if labels[i - 1] != BLANK and labels[i] == labels[i - 1] + 1 and best[labels[i]] == best[labels[i - 1]]:
            return False
    return True


def _score(labels: tuple[int, ...], frames: np.ndarray, positions: np.ndarray) -> float:
    out = 0.0
    for t, k in enumerate(labels):
        out += np.log(frames[t, -1] + 1e-12) if k == BLANK else np.log(frames[t, :-1] @ positions[k] + 1e-12)
    return out


@pytest.mark.parametrize("seed", range(6))
def test_viterbi_path_is_the_best_ctc_path_of_all_enumerated(seed):
    rng = np.random.default_rng(seed)
    t_len, length, k = 6, 3, 3
    frames = rng.dirichlet(np.ones(k + 1), size=t_len)
    positions = rng.dirichlet(np.ones(k), size=length)
    if seed % 2:
        positions[1] = positions[0]  # two neighbours reading the same digit: a blank must part them
    labels, score = ctc_forced_align(frames, positions)
    paths = [p for p in itertools.product(range(-1, length), repeat=t_len) if _valid(p, positions)]
    best = max(_score(p, frames, positions) for p in paths)
    assert _valid(tuple(labels.tolist()), positions)
    assert score == pytest.approx(best) and _score(tuple(labels.tolist()), frames, positions) == pytest.approx(best)


def test_forced_alignment_follows_clear_spikes_and_refuses_too_few_frames():
    # frames: blank, 4, blank, blank, 8, 8, blank, 4 -> positions (4, 8, 4)
    tokens = [10, 4, 10, 10, 8, 8, 10, 4]
    frames = np.full((len(tokens), 11), 0.01)
    frames[np.arange(len(tokens)), tokens] = 0.9
    frames /= frames.sum(1, keepdims=True)
    positions = np.eye(10)[[4, 8, 4]]
    labels, _ = ctc_forced_align(frames, positions)
    assert labels.tolist() == [-1, 0, -1, -1, 1, 1, -1, 2]
    assert boundaries_of(labels, 3).tolist() == [3.0, 6.5]  # middles of the blank runs (frames 2-3, frame 6)
    assert segments_of(labels, 3, end=8.0).tolist() == [[1.0, 3.0], [3.0, 6.5], [6.5, 8.0]]
    assert min_frames(np.eye(10)[[3, 3, 3]]) == 5
    with pytest.raises(ValueError, match="4 frames cannot hold 3 positions"):
        ctc_forced_align(frames[:4], np.eye(10)[[3, 3, 3]])
    with pytest.raises(ValueError, match=r"\(T, K \+ 1\)"):
        ctc_forced_align(frames[:, :10], positions)


def test_boundaries_of_touching_and_missing_positions():
    assert boundaries_of(np.array([0, 0, 1, 1]), 2).tolist() == [2.0]  # touching spikes: the first frame of the next
    assert boundaries_of(np.array([0, -1, 2, 2]), 3).tolist() == [1.5, 1.5]  # position 1 holds no frame: zero width
    with pytest.raises(ValueError, match="non-decreasing"):
        boundaries_of(np.array([1, 0]), 2)


def test_segments_follow_shifted_boundaries_inside_the_labelling():
    labels = np.array([-1, 0, -1, -1, 1, 1, -1, 2])
    assert segments_of(labels, 3, end=8.0, shift=1.0).tolist() == [[1.0, 4.0], [4.0, 7.5], [7.5, 8.0]]
    assert segments_of(labels, 3, end=8.0, shift=5.0).tolist() == [[1.0, 8.0], [8.0, 8.0], [8.0, 8.0]]  # clipped
