"""What turns risk scores into survival curves and Brier scores: the Breslow baseline hazard of the trained
model's risks on the training split, the censoring distribution of the training targets and the time grid
(docs/survival.md). Fitted once per run on the training split's outputs, stored beside the predictions, so
that evaluation and prediction of new rows read the same curves."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from polymodal.tasks.survival.cox import breslow_baseline, check_targets, survival_curves
from polymodal.tasks.survival.metrics import censoring_survival, evaluation_grid

PREFIX = "reference/"
FIELDS = ("baseline_times", "baseline_cumhaz", "censoring_times", "censoring_prob", "grid")


@dataclass(frozen=True)
class SurvivalReference:
    """baseline_times, baseline_cumhaz: Breslow's ``H0`` at the training split's distinct event times
    censoring_times, censoring_prob:  Kaplan-Meier ``G`` of the training split's censoring
    grid:                             the times at which survival curves are given and the Brier score integrated
    """

    baseline_times: np.ndarray
    baseline_cumhaz: np.ndarray
    censoring_times: np.ndarray
    censoring_prob: np.ndarray
    grid: np.ndarray

    @classmethod
    def fit(cls, log_risk: np.ndarray, time: np.ndarray, event: np.ndarray, *, points: int = 50) -> SurvivalReference:
        """From the training split: the model's log-risks (N,) and the targets' times and events (N,)."""
        check_targets(time, event, "training targets of the survival reference")
        times, cumhaz = breslow_baseline(log_risk, time, event)
        g_times, g = censoring_survival(time, event)
        return cls(times, cumhaz, g_times, g, evaluation_grid(time, event, points=points))

    @property
    def censoring(self) -> tuple[np.ndarray, np.ndarray]:
        return self.censoring_times, self.censoring_prob

    def curves(self, log_risk: np.ndarray, grid: np.ndarray | None = None) -> np.ndarray:
        """Survival curves ``S(t | x)`` (N, T) at ``grid`` (default: the reference grid)."""
        return survival_curves(log_risk, self.grid if grid is None else grid, self.baseline_times, self.baseline_cumhaz)

    # -- storage -----------------------------------------------------------------------------------
    def to_arrays(self) -> dict[str, np.ndarray]:
        return {PREFIX + k: np.asarray(getattr(self, k), dtype=np.float64) for k in FIELDS}

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, np.ndarray], path: Path | str) -> SurvivalReference | None:
        """The reference stored by :meth:`to_arrays`; None when the arrays hold none; errors name ``path``."""
        present = [k for k in FIELDS if PREFIX + k in arrays]
        if not present:
            return None
        if len(present) != len(FIELDS):
            missing = sorted(set(FIELDS) - set(present))
            raise ValueError(f"{path}: the survival reference lacks {missing}; the file is damaged, evaluate the run again")
        return cls(*(np.asarray(arrays[PREFIX + k], dtype=np.float64) for k in FIELDS))

    def to_json(self) -> dict[str, Any]:
        return {k: np.asarray(getattr(self, k)).tolist() for k in FIELDS}

    @classmethod
    def from_json(cls, data: Mapping[str, Any], path: Path | str) -> SurvivalReference:
        missing = [k for k in FIELDS if k not in data]
        if missing:
            raise ValueError(f"{path}: the survival reference lacks {missing}")
        return cls(*(np.asarray(data[k], dtype=np.float64) for k in FIELDS))


__all__ = ["SurvivalReference"]
