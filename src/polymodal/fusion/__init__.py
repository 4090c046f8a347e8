"""Fusion zoo, one module per family; importing this package fills ``FUSIONS``.

Registered names: ``late``, ``shared_head``, ``early``, ``concat``, ``concat_mlp``, ``tfn``, ``lmf``,
``gated``, ``film``, ``bilinear``, ``mult``, ``ctc`` (per-frame CTC emissions for the sequence task);
challenge packages register their own (``program``, ``relation`` and ``concept_bottleneck`` in
``polymodal.reasoning``, ``coordinated`` in ``polymodal.coordinated``), and
``FUSIONS`` finds every one when it is first read (:mod:`polymodal.registries`): a new fusion module needs no
line here.
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
