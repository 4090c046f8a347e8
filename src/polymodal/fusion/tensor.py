"""Tensor fusions: the Tensor Fusion Network (TFN) and its low-rank factorisation (LMF).

Both fuse the vectors ``zhat_m = [1; z_m]``: appending the constant 1 makes the outer product
``zhat_1 (x) ... (x) zhat_M`` hold every unimodal, bimodal, ..., M-modal interaction term at once.
A missing modality's vector becomes ``[1, 0, ..., 0]``, so only the interactions among the present
modalities survive.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from polymodal.fusion.base import FUSIONS, Fusion, FusionOutput, check_fusion_args
from polymodal.fusion.masking import zero_absent


def _with_one(z: Tensor, present: Tensor) -> Tensor:
    """[1; z] on present rows, [1, 0, ..., 0] on absent ones. z: (B, D) -> (B, D + 1)."""
    z = zero_absent(z, present)
    return torch.cat([z.new_ones(z.shape[0], 1), z], dim=1)


@FUSIONS.register("tfn", tiny={"proj_dim": 2, "hidden": 8})
class TensorFusion(Fusion):
    """Tensor Fusion Network (Zadeh et al., 2017): outer product of [1; z_m] over modalities, then an MLP.

    Inputs: features name -> (B, D_m). Each feature is first reduced by a linear layer to
    z_m (B, proj_dim), so the product has (proj_dim + 1) ** M entries. The flattened product goes
    through Linear -> ReLU -> Dropout -> Linear(hidden, C). Output: fused logits (B, C).
    No per-modality logits.
    Missing modality: its vector [1; z_m] becomes [1, 0, ..., 0] (``torch.where``), so every
    interaction term that involves it vanishes and only the other modalities' terms remain.
    A row with nothing present has the product e_0 and gets finite logits.
    """

    def __init__(
        self, in_dims: dict[str, int], num_outputs: int, proj_dim: int = 16, hidden: int = 128, dropout: float = 0.1
    ) -> None:
        super().__init__()
        check_fusion_args("tfn", in_dims)
        size = (proj_dim + 1) ** len(in_dims)
        if size > 1_000_000:
            raise ValueError(
                f"tfn fusion: outer product of {len(in_dims)} modalities at proj_dim={proj_dim} has {size} "
                f"entries; lower fusion.proj_dim or use 'lmf', whose cost is linear in the number of modalities"
            )
        self.proj = nn.ModuleDict({m: nn.Linear(d, proj_dim) for m, d in in_dims.items()})
        self.mlp = nn.Sequential(
            nn.Linear(size, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, num_outputs)
        )

    def forward(self, features: dict[str, Tensor], present: dict[str, Tensor]) -> FusionOutput:
        product: Tensor | None = None
        for m, proj in self.proj.items():
            p = present[m]
            z = proj(zero_absent(features[m], p))  # (B, proj_dim)
            zhat = _with_one(z, p)  # (B, proj_dim + 1)
            product = zhat if product is None else (product[:, :, None] * zhat[:, None, :]).flatten(1)
        return FusionOutput(self.mlp(product))  # product: (B, (proj_dim + 1) ** M)


@FUSIONS.register("lmf", tiny={"rank": 2})
class LowRankFusion(Fusion):
    """Low-rank Multimodal Fusion (Liu et al., 2018): a tensor fusion whose weight is a rank-r factorisation.

    Inputs: features name -> (B, D_m). With zhat_m = [1; z_m] (B, D_m + 1) and per-modality factors
    W_m (rank, D_m + 1, C), the logits are

        logits = sum_i rank_weights[i] * prod_m (zhat_m @ W_m[i]) + bias          (B, C)

    which equals contracting the full outer product zhat_1 (x) ... (x) zhat_M with the weight tensor
    sum_i rank_weights[i] * W_1[i] (x) ... (x) W_M[i] (outer over the input axes, shared output
    axis) without ever forming it: cost linear in the number of modalities.
    Output: fused logits (B, C). No per-modality logits.
    Missing modality: zhat_m becomes [1, 0, ..., 0] (``torch.where``), so its factor contributes
    only its first row W_m[i, 0], exactly as in the tensor fusion. A row with nothing present gets
    finite logits (a function of the factors' first rows and the bias).
    """

    def __init__(self, in_dims: dict[str, int], num_outputs: int, rank: int = 4) -> None:
        super().__init__()
        check_fusion_args("lmf", in_dims, rank=rank)
        self.factors = nn.ParameterDict()
        for m, d in in_dims.items():
            w = torch.empty(rank, d + 1, num_outputs)
            nn.init.xavier_normal_(w)
            self.factors[m] = nn.Parameter(w)
        self.rank_weights = nn.Parameter(torch.empty(rank))
        nn.init.normal_(self.rank_weights, std=1.0 / math.sqrt(rank))
        self.bias = nn.Parameter(torch.zeros(num_outputs))

    def forward(self, features: dict[str, Tensor], present: dict[str, Tensor]) -> FusionOutput:
        fused: Tensor | None = None
        for m, w in self.factors.items():
            zhat = _with_one(features[m], present[m])  # (B, D_m + 1)
            proj = torch.einsum("bd,rdc->rbc", zhat, w)  # (rank, B, C)
            fused = proj if fused is None else fused * proj
        logits = torch.einsum("r,rbc->bc", self.rank_weights, fused) + self.bias  # (B, C)
        return FusionOutput(logits)
