"""CTC emissions for the ``sequence`` task (docs/align_translate.md, "Speech and handwriting to text").

One modality (``source``, default the first) gives the frames: its sequence features (B, T, D) (an audio
encoder's time steps, an image encoder's columns with ``tokens=columns``) go through a bidirectional GRU
(``layers`` of them; 0: none) and a linear layer to the K tokens and the CTC blank. Each other modality,
when present, adds its pooled features (a linear map of their mean over positions) to every frame as
context: to transcribe one modality alone, give the model that modality alone (``digitstrings``:
``data.options.modalities=[audio]``).

Outputs: the per-frame emissions (B, T, K + 2) in the extras under ``sequence.emissions`` (the K + 1 logits,
then 1 on the frames that exist: the source's data positions of a row where the source is present; see
:mod:`polymodal.tasks.sequence`), and as ``logits`` (B, K) the log-sum-exp over the existing frames of each
token's logit (how strongly the token occurs somewhere in the string; 0 on a row without frames).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from polymodal.fusion.base import FUSIONS, Fusion, FusionOutput, check_fusion_args
from polymodal.fusion.masking import zero_absent
from polymodal.tasks.sequence import EXTRA


@FUSIONS.register("ctc", tiny={"hidden": 8})
class CTCFusion(Fusion):
    """Per-frame CTC emissions of one modality's sequence features (BiGRU + linear), the other modalities'
    pooled features as context; for the sequence task (speech or handwriting to text)."""

    input_level = "sequence"
    uses_sequence_mask = True

    def __init__(self, in_dims: dict[str, int], num_outputs: int, source: str | None = None, hidden: int = 128,
                 layers: int = 1, dropout: float = 0.1) -> None:
        super().__init__()
        check_fusion_args("ctc", in_dims, hidden=hidden)
        if isinstance(layers, bool) or not isinstance(layers, int) or layers < 0:
            raise ValueError(f"ctc fusion layers={layers!r}; expected an integer >= 0 (set model.fusion_args.layers)")
        names = list(in_dims)
        self.source = names[0] if source is None else source
        if self.source not in in_dims:
            raise ValueError(f"ctc fusion source={source!r} is not a modality of the dataset ({names}); set "
                             "model.fusion_args.source to the modality whose frames are transcribed")
        self.others = [m for m in names if m != self.source]
        self.in_dims = dict(in_dims)
        self.proj = nn.Linear(in_dims[self.source], hidden)
        self.context = nn.ModuleDict({m: nn.Linear(in_dims[m], hidden, bias=False) for m in self.others})
        self.rnn = nn.GRU(hidden, hidden, num_layers=layers, batch_first=True, bidirectional=True,
                          dropout=dropout if layers > 1 else 0.0) if layers else None
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(2 * hidden if layers else hidden, num_outputs + 1)  # the K tokens, then the blank

    def _features(self, m: str, x: Tensor) -> Tensor:
        if x.dim() != 3 or x.shape[2] != self.in_dims[m]:
            raise ValueError(f"ctc fusion takes sequence features (B, T, {self.in_dims[m]}) for {m!r}; got shape "
                             f"{tuple(x.shape)}. Use a sequence-capable encoder (one whose supports_sequence is True)")
        return x

    def forward(self, features: dict[str, Tensor], present: dict[str, Tensor],
                sequence_mask: dict[str, Tensor] | None = None) -> FusionOutput:
        x = zero_absent(self._features(self.source, features[self.source]), present[self.source])
        b, t = x.shape[:2]
        frames = present[self.source][:, None].expand(b, t)
        mask = (sequence_mask or {}).get(self.source)
        if mask is not None:
            if mask.shape != (b, t):
                raise ValueError(f"ctc fusion: sequence mask of {self.source!r} has shape {tuple(mask.shape)}; "
                                 f"expected ({b}, {t})")
            frames = frames & mask.to(torch.bool)
        h = self.proj(x)
        for m in self.others:
            f = self._features(m, features[m])
            ok = (sequence_mask or {}).get(m)
            w = torch.ones(f.shape[:2], dtype=f.dtype, device=f.device) if ok is None else ok.to(f.dtype)
            w = torch.where(w.sum(1, keepdim=True) > 0, w, torch.ones_like(w))
            pooled = (zero_absent(f, present[m]) * w[..., None]).sum(1) / w.sum(1, keepdim=True)
            h = h + zero_absent(self.context[m](pooled), present[m])[:, None, :]
        h = torch.relu(h)
        if self.rnn is not None:
            h = self.rnn(h)[0]
        logits = self.head(self.drop(h))  # (B, T, K + 1)
        emissions = torch.cat([logits, frames[..., None].to(logits.dtype)], dim=-1)
        tokens = logits[..., :-1].masked_fill(~frames[..., None], -1e4).logsumexp(1)
        pooled = torch.where(frames.any(1, keepdim=True), tokens, torch.zeros_like(tokens))
        return FusionOutput(pooled, extras={EXTRA: emissions})


__all__ = ["CTCFusion"]
