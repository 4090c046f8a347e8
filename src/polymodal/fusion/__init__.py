"""Fusion zoo, one module per family; importing this package fills ``FUSIONS``.

Registered names: ``late``, ``shared_head``, ``early``, ``concat``, ``concat_mlp``, ``tfn``, ``lmf``,
``gated``, ``film``, ``bilinear``, ``mult``; ``program``, ``relation`` and ``concept_bottleneck`` live in
``polymodal.reasoning`` (imported at the end, so that they are registered with the others).
"""

from polymodal.fusion import (  # noqa: F401  (each import registers its fusions)
    attention,
    bilinear,
    concat,
    early,
    film,
    gated,
    late,
    shared_head,
    tensor,
)
from polymodal.fusion.attention import MulTFusion
from polymodal.fusion.base import FUSIONS, Fusion, FusionOutput
from polymodal.fusion.bilinear import BilinearFusion
from polymodal.fusion.concat import ConcatFusion
from polymodal.fusion.early import EarlyFusion
from polymodal.fusion.film import FiLMFusion
from polymodal.fusion.gated import GatedFusion
from polymodal.fusion.late import LateFusion
from polymodal.fusion.shared_head import SharedHeadFusion
from polymodal.fusion.tensor import LowRankFusion, TensorFusion

__all__ = [
    "FUSIONS",
    "BilinearFusion",
    "ConcatFusion",
    "EarlyFusion",
    "FiLMFusion",
    "Fusion",
    "FusionOutput",
    "GatedFusion",
    "LateFusion",
    "LowRankFusion",
    "MulTFusion",
    "SharedHeadFusion",
    "TensorFusion",
]

import polymodal.reasoning.fusion  # noqa: E402, F401  (registers program, relation, concept_bottleneck)
