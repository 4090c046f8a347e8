"""Cross-modal attention fusion, MulT style (Tsai et al., 2019): each modality attends to the others' tokens."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from polymodal.fusion.base import FUSIONS, Fusion, FusionOutput, check_fusion_args
from polymodal.fusion.masking import mean_over_present, zero_absent


def sinusoidal_positions(length: int, dim: int, device: torch.device, dtype: torch.dtype) -> Tensor:
    """Fixed sine/cosine position codes (length, dim) (Vaswani et al., 2017); any length, no parameters."""
    pos = torch.arange(length, device=device, dtype=torch.float32)[:, None]  # (T, 1)
    freq = torch.exp(torch.arange(0, dim, 2, device=device, dtype=torch.float32) * (-math.log(10000.0) / dim))
    codes = torch.zeros(length, dim, device=device, dtype=torch.float32)
    codes[:, 0::2] = torch.sin(pos * freq)
    codes[:, 1::2] = torch.cos(pos * freq[: dim // 2])
    return codes.to(dtype)


class CrossModalBlock(nn.Module):
    """Pre-norm transformer block whose queries come from the target and keys/values from the sources.

    x: (B, T_q, H) target tokens; source: (B, T_k, H); key_padding_mask: (B, T_k), True = ignore.
    Returns (B, T_q, H). With ``keep_weights`` set, the last call's attention weights, averaged over heads,
    are kept in ``weights`` (B, T_q, T_k) (``polymodal.alignment.attention_maps``).
    """

    keep_weights: bool = False
    weights: Tensor | None = None

    def __init__(self, hidden: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.norm_q, self.norm_kv, self.norm_ff = nn.LayerNorm(hidden), nn.LayerNorm(hidden), nn.LayerNorm(hidden)
        self.attn = nn.MultiheadAttention(hidden, heads, dropout=dropout, batch_first=True)
        self.ff = nn.Sequential(
            nn.Linear(hidden, 4 * hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(4 * hidden, hidden)
        )
        self.drop = nn.Dropout(dropout)

    def forward(self, x: Tensor, source: Tensor, key_padding_mask: Tensor) -> Tensor:
        kv = self.norm_kv(source)
        attended, w = self.attn(self.norm_q(x), kv, kv, key_padding_mask=key_padding_mask,
                                need_weights=self.keep_weights, average_attn_weights=True)
        self.weights = w if self.keep_weights else None
        x = x + self.drop(attended)
        return x + self.drop(self.ff(self.norm_ff(x)))


@FUSIONS.register("mult", tiny={"hidden": 8, "heads": 2, "layers": 1})
class MulTFusion(Fusion):
    """Cross-modal transformer: every target modality attends to the tokens of all other modalities.

    Inputs (``input_level = "sequence"``): features name -> (B, T_m, D_m), T_m may differ per
    modality. Each sequence is projected to ``hidden``, plus a learned modality embedding and fixed
    sinusoidal positions. For each target m, ``layers`` cross-modal blocks take queries from m's
    tokens and keys/values from the concatenated tokens of every other modality (MulT keeps these
    source tokens fixed across layers), preceded by one learned "null" token that is always
    attendable. A single-modality model falls back to self-attention over its own tokens. Each
    target's output is normalised and mean-pooled over time, the targets are averaged, and a linear
    head gives the logits. Output: fused logits (B, C). No per-modality logits (every target has
    already seen the others).
    Padding: positions that the encoder marks as padding (``sequence_mask``, e.g. a text's pad tokens)
    are excluded from the keys of every attention and from the pooling of their own modality, so adding
    padding to a row never changes its logits.
    Missing modality: its tokens are replaced by zeros with ``torch.where`` and the key padding mask
    excludes them from every attention; a present target whose sources are all absent attends to the
    null token only. An absent target is excluded from the final pooling. A row with nothing present
    pools to 0 and gets the head's bias.

    Attention maps: ``polymodal.alignment.attention_maps(model, batch, query, key)`` gives, per sample, the
    attention of one modality's tokens over another's (averaged over heads, padding masked).

    Design note: MulT runs one cross-modal transformer per ordered pair of modalities; here each
    target has one stack that attends jointly to all sources, so parameters grow linearly in M.
    """

    input_level = "sequence"
    uses_sequence_mask = True

    def __init__(
        self,
        in_dims: dict[str, int],
        num_outputs: int,
        hidden: int = 64,
        heads: int = 4,
        layers: int = 2,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        check_fusion_args("mult", in_dims, layers=layers)
        if hidden % heads != 0:
            raise ValueError(
                f"mult fusion: hidden={hidden} is not divisible by heads={heads}; "
                f"set fusion.hidden to a multiple of fusion.heads"
            )
        self.names = list(in_dims)
        self.in_dims = dict(in_dims)
        self.proj = nn.ModuleDict({m: nn.Linear(d, hidden) for m, d in in_dims.items()})
        self.modality_embedding = nn.Parameter(0.02 * torch.randn(len(in_dims), hidden))
        self.null_token = nn.Parameter(0.02 * torch.randn(hidden))
        self.blocks = nn.ModuleDict(
            {m: nn.ModuleList(CrossModalBlock(hidden, heads, dropout) for _ in range(layers)) for m in in_dims}
        )
        self.norm = nn.LayerNorm(hidden)
        self.head = nn.Linear(hidden, num_outputs)

    def _tokens(self, m: str, x: Tensor, present: Tensor) -> Tensor:
        """(B, T_m, D_m) -> (B, T_m, hidden): projection + modality embedding + positions."""
        if x.dim() != 3 or x.shape[2] != self.in_dims[m]:
            raise ValueError(
                f"mult fusion takes sequence features (B, T, {self.in_dims[m]}) for {m!r}; got shape "
                f"{tuple(x.shape)}. Use a sequence-capable encoder (one whose supports_sequence is True)"
            )
        x = zero_absent(x, present)
        t = self.proj[m](x) + self.modality_embedding[self.names.index(m)]
        return t + sinusoidal_positions(t.shape[1], t.shape[2], t.device, t.dtype)

    def forward(
        self, features: dict[str, Tensor], present: dict[str, Tensor], sequence_mask: dict[str, Tensor] | None = None
    ) -> FusionOutput:
        tokens = {m: self._tokens(m, features[m], present[m]) for m in self.names}
        valid = {}  # (B, T_m) True where a position is data of a present modality
        for m in self.names:
            b, t = tokens[m].shape[:2]
            keep = present[m][:, None].expand(b, t)
            mask = (sequence_mask or {}).get(m)
            if mask is not None:
                if mask.shape != (b, t):
                    raise ValueError(f"mult fusion: sequence mask of {m!r} has shape {tuple(mask.shape)}; expected ({b}, {t})")
                keep = keep & mask.to(torch.bool)
            valid[m] = keep
        summaries = []
        for m in self.names:
            x = tokens[m]  # (B, T_m, H)
            sources = [n for n in self.names if n != m] or [m]  # self-attention with one modality
            b = x.shape[0]
            kv = torch.cat([self.null_token.expand(b, 1, -1)] + [tokens[n] for n in sources], dim=1)
            ignore = torch.cat(
                [torch.zeros(b, 1, dtype=torch.bool, device=x.device)] + [~valid[n] for n in sources], dim=1
            )  # (B, 1 + sum T_n), True = not attendable
            for block in self.blocks[m]:
                x = block(x, kv, ignore)
            w = valid[m].to(x.dtype)[..., None]  # pool the data positions only (all of them when none is)
            w = torch.where(w.sum(dim=1, keepdim=True) > 0, w, torch.ones_like(w))
            summaries.append((self.norm(x) * w).sum(dim=1) / w.sum(dim=1))  # (B, H)
        pooled = mean_over_present(summaries, [present[m] for m in self.names])  # absent targets left out
        return FusionOutput(self.head(pooled))  # (B, C)
