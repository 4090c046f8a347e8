"""Text encoder: token embedding + learned positions + a small pre-norm TransformerEncoder.

Input: (B, L) int64 token ids, 0 = padding (``modality.shape = (L,)``, ``representation="tokens"``,
``modality.extra["vocab_size"]`` = number of ids including the padding id 0).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from polymodal.data.schema import Modality
from polymodal.encoders.base import ENCODERS, Encoder
from polymodal.encoders.image import check_input, check_kind

PAD_ID = 0


def masked_mean(h: Tensor, keep: Tensor) -> Tensor:
    """Mean of h (B, L, D) over the positions where keep (B, L) is True -> (B, D); all-padding rows give 0."""
    w = keep.to(h.dtype).unsqueeze(-1)  # (B, L, 1)
    total = torch.where(keep.unsqueeze(-1), h, torch.zeros_like(h)).sum(dim=1)
    return total / w.sum(dim=1).clamp(min=1.0)


class TextTransformer(Encoder):
    """(B, L) token ids -> (B, width) by masked mean pooling of a TransformerEncoder's outputs.

    sequence(x)  -> (B, L, width) per-token features; padding positions are 0
    low_level(x) -> (B, width) masked mean of the token + position embeddings (the front end)
    """

    kind = "text"
    supports_sequence = True

    def __init__(
        self,
        vocab_size: int,
        max_len: int,
        width: int = 64,
        depth: int = 2,
        heads: int = 4,
        ff_mult: int = 2,
        dropout: float = 0.1,
        name: str = "text_transformer",
    ) -> None:
        super().__init__()
        if width % heads != 0:
            raise ValueError(f"encoder {name!r}: width={width} must be divisible by heads={heads}; change one of them")
        self.name, self.max_len = name, max_len
        self.tok = nn.Embedding(vocab_size, width, padding_idx=PAD_ID)
        self.pos = nn.Embedding(max_len, width)
        layer = nn.TransformerEncoderLayer(
            width, heads, ff_mult * width, dropout, activation="gelu", batch_first=True, norm_first=True
        )
        self.encoder = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(width)
        self.out_dim = width
        self.low_level_dim = width

    def _check(self, x: Tensor) -> None:
        check_input(self.name, x, f"(B, L<={self.max_len}) int64 token ids", 2)
        if x.is_floating_point() or x.shape[1] > self.max_len:
            raise ValueError(
                f"encoder {self.name!r} expects (B, L<={self.max_len}) int64 token ids; got {tuple(x.shape)} "
                f"{x.dtype} (tokenise to integer ids and truncate to the modality's length)"
            )

    def _embed(self, x: Tensor) -> tuple[Tensor, Tensor]:
        self._check(x)
        keep = x != PAD_ID  # (B, L)
        pos = torch.arange(x.shape[1], device=x.device)
        return self.tok(x) + self.pos(pos), keep  # (B, L, width)

    def sequence(self, x: Tensor) -> Tensor:
        h, keep = self._embed(x)
        # a row of padding only would make every attention score -inf (NaN); let such rows attend freely
        mask = ~keep & keep.any(dim=1, keepdim=True)
        h = self.norm(self.encoder(h, src_key_padding_mask=mask))
        return torch.where(keep.unsqueeze(-1), h, torch.zeros_like(h))  # (B, L, width)

    def forward(self, x: Tensor) -> Tensor:
        return masked_mean(self.sequence(x), x != PAD_ID)  # (B, width)

    def sequence_mask(self, x: Tensor) -> Tensor:
        return x != PAD_ID  # (B, L): padding positions are not data

    def low_level(self, x: Tensor) -> Tensor:
        h, keep = self._embed(x)
        return masked_mean(h, keep)


@ENCODERS.register("text_transformer", tiny={"width": 8, "depth": 1, "heads": 2})
def text_transformer(
    modality: Modality,
    width: int = 64,
    depth: int = 2,
    heads: int = 4,
    ff_mult: int = 2,
    dropout: float = 0.1,
    vocab_size: int | None = None,
) -> TextTransformer:
    """Small Transformer over token ids (B, L), pad id 0, masked mean pooling.

    vocab_size: defaults to ``modality.extra["vocab_size"]``.
    """
    check_kind(modality, "text", "text_transformer")
    if len(modality.shape) != 1:
        raise ValueError(f"text modality {modality.name!r} must have shape (tokens,); got {modality.shape}")
    vocab = vocab_size if vocab_size is not None else modality.extra.get("vocab_size")
    if vocab is None:
        raise ValueError(
            f"encoder 'text_transformer': text modality {modality.name!r} has no extra['vocab_size']; "
            f"the dataset must declare it (ids run from 0 = padding to vocab_size - 1) or pass vocab_size="
        )
    return TextTransformer(int(vocab), modality.shape[0], width, depth, heads, ff_mult, dropout)
