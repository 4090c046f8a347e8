"""Import every component module so that all registries are filled, and re-export them."""

from __future__ import annotations

import polymodal.coordinated.datasets  # noqa: F401  (avdigits-pairs / -named; the contrastive task)
import polymodal.coordinated.strategy  # noqa: F401  (the contrastive strategy and the coordinated fusion)
import polymodal.data.datasets  # noqa: F401  (fills DATASETS)
import polymodal.encoders  # noqa: F401  (fills ENCODERS)
import polymodal.fusion  # noqa: F401  (fills FUSIONS)
import polymodal.reasoning.strategy  # noqa: F401  (the cbm strategy; the concept fusions come with polymodal.fusion)
import polymodal.strategies  # noqa: F401  (fills STRATEGIES)
from polymodal.data.base import DATASETS
from polymodal.encoders.base import ENCODERS
from polymodal.fusion.base import FUSIONS
from polymodal.strategies.base import STRATEGIES
from polymodal.tasks import TASKS

ALL = {"datasets": DATASETS, "encoders": ENCODERS, "fusions": FUSIONS, "strategies": STRATEGIES, "tasks": TASKS}
__all__ = ["ALL", "DATASETS", "ENCODERS", "FUSIONS", "STRATEGIES", "TASKS"]
