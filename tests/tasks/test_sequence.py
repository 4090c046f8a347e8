"""The sequence task: greedy CTC decoding on a hand-made emission matrix, error rates against hand-computed
cases, the CTC loss against a brute-force sum over alignments, and the label check."""

import itertools

import numpy as np
import pytest
import torch

from polymodal.tasks import get_task
from polymodal.tasks.sequence import (
    PAD,
    char_error_rate,
    ctc,
    edit_distance,
    greedy_decode,
    word_error_rate,
)


def test_greedy_decoding_merges_repeats_and_drops_blanks():
    k = 3  # tokens 0, 1, 2; blank = 3; last channel: the frame exists
    frames = [0, 0, 3, 0, 1, 1, 3, 3, 2, 2]  # "0 0" separated by a blank stays two tokens
    e = np.full((1, 12, k + 2), -5.0, np.float32)
    e[0, np.arange(10), frames] = 5.0
    e[0, :10, -1] = 1.0
    e[0, 10:, 0] = 9.0  # padding frames say 0 loudly: they must be ignored
    assert greedy_decode(e) == [[0, 0, 1, 2]]


def test_error_rates_against_hand_computed_cases():
    assert edit_distance("kitten", "sitting") == 3
    # one substitution + one deletion over 6 reference words; one insertion over 2
    assert word_error_rate(["one two three four five six", "a b"], ["one too three four five", "a b c"]) == pytest.approx(3 / 8)
    assert char_error_rate(["12345"], ["1245"]) == pytest.approx(1 / 5)
    assert char_error_rate(["12", "345"], ["12", "345"]) == 0.0
    with pytest.raises(ValueError, match="references"):
        word_error_rate(["a"], [])


def test_ctc_equals_the_sum_over_every_alignment():
    torch.manual_seed(0)
    t, k = 4, 2  # tokens 0, 1, blank 2
    e = torch.randn(1, t, k + 2)
    e[..., -1] = 1.0
    logp = torch.log_softmax(e[0, :, :-1], -1)
    target = [1, 1]

    def collapse(path):
        merged = [p for i, p in enumerate(path) if i == 0 or p != path[i - 1]]
        return [p for p in merged if p != k]

    total = sum(torch.exp(sum(logp[i, p] for i, p in enumerate(path)))
                for path in itertools.product(range(k + 1), repeat=t) if collapse(list(path)) == target)
    got = ctc(e, torch.tensor([[1, 1, PAD]]))
    assert got.item() == pytest.approx(-torch.log(total).item(), abs=1e-5)


def test_sequence_labels_are_checked():
    task = get_task("sequence")
    task.check_labels(np.array([[1, 2, PAD], [0, PAD, PAD]]), 3)
    with pytest.raises(ValueError, match="padding"):
        task.check_labels(np.array([[1, PAD, 2]]), 3)
    with pytest.raises(ValueError, match="outside"):
        task.check_labels(np.array([[1, 5]]), 3)
    with pytest.raises(ValueError, match="integer"):
        task.check_labels(np.array([1.0, 2.0]), 3)
