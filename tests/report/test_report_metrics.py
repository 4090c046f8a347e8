"""Metrics against scikit-learn and naive loops on random inputs."""

from __future__ import annotations

import statistics

import numpy as np
import pytest
from sklearn import metrics as skm

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


def _random_probs(rng: np.random.Generator, n: int, c: int, sharp: float = 3.0) -> np.ndarray:
    logits = sharp * rng.standard_normal((n, c))
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _naive_ece(y: np.ndarray, probs: np.ndarray, n_bins: int) -> float:
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    total = 0.0
    for b in range(n_bins):
        lo, hi = edges[b], edges[b + 1]
        members = [i for i in range(len(y)) if (lo < probs[i].max() <= hi) or (b == 0 and probs[i].max() == 0.0)]
        if not members:
            continue
        acc = sum(int(np.argmax(probs[i]) == y[i]) for i in members) / len(members)
        conf = sum(float(probs[i].max()) for i in members) / len(members)
        total += len(members) / len(y) * abs(acc - conf)
    return total


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_against_sklearn(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n, c = 200, 7
    y = rng.integers(0, 5, size=n)  # classes 5 and 6 never occur as truth
    probs = _random_probs(rng, n, c)
    pred = probs.argmax(axis=1)
    assert accuracy(y, probs) == pytest.approx(skm.accuracy_score(y, pred))
    assert accuracy(y, pred) == pytest.approx(skm.accuracy_score(y, pred))
    np.testing.assert_array_equal(confusion_matrix(y, pred, c), skm.confusion_matrix(y, pred, labels=range(c)))
    assert macro_f1(y, pred, c) == pytest.approx(skm.f1_score(y, pred, average="macro", zero_division=0))
    p, r, f, s = skm.precision_recall_fscore_support(y, pred, labels=range(c), zero_division=0)
    rep = per_class_report(y, pred, c)
    np.testing.assert_allclose(rep["precision"], p)
    np.testing.assert_allclose(rep["recall"], r)
    np.testing.assert_allclose(rep["f1"], f)
    np.testing.assert_array_equal(rep["support"], s)


def test_macro_f1_excludes_classes_absent_from_both() -> None:
    y = np.array([0, 0, 1, 1])
    pred = np.array([0, 1, 1, 1])
    # classes 2..9 occur nowhere: the mean runs over classes 0 and 1 only
    f1_0, f1_1 = 2 * 1 * 0.5 / 1.5, 2 * (2 / 3) * 1 / (5 / 3)
    assert macro_f1(y, pred, 10) == pytest.approx((f1_0 + f1_1) / 2)
    # a class predicted but never true counts, with F1 0
    assert macro_f1(y, np.array([0, 2, 1, 1]), 10) == pytest.approx((2 / 3 + 1.0 + 0.0) / 3)


@pytest.mark.parametrize("seed,n_bins", [(0, 15), (1, 10), (2, 1), (3, 7)])
def test_ece_matches_naive_loop(seed: int, n_bins: int) -> None:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 4, size=150)
    probs = _random_probs(rng, 150, 4, sharp=1.0 + seed)
    assert expected_calibration_error(y, probs, n_bins) == pytest.approx(_naive_ece(y, probs, n_bins), abs=1e-12)


def test_ece_bin_edges_and_known_values() -> None:
    # confidences exactly on bin edges belong to the lower bin: (lo, hi]
    probs = np.array([[0.5, 0.5], [0.6, 0.4], [1.0, 0.0], [0.2, 0.8]])
    y = np.array([0, 1, 0, 1])
    assert expected_calibration_error(y, probs, 10) == pytest.approx(_naive_ece(y, probs, 10))
    bins = reliability_bins(y, probs, 10)
    assert bins["count"].tolist() == [0, 0, 0, 0, 1, 1, 0, 1, 0, 1]
    # perfectly confident and right: ECE 0; confident and always wrong: ECE 1
    onehot = np.eye(3)[[0, 1, 2]]
    assert expected_calibration_error([0, 1, 2], onehot) == 0.0
    assert expected_calibration_error([1, 2, 0], onehot) == pytest.approx(1.0)


def test_summarize_and_npz_round_trip(tmp_path) -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 10, size=60)
    probs, audio = _random_probs(rng, 60, 10), _random_probs(rng, 60, 10)
    pred = Predictions(y, probs, {"audio": audio}, np.arange(60), tuple(f"digit{i}" for i in range(10)))
    out = summarize(pred)
    assert set(out) == {"fused_acc", "macro_f1", "ece", "audio_acc", "n"}
    assert out["n"] == 60
    assert out["fused_acc"] == pytest.approx(skm.accuracy_score(y, probs.argmax(1)))
    assert out["audio_acc"] == pytest.approx(skm.accuracy_score(y, audio.argmax(1)))
    assert out["ece"] == pytest.approx(_naive_ece(y, probs, 15))
    back = load_predictions(save_predictions(pred, tmp_path / "predictions_test.npz"))
    np.testing.assert_array_equal(back.y_true, y)
    np.testing.assert_allclose(back.probs, probs)
    np.testing.assert_allclose(back.per_modality["audio"], audio)
    assert back.class_names == pred.class_names
    assert summarize(back) == out


def test_mean_std() -> None:
    vals = [0.91, 0.92, 0.906]
    mean, std, n = mean_std(vals)
    assert (mean, n) == (pytest.approx(statistics.mean(vals)), 3)
    assert std == pytest.approx(statistics.stdev(vals))  # ddof = 1
    assert mean_std([0.5]) == (0.5, 0.0, 1)
    with pytest.raises(ValueError, match="at least one value"):
        mean_std([])


def test_errors_name_the_problem(tmp_path) -> None:
    with pytest.raises(ValueError, match=r"y_true has shape \(3,\) but y_pred has shape \(2,\)"):
        confusion_matrix([0, 1, 2], [0, 1], 3)
    with pytest.raises(ValueError, match=r"expected ids in \[0, 2\]"):
        macro_f1([0, 1, 5], [0, 1, 2], 3)
    with pytest.raises(ValueError, match=r"shape \(N, C\) = \(2, C\)"):
        expected_calibration_error([0, 1], np.ones((3, 2)) / 2)
    with pytest.raises(ValueError, match="empty"):
        accuracy([], [])
    with pytest.raises(ValueError, match="integer class ids"):
        accuracy([0.5, 1.0], [0, 1])
    with pytest.raises(FileNotFoundError, match="nope.npz"):
        load_predictions(tmp_path / "nope.npz")
    np.savez(tmp_path / "bad.npz", probs=np.ones((2, 2)))
    with pytest.raises(ValueError, match=r"lacks arrays \['y_true'\]"):
        load_predictions(tmp_path / "bad.npz")
