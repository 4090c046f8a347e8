"""Paired comparison of two methods over the same test samples and seeds (bootstrap interval)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Difference:
    mean: float  # mean over seeds of acc(method) - acc(baseline), a fraction
    low: float  # 2.5 % bootstrap quantile
    high: float  # 97.5 % bootstrap quantile
    n_seeds: int
    n_samples: int  # test samples per seed


def paired_bootstrap(
    correct_a: Sequence[np.ndarray], correct_b: Sequence[np.ndarray], *, resamples: int = 2000, seed: int = 0
) -> Difference:
    """Accuracy difference A - B with a paired bootstrap 95 % interval over test samples and seeds.

    correct_a[s], correct_b[s]: (N,) booleans, whether seed s's run of A / B got test sample i right
    (the same samples in the same order). Each resample draws seeds with replacement and, within each
    drawn seed, N sample indices with replacement, the SAME indices for A and B (pairing).
    """
    if len(correct_a) != len(correct_b) or not correct_a:
        raise ValueError(f"need the same non-zero number of seeds for both methods; got {len(correct_a)} and {len(correct_b)}")
    a = np.stack([np.asarray(x, dtype=np.float64) for x in correct_a])  # (S, N)
    b = np.stack([np.asarray(x, dtype=np.float64) for x in correct_b])
    if a.shape != b.shape:
        raise ValueError(f"paired runs must score the same samples; got shapes {a.shape} and {b.shape}")
    d = a - b  # (S, N)
    s, n = d.shape
    rng = np.random.default_rng(seed)
    seeds = rng.integers(0, s, size=(resamples, s))  # (R, S)
    rows = rng.integers(0, n, size=(resamples, s, n))  # (R, S, N)
    stats = d[seeds[..., None], rows].mean(axis=(1, 2))  # (R,)
    low, high = np.quantile(stats, [0.025, 0.975])
    return Difference(float(d.mean()), float(low), float(high), s, n)
