"""Tabular encoder: an MLP over a numeric feature vector."""

from __future__ import annotations

from torch import Tensor, nn

from polymodal.data.schema import Modality
from polymodal.encoders.base import ENCODERS, Encoder
from polymodal.encoders.image import check_input, check_kind


class TabularMLP(Encoder):
    """(B, F) numeric features -> (B, width). Two hidden layers with LayerNorm and GELU.

    low_level(x) -> (B, F), the layer-normalised input.
    """

    kind = "tabular"

    def __init__(
        self, in_features: int, width: int = 64, hidden: int | None = None, dropout: float = 0.1,
        name: str = "tabular_mlp",
    ) -> None:
        super().__init__()
        hidden = hidden or 2 * width
        self.name, self.in_features = name, in_features
        self.norm_in = nn.LayerNorm(in_features)
        self.net = nn.Sequential(
            nn.Linear(in_features, hidden), nn.GELU(), nn.Dropout(dropout),
            nn.Linear(hidden, width), nn.GELU(),
        )
        self.out_dim = width
        self.low_level_dim = in_features

    def low_level(self, x: Tensor) -> Tensor:
        check_input(self.name, x, f"(B, {self.in_features})", 2, (1, self.in_features))
        return self.norm_in(x.to(self.norm_in.weight.dtype))

    def forward(self, x: Tensor) -> Tensor:
        return self.net(self.low_level(x))


@ENCODERS.register("tabular_mlp", tiny={"width": 8})
def tabular_mlp(modality: Modality, width: int = 64, hidden: int | None = None, dropout: float = 0.1) -> TabularMLP:
    """MLP over a tabular feature vector (B, F)."""
    check_kind(modality, "tabular", "tabular_mlp")
    if len(modality.shape) != 1:
        raise ValueError(f"tabular modality {modality.name!r} must have shape (features,); got {modality.shape}")
    return TabularMLP(modality.shape[0], width, hidden, dropout)
