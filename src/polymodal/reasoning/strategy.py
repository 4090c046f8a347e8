"""The ``cbm`` strategy: concept bottleneck training in Koh et al.'s (ICML 2020) three modes.

    joint        L = CE(y, f(g(x))) + concept_weight * sum_c CE(c, g_c(x))   (concept term only where
                 labelled; without concept labels: the label loss alone, end to end)
    independent  g learns the concepts alone (concept loss); the head f learns the label from the TRUE
                 concepts (one-hot), on the rows whose present concepts are all labelled; at test f reads
                 the predicted concepts. The two losses touch disjoint
                 parameters, so one run equals training g alone and then f alone (tested).
    sequential   epochs [0, concept_epochs): g learns the concepts alone; then the head learns the label
                 from g's predicted concepts with g frozen: no gradient reaches it, and it runs in eval
                 mode (no dropout; BatchNorm uses and keeps its running statistics)

g = the encoders plus the fusion's concept heads; f = the fusion's ``reason``. Works with every
:class:`~polymodal.reasoning.fusion.ConceptFusion` (``concept_bottleneck``, ``program``, ``relation``).

Concept labels are looked up by ``batch.index`` in the training dataset's own ``concept_labels`` (the
AV-digits variants carry each modality's digit) or, for a manifest, in the columns named by
``concept_columns`` (``{"audio.digit": "digit_audio"}``; -1 / empty = unknown). independent and
sequential need them; joint uses them when there are any (``concept_weight=0`` ignores them).
"""

from __future__ import annotations

import math
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from polymodal.data.batch import Batch, present_any
from polymodal.models import MultimodalModel
from polymodal.reasoning.concepts import concept_labels_for
from polymodal.reasoning.fusion import ConceptFusion
from polymodal.strategies.base import STRATEGIES, StepContext, Strategy, unwrap
from polymodal.strategies.joint import encoder_grad_norms, masked_cross_entropy

MODES = ("joint", "independent", "sequential")


def concept_fusion(model: torch.nn.Module, who: str = "strategy 'cbm'") -> ConceptFusion:
    """The model's fusion if it reasons through concepts, else a ValueError naming the fix."""
    fusion = unwrap(model).fusion
    if not isinstance(fusion, ConceptFusion):
        raise ValueError(
            f"{who} needs a fusion that reasons through concepts (model.fusion=concept_bottleneck, program or "
            f"relation); the model's fusion is {type(fusion).__name__}"
        )
    return fusion


def concept_loss(
    logits: dict[str, Tensor], labels: dict[str, Tensor], present: dict[str, Tensor], modality_of: dict[str, str]
) -> Tensor:
    """Sum over concepts of the mean cross-entropy on the rows where the modality is present and labelled."""
    total: Tensor | None = None
    for key, z in logits.items():
        if key not in labels:
            continue
        y = labels[key]
        rows = present[modality_of[key]] & (y >= 0)
        term = masked_cross_entropy(z, y.clamp_min(0), rows)
        total = term if total is None else total + term
    if total is None:
        return sum(z.sum() for z in logits.values()) * 0.0
    return total


def balance_loss(probs: dict[str, Tensor], present: dict[str, Tensor], modality_of: dict[str, str]) -> Tensor:
    """Sum over concepts of log V - H(mean predicted distribution over the batch's present rows): zero when
    the batch uses every value equally often on average, log V when every row predicts the same value."""
    total: Tensor | None = None
    for key, p in probs.items():
        rows = present[modality_of[key]]
        if not bool(rows.any()):
            continue
        mean = p[rows].mean(0)
        term = math.log(p.shape[1]) + (mean * mean.clamp_min(1e-12).log()).sum()
        total = term if total is None else total + term
    if total is None:
        return sum(p.sum() for p in probs.values()) * 0.0
    return total


@STRATEGIES.register("cbm", tiny={"mode": "joint"})
class ConceptBottleneckStrategy(Strategy):
    """Concept bottleneck training (Koh et al., 2020): joint, independent or sequential, with concept labels.

    mode:            "joint" (default), "independent" or "sequential" (see the module docstring)
    concept_weight:  lambda of the joint mode's concept loss (the paper sweeps 0.001-1; default 1.0)
    concept_epochs:  sequential mode: epochs of concept-only training before the head is trained
    balance:         weight of :func:`balance_loss` (joint mode): keeps each concept's batch-mean
                     prediction near uniform, so that no modality's concept collapses to one value
                     while the other modality memorises the labels (label-only training; default 0)
    concept_columns: manifest column per concept (``{"audio.digit": "digit_audio"}``); default: the
                     dataset's own concept labels
    """

    name = "cbm"
    default_fusion = "concept_bottleneck"

    def __init__(
        self,
        mode: Literal["joint", "independent", "sequential"] = "joint",
        concept_weight: float = 1.0,
        concept_epochs: int = 10,
        concept_columns: dict[str, str] | None = None,
        balance: float = 0.0,
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"strategy.args.mode={mode!r}; expected one of {MODES}")
        if not isinstance(concept_weight, int | float) or concept_weight < 0:
            raise ValueError(f"strategy.args.concept_weight={concept_weight!r}; expected a number >= 0")
        if not isinstance(concept_epochs, int) or concept_epochs < 0:
            raise ValueError(f"strategy.args.concept_epochs={concept_epochs!r}; expected an integer >= 0")
        self.mode, self.concept_weight, self.concept_epochs = mode, float(concept_weight), concept_epochs
        if not isinstance(balance, int | float) or balance < 0:
            raise ValueError(f"strategy.args.balance={balance!r}; expected a number >= 0")
        self.balance = float(balance)
        self.concept_columns = dict(concept_columns or {})
        self.labels: dict[str, Tensor] | None = None

    def setup(self, model: MultimodalModel, train_dataset: Any) -> None:
        self.bind_task(train_dataset)
        fusion = concept_fusion(model)
        self.labels = None if train_dataset is None else concept_labels_for(train_dataset, fusion.concepts, self.concept_columns)
        if self.mode != "joint" and not self.labels:
            raise ValueError(
                f"strategy.args.mode={self.mode!r} needs concept labels, but the training dataset has none for the "
                f"model's concepts {fusion.keys}; give strategy.args.concept_columns (manifest) or use mode=joint"
            )

    def _batch_labels(self, batch: Batch) -> dict[str, Tensor]:
        if not self.labels:
            return {}
        idx = batch.index.cpu()
        return {k: v[idx].to(batch.label.device) for k, v in self.labels.items()}

    def training_step(self, model: MultimodalModel, batch: Batch, ctx: StepContext) -> dict[str, Tensor | float]:
        core = unwrap(model)
        fusion = concept_fusion(core)
        present = {m: batch.present[m] for m in core.modalities}
        phase_concepts = self.mode == "sequential" and ctx.epoch < self.concept_epochs
        frozen = self.mode == "sequential" and not phase_concepts
        if frozen:  # g is fixed: no dropout, no BatchNorm statistics updated (the loop sets train mode each epoch)
            core.encoders.eval()
            fusion.heads.eval()
        with torch.set_grad_enabled(not frozen):
            feats = {m: core.encode(m, batch.inputs[m], present[m]) for m in core.modalities}
            logits_c = fusion.concept_logits(feats, present)
        labels = self._batch_labels(batch)
        modality_of = {c.key: c.modality for c in fusion.concepts}
        rows = present_any(present)
        logs: dict[str, Tensor | float] = {}
        if self.mode == "joint":
            probs = {k: z.softmax(-1) for k, z in logits_c.items()}
            loss_y = self.task.loss(fusion.label_logits(logits_c, present), batch.label, rows=rows)
            loss_c = concept_loss(logits_c, labels, present, modality_of)
            loss = loss_y + self.concept_weight * loss_c if self.concept_weight > 0 else loss_y
            if self.balance > 0:
                loss_b = balance_loss(probs, present, modality_of)
                loss = loss + self.balance * loss_b
                logs["loss_balance"] = loss_b.detach()
        elif self.mode == "independent":
            probs, labelled = {}, rows
            for k, z in logits_c.items():  # the head reads true concepts: rows with every present concept labelled
                y = labels.get(k, torch.full_like(batch.label, -1))
                labelled = labelled & ((y >= 0) | ~present[modality_of[k]])
                probs[k] = F.one_hot(y.clamp_min(0), z.shape[1]).to(z.dtype)
            loss_y = self.task.loss(fusion.reason(probs, present), batch.label, rows=labelled)
            loss_c = concept_loss(logits_c, labels, present, modality_of)
            loss = loss_y + loss_c
        elif phase_concepts:
            loss_c = concept_loss(logits_c, labels, present, modality_of)
            loss_y, loss = loss_c.detach() * 0.0, loss_c
        else:
            loss_y = self.task.loss(fusion.label_logits({k: z.detach() for k, z in logits_c.items()}, present),
                                    batch.label, rows=rows)
            loss_c = concept_loss(logits_c, labels, present, modality_of).detach()
            loss = loss_y
        if loss.requires_grad:
            ctx.backward(loss)
        logs.update(encoder_grad_norms(core))
        ctx.step()
        logs.update({"loss": loss.detach(), "loss_label": loss_y.detach(), "loss_concepts": loss_c.detach()})
        return logs

    def state_dict(self) -> dict[str, Any]:
        return {}


__all__ = ["MODES", "ConceptBottleneckStrategy", "balance_loss", "concept_fusion", "concept_loss"]
