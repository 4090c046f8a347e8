"""Imbalance over training, read from a run's logged epoch records (``metrics.jsonl``): each modality's
unimodal validation metric (``val/<modality>_<log_suffix>``, the task's per-modality metric) and the
gradient-norm ratio (``train/grad_norm/<modality>`` divided by the mean over modalities: 1 when the
encoders receive equal gradient norms, above 1 for the modality that dominates the updates)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from polymodal.report.plots import grad_norm_keys


@dataclass
class Imbalance:
    """epochs (E,); unimodal: modality -> (E,) validation metric (None where not logged); grad_ratio: modality
    -> (E,) its gradient norm over the mean of all modalities' (None where not logged); metric: the metric's
    key suffix."""

    epochs: list[int]
    unimodal: dict[str, list[float | None]] = field(default_factory=dict)
    grad_ratio: dict[str, list[float | None]] = field(default_factory=dict)
    metric: str = ""

    @property
    def empty(self) -> bool:
        return not self.epochs or not (self.unimodal or self.grad_ratio)


def _num(v: Any) -> float | None:
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) else None


def imbalance(records: Sequence[dict[str, Any]], modalities: Sequence[str], log_suffix: str) -> Imbalance:
    """The per-epoch curves of the records (epoch records of ``metrics.jsonl``, as :func:`load_run` reads them)."""
    recs = [r for r in records if isinstance(r.get("epoch"), int)]
    out = Imbalance(epochs=[int(r["epoch"]) for r in recs], metric=log_suffix)
    for m in modalities:
        key = f"val/{m}_{log_suffix}"
        vals = [_num(r.get(key)) for r in recs]
        if any(v is not None for v in vals):
            out.unimodal[m] = vals
    keys = {m: k for m, k in grad_norm_keys(recs).items() if m in modalities}
    if keys:
        for m, k in keys.items():
            ratios: list[float | None] = []
            for r in recs:
                norms = [_num(r.get(keys[o])) for o in keys]
                own = _num(r.get(k))
                known = [v for v in norms if v is not None]
                mean = sum(known) / len(known) if known else 0.0
                ratios.append(own / mean if own is not None and mean > 0 else None)
            out.grad_ratio[m] = ratios
    return out


__all__ = ["Imbalance", "imbalance"]
