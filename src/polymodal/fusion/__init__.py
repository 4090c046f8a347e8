"""Fusion zoo, one module per family; importing this package fills ``FUSIONS``."""

from polymodal.fusion import late  # noqa: F401
from polymodal.fusion.base import FUSIONS, Fusion, FusionOutput

__all__ = ["FUSIONS", "Fusion", "FusionOutput"]
