"""Dynamic time warping between two sequences: exact DTW (optionally inside a Sakoe-Chiba band) with its
monotonic alignment path, and soft-DTW (Cuturi & Blondel, "Soft-DTW: a differentiable loss function for
time-series", ICML 2017) with the paper's backward recursion as its gradient (docs/align_translate.md).

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
    (1 - cosine similarity). The squared distance is expanded (a matrix product, never the (n, m, d)
    differences; rounding can leave a tiny negative, clamped to 0)."""
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1]:
        raise ValueError(f"pairwise_cost takes (n, d) and (m, d) sequences with the same d; got {tuple(x.shape)} "
                         f"and {tuple(y.shape)}")
    if metric == "sqeuclidean":  # |x|^2 + |y|^2 - 2 x.y: (n, m) memory, not the (n, m, d) differences
        return (x.pow(2).sum(1)[:, None] + y.pow(2).sum(1)[None, :] - 2 * x @ y.T).clamp_min(0)
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


def _soft_forward(c: np.ndarray, n: np.ndarray, m: np.ndarray, gamma: float) -> np.ndarray:
    """R (B, N + 2, M + 2) of the soft-DTW recursion over padded costs ``c`` (B, N, M) (float64), R[:, 0, 0] = 0,
    borders +inf. Sample b's value is R[b, n_b, m_b]; cells outside its n_b x m_b cost are never read by it."""
    b, nn, mm = c.shape
    r = np.full((b, nn + 2, mm + 2), INF)
    r[:, 0, 0] = 0.0
    for d in range(nn + mm - 1):  # anti-diagonal i + j = d, vectorised over the batch and the diagonal
        i = np.arange(max(0, d - mm + 1), min(nn, d + 1))
        j = d - i
        z = np.stack([r[:, i, j], r[:, i, j + 1], r[:, i + 1, j]]) / -gamma  # (3, B, len)
        top = z.max(axis=0)
        top = np.where(np.isfinite(top), top, 0.0)
        r[:, i + 1, j + 1] = c[:, i, j] - gamma * (np.log(np.exp(z - top).sum(axis=0)) + top)
    return r


def _soft_backward(c: np.ndarray, r: np.ndarray, n: np.ndarray, m: np.ndarray, gamma: float) -> np.ndarray:
    """E (B, N, M) = d soft-DTW / d cost of each sample: its expected alignment (Algorithm 2 of the paper), 0
    outside the sample's n_b x m_b cost."""
    b, nn, mm = c.shape
    rows = np.arange(b)
    cc = np.zeros((b, nn + 2, mm + 2))
    cc[:, 1 : nn + 1, 1 : mm + 1] = c
    r = r.copy()
    inside = (np.arange(nn + 2)[None, :, None] <= n[:, None, None]) & (np.arange(mm + 2)[None, None, :] <= m[:, None, None])
    r[~inside] = -INF
    r[rows, n + 1, m + 1] = r[rows, n, m]
    e = np.zeros((b, nn + 2, mm + 2))
    e[rows, n + 1, m + 1] = 1.0
    with np.errstate(invalid="ignore", over="ignore"):
        for d in range(nn + mm - 2, -1, -1):  # anti-diagonals from the end
            i = np.arange(max(0, d - mm + 1), min(nn, d + 1)) + 1
            j = d + 2 - i
            a = np.exp((r[:, i + 1, j] - r[:, i, j] - cc[:, i + 1, j]) / gamma)
            bb = np.exp((r[:, i, j + 1] - r[:, i, j] - cc[:, i, j + 1]) / gamma)
            g = np.exp((r[:, i + 1, j + 1] - r[:, i, j] - cc[:, i + 1, j + 1]) / gamma)
            val = e[:, i + 1, j] * a + e[:, i, j + 1] * bb + e[:, i + 1, j + 1] * g
            e[:, i, j] = np.where(inside[:, i, j], val, 0.0)
            e[rows, n + 1, m + 1] = 1.0  # a smaller sample's end lies on a diagonal of the batch: keep it
    return e[:, 1 : nn + 1, 1 : mm + 1]


class _SoftDTW(torch.autograd.Function):
    @staticmethod
    def forward(ctx, cost: Tensor, n: np.ndarray, m: np.ndarray, gamma: float) -> Tensor:  # type: ignore[override]
        c = cost.detach().cpu().double().numpy()
        r = _soft_forward(c, n, m, gamma)
        ctx.save_for_backward(cost)
        ctx.r, ctx.n, ctx.m, ctx.gamma = r, n, m, gamma
        return torch.from_numpy(r[np.arange(len(n)), n, m].copy()).to(cost.dtype)

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor, None, None, None]:  # type: ignore[override]
        (cost,) = ctx.saved_tensors
        e = _soft_backward(cost.detach().cpu().double().numpy(), ctx.r, ctx.n, ctx.m, ctx.gamma)
        return grad[:, None, None] * torch.from_numpy(e).to(grad.dtype), None, None, None


def _gamma(gamma: float) -> float:
    if not (isinstance(gamma, int | float) and math.isfinite(gamma) and gamma > 0):
        raise ValueError(f"soft-DTW gamma must be a positive number; got {gamma!r}")
    return float(gamma)


def soft_dtw_batch(costs: list[Tensor], gamma: float = 1.0) -> Tensor:
    """(B,) soft-DTW of each (n_b, m_b) cost of ``costs``, computed together (one vectorised step per
    anti-diagonal for the whole batch); differentiable like :func:`soft_dtw`."""
    if not costs:
        raise ValueError("soft_dtw_batch takes a non-empty list of (n, m) costs")
    for c in costs:
        if not isinstance(c, Tensor):
            raise TypeError(f"soft-DTW takes torch tensor costs (n, m); got {type(c).__name__}")
        _check_cost(c)
    n = np.array([c.shape[0] for c in costs])
    m = np.array([c.shape[1] for c in costs])
    padded = torch.stack([torch.nn.functional.pad(c, (0, int(m.max()) - c.shape[1], 0, int(n.max()) - c.shape[0]))
                          for c in costs]) if len(costs) > 1 else costs[0][None]
    return _SoftDTW.apply(padded, n, m, _gamma(gamma))


def soft_dtw(cost: Tensor, gamma: float = 1.0) -> Tensor:
    """Soft-DTW value of an (n, m) cost: the soft minimum (temperature ``gamma`` > 0) over every monotonic
    path of its summed cost, -gamma log sum_p exp(-cost(p) / gamma). Differentiable: the gradient with
    respect to ``cost`` is the expected alignment (:func:`soft_alignment`), computed by the paper's
    backward recursion. Tends to :func:`dtw` as gamma -> 0."""
    return soft_dtw_batch([cost], gamma)[0]


def soft_alignment(cost: Tensor, gamma: float = 1.0) -> Tensor:
    """(n, m) expected alignment under the Gibbs distribution over paths at temperature ``gamma``: the
    probability that (i, j) lies on the path (rows sum to at least 1)."""
    c = _check_cost(cost)[None]
    n, m, g = np.array([c.shape[1]]), np.array([c.shape[2]]), _gamma(gamma)
    return torch.from_numpy(_soft_backward(c, _soft_forward(c, n, m, g), n, m, g)[0]).to(cost.dtype)


__all__ = ["assignment", "band_mask", "dtw", "is_monotonic_path", "pairwise_cost", "path_cost", "soft_alignment",
           "soft_dtw", "soft_dtw_batch"]
