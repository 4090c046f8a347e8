"""Low-rank bilinear pooling (MLB, Kim et al. 2017): Hadamard product of projected modalities."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from polymodal.fusion.base import FUSIONS, Fusion, FusionOutput, check_fusion_args
from polymodal.fusion.masking import zero_absent


@FUSIONS.register("bilinear", tiny={"hidden": 8, "rank": 2})
class BilinearFusion(Fusion):
    """Low-rank bilinear (multilinear for M > 2) pooling: product of tanh projections, then a linear head.

    Inputs: features name -> (B, D_m). Each modality is projected to
    u_m = tanh(Linear(D_m, hidden * rank)), viewed as (B, hidden, rank). The joint vector is

        f[:, i] = sum_{j < rank} prod_m u_m[:, i, j]                       (B, hidden)

    i.e. each of the ``hidden`` joint units is a bilinear (multilinear) form whose weight has rank
    ``rank``; ``rank=1`` is MLB's Hadamard product, larger ranks are MFB-style sum pooling over factors.
    Then Linear(hidden, C). Output: fused logits (B, C). No per-modality logits.
    Missing modality: its features are replaced by zeros with ``torch.where`` and its u_m by ones,
    so the product runs over the present modalities only (one present modality contributes its own
    u_m). A row with nothing present has f = rank everywhere and gets finite logits.
    """

    def __init__(
        self, in_dims: dict[str, int], num_outputs: int, hidden: int = 128, rank: int = 1, dropout: float = 0.1
    ) -> None:
        super().__init__()
        check_fusion_args("bilinear", in_dims, rank=rank)
        self.hidden, self.rank = hidden, rank
        self.proj = nn.ModuleDict({m: nn.Linear(d, hidden * rank) for m, d in in_dims.items()})
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(hidden, num_outputs)

    def joint(self, features: dict[str, Tensor], present: dict[str, Tensor]) -> Tensor:
        """The pooled joint vector f (B, hidden) before dropout and the head."""
        product: Tensor | None = None
        for m, proj in self.proj.items():
            u = torch.tanh(proj(zero_absent(features[m], present[m])))  # (B, hidden * rank)
            u = zero_absent(u, present[m], fill=1.0)  # 1: the neutral element of the product
            product = u if product is None else product * u
        return product.view(-1, self.hidden, self.rank).sum(dim=2)  # (B, hidden)

    def forward(self, features: dict[str, Tensor], present: dict[str, Tensor]) -> FusionOutput:
        return FusionOutput(self.head(self.dropout(self.joint(features, present))))
