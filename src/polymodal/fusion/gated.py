"""Gated fusion: per-modality projections mixed by a softmax gate computed from all present features."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from polymodal.fusion.base import FUSIONS, Fusion, FusionOutput, check_fusion_args
from polymodal.fusion.masking import masked_softmax, masked_sum, presence_mask, zero_absent


@FUSIONS.register("gated", tiny={"hidden": 8})
class GatedFusion(Fusion):
    """Softmax gate over modalities, computed from all present features, mixing per-modality projections.

    Inputs: features name -> (B, D_m). Each modality is projected to h_m = tanh(Linear(D_m, hidden)).
    The gate reads the concatenation of all features with one presence bit per modality and gives one
    score per modality; the weights g (B, M) are a softmax over the PRESENT modalities only.
    Fused = sum_m g_m h_m (B, hidden) -> Linear(hidden, C). Output: fused logits (B, C).
    No per-modality logits.
    Missing modality: its features are replaced by zeros with ``torch.where`` (its presence bit
    is 0) and its gate weight is exactly 0, the others renormalised to sum to 1. A row with nothing
    present has all weights 0, fused vector 0, and gets the head's bias.
    """

    def __init__(self, in_dims: dict[str, int], num_outputs: int, hidden: int = 128) -> None:
        super().__init__()
        check_fusion_args("gated", in_dims)
        self.names = list(in_dims)
        self.proj = nn.ModuleDict({m: nn.Linear(d, hidden) for m, d in in_dims.items()})
        self.gate = nn.Linear(sum(in_dims.values()) + len(in_dims), len(in_dims))
        self.head = nn.Linear(hidden, num_outputs)

    def _clean(self, features: dict[str, Tensor], present: dict[str, Tensor]) -> dict[str, Tensor]:
        return {m: zero_absent(features[m], present[m]) for m in self.names}

    def _gate(self, clean: dict[str, Tensor], mask: Tensor) -> Tensor:
        """Gate weights (B, M): softmax over present modalities, 0 on absent ones."""
        x = torch.cat([clean[m] for m in self.names] + [mask.to(clean[self.names[0]].dtype)], dim=1)
        return masked_softmax(self.gate(x), mask)  # (B, M)

    def gate_weights(self, features: dict[str, Tensor], present: dict[str, Tensor]) -> Tensor:
        """The gate's weights (B, M) over modalities in ``in_dims`` order; rows sum to 1 over present ones."""
        return self._gate(self._clean(features, present), presence_mask(present, self.names))

    def forward(self, features: dict[str, Tensor], present: dict[str, Tensor]) -> FusionOutput:
        clean = self._clean(features, present)
        mask = presence_mask(present, self.names)  # (B, M)
        g = self._gate(clean, mask)  # (B, M)
        h = torch.stack([torch.tanh(self.proj[m](clean[m])) for m in self.names], dim=1)  # (B, M, hidden)
        fused = masked_sum(h, mask, g)  # (B, hidden)
        return FusionOutput(self.head(fused))
