"""Training strategies, one module each; importing this package fills ``STRATEGIES``."""

from polymodal.strategies import (  # noqa: F401  (each module registers its strategies)
    agm,
    gblending,
    joint,
    mla,
    mmpareto,
    ogm_ge,
    pmr,
    qmf,
    umt,
    unimodal,
)
from polymodal.strategies.base import STRATEGIES, StepContext, Strategy

__all__ = ["STRATEGIES", "StepContext", "Strategy"]
