"""Towers: one encoder per modality plus a projection head into a shared, L2-normalised space.

A tower is any registered encoder (``polymodal list encoders``) followed by a :class:`ProjectionHead`
(``linear``, or ``mlp``: Linear - GELU - Linear) to the shared width ``dim``, whose output rows are
scaled to unit L2 norm, so that inner products are cosine similarities (docs/coordinated.md).

Inside a training run the encoders are the model's (``MultimodalModel.encoders``) and the heads live
in the ``coordinated`` fusion (:class:`CoordinatedHeads`), which the engine builds like any other
fusion; :func:`build_tower` builds a stand-alone :class:`Tower` for use outside the engine.

Pretrained towers (``image_efficientnet_lite0``, ``text_minilm``) are frozen by their own ``freeze``
option (locked-image tuning: only the projection trains) or fine-tuned with ``freeze: false``;
:func:`freeze_module` locks any other encoder (no gradient, and kept in eval mode so that BatchNorm
statistics do not move either).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from polymodal.data.schema import Modality
from polymodal.encoders.base import Encoder, build_encoder, default_encoder_spec
from polymodal.fusion.base import FUSIONS, Fusion, FusionOutput

HEADS = ("linear", "mlp")


class ProjectionHead(nn.Module):
    """``in_dim -> dim``: one linear map, or an MLP (Linear(in, hidden) - GELU - Linear(hidden, dim))."""

    def __init__(self, in_dim: int, dim: int, kind: str = "linear", hidden: int | None = None) -> None:
        super().__init__()
        if kind not in HEADS:
            raise ValueError(f"projection head {kind!r}; expected one of {HEADS}")
        if in_dim < 1 or dim < 1:
            raise ValueError(f"projection head widths must be positive; got in_dim={in_dim}, dim={dim}")
        self.kind = kind
        if kind == "linear":
            self.net: nn.Module = nn.Linear(in_dim, dim)
        else:
            h = hidden or max(in_dim, dim)
            self.net = nn.Sequential(nn.Linear(in_dim, h), nn.GELU(), nn.Linear(h, dim))

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


def freeze_module(module: nn.Module) -> None:
    """No gradient for ``module``'s parameters and eval mode from now on (``train()`` keeps it in eval)."""
    module.requires_grad_(False)
    module.eval()

    def _stay_eval(self: nn.Module, mode: bool = True) -> nn.Module:
        return nn.Module.train(self, False)

    module.train = _stay_eval.__get__(module)  # type: ignore[method-assign]


class Tower(nn.Module):
    """Encoder + projection head; ``forward(x) -> (B, dim)`` rows of unit L2 norm."""

    def __init__(self, encoder: Encoder, head: ProjectionHead) -> None:
        super().__init__()
        self.encoder, self.head = encoder, head

    def forward(self, x: Tensor) -> Tensor:
        return F.normalize(self.head(self.encoder(x)), dim=-1)


def build_tower(
    modality: Modality,
    encoder: str | None = None,
    dim: int = 64,
    head: str = "linear",
    hidden: int | None = None,
    freeze: bool | None = None,
    **encoder_args: Any,
) -> Tower:
    """A stand-alone tower for ``modality``: the registered ``encoder`` (default: the dataset's recommended
    encoder for the modality, else the kind's default) built with ``encoder_args``, a ``head`` projection
    to ``dim``.

    ``freeze``: None keeps the encoder's own default (pretrained towers are frozen: locked tuning);
    True / False is handed to an encoder that has a ``freeze`` option (False fine-tunes a pretrained
    tower), and True locks any other encoder with :func:`freeze_module`.
    """
    import inspect

    import polymodal.encoders  # noqa: F401  (fills ENCODERS)
    from polymodal.encoders.base import ENCODERS

    if encoder is None:  # the dataset's recommendation or the kind's default, the caller's kwargs on top
        spec = default_encoder_spec(modality)
        encoder, encoder_args = spec.pop("name"), {**spec, **encoder_args}
    name = encoder
    own_option = "freeze" in inspect.signature(ENCODERS.get(name).factory).parameters
    if own_option and freeze is not None:
        encoder_args = {**encoder_args, "freeze": freeze}
    enc = build_encoder(name, modality, **encoder_args)
    if freeze and not own_option:
        freeze_module(enc)
    return Tower(enc, ProjectionHead(enc.out_dim, dim, head, hidden))


@FUSIONS.register("coordinated", tiny={})
class CoordinatedHeads(Fusion):
    """Projection heads of coordinated towers: each modality's features -> (B, dim), L2-normalised.

    Not a fusion in the usual sense: ``per_modality`` holds each modality's embedding (zeros on the
    rows where it is absent) and ``logits`` the normalised mean of the present embeddings (the
    sample's joint embedding); the ``contrastive`` strategy and task read them (docs/coordinated.md).
    ``dim`` defaults to ``num_outputs`` (set it in ``model.fusion_args.dim``); ``head`` is ``linear``
    or ``mlp`` (``hidden`` units).
    """

    yields_per_modality = True

    def __init__(self, in_dims: dict[str, int], num_outputs: int, dim: int | None = None, head: str = "linear",
                 hidden: int | None = None) -> None:
        super().__init__()
        self.dim = int(dim or num_outputs)
        self.heads = nn.ModuleDict({m: ProjectionHead(d, self.dim, head, hidden) for m, d in in_dims.items()})

    def embed(self, name: str, features: Tensor) -> Tensor:
        """(B, dim) unit-norm embedding of one modality's encoder features."""
        return F.normalize(self.heads[name](features), dim=-1)

    def forward(self, features: dict[str, Tensor], present: dict[str, Tensor]) -> FusionOutput:
        per: dict[str, Tensor] = {}
        total: Tensor | None = None
        for m, x in features.items():
            rows = present[m].view(-1, 1)
            clean = torch.where(rows, x, torch.zeros_like(x))  # absent slots are never read
            e = torch.where(rows, self.embed(m, clean), torch.zeros(1, self.dim, dtype=x.dtype, device=x.device))
            per[m] = e
            total = e if total is None else total + e
        if total is None:
            raise ValueError("the coordinated fusion got no modality features; the model needs at least one modality")
        return FusionOutput(F.normalize(total, dim=-1), per)


__all__ = ["HEADS", "CoordinatedHeads", "ProjectionHead", "Tower", "build_tower", "freeze_module"]
