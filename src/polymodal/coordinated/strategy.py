"""The ``contrastive`` strategy: towers trained so that paired embeddings agree (docs/coordinated.md).

Every modality keeps its encoder; the ``coordinated`` fusion holds one projection head per modality (the
towers' heads, :mod:`polymodal.coordinated.towers`), and the strategy trains encoders and heads with one
objective over modality pairs:

    loss:     clip (symmetric InfoNCE, learnable temperature clamped at 100), siglip (pairwise sigmoid,
              learnable temperature and bias), dcca (deep CCA, top-k canonical correlations; two
              modalities only, embeddings are mapped to the canonical space at test time)
    pairing:  anchor (every modality against ``anchor``, default the first: ImageBind-style) or all_pairs
    gather:   in-batch negatives from every process of a distributed run (gradient-preserving all_gather)
    freeze:   modalities whose encoder is locked (no gradient, eval mode): locked-image tuning trains only
              the other towers and the locked tower's projection head
    train_classes: train only on rows of these labels (the others are dropped from the batch before the
              forward pass); the unseen-class protocol uses dataset option ``classes`` instead, which also
              keeps them out of validation

Labels are never part of the objective: a positive is a row's own pair, every other row a negative.
The objective's parameters (temperature, bias) or statistics (DCCA) are attached to the model as
``model.objective`` in ``setup``, so they are optimised, checkpointed and restored with it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from polymodal.coordinated.distributed import gather_no_grad, gather_with_grad
from polymodal.coordinated.losses import DCCALoss, build_objective, modality_pairs, pairwise_objective
from polymodal.coordinated.towers import CoordinatedHeads, freeze_module
from polymodal.data.batch import Batch
from polymodal.models import ModelOutput, MultimodalModel
from polymodal.strategies.base import (
    STRATEGIES,
    StepContext,
    Strategy,
    grad_norm,
    unwrap,
)
from polymodal.tasks import EMBEDDINGS, SINGLE_LABEL

log = logging.getLogger(__name__)
LOSSES = ("clip", "siglip", "dcca")


@STRATEGIES.register("contrastive", tiny={})
class ContrastiveStrategy(Strategy):
    """Coordinated towers trained with CLIP, SigLIP or deep CCA over anchor or all modality pairs."""

    name = "contrastive"
    default_fusion = "coordinated"
    provides = EMBEDDINGS  # one embedding per modality, scored by a task that scores embeddings (contrastive)
    requires = frozenset({SINGLE_LABEL})  # class ids define relevance (and the concept-free prototypes)

    def __init__(
        self,
        loss: Literal["clip", "siglip", "dcca"] = "clip",
        pairing: Literal["anchor", "all_pairs"] = "anchor",
        anchor: str | None = None,
        gather: bool = True,
        freeze: Sequence[str] = (),
        train_classes: Sequence[int] | None = None,
        max_scale: float = 100.0,
        k: int | None = None,
        r1: float = 1e-3,
        r2: float = 1e-3,
    ) -> None:
        if loss not in LOSSES:
            raise ValueError(f"strategy.args.loss={loss!r}; expected one of {LOSSES}")
        if pairing not in ("anchor", "all_pairs"):
            raise ValueError(f"strategy.args.pairing={pairing!r}; expected 'anchor' or 'all_pairs'")
        self.loss, self.pairing, self.anchor, self.gather = loss, pairing, anchor, bool(gather)
        self.freeze = tuple(freeze)
        self.train_classes = None if train_classes is None else [int(c) for c in train_classes]
        self.max_scale, self.k, self.r1, self.r2 = float(max_scale), k, float(r1), float(r2)
        self.pairs: list[tuple[str, str]] = []

    def setup(self, model: MultimodalModel, train_dataset: Any) -> None:
        self.bind_task(train_dataset)
        if not isinstance(model.fusion, CoordinatedHeads):
            raise ValueError(f"strategy 'contrastive' needs model.fusion=coordinated (the towers' projection heads); "
                             f"got {type(model.fusion).__name__}")
        self.pairs = modality_pairs(model.modalities, self.pairing, self.anchor)
        unknown = [m for m in self.freeze if m not in model.modalities]
        if unknown:
            raise ValueError(f"strategy.args.freeze names {unknown}; the model's modalities are {model.modalities}")
        if self.loss == "dcca" and len(model.modalities) != 2:
            raise ValueError(f"strategy.args.loss=dcca works on two modalities (its canonical projections are "
                             f"defined per pair); the model has {model.modalities}: use clip or siglip")
        if "objective" not in model._modules:
            kw: dict[str, Any] = {}
            if self.loss == "clip":
                kw = {"max_scale": self.max_scale}
            elif self.loss == "dcca":
                kw = {"k": self.k, "r1": self.r1, "r2": self.r2}
            model.add_module("objective", build_objective(self.loss, model.fusion.dim, **kw))
        for m in self.freeze:
            freeze_module(model.encoders[m])

    def training_step(self, model: MultimodalModel, batch: Batch, ctx: StepContext) -> dict[str, Tensor | float]:
        core = unwrap(model)
        if self.train_classes is not None:
            keep = torch.isin(batch.label, torch.tensor(self.train_classes, device=batch.label.device))
            if int(keep.sum()) >= 2:
                batch = batch if bool(keep.all()) else batch.select(keep)
            else:  # no pair left to contrast: every slot absent, a zero loss that still reaches the heads
                batch = Batch(batch.inputs, {m: torch.zeros_like(p) for m, p in batch.present.items()},
                              batch.label, batch.index)
        out = model(batch)
        emb, present = dict(out.per_modality or {}), dict(batch.present)
        if self.gather and ctx.world_size > 1:
            emb = {m: gather_with_grad(e) for m, e in emb.items()}
            present = {m: gather_no_grad(p) for m, p in present.items()}
        loss, logs = pairwise_objective(emb, self.pairs, core.objective, present)
        ctx.backward(loss)
        result: dict[str, Tensor | float] = {f"loss/{k}": v for k, v in logs.items()}
        for m in core.modalities:
            result[f"grad_norm/{m}"] = grad_norm(core.encoders[m])
        ctx.step()
        core.objective.clamp_()
        if hasattr(core.objective, "scale"):
            result["scale"] = core.objective.scale
        result["loss"] = loss.detach()
        return result

    def predict(self, model: MultimodalModel, batch: Batch) -> ModelOutput:
        """The towers' embeddings; under DCCA mapped to the top-k canonical coordinates and re-normalised."""
        out = model(batch)
        core = unwrap(model)
        objective = getattr(core, "objective", None)
        if not isinstance(objective, DCCALoss) or not out.per_modality or not self.pairs:
            return out
        per: dict[str, Tensor] = {}
        for view, m in enumerate(self.pairs[0]):
            z = F.normalize(objective.project(view, out.per_modality[m]), dim=-1)
            per[m] = torch.where(batch.present[m].view(-1, 1), z, torch.zeros_like(z))
        fused = F.normalize(sum(per.values()), dim=-1)  # type: ignore[arg-type]
        return ModelOutput(fused, per, out.features, out.extras)


__all__ = ["LOSSES", "ContrastiveStrategy"]
