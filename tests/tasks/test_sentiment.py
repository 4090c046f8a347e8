"""The sentiment task's metrics against hand-computed values (the common CMU-MOSI / MOSEI evaluation), and its
label check."""

import numpy as np
import pytest

from polymodal.tasks import get_task
from polymodal.tasks.sentiment import sentiment_metrics


def test_sentiment_metrics_by_hand():
    y = np.array([-2.4, -0.6, 0.0, 0.0, 0.4, 1.6, 2.5, 3.0])
    p = np.array([-1.2, 0.2, -0.3, 0.1, 0.6, 1.4, 2.6, 3.9])
    m = sentiment_metrics(y, p)
    # >= 0 against >= 0: wrong on -0.6 -> 0.2 and 0.0 -> -0.3
    assert m["acc2"] == pytest.approx(6 / 8)
    # without the two zeros: wrong on -0.6 -> 0.2 only
    assert m["acc2_nonzero"] == pytest.approx(5 / 6)
    # clipped to [-3, 3] and rounded, truth / prediction: -2 -1, -1 0, 0 -0, 0 0, 0 1, 2 1, 2 3 (2.5 rounds to
    # the even 2, 2.6 to 3), 3 3
    assert m["acc7"] == pytest.approx(3 / 8)
    assert m["acc5"] == pytest.approx(4 / 8)  # clipped to [-2, 2]: 2.5 and 2.6 both 2, 3.0 and 3.9 both 2
    assert m["corr"] == pytest.approx(np.corrcoef(p, y)[0, 1])
    # weighted F1 of the has-0 split: class >= 0 (6 true, 5 hit, 1 false alarm), class < 0 (2 true, 1 hit)
    f_pos, f_neg = 2 * 5 / (2 * 5 + 1 + 1), 2 * 1 / (2 * 1 + 1 + 1)
    assert m["f1"] == pytest.approx((6 * f_pos + 2 * f_neg) / 8)
    flat = sentiment_metrics(np.zeros(3), np.ones(3))
    assert flat["corr"] is None and flat["acc2_nonzero"] is None and flat["acc2"] == 1.0


def test_sentiment_labels_are_scores_in_range():
    task = get_task("sentiment")
    task.check_labels(np.array([-3.0, 0.0, 2.6], dtype=np.float32), 1, "mosi")
    with pytest.raises(ValueError, match=r"mosi: sentiment labels range from -3 to 4.2; expected scores in \[-3, 3\]"):
        task.check_labels(np.array([-3.0, 4.2], dtype=np.float32), 1, "mosi")
    with pytest.raises(ValueError, match="one score per sample; got num_outputs=2"):
        task.check_labels(np.zeros((2, 2), dtype=np.float32), 2, "mosi")
    assert task.monitor == "mae" and task.mode == "min" and task.infer_priority is None
