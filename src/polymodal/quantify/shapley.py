"""Shapley values of modalities over subsets of modalities (docs/quantify.md, "Contribution").

A *value function* gives every subset of the modalities a number (a dataset-level metric, or an (N,) array
of per-sample values); the Shapley value of modality m is its average marginal contribution over all orders
in which the modalities can be added::

    phi_m = sum over S not holding m of |S|! (M - |S| - 1)! / M! * (v(S + {m}) - v(S))

They sum to v(all) - v(empty) (efficiency). :func:`exact_shapley` enumerates the 2^M subsets (used up to
:data:`EXACT_LIMIT` modalities); :func:`monte_carlo_shapley` averages the marginal contributions over random
orders (permutation sampling, Castro et al. 2009) and gives the standard error of each estimate.
Subsets are frozensets of modality names.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from itertools import combinations

import numpy as np

EXACT_LIMIT = 8
"""Modalities up to which the Shapley values are exact (2^8 = 256 subsets); beyond, Monte-Carlo."""

Value = float | np.ndarray
ValueFn = Callable[[frozenset[str]], Value]


def all_subsets(players: Sequence[str]) -> list[frozenset[str]]:
    """Every subset of ``players``, smallest first (the empty set first, the full set last)."""
    return [frozenset(c) for k in range(len(players) + 1) for c in combinations(players, k)]


@dataclass
class ShapleyValues:
    """phi: modality -> value (float, or (N,) per sample); stderr: modality -> standard error of a Monte-Carlo
    estimate (0 when exact); method "exact" or "monte-carlo"; permutations: orders sampled (Monte-Carlo)."""

    phi: dict[str, Value]
    method: str
    stderr: dict[str, Value] = field(default_factory=dict)
    permutations: int = 0

    def total(self) -> Value:
        """The sum of the values (v(all) - v(empty) when exact)."""
        return sum(self.phi.values())  # type: ignore[return-value]


def _check_players(players: Sequence[str]) -> list[str]:
    names = list(players)
    if not names:
        raise ValueError("Shapley values need at least one modality; got none")
    if len(set(names)) != len(names):
        raise ValueError(f"modalities must be distinct; got {names}")
    return names


def exact_shapley(players: Sequence[str], value: ValueFn) -> ShapleyValues:
    """Exact Shapley values by enumerating the 2^M subsets (each evaluated once)."""
    names = _check_players(players)
    m = len(names)
    if m > 16:
        raise ValueError(f"exact Shapley values over {m} modalities need 2^{m} subsets; use monte_carlo_shapley")
    cache = {s: value(s) for s in all_subsets(names)}
    weight = [math.factorial(k) * math.factorial(m - k - 1) / math.factorial(m) for k in range(m)]
    phi: dict[str, Value] = {}
    for p in names:
        others = [q for q in names if q != p]
        acc: Value = 0.0
        for k in range(m):
            for c in combinations(others, k):
                s = frozenset(c)
                acc = acc + weight[k] * (np.asarray(cache[s | {p}], dtype=np.float64) - np.asarray(cache[s], dtype=np.float64))
        phi[p] = float(acc) if np.ndim(acc) == 0 else np.asarray(acc)
    return ShapleyValues(phi, "exact", {p: 0.0 for p in names})


def monte_carlo_shapley(players: Sequence[str], value: ValueFn, permutations: int = 200,
                        seed: int = 0) -> ShapleyValues:
    """Permutation-sampling estimate: for each of ``permutations`` random orders, each modality's marginal
    contribution when it joins the ones before it; the mean over orders and its standard error
    (std / sqrt(permutations), ddof = 1). Subsets are evaluated once each (cached)."""
    names = _check_players(players)
    if permutations < 2:
        raise ValueError(f"permutations={permutations}; a standard error needs at least 2")
    rng = np.random.default_rng(seed)
    cache: dict[frozenset[str], np.ndarray] = {}

    def v(s: frozenset[str]) -> np.ndarray:
        if s not in cache:
            cache[s] = np.asarray(value(s), dtype=np.float64)
        return cache[s]

    draws: dict[str, list[np.ndarray]] = {p: [] for p in names}
    for _ in range(permutations):
        order = [names[i] for i in rng.permutation(len(names))]
        before: frozenset[str] = frozenset()
        prev = v(before)
        for p in order:
            now = before | {p}
            cur = v(now)
            draws[p].append(cur - prev)
            before, prev = now, cur
    phi: dict[str, Value] = {}
    se: dict[str, Value] = {}
    for p in names:
        d = np.stack(draws[p])
        mean, err = d.mean(0), d.std(0, ddof=1) / math.sqrt(len(d))
        phi[p] = float(mean) if mean.ndim == 0 else mean
        se[p] = float(err) if err.ndim == 0 else err
    return ShapleyValues(phi, "monte-carlo", se, permutations)


def shapley(players: Sequence[str], value: ValueFn, *, permutations: int = 200, seed: int = 0) -> ShapleyValues:
    """Exact up to :data:`EXACT_LIMIT` modalities, Monte-Carlo with standard errors beyond."""
    if len(players) <= EXACT_LIMIT:
        return exact_shapley(players, value)
    return monte_carlo_shapley(players, value, permutations, seed)


def deciding_shares(per_sample: dict[str, np.ndarray]) -> dict[str, float]:
    """The share of samples each modality *decides*: the one with the largest per-sample Shapley value
    (a tie between the largest goes to no modality; ``none`` holds that share)."""
    names = list(per_sample)
    phi = np.stack([np.asarray(per_sample[m], dtype=np.float64) for m in names], axis=1)  # (N, M)
    if phi.shape[0] == 0:
        return {**{m: 0.0 for m in names}, "none": 0.0}
    top = phi.max(1, keepdims=True)
    winners = np.isclose(phi, top, rtol=0, atol=1e-9)
    unique = winners.sum(1) == 1
    out = {m: float((unique & winners[:, i]).mean()) for i, m in enumerate(names)}
    out["none"] = float((~unique).mean())
    return out


__all__ = ["EXACT_LIMIT", "ShapleyValues", "all_subsets", "deciding_shares", "exact_shapley",
           "monte_carlo_shapley", "shapley"]
