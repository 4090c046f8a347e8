"""Temperature scaling (Guo et al., ICML 2017): one temperature per modality, fitted on the validation split.

A temperature T > 0 divides a modality's logits before the softmax; the fitted T minimises the mean
negative log-likelihood of the validation labels. It never changes that modality's own argmax, but it
sets how much the modality counts when calibrated log-probabilities of several modalities are added
(the ``calibrated`` rules of :mod:`polymodal.inference.rules`, and the ``poe`` rows of
``polymodal bench``). Both fit with :func:`fit_temperature`, on validation rows only.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize_scalar
from scipy.special import log_softmax

LOG_T_BOUNDS = (-4.0, 4.0)  # T searched in [e^-4, e^4]


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """The T > 0 minimising the mean NLL of softmax(logits / T) (searched over log T in [-4, 4]).

    ``logits`` (N, C), or log-probabilities (the same fit: a per-row shift does not change a softmax);
    ``labels`` (N,) class indices. No rows: 1.0 (nothing to calibrate against).
    """
    z = np.asarray(logits, dtype=np.float64)
    y = np.asarray(labels, dtype=np.int64)
    if z.ndim != 2 or y.shape != (z.shape[0],):
        raise ValueError(f"fit_temperature needs logits (N, C) and labels (N,); got shapes {z.shape} and {y.shape}")
    if len(y) == 0:
        return 1.0
    if not np.isfinite(z).all():
        raise ValueError("fit_temperature: the logits hold NaN or inf; only rows where the modality is present "
                         "may be passed")
    if y.min() < 0 or y.max() >= z.shape[1]:
        raise ValueError(f"fit_temperature: labels must lie in [0, {z.shape[1] - 1}]; got {y.min()}..{y.max()}")

    def nll(log_t: float) -> float:
        return float(-log_softmax(z / np.exp(log_t), axis=1)[np.arange(len(y)), y].mean())

    return float(np.exp(minimize_scalar(nll, bounds=LOG_T_BOUNDS, method="bounded").x))
