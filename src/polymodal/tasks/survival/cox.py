"""Cox proportional hazards: the negative log partial likelihood (Breslow or Efron ties), vectorised in torch,
and the Breslow estimate of the baseline cumulative hazard that turns risk scores into survival curves
(docs/survival.md).

A survival target is one row ``(time, event)`` per sample: the time of the event or of censoring (> 0 in
any unit, the same for every row) and 1 when the event was observed, 0 when the sample was censored.
The model's output is the log relative risk ``eta(x)`` (one number per sample, any scale): the hazard is
``h(t | x) = h0(t) exp(eta(x))``.

Partial likelihood over the rows of a batch (Cox, 1972): for every event time ``t`` with ``d`` events,
the risk set ``R(t)`` holds every row whose time is ``>= t`` and

    Breslow: log L_t = sum_{i in D(t)} eta_i - d log sum_{j in R(t)} exp(eta_j)
    Efron:   log L_t = sum_{i in D(t)} eta_i - sum_{k=0}^{d-1} log(sum_{R(t)} exp(eta) - k/d sum_{D(t)} exp(eta))

(identical when no two events share a time). A mini-batch sees only the risk sets within the batch
(the usual stochastic approximation, exact with one batch per epoch). Rows are sorted once by time and
the risk sets come from one ``logcumsumexp``, so a batch costs O(B log B).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch
from torch import Tensor

Ties = Literal["breslow", "efron"]
TIES: tuple[str, ...] = ("breslow", "efron")


def split_target(target: Tensor | np.ndarray) -> tuple[Tensor, Tensor] | tuple[np.ndarray, np.ndarray]:
    """``(time, event)`` of survival targets of shape (N, 2): column 0 the time, column 1 the event (0 / 1)."""
    if target.ndim != 2 or target.shape[1] != 2:
        raise ValueError(
            f"survival targets have shape {tuple(target.shape)}; expected (N, 2): one (time, event) pair per "
            "sample (a manifest names them with the options time and event, docs/survival.md)"
        )
    return target[:, 0], target[:, 1]


def check_targets(time: np.ndarray, event: np.ndarray, where: str = "survival targets") -> None:
    """Raise a ValueError naming ``where`` when times are not finite and > 0 or events are not 0 / 1."""
    time, event = np.asarray(time, dtype=np.float64), np.asarray(event, dtype=np.float64)
    bad = ~np.isfinite(time) | (time <= 0)
    if bad.any():
        rows = np.flatnonzero(bad)[:5].tolist()
        raise ValueError(f"{where}: times must be finite and > 0; rows {rows} have {time[bad][:5].tolist()}")
    bad = ~np.isin(event, (0.0, 1.0))
    if bad.any():
        rows = np.flatnonzero(bad)[:5].tolist()
        raise ValueError(f"{where}: events must be 0 (censored) or 1 (observed); rows {rows} have "
                         f"{event[bad][:5].tolist()}")


def _log_risk_column(log_risk: Tensor, n: int) -> Tensor:
    if log_risk.ndim == 2 and log_risk.shape[1] == 1:
        log_risk = log_risk[:, 0]
    if log_risk.ndim != 1 or log_risk.shape[0] != n:
        raise ValueError(
            f"the Cox loss takes one log-risk per sample, (B,) or (B, 1); got {tuple(log_risk.shape)} for {n} "
            "targets (a survival dataset has num_outputs = 1)"
        )
    return log_risk


def cox_partial_nll(
    log_risk: Tensor,
    time: Tensor,
    event: Tensor,
    *,
    rows: Tensor | None = None,
    ties: Ties = "breslow",
    reduction: Literal["mean", "sum"] = "mean",
) -> Tensor:
    """Negative log partial likelihood of ``log_risk`` (B,) or (B, 1) given ``time`` and ``event`` (B,).

    rows:      (B,) bool, the rows that count (None: all); the risk sets are taken among them only
    ties:      "breslow" or "efron" (see the module docstring)
    reduction: "mean" divides by the number of events among the rows, "sum" does not

    Computed in float64 when the input is float64, else float32. With no event among the rows the
    partial likelihood is empty: the result is a zero that still depends on ``log_risk``.
    """
    if ties not in TIES:
        raise ValueError(f"ties={ties!r}; expected one of {TIES}")
    if reduction not in ("mean", "sum"):
        raise ValueError(f"reduction={reduction!r}; expected 'mean' or 'sum'")
    log_risk = _log_risk_column(log_risk, time.shape[0])
    dtype = torch.promote_types(log_risk.dtype, torch.float32)
    r, t, e = log_risk.to(dtype), time.to(dtype), event.to(dtype)
    if rows is not None:
        r, t, e = r[rows], t[rows], e[rows]
    n_events = e.sum()
    if r.numel() == 0 or float(n_events) == 0.0:
        return log_risk.sum() * 0.0
    order = torch.argsort(t, descending=True, stable=True)
    r, t, e = r[order], t[order], e[order]
    _, counts = torch.unique_consecutive(t, return_counts=True)
    ends = torch.cumsum(counts, 0) - 1  # last row of each tie group: its risk set is every row up to it
    group = torch.repeat_interleave(torch.arange(len(counts), device=r.device), counts)
    log_risk_set = torch.logcumsumexp(r, 0)[ends]  # (G,) log sum_{R(t_g)} exp(eta)
    if ties == "breslow":
        log_den = log_risk_set[group]
    else:
        # Efron: the k-th of the d events of a group (k = 0..d-1) has the denominator R - k/d D
        cum = torch.cumsum(e, 0)
        first = ends - counts + 1
        before = (cum[first] - e[first])[group]  # events of earlier groups
        k = cum - 1 - before  # rank of an event row within its group's events
        d = (cum[ends] - (cum[first] - e[first]))[group]
        shift = torch.where(e > 0, r, torch.full_like(r, -torch.inf)).max().detach()
        dead = torch.zeros(len(counts), dtype=dtype, device=r.device).index_add(
            0, group, torch.where(e > 0, torch.exp(r - shift), torch.zeros_like(r)))
        log_dead = torch.log(dead.clamp_min(torch.finfo(dtype).tiny)) + shift  # log sum_{D(t_g)} exp(eta)
        ratio = torch.exp(log_dead[group] - log_risk_set[group])  # D / R in (0, 1]
        frac = torch.where(e > 0, k / d.clamp_min(1.0), torch.zeros_like(r))
        log_den = log_risk_set[group] + torch.log1p(-frac * ratio)
    total = -((r - log_den) * e).sum()
    return total / n_events if reduction == "mean" else total


# ------------------------------------------------------------------------ baseline hazard and curves


def breslow_baseline(log_risk: np.ndarray, time: np.ndarray, event: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Breslow's estimate of the baseline cumulative hazard from (training) log-risks, times and events.

    Returns ``(times, cumhaz)``: the distinct event times in increasing order and
    ``H0(t) = sum_{event times u <= t} d_u / sum_{j: t_j >= u} exp(eta_j)`` at each of them (a step function,
    0 before the first). Log-risks are shifted by their maximum before exponentiating; the shift is undone,
    so any scale works.
    """
    r = np.asarray(log_risk, dtype=np.float64).reshape(-1)
    t, e = np.asarray(time, dtype=np.float64), np.asarray(event, dtype=np.float64)
    if not (len(r) == len(t) == len(e)):
        raise ValueError(f"breslow_baseline: {len(r)} log-risks, {len(t)} times and {len(e)} events; expected equal")
    if not (e > 0).any():
        raise ValueError("breslow_baseline: no observed event, so the baseline hazard is not defined")
    shift = r.max()
    w = np.exp(r - shift)
    uniq, inverse = np.unique(t, return_inverse=True)
    at_or_after = np.zeros(len(uniq))
    np.add.at(at_or_after, inverse, w)
    risk_set = np.cumsum(at_or_after[::-1])[::-1]  # sum over t_j >= u
    deaths = np.zeros(len(uniq))
    np.add.at(deaths, inverse, e)
    keep = deaths > 0
    cumhaz = np.cumsum(deaths[keep] / risk_set[keep]) * np.exp(-shift)
    return uniq[keep], cumhaz


def cumulative_hazard_at(grid: np.ndarray, times: np.ndarray, cumhaz: np.ndarray) -> np.ndarray:
    """The step function ``H0`` (``breslow_baseline``'s output) at the time points ``grid`` (0 before the first
    event time, the last value after the last)."""
    idx = np.searchsorted(np.asarray(times), np.asarray(grid, dtype=np.float64), side="right") - 1
    return np.where(idx >= 0, np.asarray(cumhaz)[np.clip(idx, 0, None)], 0.0)


def survival_curves(log_risk: np.ndarray, grid: np.ndarray, times: np.ndarray, cumhaz: np.ndarray) -> np.ndarray:
    """``S(t | x) = exp(-H0(t) exp(eta(x)))`` of every sample at every grid point: (N, T) float64."""
    h0 = cumulative_hazard_at(grid, times, cumhaz)
    r = np.asarray(log_risk, dtype=np.float64).reshape(-1, 1)
    with np.errstate(divide="ignore", over="ignore"):
        log_h = np.log(h0)[None, :] + r  # -inf where H0 = 0: S = 1 exactly
        return np.exp(-np.exp(log_h))


__all__ = ["TIES", "breslow_baseline", "check_targets", "cox_partial_nll", "cumulative_hazard_at", "split_target",
           "survival_curves"]
