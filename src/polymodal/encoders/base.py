"""The encoder interface and the encoder registry.

An encoder maps ONE modality's batch tensor to features::

    forward(x)   -> (B, D)        pooled features, D = out_dim
    sequence(x)  -> (B, T, D)     only if supports_sequence (audio over time, text, time series, video)
    sequence_mask(x) -> (B, T) bool or None: which positions of ``sequence(x)`` are data (False =
                                  padding); None when every position is (fusions that attend or pool
                                  over positions must ignore the padding ones)
    low_level(x) -> (B, L)        shallow features (front end, lightly pooled), L = low_level_dim;
                                  what early fusion concatenates before its shared encoder

Registered factories have the signature ``factory(modality: Modality, width: int = ..., **kw)``
and every entry carries a ``tiny`` kwargs dict (width 8 or so) for tests.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import torch
from torch import Tensor, nn

from polymodal.data.schema import Modality
from polymodal.registry import Registry


class Encoder(nn.Module, ABC):
    out_dim: int
    low_level_dim: int
    supports_sequence: bool = False
    kind: str = ""  # modality kind this encoder accepts

    def param_dtype(self) -> torch.dtype:
        """Floating dtype of the encoder's weights (float32, or float64 / bfloat16 under Fabric's *-true precision)."""
        for p in self.parameters():
            if p.is_floating_point():
                return p.dtype
        return torch.float32

    def sequence_mask(self, x: Tensor) -> Tensor | None:
        """(B, T) bool, True where ``sequence(x)`` holds data; None: every position does."""
        return None

    def sequence(self, x: Tensor) -> Tensor:
        raise TypeError(
            f"{type(self).__name__} gives no (B, T, D) features; pick a sequence-capable encoder "
            f"for fusions that attend over time"
        )

    @abstractmethod
    def low_level(self, x: Tensor) -> Tensor:
        """(B, ...) -> (B, low_level_dim) shallow features."""


ENCODERS: Registry[Encoder] = Registry("encoder")

# default encoder name per modality kind (the bench profile's choices)
DEFAULT_ENCODER: dict[str, str] = {
    "audio": "audio_cnn",
    "image": "image_cnn",
    "text": "text_transformer",
    "tabular": "tabular_mlp",
    "timeseries": "timeseries_cnn",
    "video": "video_frames",
}


def default_encoder_spec(modality: Modality) -> dict[str, Any]:
    """The encoder a modality gets when a config names none: ``{"name": ..., **kwargs}``.

    A dataset may recommend one for its modality in ``modality.extra["encoder"]`` (e.g. UTD-MHAD's depth
    video: ``video_r2plus1d`` with a stride-4 stem, far cheaper than running a 2-D CNN on every frame);
    otherwise the default of the modality's kind (``DEFAULT_ENCODER``). A config's ``model.encoders.<name>``
    without a ``name`` key overrides the recommended keyword arguments; one with a ``name`` replaces it.
    """
    hint = modality.extra.get("encoder")
    if hint is None:
        return {"name": DEFAULT_ENCODER[modality.kind]}
    if not isinstance(hint, dict) or not isinstance(hint.get("name"), str):
        raise ValueError(f"modality {modality.name!r}: extra['encoder'] = {hint!r}; expected a mapping with the "
                         "encoder's registry name under 'name' and its keyword arguments")
    return dict(hint)


def build_encoder(name: str, modality: Modality, **kwargs) -> Encoder:
    entry = ENCODERS.get(name)
    enc = entry.factory(modality=modality, **kwargs)
    if enc.kind and enc.kind != modality.kind:
        raise ValueError(
            f"encoder {name!r} takes {enc.kind} input but modality {modality.name!r} is {modality.kind}; "
            f"choose one of the {modality.kind} encoders (`polymodal list encoders`)"
        )
    return enc


def encoder_kind(name: str) -> str:
    """Modality kind an encoder takes; encoder names start with their kind (``audio_cnn`` -> audio)."""
    ENCODERS.get(name)  # unknown names raise with suggestions
    for kind in sorted(DEFAULT_ENCODER, key=len, reverse=True):
        if name.startswith(kind + "_"):
            return kind
    raise ValueError(f"encoder {name!r} does not start with a modality kind ({', '.join(DEFAULT_ENCODER)})")
