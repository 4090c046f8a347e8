"""Early fusion: concatenate every modality's shallow features, then ONE shared encoder and a head."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from polymodal.fusion.base import FUSIONS, Fusion, FusionOutput, check_fusion_args
from polymodal.fusion.masking import presence_mask, zero_absent


@FUSIONS.register("early", tiny={"hidden": 8})
class EarlyFusion(Fusion):
    """Shallow features of all modalities, concatenated, through one shared MLP encoder and a linear head.

    Inputs (``input_level = "low_level"``): features name -> (B, L_m), each encoder's ``low_level``
    output; ``in_dims`` holds the L_m. The fused input is (B, sum_m L_m + M): every modality's
    features followed by one presence bit per modality. Shared encoder: Linear -> GELU -> Dropout ->
    Linear -> GELU (two hidden layers of width ``hidden``); head: Linear(hidden, C).
    Output: fused logits (B, C). No per-modality logits (the modalities are mixed from the first layer).
    Missing modality: its features are replaced by zeros with ``torch.where`` and its presence bit
    is 0, so the encoder can tell "absent" from "all-zero features".
    A row with nothing present sees an all-zero input and gets finite logits.
    """

    input_level = "low_level"

    def __init__(self, in_dims: dict[str, int], num_outputs: int, hidden: int = 128, dropout: float = 0.1) -> None:
        super().__init__()
        check_fusion_args("early", in_dims)
        self.in_dims = dict(in_dims)
        width = sum(in_dims.values()) + len(in_dims)
        self.encoder = nn.Sequential(
            nn.Linear(width, hidden), nn.GELU(), nn.Dropout(dropout),
            nn.Linear(hidden, hidden), nn.GELU(),
        )
        self.head = nn.Linear(hidden, num_outputs)

    def forward(self, features: dict[str, Tensor], present: dict[str, Tensor]) -> FusionOutput:
        parts = []
        for m, dim in self.in_dims.items():
            x = features[m].flatten(1)  # (B, L_m)
            if x.shape[1] != dim:
                raise ValueError(
                    f"early fusion: low-level features of {m!r} have shape {tuple(features[m].shape)}; "
                    f"expected (B, {dim}) as given in in_dims (the encoder's low_level_dim)"
                )
            parts.append(zero_absent(x, present[m]))
        bits = presence_mask(present, list(self.in_dims)).to(parts[0].dtype)  # (B, M)
        fused_in = torch.cat([*parts, bits], dim=1)  # (B, sum L_m + M)
        return FusionOutput(self.head(self.encoder(fused_in)))
