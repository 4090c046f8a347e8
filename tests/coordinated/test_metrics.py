"""Retrieval metrics against a naive full-matrix loop."""

from __future__ import annotations

import numpy as np
import pytest

from polymodal.coordinated.metrics import cross_modal_metrics, mean_recall, retrieval_metrics


def naive(q, g, ql, gl, ks):
    """Score every pair, sort each query's gallery by (-score, position), walk the list."""
    recalls = {k: [] for k in ks}
    aps = []
    for i in range(len(q)):
        scores = [(-sum(q[i][d] * g[j][d] for d in range(len(q[i]))), j) for j in range(len(g))]
        ranked = [j for _, j in sorted(scores)]
        relevant = [gl[j] == ql[i] for j in ranked]
        if not any(relevant):
            continue
        for k in ks:
            recalls[k].append(any(relevant[:k]))
        found, precisions = 0, []
        for pos, r in enumerate(relevant, start=1):
            if r:
                found += 1
                precisions.append(found / pos)
        aps.append(sum(precisions) / found)
    return {**{f"R@{k}": sum(v) / len(v) for k, v in recalls.items()}, "mAP": sum(aps) / len(aps), "n_queries": len(aps)}


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_retrieval_metrics_equal_naive_loop(seed):
    rng = np.random.default_rng(seed)
    q, g = rng.standard_normal((13, 4)), rng.standard_normal((17, 4))
    g[5] = g[2]  # exact ties, broken by gallery position
    ql, gl = rng.integers(0, 5, 13), rng.integers(0, 4, 17)  # class 4 has no gallery item: left out
    got = retrieval_metrics(q, g, ql, gl, ks=(1, 3, 10))
    want = naive(q.tolist(), g.tolist(), ql.tolist(), gl.tolist(), (1, 3, 10))
    assert got == pytest.approx(want, rel=1e-12)
    assert got["n_queries"] < 13 or 4 not in ql


def test_perfect_and_reversed_embeddings():
    labels = np.repeat(np.arange(4), 3)
    onehot = np.eye(4)[labels]
    perfect = retrieval_metrics(onehot, onehot, labels, labels)
    assert perfect["R@1"] == 1.0 and perfect["mAP"] == 1.0
    worst = retrieval_metrics(onehot, -onehot, labels, labels, ks=(1,))
    assert worst["R@1"] == 0.0 and worst["mAP"] < 0.5


def test_cross_modal_both_directions_and_presence():
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 3, 20)
    emb = {"audio": rng.standard_normal((20, 5)), "image": rng.standard_normal((20, 5))}
    present = {"audio": np.ones(20, bool), "image": np.arange(20) % 4 != 0}
    got = cross_modal_metrics(emb, labels, present, ks=(1, 5))
    assert set(got) == {f"{d}_{k}" for d in ("audio_to_image", "image_to_audio") for k in ("R1", "R5", "mAP")}
    keep = present["image"]
    a2i = naive(emb["audio"].tolist(), emb["image"][keep].tolist(), labels.tolist(), labels[keep].tolist(), (1, 5))
    i2a = naive(emb["image"][keep].tolist(), emb["audio"].tolist(), labels[keep].tolist(), labels.tolist(), (1, 5))
    assert got["audio_to_image_R1"] == pytest.approx(a2i["R@1"]) and got["audio_to_image_mAP"] == pytest.approx(a2i["mAP"])
    assert got["image_to_audio_R5"] == pytest.approx(i2a["R@5"]) and got["image_to_audio_mAP"] == pytest.approx(i2a["mAP"])
    assert mean_recall(got, 1) == pytest.approx((a2i["R@1"] + i2a["R@1"]) / 2)
    assert mean_recall(got, 5, query="image") == pytest.approx(i2a["R@5"])


def test_bad_shapes_are_named():
    with pytest.raises(ValueError, match="width 3 but the gallery has width 4"):
        retrieval_metrics(np.zeros((2, 3)), np.zeros((2, 4)), np.zeros(2), np.zeros(2))
    with pytest.raises(ValueError, match="3 query labels for 2 queries"):
        retrieval_metrics(np.zeros((2, 3)), np.zeros((2, 3)), np.zeros(3), np.zeros(2))
