"""Quantification: what each modality contributes, how the modalities interact, how the model's reliance
on each evolved during training, how robust it is and what it costs, for any trained run (docs/quantify.md).

    import polymodal
    q = polymodal.quantify("runs/main")            # the numbers (a Quantification), split "test"
    q.shapley["phi"], q.pid["audio+image"], q.emap.gap, q.noise["audio"].relative

    polymodal quantify runs/main [--split test]    # + quantify.md, quantify.html and figures in the run

    subsets     every subset of modalities through the presence mask        -> probe.py, core.py
    shapley     exact (<= 8 modalities) / Monte-Carlo Shapley values, per sample -> shapley.py
    pid         redundancy, uniqueness, synergy (CVX estimator)             -> pid.py
    emap        EMAP projection and perceptual score                        -> interactions.py
    imbalance   unimodal metric and gradient-norm ratio per epoch           -> training.py
    robustness  noise and missing-rate curves, corruptions per kind         -> robustness.py
    complexity  parameters, FLOPs, latency, peak memory                     -> complexity.py
    geometry    PCA / t-SNE of each modality's representation               -> geometry.py

The package is callable: ``polymodal.quantify(run, ...)`` is :func:`quantify`.
"""

from __future__ import annotations

import sys
import types
from typing import Any

from polymodal.quantify.core import SECTIONS, Quantification, quantify, quantify_run
from polymodal.quantify.interactions import emap, emap_logits, perceptual_score
from polymodal.quantify.pid import PID, discretize, kmeans, max_entropy_coupling, pid, pid_from_distribution
from polymodal.quantify.probe import Probe, QuantifyError
from polymodal.quantify.robustness import CORRUPTIONS, missing_curves, noise_curves
from polymodal.quantify.shapley import exact_shapley, monte_carlo_shapley, shapley


def _write_report(q: Quantification) -> Any:
    from polymodal.quantify.report import write_quantify_report

    return write_quantify_report(q)


write_quantify_report = _write_report


class _CallableModule(types.ModuleType):
    """``polymodal.quantify(run)`` calls :func:`quantify` (the package stays a package)."""

    def __call__(self, run: Any, split: str = "test", **kwargs: Any) -> Quantification:
        return quantify(run, split, **kwargs)


sys.modules[__name__].__class__ = _CallableModule

__all__ = ["CORRUPTIONS", "PID", "SECTIONS", "Probe", "Quantification", "QuantifyError", "discretize", "emap",
           "emap_logits", "exact_shapley", "kmeans", "max_entropy_coupling", "missing_curves", "monte_carlo_shapley",
           "noise_curves", "perceptual_score", "pid", "pid_from_distribution", "quantify", "quantify_run", "shapley",
           "write_quantify_report"]
