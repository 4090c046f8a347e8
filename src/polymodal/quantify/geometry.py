"""2-D projections of each modality's representation (the encoder's features, pooled over positions):
PCA always, t-SNE when scikit-learn is installed (on the first 50 principal components of at most
``max_points`` rows, perplexity min(30, (N - 1) / 3), seeded)."""

from __future__ import annotations

import numpy as np


def pca_2d(x: np.ndarray) -> np.ndarray:
    """(N, 2) projection of the rows of ``x`` (N, D) on their first two principal axes (centred, SVD)."""
    x = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
    x = x - x.mean(0)
    if x.shape[1] < 2 or len(x) < 2:
        return np.pad(x[:, :2], ((0, 0), (0, max(0, 2 - x.shape[1]))))
    _, _, vt = np.linalg.svd(x, full_matrices=False)
    return x @ vt[:2].T


def tsne_2d(x: np.ndarray, seed: int = 0, max_points: int = 1000) -> tuple[np.ndarray, np.ndarray] | None:
    """((R, 2) t-SNE embedding, (R,) the rows of ``x`` it shows), or None without scikit-learn (or with fewer
    than 5 rows); at most ``max_points`` rows, drawn with ``seed``."""
    try:
        from sklearn.manifold import TSNE
    except ImportError:
        return None
    x = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
    if len(x) < 5:
        return None
    rows = np.arange(len(x))
    if len(x) > max_points:
        rows = np.sort(np.random.default_rng(seed).choice(len(x), size=max_points, replace=False))
    x = x[rows]
    if x.shape[1] > 50:
        centred = x - x.mean(0)
        _, _, vt = np.linalg.svd(centred, full_matrices=False)
        x = centred @ vt[:50].T
    perplexity = float(min(30.0, (len(x) - 1) / 3))
    return TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(x), rows


__all__ = ["pca_2d", "tsne_2d"]
