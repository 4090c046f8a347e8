"""Alignment scores on hand-made alignments."""

import numpy as np
import pytest

from polymodal.alignment import boundary_errors, frame_accuracy, predicted_onsets

PAD = -1


def test_frame_accuracy_skips_the_silences():
    truth = np.array([0, 0, PAD, 1, 1, 1])
    assert frame_accuracy(np.array([0, 1, 1, 1, 1, 0]), truth) == pytest.approx(3 / 5)
    with pytest.raises(ValueError, match="shape"):
        frame_accuracy(np.zeros(3), truth)


def test_onsets_and_boundary_errors_by_hand():
    pred = np.array([0, 0, 0, 1, 1, 2, 2, 2])
    np.testing.assert_array_equal(predicted_onsets(pred, 3), [3, 5])
    np.testing.assert_array_equal(predicted_onsets(np.array([0, 0, 2, 2]), 3), [2, 2])  # position 1 skipped
    # hop 160 at 8 kHz: frame t at 20 t ms; digit 0 = [0, 400), digit 1 = [560, 800), digit 2 = [1000, 1600)
    bounds = np.array([[0, 400], [560, 800], [1000, 1600]])
    err = boundary_errors(np.array([3, 5]), bounds, 160, 8000)
    # onset 1 at sample 480: inside the gap [400, 560) -> 0; 80 samples = 10 ms before the onset
    # onset 2 at sample 800: on the gap's start -> 0; 200 samples = 25 ms before the onset at 1000
    np.testing.assert_allclose(err["to_gap"], [0.0, 0.0])
    np.testing.assert_allclose(err["to_onset"], [10.0, 25.0])
    err = boundary_errors(np.array([1, 8]), bounds, 160, 8000)  # sample 160 (30 ms early), sample 1280 (35 ms late)
    np.testing.assert_allclose(err["to_gap"], [30.0, 35.0])
    with pytest.raises(ValueError, match="monotonic"):
        predicted_onsets(np.array([0, 1, 0]), 2)
