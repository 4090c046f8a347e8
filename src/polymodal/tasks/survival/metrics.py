"""Survival metrics over a whole split: Harrell's concordance index, the Kaplan-Meier estimate of the
censoring distribution and the Brier score with inverse probability of censoring weights (Graf et al.,
1999), integrated over a time grid (docs/survival.md). They follow scikit-survival's definitions
(``concordance_index_censored``, ``brier_score``, ``integrated_brier_score``) and the tests check them
against it on real data.
"""

from __future__ import annotations

import numpy as np


def concordance_index(time: np.ndarray, event: np.ndarray, risk: np.ndarray, *, tied_tol: float = 1e-8,
                      chunk: int = 2048) -> tuple[float | None, int]:
    """Harrell's C: the fraction of comparable pairs whose higher risk has the earlier event.

    A pair (i, j) is comparable when i had the event and ``t_i < t_j``, or ``t_i == t_j`` and j was
    censored; it is concordant when ``risk_i > risk_j``, and counts 1/2 when the risks are within
    ``tied_tol``. Returns ``(C, comparable pairs)``; C is None without a comparable pair. Pairs are
    compared ``chunk`` events at a time (memory ``chunk * N``; time O(events * N)).
    """
    t = np.asarray(time, dtype=np.float64).reshape(-1)
    e = np.asarray(event).reshape(-1).astype(bool)
    r = np.asarray(risk, dtype=np.float64).reshape(-1)
    if not (len(t) == len(e) == len(r)):
        raise ValueError(f"concordance_index: {len(t)} times, {len(e)} events and {len(r)} risks; expected equal")
    if not np.isfinite(r).all():
        raise ValueError(f"concordance_index: {int((~np.isfinite(r)).sum())} risk scores are NaN or infinite")
    events = np.flatnonzero(e)
    score, pairs = 0.0, 0
    for start in range(0, len(events), chunk):
        i = events[start:start + chunk]
        ti, ri = t[i, None], r[i, None]
        comparable = (t[None, :] > ti) | ((t[None, :] == ti) & ~e[None, :])
        tied = np.abs(r[None, :] - ri) <= tied_tol
        score += float(((r[None, :] < ri) & ~tied & comparable).sum()) + 0.5 * float((tied & comparable).sum())
        pairs += int(comparable.sum())
    return (score / pairs if pairs else None), pairs


def kaplan_meier(time: np.ndarray, event: np.ndarray, *, reverse: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Kaplan-Meier estimate of ``P(T > t)``: ``(times, S)`` at the distinct times of ``time`` in increasing
    order (a right-continuous step function, 1 before the first time).

    reverse: estimate the censoring distribution ``G(t) = P(C > t)`` instead: a censoring is its event and an
             event a censoring; at a shared time, events leave the risk set first (scikit-survival's convention)
    """
    t = np.asarray(time, dtype=np.float64).reshape(-1)
    e = np.asarray(event).reshape(-1).astype(bool)
    if len(t) == 0 or len(e) != len(t):
        raise ValueError(f"kaplan_meier: {len(t)} times and {len(e)} events; expected the same number, at least 1")
    uniq, inverse = np.unique(t, return_inverse=True)
    n_at = np.bincount(inverse, minlength=len(uniq))
    at_risk = np.cumsum(n_at[::-1])[::-1].astype(np.float64)
    deaths = np.bincount(inverse, weights=e.astype(np.float64), minlength=len(uniq))
    if reverse:
        at_risk, deaths = at_risk - deaths, n_at - deaths
    ratio = np.divide(deaths, at_risk, out=np.zeros(len(uniq)), where=deaths != 0)
    return uniq, np.cumprod(1.0 - ratio)


def censoring_survival(time: np.ndarray, event: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``kaplan_meier(time, event, reverse=True)``: the censoring distribution G of the inverse probability
    of censoring weights, estimated on the training targets."""
    return kaplan_meier(time, event, reverse=True)


def step_at(points: np.ndarray, times: np.ndarray, values: np.ndarray, before: float = 1.0) -> np.ndarray:
    """A right-continuous step function (``values`` from each of ``times`` on) at ``points``; ``before``
    ahead of the first time, the last value after the last."""
    idx = np.searchsorted(times, np.asarray(points, dtype=np.float64), side="right") - 1
    return np.where(idx >= 0, values[np.clip(idx, 0, None)], before)


def brier_scores(time: np.ndarray, event: np.ndarray, surv: np.ndarray, grid: np.ndarray,
                 censoring: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """The IPCW Brier score at every grid time t (Graf et al., 1999):

        BS(t) = mean_i [ 1(t_i <= t, event_i) S(t|x_i)^2 / G(t_i) + 1(t_i > t) (1 - S(t|x_i))^2 / G(t) ]

    with G the censoring survival ``censoring = (times, G)`` estimated on the TRAINING targets
    (:func:`censoring_survival`).
    ``surv`` (N, T) holds each sample's predicted survival at the T ``grid`` times. A weight whose G is 0
    counts as 0 (scikit-survival's convention)."""
    surv = np.asarray(surv, dtype=np.float64)
    t = np.asarray(time, dtype=np.float64).reshape(-1)
    e = np.asarray(event).reshape(-1).astype(bool)
    grid = np.asarray(grid, dtype=np.float64).reshape(-1)
    if surv.shape != (len(t), len(grid)):
        raise ValueError(f"brier_scores: survival curves of shape {surv.shape}; expected ({len(t)}, {len(grid)}) "
                         "(samples x grid times)")
    g_times, g = (np.asarray(a, dtype=np.float64) for a in censoring)
    with np.errstate(divide="ignore"):
        inv_y = np.where((g_at := step_at(t, g_times, g)) > 0, 1.0 / g_at, 0.0)
        inv_t = np.where((g_grid := step_at(grid, g_times, g)) > 0, 1.0 / g_grid, 0.0)
    case = (t[:, None] <= grid[None, :]) & e[:, None]
    control = t[:, None] > grid[None, :]
    terms = case * surv ** 2 * inv_y[:, None] + control * (1.0 - surv) ** 2 * inv_t[None, :]
    return terms.mean(axis=0)


def integrated_brier_score(time: np.ndarray, event: np.ndarray, surv: np.ndarray, grid: np.ndarray,
                           censoring: tuple[np.ndarray, np.ndarray]) -> float:
    """The Brier score integrated over ``grid`` by the trapezoidal rule and divided by its span (as
    scikit-survival's ``integrated_brier_score``); needs at least two grid times."""
    grid = np.asarray(grid, dtype=np.float64).reshape(-1)
    if len(grid) < 2 or not (np.diff(grid) > 0).all():
        raise ValueError(f"integrated_brier_score: the grid needs >= 2 increasing times; got {grid.tolist()[:5]}")
    bs = brier_scores(time, event, surv, grid, censoring)
    return float(np.trapezoid(bs, grid) / (grid[-1] - grid[0]))


def evaluation_grid(time: np.ndarray, event: np.ndarray, points: int = 50,
                    quantiles: tuple[float, float] = (0.1, 0.9)) -> np.ndarray:
    """The time grid of survival curves and the integrated Brier score: ``points`` equally spaced times
    between the ``quantiles`` of the observed EVENT times (of the training split), where there is data
    to score against on both sides."""
    t = np.asarray(time, dtype=np.float64)[np.asarray(event).astype(bool)]
    if len(t) < 2:
        raise ValueError(f"evaluation_grid: {len(t)} observed event(s); at least 2 are needed for a time grid")
    lo, hi = np.quantile(t, quantiles)
    if not hi > lo:
        raise ValueError(f"evaluation_grid: the event times between quantiles {quantiles} span no time ({lo} .. {hi})")
    return np.linspace(lo, hi, points)


def within_follow_up(grid: np.ndarray, time: np.ndarray) -> np.ndarray:
    """The grid times inside the follow-up of a split, ``[min(time), max(time))``: the Brier score is not
    defined past the last observed time (and scikit-survival refuses such times)."""
    t = np.asarray(time, dtype=np.float64)
    grid = np.asarray(grid, dtype=np.float64)
    return grid[(grid >= t.min()) & (grid < t.max())] if len(t) else grid[:0]


__all__ = ["brier_scores", "censoring_survival", "concordance_index", "evaluation_grid", "integrated_brier_score",
           "kaplan_meier", "step_at", "within_follow_up"]
