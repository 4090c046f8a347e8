"""Partial information decomposition (PID) of the label information two modalities carry: redundancy,
uniqueness of each and synergy, with the CVX estimator of Liang et al. (NeurIPS 2023, "Quantifying &
Modeling Multimodal Interactions"), which follows the definitions of Bertschinger et al. (2014, "BROJA").

Given a discrete joint distribution P(x1, x2, y), let Delta_P be the distributions Q with the same pairwise
marginals Q(x1, y) = P(x1, y) and Q(x2, y) = P(x2, y). The decomposition uses the Q in Delta_P with the
largest conditional entropy H_Q(Y | X1, X2), i.e. the smallest I_Q(X1, X2; Y) (a convex problem):

    U1 = I_Q(X1; Y | X2)          U2 = I_Q(X2; Y | X1)
    R  = I_P(X1; Y) - U1          S  = I_P(X1, X2; Y) - I_Q(X1, X2; Y)

so that R + U1 + U2 + S = I_P(X1, X2; Y) (all in bits).

Solver (:func:`max_entropy_coupling`): mirror descent with the entropy as mirror map. The objective
f(Q) = -H_Q(Y | X1, X2) = sum Q log Q - sum Q(x1, x2) log Q(x1, x2) is convex and 1-smooth relative to the
negative entropy (its second term is convex), so the Bregman step of length 1 converges (Lu, Freund &
Nesterov 2018). The step is closed-form: Q(x1, x2, y) <- Q(x1, x2) on the support of the constraints, then
the exact Bregman (KL) projection onto Delta_P, which for each y is a matrix scaling to the row sums
P(x1, y) and column sums P(x2, y) (Sinkhorn). The same problem can be handed to cvxpy (``solver="cvxpy"``,
the optional extra ``polymodal[quantify]``), as Liang et al. did; the tests check both against scipy's
SLSQP on small problems.

Discretisation (:func:`discretize`): each modality's representation (the encoder's features) is clustered
with k-means (k-means++ start, Lloyd iterations, seeded); labels with few distinct values are used as they
are, otherwise binned. The estimate is a plug-in one: with few samples per cell of (x1, x2, y) the mutual
informations are biased upwards (I_P(X1, X2; Y) most, which inflates synergy); docs/quantify.md states
what this means for small test splits.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

import numpy as np

Solver = Literal["mirror", "cvxpy"]


@dataclass
class PID:
    """A decomposition of I(X1, X2; Y) in bits: ``redundancy``, ``unique1``, ``unique2``, ``synergy``; the
    mutual informations it comes from; how the solver ended (``iterations``, ``marginal_error``: the largest
    deviation of Q's pairwise marginals from P's)."""

    redundancy: float
    unique1: float
    unique2: float
    synergy: float
    mi_x1: float
    mi_x2: float
    mi_joint: float
    mi_q: float
    iterations: int = 0
    marginal_error: float = 0.0

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def _entropy(p: np.ndarray) -> float:
    p = p[p > 0]
    return float(-(p * np.log2(p)).sum())


def _mi_joint(p: np.ndarray) -> float:
    """I(X1, X2; Y) of a (k1, k2, ky) distribution, bits."""
    return _entropy(p.sum((0, 1))) + _entropy(p.sum(2)) - _entropy(p)


def _mi_pair(pxy: np.ndarray) -> float:
    """I(X; Y) of a (kx, ky) distribution, bits."""
    return _entropy(pxy.sum(1)) + _entropy(pxy.sum(0)) - _entropy(pxy)


def _check_distribution(p: np.ndarray) -> np.ndarray:
    p = np.asarray(p, dtype=np.float64)
    if p.ndim != 3:
        raise ValueError(f"a joint distribution P(x1, x2, y) is a 3-d array; got shape {p.shape}")
    if not np.isfinite(p).all() or (p < 0).any() or p.sum() <= 0:
        raise ValueError("P(x1, x2, y) must be finite, non-negative and not all zero")
    return p / p.sum()


def conditional_entropy(q: np.ndarray) -> float:
    """H_Q(Y | X1, X2) in bits."""
    return _entropy(q) - _entropy(q.sum(2))


def _sinkhorn(m: np.ndarray, rows: np.ndarray, cols: np.ndarray, iters: int, tol: float) -> np.ndarray:
    """Scale each m[:, :, y] to row sums rows[:, y] and column sums cols[:, y] (KL projection)."""
    q = m.copy()
    for _ in range(iters):
        r = q.sum(1)  # (k1, ky)
        q *= np.divide(rows, r, out=np.zeros_like(r), where=r > 0)[:, None, :]
        c = q.sum(0)  # (k2, ky)
        q *= np.divide(cols, c, out=np.zeros_like(c), where=c > 0)[None, :, :]
        if np.abs(q.sum(1) - rows).max() < tol:
            break
    return q


def _mirror(p: np.ndarray, max_iter: int, tol: float) -> tuple[np.ndarray, int]:
    rows, cols = p.sum(1), p.sum(0)  # P(x1, y), P(x2, y)
    py = p.sum((0, 1))
    support = (rows[:, None, :] > 0) & (cols[None, :, :] > 0)
    q = np.where(support, rows[:, None, :] * cols[None, :, :] / np.where(py > 0, py, 1.0)[None, None, :], 0.0)
    best = conditional_entropy(q)
    it = 0
    while it < max_iter:
        it += 1
        step = np.where(support, q.sum(2, keepdims=True), 0.0)
        q = _sinkhorn(step, rows, cols, iters=500, tol=1e-13)
        h = conditional_entropy(q)
        if h - best < tol:
            break
        best = h
    return q, it


def _cvxpy(p: np.ndarray) -> np.ndarray:
    try:
        import cvxpy as cp
    except ImportError:
        raise ImportError("solver='cvxpy' needs cvxpy: pip install 'polymodal[quantify]' (or use the default "
                          "solver='mirror', which needs nothing more)") from None
    k1, k2, ky = p.shape
    rows, cols = p.sum(1), p.sum(0)
    qs = [cp.Variable((k1, k2), nonneg=True) for _ in range(ky)]
    q12 = sum(qs)
    objective = cp.sum([cp.sum(cp.rel_entr(q, q12)) for q in qs])
    cons = []
    for y, q in enumerate(qs):
        cons += [cp.sum(q, axis=1) == rows[:, y], cp.sum(q, axis=0) == cols[:, y]]
    cp.Problem(cp.Minimize(objective), cons).solve()
    return np.clip(np.stack([q.value for q in qs], axis=2), 0.0, None)


def max_entropy_coupling(p: np.ndarray, *, solver: Solver = "mirror", max_iter: int = 5000,
                         tol: float = 1e-9) -> tuple[np.ndarray, int]:
    """The Q in Delta_P (same P(x1, y) and P(x2, y)) with the largest H_Q(Y | X1, X2), and the iterations
    taken (0 for cvxpy). ``tol``: stop when an iteration raises H by less (bits)."""
    p = _check_distribution(p)
    if solver == "mirror":
        return _mirror(p, max_iter, tol)
    if solver == "cvxpy":
        return _cvxpy(p), 0
    raise ValueError(f"solver={solver!r}; expected 'mirror' (default) or 'cvxpy'")


def pid_from_distribution(p: np.ndarray, *, solver: Solver = "mirror", max_iter: int = 5000,
                          tol: float = 1e-9) -> PID:
    """The decomposition of a joint distribution P(x1, x2, y) (a (k1, k2, ky) array; normalised here).
    Values within 1e-9 bits of zero below it are clipped to 0."""
    p = _check_distribution(p)
    q, it = max_entropy_coupling(p, solver=solver, max_iter=max_iter, tol=tol)
    i1, i2, i12 = _mi_pair(p.sum(1)), _mi_pair(p.sum(0)), _mi_joint(p)
    iq = min(_mi_joint(q), i12)
    u1, u2 = iq - i2, iq - i1
    err = max(float(np.abs(q.sum(1) - p.sum(1)).max()), float(np.abs(q.sum(0) - p.sum(0)).max()))

    def clip(x: float) -> float:
        return 0.0 if -1e-6 < x < 0 else float(x)

    return PID(redundancy=clip(i1 - u1), unique1=clip(u1), unique2=clip(u2), synergy=clip(i12 - iq),
               mi_x1=i1, mi_x2=i2, mi_joint=i12, mi_q=iq, iterations=it, marginal_error=err)


def joint_counts(x1: np.ndarray, x2: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The empirical P(x1, x2, y) of three (N,) integer code arrays."""
    x1, x2, y = (np.asarray(a, dtype=np.int64).ravel() for a in (x1, x2, y))
    if not len(x1) == len(x2) == len(y):
        raise ValueError(f"codes of different lengths: {len(x1)}, {len(x2)}, {len(y)}")
    if len(x1) == 0:
        raise ValueError("no samples to estimate a distribution from")
    p = np.zeros((x1.max() + 1, x2.max() + 1, y.max() + 1))
    np.add.at(p, (x1, x2, y), 1.0)
    return p / p.sum()


def pid(x1: np.ndarray, x2: np.ndarray, y: np.ndarray, *, solver: Solver = "mirror") -> PID:
    """The decomposition of the empirical distribution of discrete codes x1, x2, y ((N,) each)."""
    return pid_from_distribution(joint_counts(x1, x2, y), solver=solver)


def synergy_floor(x1: np.ndarray, x2: np.ndarray, y: np.ndarray, mi_q: float, *, shuffles: int = 5,
                  seed: int = 0) -> float:
    """The synergy the plug-in estimate reports for the same codes made conditionally independent given the
    label: x2 shuffled among the samples of each label value keeps P(x1, y) and P(x2, y), hence the same
    optimal Q, and has no synergy in the population; what remains is the estimator's upward bias at this
    sample size (mean over ``shuffles``; in bits)."""
    rng = np.random.default_rng(seed)
    x2 = np.asarray(x2).copy()
    values = []
    for _ in range(shuffles):
        shuffled = x2.copy()
        for v in np.unique(y):
            rows = np.flatnonzero(y == v)
            shuffled[rows] = x2[rng.permutation(rows)]
        values.append(_mi_joint(joint_counts(x1, shuffled, y)) - mi_q)
    return float(max(0.0, np.mean(values)))


def kmeans(x: np.ndarray, k: int, *, seed: int = 0, iters: int = 100, n_init: int = 3) -> np.ndarray:
    """(N,) cluster ids of the rows of ``x`` (N, D): k-means++ start and Lloyd iterations, the best of
    ``n_init`` starts (smallest within-cluster sum of squares); features are standardised first."""
    x = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
    n = len(x)
    if n == 0:
        raise ValueError("k-means of an empty set of rows")
    k = max(1, min(int(k), n))
    sd = x.std(0)
    x = (x - x.mean(0)) / np.where(sd > 0, sd, 1.0)
    rng = np.random.default_rng(seed)
    best, best_cost = np.zeros(n, dtype=np.int64), np.inf
    for _ in range(n_init):
        centres = [x[rng.integers(n)]]
        d2 = ((x - centres[0]) ** 2).sum(1)
        for _ in range(1, k):
            probs = d2 / d2.sum() if d2.sum() > 0 else np.full(n, 1.0 / n)
            centres.append(x[rng.choice(n, p=probs)])
            d2 = np.minimum(d2, ((x - centres[-1]) ** 2).sum(1))
        c = np.stack(centres)
        labels = np.zeros(n, dtype=np.int64)
        for it in range(iters):
            dist = (x ** 2).sum(1)[:, None] - 2 * x @ c.T + (c ** 2).sum(1)[None, :]
            new = dist.argmin(1)
            if it > 0 and np.array_equal(new, labels):
                break
            labels = new
            for j in range(k):
                members = x[labels == j]
                if len(members):
                    c[j] = members.mean(0)
        cost = float(((x - c[labels]) ** 2).sum())
        if cost < best_cost:
            best, best_cost = labels, cost
    _, codes = np.unique(best, return_inverse=True)  # dense ids 0..k'-1
    return codes.astype(np.int64)


def discretize(values: np.ndarray, levels: int, *, seed: int = 0) -> np.ndarray:
    """(N,) integer codes of ``values`` (N, ...): the distinct rows when there are at most ``levels`` of them
    (class ids, multi-hot rows, event indicators), else quantile bins of a single column, else k-means."""
    v = np.asarray(values)
    flat = v.reshape(len(v), -1)
    uniq, codes = np.unique(flat, axis=0, return_inverse=True)
    if len(uniq) <= levels:
        return codes.ravel().astype(np.int64)
    if flat.shape[1] == 1:
        edges = np.quantile(flat[:, 0].astype(np.float64), np.linspace(0, 1, levels + 1)[1:-1])
        _, codes = np.unique(np.searchsorted(edges, flat[:, 0], side="right"), return_inverse=True)
        return codes.ravel().astype(np.int64)
    return kmeans(flat.astype(np.float64), levels, seed=seed)


__all__ = ["PID", "conditional_entropy", "discretize", "joint_counts", "kmeans", "max_entropy_coupling", "pid",
           "pid_from_distribution", "synergy_floor"]
