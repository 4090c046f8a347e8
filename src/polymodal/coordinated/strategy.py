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
    init_scale, init_bias: the objective's starting log-scale (clip, siglip) and bias (siglip; a number or
              "data": set from the first batch so that an average negative pair starts at odds
              1/(N-1), see docs/coordinated.md); None keeps the objective's default

Deep CCA's canonical directions are refitted on the full training embeddings of the current towers
before every evaluation (:meth:`ContrastiveStrategy.prepare_evaluation`), so the selected checkpoint
is evaluated, and stored, with the linear CCA of its own training embeddings.

Labels are never part of the objective: a positive is a row's own pair, every other row a negative.
The objective's parameters (temperature, bias) or statistics (DCCA) are attached to the model as
``model.objective`` in ``setup``, so they are optimised, checkpointed and restored with it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Literal

import numpy as np
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
        init_scale: float | None = None,
        init_bias: float | str | None = None,
    ) -> None:
        if loss not in LOSSES:
            raise ValueError(f"strategy.args.loss={loss!r}; expected one of {LOSSES}")
        if pairing not in ("anchor", "all_pairs"):
            raise ValueError(f"strategy.args.pairing={pairing!r}; expected 'anchor' or 'all_pairs'")
        self.loss, self.pairing, self.anchor, self.gather = loss, pairing, anchor, bool(gather)
        self.freeze = tuple(freeze)
        self.train_classes = None if train_classes is None else [int(c) for c in train_classes]
        self.max_scale, self.k, self.r1, self.r2 = float(max_scale), k, float(r1), float(r2)
        if init_bias is not None and loss != "siglip":
            raise ValueError(f"strategy.args.init_bias applies to loss=siglip only (the only objective with a bias); "
                             f"got loss={loss!r}")
        if init_scale is not None and loss == "dcca":
            raise ValueError("strategy.args.init_scale applies to loss=clip or siglip (deep CCA has no temperature)")
        if isinstance(init_bias, str) and init_bias != "data":
            raise ValueError(f"strategy.args.init_bias={init_bias!r}; expected a number or 'data'")
        self.init_scale = None if init_scale is None else float(init_scale)
        self.init_bias = init_bias if init_bias is None or isinstance(init_bias, str) else float(init_bias)
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
            if self.init_scale is not None:
                kw["init_scale"] = self.init_scale
            if self.init_bias is not None:
                kw["init_bias"] = self.init_bias
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

    @torch.no_grad()
    def prepare_evaluation(self, model: MultimodalModel, train_batches: Callable[[], Iterable[Batch]],
                           world_size: int = 1, val_batches: Callable[[], Iterable[Batch]] | None = None) -> None:
        """Deep CCA: refit the canonical directions on the full training embeddings of the current towers
        (rows where both modalities are present; every process's rows when distributed)."""
        core = unwrap(model)
        objective = getattr(core, "objective", None)
        if not isinstance(objective, DCCALoss) or not self.pairs:
            return
        a, b = self.pairs[0]
        was_training = model.training
        model.eval()
        views: list[list[Tensor]] = [[], []]
        index: list[Tensor] = []
        try:
            for batch in train_batches():
                out = model(batch)
                rows = batch.present[a] & batch.present[b]
                views[0].append(out.per_modality[a][rows].double())
                views[1].append(out.per_modality[b][rows].double())
                index.append(batch.index[rows])
        finally:
            model.train(was_training)
        h1, h2, idx = torch.cat(views[0]), torch.cat(views[1]), torch.cat(index)
        if world_size > 1:  # every rank's shard; a padded sampler repeats rows: keep each index once
            h1, h2, idx = gather_no_grad(h1), gather_no_grad(h2), gather_no_grad(idx)
            _, first = np.unique(idx.cpu().numpy(), return_index=True)
            keep = torch.as_tensor(first, device=h1.device)
            h1, h2 = h1[keep], h2[keep]
        if h1.shape[0] < 2:
            raise ValueError(f"deep CCA needs at least 2 training rows with both {a!r} and {b!r} present to fit its "
                             f"canonical directions; the training split has {h1.shape[0]}")
        objective.fit(h1, h2)

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
