"""Cross-modal retrieval metrics with class-level relevance (docs/coordinated.md).

A query of one modality ranks every gallery item of another modality by inner product (cosine
similarity for L2-normalised embeddings). A gallery item is relevant when it has the query's class
(the AV-digits convention: any image of a seven answers the spoken "seven"), so:

- ``R@K`` (recall at K): the fraction of queries with at least one relevant item among the top K;
- ``mAP``: the mean over queries of the average precision of the full ranking,
  ``AP = (1 / #relevant) sum_{k: item k relevant} precision@k``; queries whose class has no item in the
  gallery are left out of both (they cannot be answered).

Ties in score are broken by gallery position (a stable sort), so the numbers are deterministic.
Metrics are computed over a whole split at once: retrieval needs every gallery item.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np

DEFAULT_KS = (1, 5, 10)


def _as_2d(x: np.ndarray, name: str) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"{name}: expected an (N, D) embedding array; got shape {x.shape}")
    return x


def ranking(queries: np.ndarray, gallery: np.ndarray) -> np.ndarray:
    """(Q, G) gallery positions sorted by descending inner product with each query (stable: ties keep
    gallery order)."""
    q, g = _as_2d(queries, "queries"), _as_2d(gallery, "gallery")
    if q.shape[1] != g.shape[1]:
        raise ValueError(f"queries have width {q.shape[1]} but the gallery has width {g.shape[1]}; embed both in one space")
    return np.argsort(-(q @ g.T), axis=1, kind="stable")


def retrieval_metrics(
    queries: np.ndarray,
    gallery: np.ndarray,
    query_labels: np.ndarray,
    gallery_labels: np.ndarray,
    ks: Iterable[int] = DEFAULT_KS,
) -> dict[str, float]:
    """``R@K`` for each K in ``ks`` and ``mAP`` of ``queries`` (Q, D) against ``gallery`` (G, D) with
    class-level relevance; ``n_queries`` counts the queries that have a relevant item."""
    ql, gl = np.asarray(query_labels), np.asarray(gallery_labels)
    if len(ql) != len(np.asarray(queries)) or len(gl) != len(np.asarray(gallery)):
        raise ValueError(
            f"labels do not match the embeddings: {len(ql)} query labels for {len(np.asarray(queries))} queries, "
            f"{len(gl)} gallery labels for {len(np.asarray(gallery))} items"
        )
    order = ranking(queries, gallery)
    rel = gl[order] == ql[:, None]  # (Q, G) relevance in ranked order
    answerable = rel.any(axis=1)
    rel = rel[answerable]
    out: dict[str, float] = {}
    if rel.shape[0] == 0:
        for k in ks:
            out[f"R@{k}"] = float("nan")
        out["mAP"], out["n_queries"] = float("nan"), 0.0
        return out
    hits = np.cumsum(rel, axis=1)
    for k in ks:
        out[f"R@{k}"] = float((hits[:, : min(k, rel.shape[1])].max(axis=1) > 0).mean())
    precision = hits / np.arange(1, rel.shape[1] + 1)
    ap = (precision * rel).sum(axis=1) / rel.sum(axis=1)
    out["mAP"] = float(ap.mean())
    out["n_queries"] = float(rel.shape[0])
    return out


def cross_modal_metrics(
    embeddings: Mapping[str, np.ndarray],
    labels: np.ndarray,
    present: Mapping[str, np.ndarray] | None = None,
    pairs: Sequence[tuple[str, str]] | None = None,
    ks: Iterable[int] = DEFAULT_KS,
) -> dict[str, float]:
    """Retrieval metrics in both directions for every pair of modalities (or the given ``pairs``).

    ``embeddings``: modality -> (N, D) rows of one split (row i of every modality is sample i);
    ``labels`` (N,) class ids; ``present``: modality -> (N,) bool, a modality's rows that are absent are
    neither queries nor gallery items. Keys: ``"<a>_to_<b>_R1"``, ``"<a>_to_<b>_mAP"``, ... (names that
    logging back ends accept as they are).
    """
    names = list(embeddings)
    labels = np.asarray(labels)
    if pairs is None:
        pairs = [(a, b) for i, a in enumerate(names) for b in names[i + 1 :]]
    ks = tuple(ks)
    out: dict[str, float] = {}
    for a, b in pairs:
        for q, g in ((a, b), (b, a)):
            qr = np.ones(len(labels), bool) if present is None else np.asarray(present[q], bool)
            gr = np.ones(len(labels), bool) if present is None else np.asarray(present[g], bool)
            m = retrieval_metrics(np.asarray(embeddings[q])[qr], np.asarray(embeddings[g])[gr], labels[qr], labels[gr], ks)
            out.update({f"{q}_to_{g}_{k.replace('@', '')}": v for k, v in m.items() if k != "n_queries"})
    return out


def mean_recall(metrics: Mapping[str, float], k: int = 1, query: str | None = None) -> float:
    """Mean of every ``..._R<k>`` entry of :func:`cross_modal_metrics` (e.g. the model-selection monitor);
    only those with ``query`` as the query modality when it is given."""
    prefix = "" if query is None else f"{query}_to_"
    vals = [v for key, v in metrics.items() if key.startswith(prefix) and key.endswith(f"_R{k}") and "_to_" in key
            and v is not None and np.isfinite(v)]
    return float(np.mean(vals)) if vals else float("nan")


__all__ = ["DEFAULT_KS", "cross_modal_metrics", "mean_recall", "ranking", "retrieval_metrics"]
