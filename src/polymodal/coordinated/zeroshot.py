"""Zero-shot and few-shot classification across modalities, the linear probe, the modality gap.

In a coordinated space a class can be described by one modality and recognised in another: the
prototype of a class is the L2-normalised mean of one modality's embeddings of that class (all of
them: "zero-shot" for the other modality, which never saw a label; or ``shots`` random exemplars per
class: few-shot), and an embedding of the other modality is assigned the class of the most similar
prototype (docs/coordinated.md).

- :func:`class_prototypes`, :func:`nearest_prototype`, :func:`prototype_accuracy`
- :func:`linear_probe`: logistic regression (scikit-learn) on frozen embeddings of the training split,
  scored on another split: how linearly separable the classes are in one modality's embedding
- :func:`modality_gap`: the distance between the centroids of two modalities' normalised embeddings
  (Liang et al., NeurIPS 2022), ``|| mean(a) - mean(b) ||``
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def _normalise(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def class_prototypes(
    embeddings: np.ndarray,
    labels: np.ndarray,
    classes: Sequence[int] | None = None,
    shots: int | None = None,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """(C, D) L2-normalised prototypes and their (C,) class ids.

    Each prototype is the mean of the (normalised) embeddings of its class: all of them, or ``shots``
    drawn without replacement by ``numpy.random.default_rng(seed)`` (few-shot). ``classes`` defaults to
    the classes present in ``labels``; a requested class without ``shots`` (or any) examples raises.
    """
    emb, labels = _normalise(embeddings), np.asarray(labels)
    if len(emb) != len(labels):
        raise ValueError(f"class_prototypes: {len(labels)} labels for {len(emb)} embeddings")
    classes = np.unique(labels) if classes is None else np.asarray(list(classes))
    rng = np.random.default_rng(seed)
    protos = []
    for c in classes:
        rows = np.flatnonzero(labels == c)
        need = 1 if shots is None else shots
        if len(rows) < need:
            raise ValueError(
                f"class {c} has {len(rows)} examples but {need} are needed for its prototype "
                f"(shots={shots}); lower shots or give examples of every class"
            )
        if shots is not None:
            rows = rng.choice(rows, size=shots, replace=False)
        protos.append(emb[rows].mean(axis=0))
    return _normalise(np.stack(protos)), classes


def nearest_prototype(embeddings: np.ndarray, prototypes: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """(N,) class of the prototype with the largest inner product for each embedding (first on ties)."""
    scores = _normalise(embeddings) @ np.asarray(prototypes, dtype=np.float64).T
    return np.asarray(classes)[np.argmax(scores, axis=1)]


def prototype_accuracy(
    queries: np.ndarray,
    query_labels: np.ndarray,
    support: np.ndarray,
    support_labels: np.ndarray,
    classes: Sequence[int] | None = None,
    shots: int | None = None,
    seed: int = 0,
) -> float:
    """Accuracy of classifying ``queries`` (one modality) by prototypes built from ``support`` (another
    modality, its labels): zero-shot for the query modality (``shots=None``: all support examples) or
    few-shot (``shots`` per class). ``classes`` restricts the candidate classes (e.g. unseen ones)."""
    protos, cls = class_prototypes(support, support_labels, classes, shots, seed)
    pred = nearest_prototype(queries, protos, cls)
    return float((pred == np.asarray(query_labels)).mean())


def linear_probe(
    train: np.ndarray, train_labels: np.ndarray, test: np.ndarray, test_labels: np.ndarray, c: float = 1.0, seed: int = 0
) -> float:
    """Test accuracy of a multinomial logistic regression (scikit-learn, ``C=c``, lbfgs) fitted on frozen
    ``train`` embeddings; the embeddings are standardised with the training split's statistics."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    clf = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=2000, random_state=seed))
    clf.fit(np.asarray(train, dtype=np.float64), np.asarray(train_labels))
    return float(clf.score(np.asarray(test, dtype=np.float64), np.asarray(test_labels)))


def modality_gap(a: np.ndarray, b: np.ndarray) -> float:
    """Euclidean distance between the centroids of two modalities' L2-normalised embeddings."""
    return float(np.linalg.norm(_normalise(a).mean(axis=0) - _normalise(b).mean(axis=0)))


__all__ = ["class_prototypes", "linear_probe", "modality_gap", "nearest_prototype", "prototype_accuracy"]
