"""Missing-modality masks (MLA's protocol, from CPM-Net's ``random_mask``)."""

from __future__ import annotations

import numpy as np


def missing_mask(n: int, m: int, rate: float, rng: np.random.Generator) -> np.ndarray:
    """bool (n, m) presence mask with round(rate * n * m) missing slots, at least one present per row.

    CPM-Net style: each row keeps one modality drawn uniformly; the missing slots are drawn
    uniformly among the other n * (m - 1) slots, so ``rate`` <= (m - 1) / m.
    """
    if not 0.0 <= rate <= (m - 1) / m + 1e-12:
        raise ValueError(
            f"missing_rate={rate} is out of range: with {m} modalities at most (M-1)/M = {(m - 1) / m:.3f} of "
            "the (sample, modality) slots can be missing (every sample keeps one); choose a rate in that range"
        )
    present = np.ones((n, m), dtype=bool)
    anchor = rng.integers(0, m, size=n)
    others = np.flatnonzero(np.arange(m)[None, :] != anchor[:, None])  # flat slot ids, (n * (m - 1),)
    present.flat[rng.choice(others, size=min(round(rate * n * m), len(others)), replace=False)] = False
    return present
