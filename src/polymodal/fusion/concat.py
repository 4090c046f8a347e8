"""Concatenation fusion: encoder outputs side by side, then an MLP (``concat_mlp``) or one linear head (``concat``)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from polymodal.fusion.base import FUSIONS, Fusion, FusionOutput, check_fusion_args
from polymodal.fusion.masking import presence_mask, zero_absent


@FUSIONS.register("concat_mlp", tiny={"hidden": 8})
class ConcatFusion(Fusion):
    """Concatenated modality features -> MLP (or a single linear layer) -> logits.

    Inputs: features name -> (B, D_m). The joint vector is (B, sum_m D_m + M): each modality's
    features followed by one presence bit per modality. With ``hidden`` set: Linear -> GELU ->
    Dropout -> Linear(hidden, C); with ``hidden=None``: one Linear to C (the ``concat`` baseline).
    Output: fused logits (B, C). No per-modality logits.
    Missing modality: its features are replaced (``torch.where``) by a learned "missing" embedding
    of width D_m, and its presence bit is 0. A row with nothing present sees only the missing
    embeddings and gets finite logits.
    """

    def __init__(
        self, in_dims: dict[str, int], num_outputs: int, hidden: int | None = 128, dropout: float = 0.1
    ) -> None:
        super().__init__()
        check_fusion_args("concat", in_dims)
        self.names = list(in_dims)
        self.missing = nn.ParameterDict({m: nn.Parameter(torch.zeros(d)) for m, d in in_dims.items()})
        width = sum(in_dims.values()) + len(in_dims)
        if hidden is None:
            self.net: nn.Module = nn.Linear(width, num_outputs)
        else:
            self.net = nn.Sequential(
                nn.Linear(width, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, num_outputs)
            )

    def forward(self, features: dict[str, Tensor], present: dict[str, Tensor]) -> FusionOutput:
        parts = [zero_absent(features[m], present[m], fill=self.missing[m]) for m in self.names]
        bits = presence_mask(present, self.names).to(parts[0].dtype)  # (B, M)
        return FusionOutput(self.net(torch.cat([*parts, bits], dim=1)))  # (B, C)


@FUSIONS.register("concat", tiny={})
def concat(in_dims: dict[str, int], num_outputs: int) -> ConcatFusion:
    """Single linear head on the concatenated modality features (the joint-concat baseline)."""
    return ConcatFusion(in_dims, num_outputs, hidden=None)
