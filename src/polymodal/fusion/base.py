"""The fusion interface and the fusion registry.

A fusion is an ``nn.Module`` built as ``factory(in_dims: dict[str, int], num_outputs: int, **kw)``
(``in_dims`` in the model's fixed modality order) whose forward takes

    features: dict[str, Tensor]   name -> (B, D_m), or (B, T_m, D_m) when ``input_level == "sequence"``,
                                  or (B, L_m) shallow features when ``input_level == "low_level"``
    present:  dict[str, BoolTensor(B)]

and returns a :class:`FusionOutput`. Absent slots hold zeros and must never be read as data:
combine with ``torch.where`` on the mask, never by multiplying with it; ``polymodal.fusion.masking``
has the helpers that do (``zero_absent``, ``presence_mask``, ``masked_softmax``, ``masked_sum``,
``mean_over_present``). A sample with no modality present gets finite logits (the fusion's bias)
rather than NaN.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Literal

from torch import Tensor, nn

from polymodal.registry import Registry


@dataclass
class FusionOutput:
    logits: Tensor  # (B, C) fused
    per_modality: dict[str, Tensor] | None = None  # name -> (B, C) unimodal logits, if the fusion has them
    # name -> (B, ...) per-sample outputs beside the logits (polymodal.tasks.outputs: a concept fusion's
    # "concept.<modality>.<name>" probabilities, an alignment map, ...)
    extras: dict[str, Tensor] | None = None


class Fusion(nn.Module, ABC):
    input_level: Literal["pooled", "sequence", "low_level"] = "pooled"
    yields_per_modality: bool = False

    @abstractmethod
    def forward(self, features: dict[str, Tensor], present: dict[str, Tensor]) -> FusionOutput:
        """Fused (and where available per-modality) logits (B, C)."""


def check_fusion_args(fusion: str, in_dims: dict[str, int], **counts: int) -> None:
    """The checks every fusion factory starts with: at least one modality in ``in_dims``, and each count
    given by keyword (``rank``, ``layers``, ...) an integer >= 1; the error names the configuration key."""
    if not in_dims:
        raise ValueError(f"{fusion} fusion needs at least one modality in in_dims; got none")
    for key, value in counts.items():
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{fusion} fusion {key}={value!r}; expected an integer >= 1 (set model.fusion_args.{key})")


FUSIONS: Registry[Fusion] = Registry("fusion")
