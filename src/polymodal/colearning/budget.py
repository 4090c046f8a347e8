"""Label budgets: which rows of the TRAINING split keep their label (docs/colearning.md, "Label budgets").

``label_fraction`` f in (0, 1] keeps, in every class c with n_c training rows, ``max(1, round(f * n_c))`` rows
chosen by a generator seeded with ``label_seed`` (stratified, so that even a 1 % budget has every class); the
rest of the training split is unlabelled: its rows are used by the methods that need no label, and their labels
are never read. Validation and test are untouched (the strategies only ever see the training dataset).
"""

from __future__ import annotations

import math
from typing import Annotated

import numpy as np
from pydantic import Field

# the annotation of ``label_fraction``: a config with a value outside (0, 1] stops at load, naming the key
Fraction = Annotated[float, Field(gt=0, le=1)]


def check_fraction(value: object, key: str = "strategy.args.label_fraction") -> float:
    """``value`` as a fraction in (0, 1], or a ValueError naming ``key``."""
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value) and 0 < value <= 1
    if not ok:
        raise ValueError(f"{key}={value!r}; expected a fraction of the training labels in (0, 1] (1 = every label)")
    return float(value)


def labelled_mask(labels: np.ndarray, fraction: float, seed: int = 0) -> np.ndarray:
    """(N,) bool: the rows of a training split that keep their label under a budget of ``fraction``.

    labels: (N,) integer class ids of the training split. Per class, ``max(1, round(fraction * n_c))`` rows are
    drawn without replacement by ``numpy.random.default_rng(seed)`` (classes in increasing order); a fraction of
    1 keeps every row.
    """
    fraction = check_fraction(fraction)
    labels = np.asarray(labels)
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(
            f"a label budget needs one integer class id per training row; got labels of shape {labels.shape} and "
            f"dtype {labels.dtype} (label_fraction < 1 applies to single-label classification)"
        )
    if fraction == 1.0:
        return np.ones(len(labels), dtype=bool)
    rng = np.random.default_rng(seed)
    keep = np.zeros(len(labels), dtype=bool)
    for c in np.unique(labels):
        rows = np.flatnonzero(labels == c)
        k = max(1, int(round(fraction * len(rows))))
        keep[rng.choice(rows, size=min(k, len(rows)), replace=False)] = True
    return keep


__all__ = ["Fraction", "check_fraction", "labelled_mask"]
