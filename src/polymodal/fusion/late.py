"""Late fusion: one linear head per modality, fused by sum, mean or learned weights of their logits."""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor, nn

from polymodal.fusion.base import FUSIONS, Fusion, FusionOutput, check_fusion_args
from polymodal.fusion.masking import masked_softmax, masked_sum, presence_mask, zero_absent


@FUSIONS.register("late", tiny={})
class LateFusion(Fusion):
    """Per-modality linear heads; fused logits = sum / mean / learned-weight mix over present modalities.

    Inputs: features name -> (B, D_m). Output: fused logits (B, C).
    Yields per-modality logits name -> (B, C).
    Missing modality: its features are replaced by zeros with ``torch.where`` before its head (so its
    per-modality logits on those rows are the head's bias, never NaN) and its logits are excluded from
    the fusion (sum: contributes 0; mean and learned: weights renormalised over the present
    modalities). A row with nothing present gets logits 0.
    ``mode="sum"`` with the ``joint`` strategy is OGM-GE's "sum" baseline.
    """

    yields_per_modality = True

    def __init__(
        self, in_dims: dict[str, int], num_outputs: int, mode: Literal["sum", "mean", "learned"] = "sum"
    ) -> None:
        super().__init__()
        check_fusion_args("late", in_dims)
        if mode not in ("sum", "mean", "learned"):
            raise ValueError(f"late fusion mode {mode!r}; expected 'sum', 'mean' or 'learned'")
        self.mode = mode
        self.heads = nn.ModuleDict({m: nn.Linear(d, num_outputs) for m, d in in_dims.items()})
        self.weight_logits = nn.Parameter(torch.zeros(len(in_dims))) if mode == "learned" else None

    def forward(self, features: dict[str, Tensor], present: dict[str, Tensor]) -> FusionOutput:
        names = list(self.heads)
        per = {m: self.heads[m](zero_absent(features[m], present[m])) for m in names}
        stacked = torch.stack([per[m] for m in names], dim=1)  # (B, M, C)
        mask = presence_mask(present, names)  # (B, M)
        if self.mode == "sum":
            w = mask.to(stacked.dtype)
        elif self.mode == "mean":
            w = mask.to(stacked.dtype) / mask.sum(dim=1, keepdim=True).clamp(min=1)
        else:
            w = masked_softmax(self.weight_logits.expand(mask.shape), mask)  # (B, M)
        fused = masked_sum(stacked, mask, w)  # (B, C)
        return FusionOutput(fused, per)
