"""Shared-head fusion: ONE linear head applied to every modality's feature (MLA's fusion)."""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor, nn

from polymodal.fusion.base import FUSIONS, Fusion, FusionOutput, check_fusion_args
from polymodal.fusion.masking import masked_sum, presence_mask, zero_absent


@FUSIONS.register("shared_head", tiny={})
class SharedHeadFusion(Fusion):
    """One linear head g: R^d -> R^C shared by all modalities; fused logits = sum / mean of theirs.

    Inputs: features name -> (B, d), the same width d for every modality. Output: fused logits
    (B, C) = sum (``mode="sum"``) or mean (``mode="mean"``) of ``head(x_m)`` over present modalities.
    Yields per-modality logits name -> (B, C). The head is ``self.head`` (an ``nn.Linear``), so a
    strategy such as MLA can act on its weight gradient.
    Missing modality: its features are replaced by zeros with ``torch.where`` (its per-modality
    logits on those rows are the head's bias) and its logits are left out of the sum / mean.
    A row with nothing present gets logits 0.
    ``init``: "default" (PyTorch's nn.Linear initialisation) or "xavier" (Xavier-normal weight, zero bias:
    MLA's reference code, docs/benchmarks.md "MLA against its reference code").
    """

    yields_per_modality = True

    def __init__(self, in_dims: dict[str, int], num_outputs: int, mode: Literal["sum", "mean"] = "sum",
                 init: Literal["default", "xavier"] = "default") -> None:
        super().__init__()
        if mode not in ("sum", "mean"):
            raise ValueError(f"shared_head fusion mode {mode!r}; expected 'sum' or 'mean'")
        if init not in ("default", "xavier"):
            raise ValueError(f"shared_head fusion init {init!r}; expected 'default' or 'xavier' (model.fusion_args.init)")
        check_fusion_args("shared_head", in_dims)
        widths = set(in_dims.values())
        if len(widths) != 1:
            raise ValueError(
                f"shared_head fusion applies one head to every modality, so all feature widths must be "
                f"equal; got {dict(in_dims)}; set model.width so that every encoder produces the same width"
            )
        self.names = list(in_dims)
        self.mode = mode
        self.head = nn.Linear(widths.pop(), num_outputs)
        if init == "xavier":
            nn.init.xavier_normal_(self.head.weight)
            nn.init.zeros_(self.head.bias)

    def forward(self, features: dict[str, Tensor], present: dict[str, Tensor]) -> FusionOutput:
        per = {m: self.head(zero_absent(features[m], present[m])) for m in self.names}
        stacked = torch.stack([per[m] for m in self.names], dim=1)  # (B, M, C)
        mask = presence_mask(present, self.names)  # (B, M)
        fused = masked_sum(stacked, mask)  # (B, C)
        if self.mode == "mean":
            fused = fused / mask.sum(dim=1, keepdim=True).clamp(min=1).to(fused.dtype)
        return FusionOutput(fused, per)
