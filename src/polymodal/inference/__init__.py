"""Test-time fusion rules (fixed weights, per-sample entropy, the reference batch-level entropy, and the
calibrated rules on temperature-scaled log-probabilities), registered in ``FUSION_RULES``; the temperature
fit they use lives in :mod:`polymodal.inference.calibration`."""

from polymodal.inference.calibration import fit_temperature
from polymodal.inference.rules import (
    BATCH_LEVEL_RULES,
    CALIBRATED_RULES,
    FUSION_RULES,
    RULES,
    calibrated_entropy_fusion,
    calibrated_fusion,
    calibrated_log_probs,
    entropy_batch_fusion,
    entropy_fusion,
    fixed_fusion,
    fuse,
)

__all__ = ["BATCH_LEVEL_RULES", "CALIBRATED_RULES", "FUSION_RULES", "RULES", "calibrated_entropy_fusion",
           "calibrated_fusion", "calibrated_log_probs", "entropy_batch_fusion", "entropy_fusion", "fit_temperature",
           "fixed_fusion", "fuse"]
