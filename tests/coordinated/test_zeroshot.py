"""Prototype (zero-/few-shot) classification, the linear probe and the modality gap."""

from __future__ import annotations

import numpy as np
import pytest

from polymodal.coordinated.zeroshot import (
    class_prototypes,
    linear_probe,
    modality_gap,
    nearest_prototype,
    prototype_accuracy,
)


def test_prototypes_equal_a_naive_loop_and_classify():
    rng = np.random.default_rng(0)
    emb, labels = rng.standard_normal((30, 4)), rng.integers(0, 3, 30)
    protos, classes = class_prototypes(emb, labels)
    assert classes.tolist() == [0, 1, 2]
    for row, c in zip(protos, classes, strict=True):
        members = [e / np.linalg.norm(e) for e, y in zip(emb, labels, strict=True) if y == c]
        mean = sum(members) / len(members)
        np.testing.assert_allclose(row, mean / np.linalg.norm(mean), rtol=1e-12)
    queries = rng.standard_normal((9, 4))
    pred = nearest_prototype(queries, protos, classes)
    for q, p in zip(queries, pred, strict=True):
        scores = [float(np.dot(q / np.linalg.norm(q), pr)) for pr in protos]
        assert p == classes[int(np.argmax(scores))]


def test_zero_and_few_shot_on_real_digits():
    """Class prototypes of sklearn's real 8x8 digits (left image halves) classify held-out rows; five
    exemplars per class do nearly as well; restricting the candidates to three classes is easier."""
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    left = x.reshape(-1, 8, 8)[:, :, :4].reshape(len(x), -1)
    same = prototype_accuracy(left[1000:], y[1000:], left[:1000], y[:1000])
    few = prototype_accuracy(left[1000:], y[1000:], left[:1000], y[:1000], shots=5, seed=1)
    assert same > 0.7 and 0.4 < few <= same + 0.1
    unseen = prototype_accuracy(left[1000:][y[1000:] >= 7], y[1000:][y[1000:] >= 7], left[:1000], y[:1000], classes=[7, 8, 9])
    assert unseen > same  # fewer candidate classes: an easier problem
    with pytest.raises(ValueError, match="class 3 has 0 examples"):
        class_prototypes(left[:10], np.zeros(10, int), classes=[0, 3])


def test_linear_probe_on_real_digits():
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    acc = linear_probe(x[:1200], y[:1200], x[1200:], y[1200:])
    assert 0.9 < acc <= 1.0
    shuffled = linear_probe(x[:1200], np.random.default_rng(0).permutation(y[:1200]), x[1200:], y[1200:])
    assert shuffled < 0.3  # labels carry no information: near chance


def test_modality_gap():
    rng = np.random.default_rng(1)
    a = rng.standard_normal((500, 8))
    assert modality_gap(a, a) == 0.0
    shifted = a + np.r_[5.0, np.zeros(7)]
    gap = modality_gap(a, shifted)
    na = a / np.linalg.norm(a, axis=1, keepdims=True)
    ns = shifted / np.linalg.norm(shifted, axis=1, keepdims=True)
    assert gap == pytest.approx(np.linalg.norm(na.mean(0) - ns.mean(0)))
    assert gap > 0.5
