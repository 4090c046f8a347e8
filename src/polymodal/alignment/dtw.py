"""Dynamic time warping between two sequences: exact DTW (optionally inside a Sakoe-Chiba band) with its
monotonic alignment path, and soft-DTW (Cuturi & Blondel, "Soft-DTW: a differentiable loss function for
time-series", ICML 2017) with the paper's backward recursion as its gradient (docs/alignment.md).

Written here rather than taken from tslearn or pysdtw: both compile their recursions with numba, which the
project does not depend on; the recursions below are short, run on anti-diagonals (one vectorised step per
diagonal, so sequences of 1,000 frames take 2,000 steps, not 10^6), and are tested against brute force
(every monotonic path enumerated) and finite differences (tests/alignment/test_dtw.py).

A path is an (L, 2) int64 array of (i, j) index pairs from (0, 0) to (n - 1, m - 1), each step one of
(1, 0), (0, 1), (1, 1): every element of both sequences is matched, in order.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

INF = math.inf


def pairwise_cost(x: Tensor, y: Tensor, metric: str = "sqeuclidean") -> Tensor:
    """(n, m) cost between the rows of ``x`` (n, d) and ``y`` (m, d): ``sqeuclidean`` or ``cosine``
    (1 - cosine similarity)."""
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1]:
        raise ValueError(f"pairwise_cost takes (n, d) and (m, d) sequences with the same d; got {tuple(x.shape)} "
                         f"and {tuple(y.shape)}")
    if metric == "sqeuclidean":
        return (x[:, None, :] - y[None, :, :]).pow(2).sum(-1)
    if metric == "cosine":
        return 1 - torch.nn.functional.normalize(x, dim=-1) @ torch.nn.functional.normalize(y, dim=-1).T
    raise ValueError(f"unknown metric {metric!r}; expected 'sqeuclidean' or 'cosine'")


def band_mask(n: int, m: int, radius: int | None) -> np.ndarray:
    """(n, m) bool, True inside the Sakoe-Chiba band of ``radius`` around the diagonal from (0, 0) to
    (n - 1, m - 1) (scaled to the rectangle, so the corners are always inside); all True when ``radius`` is None."""
    if radius is None:
        return np.ones((n, m), dtype=bool)
    if isinstance(radius, bool) or not isinstance(radius, int | np.integer) or radius < 0:
        raise ValueError(f"Sakoe-Chiba radius {radius!r}: expected a non-negative integer or None")
    i = np.arange(n)[:, None]
    j = np.arange(m)[None, :]
    centre = i * (m - 1) / max(n - 1, 1)
    return np.abs(j - centre) <= radius + 1e-9


def _check_cost(cost: np.ndarray | Tensor) -> np.ndarray:
    c = cost.detach().cpu().numpy() if isinstance(cost, Tensor) else np.asarray(cost)
    if c.ndim != 2 or c.shape[0] == 0 or c.shape[1] == 0:
        raise ValueError(f"DTW takes an (n, m) cost matrix with n, m >= 1; got shape {c.shape}")
    if not np.isfinite(c).all():
        raise ValueError("the DTW cost matrix holds NaN or infinite values")
    return c.astype(np.float64)


def dtw(cost: np.ndarray | Tensor, radius: int | None = None) -> tuple[float, np.ndarray]:
    """Exact DTW: the minimum over monotonic paths of the summed ``cost`` (n, m), and one minimising path
    ((L, 2) int64; ties prefer the diagonal step, then (1, 0)). With ``radius``, only paths inside the
    Sakoe-Chiba band count."""
    c = _check_cost(cost)
    n, m = c.shape
    allowed = band_mask(n, m, radius)
    acc = np.full((n + 1, m + 1), INF)
    acc[0, 0] = 0.0
    for d in range(n + m - 1):  # anti-diagonal i + j = d, vectorised
        i = np.arange(max(0, d - m + 1), min(n, d + 1))
        j = d - i
        best = np.minimum(np.minimum(acc[i, j], acc[i, j + 1]), acc[i + 1, j])
        acc[i + 1, j + 1] = np.where(allowed[i, j], c[i, j] + best, INF)
    if not np.isfinite(acc[n, m]):
        raise ValueError(f"no monotonic path fits the Sakoe-Chiba band of radius {radius} for a {n} x {m} cost")
    path = [(n - 1, m - 1)]
    i, j = n, m
    while (i, j) != (1, 1):
        steps = ((i - 1, j - 1), (i - 1, j), (i, j - 1))  # diagonal first on ties
        i, j = min(steps, key=lambda s: acc[s])
        path.append((i - 1, j - 1))
    return float(acc[n, m]), np.array(path[::-1], dtype=np.int64)


def is_monotonic_path(path: np.ndarray, n: int, m: int) -> bool:
    """Whether ``path`` is a monotonic alignment path of an n x m cost (see the module docstring)."""
    p = np.asarray(path)
    if p.ndim != 2 or p.shape[1] != 2 or len(p) == 0 or tuple(p[0]) != (0, 0) or tuple(p[-1]) != (n - 1, m - 1):
        return False
    steps = {tuple(s) for s in np.diff(p, axis=0)}
    return steps <= {(1, 0), (0, 1), (1, 1)}


def path_cost(cost: np.ndarray | Tensor, path: np.ndarray) -> float:
    c = _check_cost(cost)
    return float(c[path[:, 0], path[:, 1]].sum())


def assignment(path: np.ndarray, n: int) -> np.ndarray:
    """(n,) int64: the column each row is aligned to (the last one where a row meets several)."""
    out = np.zeros(n, dtype=np.int64)
    out[path[:, 0]] = path[:, 1]
    return out


def _softmin3(a: Tensor, b: Tensor, c: Tensor, gamma: float) -> Tensor:
    s = torch.stack([a, b, c]) / -gamma
    return -gamma * torch.logsumexp(s, dim=0)


def _soft_forward(c: Tensor, gamma: float) -> Tensor:
    """R (n + 2, m + 2) of the soft-DTW recursion (float64), R[0, 0] = 0, borders +inf."""
    n, m = c.shape
    r = torch.full((n + 2, m + 2), INF, dtype=torch.float64)
    r[0, 0] = 0.0
    for d in range(n + m - 1):
        i = torch.arange(max(0, d - m + 1), min(n, d + 1))
        j = d - i
        r[i + 1, j + 1] = c[i, j] + _softmin3(r[i, j], r[i, j + 1], r[i + 1, j], gamma)
    return r


def _soft_backward(c: Tensor, r: Tensor, gamma: float) -> Tensor:
    """E (n, m) = d soft-DTW / d cost: the expected alignment matrix (Algorithm 2 of the paper)."""
    n, m = c.shape
    cc = torch.zeros((n + 2, m + 2), dtype=torch.float64)
    cc[1 : n + 1, 1 : m + 1] = c
    r = r.clone()
    r[:, m + 1] = -INF
    r[n + 1, :] = -INF
    r[n + 1, m + 1] = r[n, m]
    e = torch.zeros((n + 2, m + 2), dtype=torch.float64)
    e[n + 1, m + 1] = 1.0
    for d in range(n + m - 2, -1, -1):  # anti-diagonals from the end
        i = torch.arange(max(0, d - m + 1), min(n, d + 1)) + 1
        j = d + 2 - i
        a = torch.exp((r[i + 1, j] - r[i, j] - cc[i + 1, j]) / gamma)
        b = torch.exp((r[i, j + 1] - r[i, j] - cc[i, j + 1]) / gamma)
        g = torch.exp((r[i + 1, j + 1] - r[i, j] - cc[i + 1, j + 1]) / gamma)
        e[i, j] = e[i + 1, j] * a + e[i, j + 1] * b + e[i + 1, j + 1] * g
    return e[1 : n + 1, 1 : m + 1]


class _SoftDTW(torch.autograd.Function):
    @staticmethod
    def forward(ctx, cost: Tensor, gamma: float) -> Tensor:  # type: ignore[override]
        c = cost.detach().double()
        r = _soft_forward(c, gamma)
        ctx.save_for_backward(c, r)
        ctx.gamma = gamma
        return r[c.shape[0], c.shape[1]].to(cost.dtype)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None]:  # type: ignore[override]
        c, r = ctx.saved_tensors
        e = _soft_backward(c, r, ctx.gamma)
        return (grad.double() * e).to(grad.dtype), None


def soft_dtw(cost: Tensor, gamma: float = 1.0) -> Tensor:
    """Soft-DTW value of an (n, m) cost: the soft minimum (temperature ``gamma`` > 0) over every monotonic
    path of its summed cost, -gamma log sum_p exp(-cost(p) / gamma). Differentiable: the gradient with
    respect to ``cost`` is the expected alignment (:func:`soft_alignment`), computed by the paper's
    backward recursion. Tends to :func:`dtw` as gamma -> 0."""
    if not isinstance(cost, Tensor):
        raise TypeError(f"soft_dtw takes a torch tensor cost (n, m); got {type(cost).__name__}")
    _check_cost(cost)
    if not (isinstance(gamma, int | float) and math.isfinite(gamma) and gamma > 0):
        raise ValueError(f"soft-DTW gamma must be a positive number; got {gamma!r}")
    return _SoftDTW.apply(cost, float(gamma))


def soft_alignment(cost: Tensor, gamma: float = 1.0) -> Tensor:
    """(n, m) expected alignment under the Gibbs distribution over paths at temperature ``gamma``: the
    probability that (i, j) lies on the path (rows sum to at least 1)."""
    c = cost.detach().double()
    _check_cost(c)
    return _soft_backward(c, _soft_forward(c, float(gamma)), float(gamma)).to(cost.dtype)


__all__ = ["assignment", "band_mask", "dtw", "is_monotonic_path", "pairwise_cost", "path_cost", "soft_alignment",
           "soft_dtw"]
