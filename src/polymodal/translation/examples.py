"""Example-based translation: retrieve the k nearest gallery examples of the target modality for each query
(cosine similarity of their coordinated embeddings, exact search) and fuse the targets they carry.

Top-k fusions (``fuse``):

- ``vote``: for class targets (N,) int: each retrieved example votes for its class with weight
  softmax(similarity / temperature) over the k; the translation is the class with the most weight, and the
  weights per class are kept as ``scores`` (K classes).
- ``mean``: for vector targets (N, ...) float (an image, an embedding): the softmax-weighted mean of the k
  retrieved targets.
- ``nearest``: the target of the single most similar example (whatever its type).

With ``temperature`` -> infinity the weights are uniform (plain majority / mean); -> 0, the nearest wins.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

FUSIONS_TOP_K = ("vote", "mean", "nearest")


@dataclass(frozen=True)
class Translation:
    """``value`` (Q, ...) the fused translation of each query; ``neighbours`` (Q, k) gallery rows, most similar
    first; ``similarity`` (Q, k) their cosine similarities; ``weights`` (Q, k) the fusion weights; ``scores``
    (Q, classes) the weight per class (``vote`` only, else None)."""

    value: np.ndarray
    neighbours: np.ndarray
    similarity: np.ndarray
    weights: np.ndarray
    scores: np.ndarray | None = None


def _unit(x: np.ndarray, name: str) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64)
    if a.ndim != 2 or a.shape[0] == 0:
        raise ValueError(f"{name} embeddings of shape {a.shape}; expected (N, D) with N >= 1")
    if not np.isfinite(a).all():
        raise ValueError(f"{name} embeddings hold NaN or infinite values")
    norm = np.linalg.norm(a, axis=1, keepdims=True)
    if (norm == 0).any():
        raise ValueError(f"{name} embeddings hold all-zero rows (rows {np.flatnonzero(norm[:, 0] == 0)[:5].tolist()}); "
                         "a cosine similarity needs a direction")
    return a / norm


def retrieve(query: np.ndarray, gallery: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` most cosine-similar gallery rows of each query row: (Q, k) indices and similarities, most
    similar first (ties: lower gallery row first)."""
    q, g = _unit(query, "query"), _unit(gallery, "gallery")
    if q.shape[1] != g.shape[1]:
        raise ValueError(f"query embeddings of width {q.shape[1]} and gallery embeddings of width {g.shape[1]}: "
                         "they must come from the same coordinated space")
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or not 1 <= k <= len(g):
        raise ValueError(f"k={k!r}: expected an integer in [1, {len(g)}] (the gallery's size)")
    sim = q @ g.T
    order = np.argsort(-sim, axis=1, kind="stable")[:, :k]
    return order, np.take_along_axis(sim, order, axis=1)


def translate(query: np.ndarray, gallery: np.ndarray, targets: np.ndarray, k: int = 5, fuse: str = "vote",
              temperature: float = 0.1, num_classes: int | None = None) -> Translation:
    """Translate each query row by its ``k`` nearest gallery rows (see the module docstring); ``targets`` holds
    one target per gallery row."""
    t = np.asarray(targets)
    if len(t) != len(np.asarray(gallery)):
        raise ValueError(f"{len(t)} targets for {len(np.asarray(gallery))} gallery rows; expected one per row")
    if fuse not in FUSIONS_TOP_K:
        raise ValueError(f"unknown top-k fusion {fuse!r}; expected one of {FUSIONS_TOP_K}")
    if not (isinstance(temperature, int | float) and np.isfinite(temperature) and temperature > 0):
        raise ValueError(f"temperature={temperature!r}: expected a positive number")
    idx, sim = retrieve(query, gallery, k)
    z = sim / temperature
    w = np.exp(z - z.max(axis=1, keepdims=True))
    w /= w.sum(axis=1, keepdims=True)
    if fuse == "nearest":
        return Translation(t[idx[:, 0]], idx, sim, np.eye(k)[np.zeros(len(idx), int)])
    if fuse == "vote":
        if not np.issubdtype(t.dtype, np.integer) or t.ndim != 1 or (t < 0).any():
            raise ValueError(f"fuse='vote' takes class targets (N,) of non-negative integers; got {t.dtype} {t.shape} "
                             "(use fuse='mean' for vectors)")
        classes = int(t.max()) + 1 if num_classes is None else int(num_classes)
        if t.max() >= classes:
            raise ValueError(f"targets go up to {t.max()} but num_classes={classes}")
        scores = np.zeros((len(idx), classes))
        np.add.at(scores, (np.arange(len(idx))[:, None].repeat(k, 1), t[idx]), w)
        return Translation(scores.argmax(axis=1), idx, sim, w, scores)
    if not np.issubdtype(t.dtype, np.number):
        raise ValueError(f"fuse='mean' takes numeric targets; got {t.dtype}")
    picked = t[idx].astype(np.float64)  # (Q, k, ...)
    value = (w.reshape(*w.shape, *([1] * (picked.ndim - 2))) * picked).sum(axis=1)
    return Translation(value, idx, sim, w)
