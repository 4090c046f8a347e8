"""Training strategies, one module each; importing this package fills ``STRATEGIES``."""

from polymodal.strategies.base import STRATEGIES, StepContext, Strategy

__all__ = ["STRATEGIES", "StepContext", "Strategy"]
