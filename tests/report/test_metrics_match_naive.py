"""The classification metrics (computed by scikit-learn) equal a naive count-based transcription."""

import numpy as np
import pytest

from polymodal.report.metrics import confusion_matrix, macro_f1, per_class_report


def _naive(t, p, c):
    cm = np.zeros((c, c), dtype=np.int64)
    for a, b in zip(t, p, strict=True):
        cm[a, b] += 1
    prec, rec, f1 = [], [], []
    for k in range(c):
        tp, pred, sup = cm[k, k], cm[:, k].sum(), cm[k, :].sum()
        pr = tp / pred if pred else 0.0
        rc = tp / sup if sup else 0.0
        prec.append(pr)
        rec.append(rc)
        f1.append(2 * pr * rc / (pr + rc) if pr + rc else 0.0)
    seen = sorted(set(t) | set(p))
    return cm, np.array(prec), np.array(rec), np.array(f1), cm.sum(axis=1), float(np.mean([f1[k] for k in seen]))


@pytest.mark.parametrize("seed", range(5))
def test_metrics_equal_the_naive_counts(seed):
    g = np.random.default_rng(seed)
    c = 6
    t = g.integers(0, c - 1, 80)  # class 5 never true
    p = np.where(g.random(80) < 0.6, t, g.integers(0, c - 2, 80))  # class 4/5 rarely predicted
    cm, prec, rec, f1, support, mf1 = _naive(t, p, c)
    np.testing.assert_array_equal(confusion_matrix(t, p, c), cm)
    rep = per_class_report(t, p, c)
    np.testing.assert_allclose(rep["precision"], prec)
    np.testing.assert_allclose(rep["recall"], rec)
    np.testing.assert_allclose(rep["f1"], f1)
    np.testing.assert_array_equal(rep["support"], support)
    assert macro_f1(t, p, c) == pytest.approx(mf1)
