"""Product of experts: separately trained unimodal models fused by their calibrated log-probabilities.

When modalities are conditionally independent given the label (as on ``avdigits-hard``, whose audio
and image are corrupted independently and paired at random within a digit), the Bayes-optimal fused
posterior is the product of the unimodal posteriors divided by the prior once per extra modality:

    log p(y | x_1..x_M) = sum_m log p(y | x_m) - (M - 1) log p(y) + const.

Uncalibrated log-probabilities would weigh an over-confident modality too much, and a plain sum of
logits ranks classes exactly as the ``unimodal`` strategy's own fusion does; so each modality's logits
are first divided by a temperature fitted on the validation split (minimum negative log-likelihood,
Guo et al., ICML 2017; :func:`polymodal.inference.calibration.fit_temperature`,
the fit MLA's ``calibrated`` rules use too). Only the modalities present in a row enter its sum.
"""

from __future__ import annotations

import numpy as np
from scipy.special import log_softmax

from polymodal.inference.calibration import fit_temperature
from polymodal.report.metrics import Predictions

__all__ = ["fit_temperature", "product_of_experts"]


def _logits(pred: Predictions, m: str) -> np.ndarray:
    return np.log(np.clip(pred.per_modality[m].astype(np.float64), 1e-12, None))


def _present(pred: Predictions, m: str) -> np.ndarray:
    rows = pred.present.get(m) if pred.present else None
    return np.ones(len(pred.y_true), dtype=bool) if rows is None else np.asarray(rows, dtype=bool)


def product_of_experts(val: Predictions, test: Predictions) -> tuple[np.ndarray, dict[str, float]]:
    """Fused test log-probabilities (N, C) and the per-modality temperatures fitted on ``val``."""
    mods = [m for m in test.per_modality if m in val.per_modality]
    if not mods:
        raise ValueError(
            "product of experts needs per-modality probabilities (probs_<modality>) in the val and test "
            f"predictions; the test predictions have {sorted(test.per_modality)}, val {sorted(val.per_modality)}"
        )
    num_classes = test.probs.shape[1]
    counts = np.bincount(np.asarray(val.y_true, dtype=np.int64), minlength=num_classes) + 1.0
    log_prior = np.log(counts / counts.sum())
    temps: dict[str, float] = {}
    total = np.zeros((len(test.y_true), num_classes))
    n_present = np.zeros(len(test.y_true))
    for m in mods:
        rows = _present(val, m)
        temps[m] = fit_temperature(_logits(val, m)[rows], np.asarray(val.y_true)[rows])
        here = _present(test, m)
        total += np.where(here[:, None], log_softmax(_logits(test, m) / temps[m], axis=1), 0.0)
        n_present += here
    total -= np.clip(n_present - 1, 0, None)[:, None] * log_prior[None, :]
    return total, temps
