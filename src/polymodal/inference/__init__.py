"""Test-time fusion rules (fixed weights, per-sample entropy, the reference batch-level entropy)."""

from polymodal.inference.rules import RULES, entropy_batch_fusion, entropy_fusion, fixed_fusion, fuse

__all__ = ["RULES", "entropy_batch_fusion", "entropy_fusion", "fixed_fusion", "fuse"]
