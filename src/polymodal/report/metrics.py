"""Classification metrics on collected predictions (accuracy, macro F1, confusion, ECE)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Predictions:
    """Everything evaluation collects on one split, one row per dataset sample (no duplicates).

    y_true:      (N,) int class ids
    probs:       (N, C) fused class probabilities under the strategy's fusion rule
    per_modality:name -> (N, C) probabilities with every other modality marked absent
                 (absent from the dict when the fusion cannot run with a modality alone)
    index:       (N,) dataset positions, sorted
    class_names: C names (may be empty: then "0".."C-1")
    """

    y_true: np.ndarray
    probs: np.ndarray
    per_modality: dict[str, np.ndarray] = field(default_factory=dict)
    index: np.ndarray | None = None
    class_names: tuple[str, ...] = ()
