"""Example-based translation on hand-made embeddings: retrieval order, the top-k fusions, clear errors."""

import numpy as np
import pytest

from polymodal.translation import retrieve, translate

GALLERY = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9], [0.7, 0.7]])
LABELS = np.array([0, 0, 1, 1, 2])


def test_retrieval_is_by_cosine_most_similar_first():
    idx, sim = retrieve(np.array([[2.0, 0.0], [0.0, 3.0]]), GALLERY, 3)
    assert idx.tolist() == [[0, 1, 4], [2, 3, 4]]
    np.testing.assert_allclose(sim[:, 0], [1.0, 1.0])
    assert (np.diff(sim, axis=1) <= 0).all()


def test_vote_mean_and_nearest_fusions():
    query = np.array([[1.0, 0.05]])
    out = translate(query, GALLERY, LABELS, k=3, fuse="vote", temperature=1e6)  # uniform weights
    np.testing.assert_allclose(out.scores, [[2 / 3, 0, 1 / 3]], atol=1e-5)
    assert out.value.tolist() == [0]
    # a near-zero temperature gives everything to the nearest example
    sharp = translate(np.array([[0.72, 0.7]]), GALLERY, LABELS, k=3, fuse="vote", temperature=1e-4)
    assert sharp.value.tolist() == [2] and sharp.weights[0, 0] == pytest.approx(1.0)
    images = np.arange(5 * 4, dtype=np.float64).reshape(5, 2, 2)
    mean = translate(query, GALLERY, images, k=2, fuse="mean", temperature=1e6)
    np.testing.assert_allclose(mean.value[0], (images[0] + images[1]) / 2, atol=1e-4)
    assert translate(query, GALLERY, np.array(list("abcde")), k=2, fuse="nearest").value.tolist() == ["a"]


def test_bad_inputs_are_clear_errors():
    with pytest.raises(ValueError, match="same coordinated space"):
        retrieve(np.ones((1, 3)), GALLERY, 1)
    with pytest.raises(ValueError, match="k=9"):
        retrieve(np.ones((1, 2)), GALLERY, 9)
    with pytest.raises(ValueError, match="all-zero"):
        retrieve(np.zeros((1, 2)), GALLERY, 1)
    with pytest.raises(ValueError, match="one per row"):
        translate(np.ones((1, 2)), GALLERY, LABELS[:3])
    with pytest.raises(ValueError, match="fuse='mean'"):
        translate(np.ones((1, 2)), GALLERY, GALLERY, fuse="vote")
    with pytest.raises(ValueError, match="unknown top-k fusion"):
        translate(np.ones((1, 2)), GALLERY, LABELS, fuse="median")
