"""Test-time fusion rules (fixed weights, per-sample entropy, the reference batch-level entropy), registered
in ``FUSION_RULES``."""

from polymodal.inference.rules import (
    BATCH_LEVEL_RULES,
    FUSION_RULES,
    RULES,
    entropy_batch_fusion,
    entropy_fusion,
    fixed_fusion,
    fuse,
)

__all__ = ["BATCH_LEVEL_RULES", "FUSION_RULES", "RULES", "entropy_batch_fusion", "entropy_fusion", "fixed_fusion", "fuse"]
