"""Training strategies, one module each; importing this package fills ``STRATEGIES``."""

from polymodal.strategies import joint, unimodal  # noqa: F401  (registers joint, joint-concat, unimodal)
from polymodal.strategies.base import STRATEGIES, StepContext, Strategy

__all__ = ["STRATEGIES", "StepContext", "Strategy"]
