"""Paired comparison of two methods over the same test samples and seeds (crossed bootstrap interval).

Every seed of every method scores the SAME test samples, so the test sample is a factor crossed with
the seed, not nested in it. Resampling samples independently within each seed treats S x N scores as
independent and makes the interval up to sqrt(S) too narrow. The crossed bootstrap draws, per
replicate, one set of N sample indices (used for every seed and for both methods: pairing) and S
seeds with replacement (see docs/benchmarks.md, "Intervals and seeds").
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Difference:
    mean: float  # mean over seeds of acc(method) - acc(baseline), a fraction
    low: float  # 2.5 % bootstrap quantile
    high: float  # 97.5 % bootstrap quantile
    n_seeds: int
    n_samples: int  # test samples per seed

    @property
    def half_width(self) -> float:
        """Half the interval's width: the smallest difference this comparison resolves, roughly."""
        return (self.high - self.low) / 2


def _stack(correct: Sequence[np.ndarray], what: str) -> np.ndarray:
    try:
        arr = np.stack([np.asarray(x, dtype=np.float64).reshape(-1) for x in correct])
    except ValueError:
        shapes = [np.shape(x) for x in correct]
        raise ValueError(f"{what}: every seed must score the same number of test samples; got shapes {shapes}") from None
    return arr


def crossed_bootstrap_stats(
    correct_a: Sequence[np.ndarray], correct_b: Sequence[np.ndarray], *, resamples: int = 4000, seed: int = 0
) -> np.ndarray:
    """The (resamples,) bootstrap replicates of mean acc(A) - acc(B) under the crossed design.

    Replicate r draws seeds s_1..s_S with replacement and sample indices i_1..i_N with replacement,
    the same indices for every drawn seed and both methods, and returns
    mean_k mean_j [a[s_k, i_j] - b[s_k, i_j]].
    """
    if len(correct_a) != len(correct_b) or not correct_a:
        raise ValueError(f"need the same non-zero number of seeds for both methods; got {len(correct_a)} and {len(correct_b)}")
    a, b = _stack(correct_a, "method A"), _stack(correct_b, "method B")
    if a.shape != b.shape:
        raise ValueError(f"paired runs must score the same samples; got shapes {a.shape} and {b.shape}")
    d = a - b  # (S, N)
    s, n = d.shape
    rng = np.random.default_rng(seed)
    out = np.empty(resamples)
    chunk = max(1, min(resamples, 1_000_000 // max(n, 1)))
    for start in range(0, resamples, chunk):
        r = min(chunk, resamples - start)
        seeds = rng.integers(0, s, size=(r, s))  # the drawn seeds of each replicate
        rows = rng.integers(0, n, size=(r, n))  # ONE set of sample indices per replicate
        seed_w = _counts(seeds, s) / s  # (r, S): how often each seed was drawn
        sample_w = _counts(rows, n) / n  # (r, N)
        out[start:start + r] = ((seed_w @ d) * sample_w).sum(axis=1)
    return out


def _counts(draws: np.ndarray, size: int) -> np.ndarray:
    """(R, K) integer draws in [0, size) -> (R, size) counts per value."""
    r = draws.shape[0]
    flat = (draws + size * np.arange(r)[:, None]).ravel()
    return np.bincount(flat, minlength=r * size).reshape(r, size).astype(np.float64)


def paired_bootstrap(
    correct_a: Sequence[np.ndarray], correct_b: Sequence[np.ndarray], *, resamples: int = 4000, seed: int = 0
) -> Difference:
    """Accuracy difference A - B with a crossed, paired bootstrap 95 % percentile interval.

    correct_a[s], correct_b[s]: (N,) booleans, whether seed s's run of A / B got test sample i right
    (the same samples in the same order for every seed and both methods). Seed s of A is paired with
    seed s of B. See :func:`crossed_bootstrap_stats` for the resampling.
    """
    stats = crossed_bootstrap_stats(correct_a, correct_b, resamples=resamples, seed=seed)
    d = _stack(correct_a, "method A") - _stack(correct_b, "method B")
    low, high = np.quantile(stats, [0.025, 0.975])
    return Difference(float(d.mean()), float(low), float(high), d.shape[0], d.shape[1])


def paired_by_seed(a: Mapping[int, np.ndarray], b: Mapping[int, np.ndarray]) -> dict[str, Any] | None:
    """:func:`paired_bootstrap` of A - B over the seeds both have (seed s of A with seed s of B, in A's
    order), as the results files store a difference: ``mean``, ``ci95``, ``n_seeds``, ``n_samples`` and
    the sorted ``seeds``; None when they share no seed. ``a`` / ``b``: seed -> (N,) per-sample correctness."""
    seeds = [s for s in a if s in b]
    if not seeds:
        return None
    d = paired_bootstrap([a[s] for s in seeds], [b[s] for s in seeds])
    return {"mean": d.mean, "ci95": [d.low, d.high], "n_seeds": d.n_seeds, "n_samples": d.n_samples,
            "seeds": sorted(seeds)}
