"""FiLM fusion: each modality's feature modulated by a scale and shift predicted from the other modalities."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from polymodal.fusion.base import FUSIONS, Fusion, FusionOutput, check_fusion_args
from polymodal.fusion.masking import mean_over_present, presence_mask, zero_absent


@FUSIONS.register("film", tiny={"hidden": 8})
class FiLMFusion(Fusion):
    """Feature-wise linear modulation (Perez et al., 2018) across modalities, then pooled and classified.

    Inputs: features name -> (B, D_m). Each modality is projected to h_m = Linear(D_m, hidden).
    Its conditioning c_m is the mean of h_n over the OTHER present modalities n; a per-modality
    generator Linear(hidden, 2 * hidden) maps c_m to (dgamma_m, beta_m) and
    y_m = GELU((1 + dgamma_m) * h_m + beta_m). The fused vector is the mean of y_m over present
    modalities -> Linear(hidden, C). Output: fused logits (B, C). No per-modality logits.
    Missing modality: its features are replaced by zeros with ``torch.where``; it conditions no
    other modality and is left out of the pooling. A modality with no other modality present (or
    a single-modality model) gets the identity modulation (dgamma = beta = 0). A row with nothing
    present pools to 0 and gets the head's bias.
    """

    def __init__(self, in_dims: dict[str, int], num_outputs: int, hidden: int = 128) -> None:
        super().__init__()
        check_fusion_args("film", in_dims)
        self.names = list(in_dims)
        self.hidden = hidden
        self.proj = nn.ModuleDict({m: nn.Linear(d, hidden) for m, d in in_dims.items()})
        # one generator per modality that can be conditioned (none for a single-modality model)
        self.generators = nn.ModuleDict(
            {m: nn.Linear(hidden, 2 * hidden) for m in in_dims} if len(in_dims) > 1 else {}
        )
        self.head = nn.Linear(hidden, num_outputs)

    def forward(self, features: dict[str, Tensor], present: dict[str, Tensor]) -> FusionOutput:
        h = {m: self.proj[m](zero_absent(features[m], present[m])) for m in self.names}
        ys = []
        for m in self.names:
            others = [n for n in self.names if n != m]
            y = h[m]  # (B, hidden); identity modulation unless another modality is present
            if others:
                cond = mean_over_present([h[n] for n in others], [present[n] for n in others])  # (B, hidden)
                dgamma, beta = self.generators[m](cond).chunk(2, dim=1)
                has_cond = presence_mask(present, others).any(dim=1, keepdim=True)  # (B, 1)
                y = torch.where(has_cond, (1 + dgamma) * h[m] + beta, h[m])
            ys.append(nn.functional.gelu(y))
        fused = mean_over_present(ys, [present[m] for m in self.names])  # (B, hidden)
        return FusionOutput(self.head(fused))
