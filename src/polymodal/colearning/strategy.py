"""The co-learning strategies (docs/colearning.md): a TARGET modality's classifier helped by a SOURCE modality.

Every strategy here trains on a label budget (``label_fraction`` of the training labels, chosen per class by
``label_seed``: :func:`polymodal.colearning.budget.labelled_mask`) and predicts with the target modality alone
(its per-modality head; the source modality may be absent at test). ``target`` defaults to the model's first
modality and ``source`` to the other one; the fusion must yield per-modality logits (``late``).

- ``labelled-only``: every modality's head trained on its labelled rows (the supervised-only baseline; its
  per-modality accuracies say how strong each view is on the budget).
- ``co-training`` (Blum & Mitchell 1998, model induction): as ``labelled-only``, plus, on the unlabelled rows,
  each view's confident predictions (largest softmax probability >= ``threshold``) train the OTHER view,
  class-balanced (:func:`polymodal.colearning.losses.balanced_cross_entropy`), weighted by ``pseudo_weight``,
  from epoch ``warmup_epochs`` on. Pseudo-labels are recomputed at every step from the current models (the
  online form of growing the other's training set), only ever on training rows whose label is hidden.
- ``cross-distill`` (parallel co-learning, Hinton et al. 2015; SoundNet distils vision into sound): the source
  head (the teacher) learns from the labelled rows; the target (the student) from its labelled rows plus
  ``distill_weight * T^2 KL(teacher || student)`` at temperature ``temperature`` on the unlabelled pairs
  (``distill_on=all``: every pair), from epoch ``warmup_epochs`` on; ``feature_weight > 0`` adds feature
  matching: the MSE between a linear map of the student's pooled features and the teacher's. The teacher's
  outputs are taken from the same forward pass, detached: the teacher keeps learning from its labels only.
- ``contrastive-aux`` (co-learning through a shared embedding): the target's head learns from its labelled
  rows; both encoders, through one linear projection each, learn the symmetric InfoNCE of the ``contrastive``
  strategy (:class:`polymodal.coordinated.losses.CLIPLoss`, learnable temperature) over every pair of the batch,
  labelled or not, weighted by ``aux_weight``. The source's head is never trained.

Labelled rows in every batch: ``labelled_share`` s (default 0.5) makes the training sampler draw, with
replacement, N rows per epoch of which the labelled rows together get the share s (uniformly among them) and
the unlabelled rows the rest (:meth:`CoLearning.train_sample_weights`, the engine's
:meth:`~polymodal.strategies.base.Strategy.train_sample_weights` hook), as FixMatch-style semi-supervised
training mixes a fixed share of labelled rows into every batch; without it a labelled row is seen once per
epoch, so at a 1 % budget the supervised terms take almost no steps. ``None`` or 0: one pass over every row per
epoch (a permutation). A full budget (nothing unlabelled) keeps the permutation, whatever the share.

Training rows without a label are recognised by their dataset position (``batch.index``), so their labels are
never read. Pseudo-labels and teacher outputs on evaluated splits are written as per-sample extras
(``colearn.*``: the source's predicted class and its confidence) for inspection; they never train anything.
Batches without a labelled row and without an unsupervised term take no optimiser step.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from polymodal.colearning.budget import Fraction, check_fraction, labelled_mask
from polymodal.colearning.losses import balanced_cross_entropy, distillation_loss, pseudo_labels
from polymodal.coordinated.losses import CLIPLoss
from polymodal.data.batch import Batch
from polymodal.models import ModelOutput
from polymodal.strategies.base import STRATEGIES, StepContext, Strategy, backward_and_step, unwrap
from polymodal.strategies.toolkit import check_number, check_setup, per_modality_logits
from polymodal.tasks import LOGITS, SINGLE_LABEL

MODULE = "colearn"  # the strategies' own parameters live in model.colearn (optimised and checkpointed with it)


def check_share(value: object, key: str = "strategy.args.labelled_share") -> float | None:
    """``value`` as a share in [0, 1) of the training draws given to the labelled rows (None and 0: no share),
    or a ValueError naming ``key``."""
    if value is None:
        return None
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value) and 0 <= value < 1
    if not ok:
        raise ValueError(f"{key}={value!r}; expected the share of each epoch's draws given to the labelled rows, a "
                         "number in [0, 1) (e.g. 0.5), or null / 0 for one pass over every training row per epoch "
                         "(1 would never draw an unlabelled row)")
    return float(value) or None


class CoLearning(Strategy):
    """The common part: the label budget, the two roles, supervised losses on labelled rows, the prediction.

    label_fraction: fraction of the training labels kept (0, 1]; the others are hidden from every loss
    label_seed:     seed of the per-class choice of the labelled rows
    target:         the modality whose classifier is the product (default: the model's first modality)
    source:         the helping modality (default: the other one; the model must have exactly two then)
    labelled_share: share of each epoch's draws given to the labelled rows (with replacement; None or 0: one
                    pass over every row per epoch); ignored at a full budget
    """

    default_fusion = "late"
    requires = frozenset({LOGITS, SINGLE_LABEL})
    sample_weights_key = "strategy.args.labelled_share"

    def __init__(self, label_fraction: Fraction = 1.0, label_seed: int = 0, target: str | None = None,
                 source: str | None = None, labelled_share: float | None = 0.5) -> None:
        self.label_fraction = check_fraction(label_fraction)
        if not isinstance(label_seed, int) or isinstance(label_seed, bool) or label_seed < 0:
            raise ValueError(f"strategy.args.label_seed={label_seed!r}; expected an integer >= 0")
        self.label_seed = label_seed
        self.labelled_share = check_share(labelled_share)
        self.target, self.source = target, source
        self.labelled: Tensor | None = None  # (N,) bool over the training split's rows; None until set up on it

    def setup(self, model: nn.Module, train_dataset: Any) -> None:
        core = check_setup(self, model, train_dataset, min_modalities=2, per_modality=True)
        self.target, self.source = self.roles(core.modalities)
        self.labelled = None
        # restore_trained sets a finished run up on the split it evaluates: no budget (nor training) there
        if train_dataset is not None and getattr(train_dataset, "split", "train") == "train":
            labels = np.asarray(train_dataset.labels)
            self.labelled = torch.from_numpy(labelled_mask(labels, self.label_fraction, self.label_seed))
        elif train_dataset is None and self.label_fraction == 1.0:
            self.labelled = torch.ones(0, dtype=torch.bool)  # every row labelled (a strategy set up alone)
        elif train_dataset is None:
            raise ValueError(f"strategy {self.name!r} with label_fraction={self.label_fraction} needs the training "
                             "dataset in setup() to choose the labelled rows")

    def train_sample_weights(self, train_dataset: Any) -> Tensor | None:
        """(N,) weights giving the labelled rows together ``labelled_share`` of the draws (uniformly among them)
        and the unlabelled rows the rest; None (a permutation per epoch) without a share, at a full budget, or
        when not set up on a training split."""
        if not self.labelled_share or self.labelled is None or self.labelled.numel() == 0:
            return None
        labelled = self.labelled
        n_lab = int(labelled.sum())
        n_unl = len(labelled) - n_lab
        if n_unl == 0 or n_lab == 0:
            return None
        if len(train_dataset) != len(labelled):
            raise ValueError(f"strategy {self.name!r}: the training split has {len(train_dataset)} rows but the label "
                             f"budget was drawn over {len(labelled)}; set the strategy up on this split first")
        share = self.labelled_share
        return torch.where(labelled, torch.tensor(share / n_lab, dtype=torch.float64),
                           torch.tensor((1.0 - share) / n_unl, dtype=torch.float64))

    def roles(self, modalities: Sequence[str]) -> tuple[str, str]:
        """(target, source), checked against the model's modalities."""
        mods = list(modalities)
        target = self.target if self.target is not None else mods[0]
        if target not in mods:
            raise ValueError(f"strategy.args.target={target!r}; the model's modalities are {mods}")
        if self.source is None:
            others = [m for m in mods if m != target]
            if len(others) != 1:
                raise ValueError(f"strategy {self.name!r}: set strategy.args.source to one of {others} "
                                 f"(the model has {len(mods)} modalities)")
            return target, others[0]
        if self.source not in mods or self.source == target:
            raise ValueError(f"strategy.args.source={self.source!r}; expected one of the model's modalities "
                             f"{[m for m in mods if m != target]} other than the target {target!r}")
        return target, self.source

    def labelled_rows(self, batch: Batch) -> Tensor:
        """(B,) bool: the rows of a TRAINING batch whose label is kept (by dataset position)."""
        if self.labelled is None:
            raise RuntimeError(f"strategy {self.name!r} was set up on a split other than 'train': it trains, and "
                               "takes labels and pseudo-labels, from the training split only")
        if self.labelled.numel() == 0:  # set up without a dataset at full budget
            return torch.ones(batch.size, dtype=torch.bool, device=batch.label.device)
        index = batch.index.cpu()
        if index.numel() and (int(index.min()) < 0 or int(index.max()) >= len(self.labelled)):
            raise ValueError(f"strategy {self.name!r}: a training batch has dataset positions up to {int(index.max())} "
                             f"but the training split set up has {len(self.labelled)} rows")
        return self.labelled[index].to(batch.label.device)

    def supervised_losses(self, per: dict[str, Tensor], batch: Batch, labelled: Tensor, ctx: StepContext,
                          modalities: Sequence[str]) -> dict[str, Tensor]:
        """``loss/<m>``: the task's loss of modality m's head on its present, labelled rows (skipped when none)."""
        out = {}
        for m in modalities:
            rows = labelled & batch.present[m]
            if bool(rows.any()):
                out[f"loss/{m}"] = self.task.loss(per[m], batch.label, rows=rows, class_weights=ctx.class_weights)
        return out

    def finish(self, core: nn.Module, terms: dict[str, Tensor], ctx: StepContext) -> dict[str, Tensor | float]:
        """Backward and step on the sum of ``terms`` (in insertion order); no step when there is none."""
        if not terms:
            return {"loss": 0.0}
        values = list(terms.values())
        loss = sum(values[1:], values[0])
        logs: dict[str, Tensor | float] = {k: v.detach() for k, v in terms.items()}
        return backward_and_step(core, loss, ctx, logs)

    def predict(self, model: nn.Module, batch: Batch) -> ModelOutput:
        """The target's own logits (the source plays no part), with the source's class and confidence as
        extras ``colearn.source_label`` / ``colearn.source_confidence`` (-1 / 0 where it is absent).

        A row without the target but with the source gets the source head's logits: so the engine's
        ``<source>_acc`` (every other modality made absent) is the source head's own accuracy (the teacher's,
        the other view's), not the target head run on an absent input."""
        out = model(batch)
        per = per_modality_logits(out, f"strategy {self.name!r}")
        label, _, confidence = pseudo_labels(per[self.source], 2.0)
        present = batch.present[self.source]
        out.extras = {**out.extras,
                      "colearn.source_label": torch.where(present, label, torch.full_like(label, -1)),
                      "colearn.source_confidence": torch.where(present, confidence, torch.zeros_like(confidence))}
        fallback = (~batch.present[self.target] & present).unsqueeze(1)
        out.logits = torch.where(fallback, per[self.source], per[self.target])
        return out


@STRATEGIES.register("labelled-only", tiny={"label_fraction": 0.5})
class LabelledOnly(CoLearning):
    """Supervised-only on a label budget: each modality's head on its labelled rows; predicts with the target."""

    def training_step(self, model: nn.Module, batch: Batch, ctx: StepContext) -> dict[str, Tensor | float]:
        core = unwrap(model)
        labelled = self.labelled_rows(batch)
        out = model(batch)
        terms = self.supervised_losses(per_modality_logits(out, self.name), batch, labelled, ctx, core.modalities)
        return self.finish(core, terms, ctx)


@STRATEGIES.register("co-training", tiny={"label_fraction": 0.5, "threshold": 0.0, "warmup_epochs": 0})
class CoTraining(CoLearning):
    """Co-training: each view's confident predictions on unlabelled pairs train the other view.

    threshold:     a pseudo-label is taken when the teacher view's largest softmax probability is >= it
    pseudo_weight: weight of each view's class-balanced pseudo-label loss
    warmup_epochs: epochs trained on the labelled rows alone before pseudo-labels are taken
    """

    def __init__(self, label_fraction: Fraction = 1.0, label_seed: int = 0, target: str | None = None,
                 source: str | None = None, threshold: float = 0.9, pseudo_weight: float = 1.0,
                 warmup_epochs: int = 2, labelled_share: float | None = 0.5) -> None:
        super().__init__(label_fraction, label_seed, target, source, labelled_share)
        self.threshold = check_number("threshold", threshold)
        self.pseudo_weight = check_number("pseudo_weight", pseudo_weight)
        if not isinstance(warmup_epochs, int) or warmup_epochs < 0:
            raise ValueError(f"strategy.args.warmup_epochs={warmup_epochs!r}; expected an integer >= 0")
        self.warmup_epochs = warmup_epochs
        # the pseudo-labels of the last step: student modality -> (dataset positions, labels, confidences)
        self.last_pseudo: dict[str, tuple[Tensor, Tensor, Tensor]] = {}

    def training_step(self, model: nn.Module, batch: Batch, ctx: StepContext) -> dict[str, Tensor | float]:
        core = unwrap(model)
        labelled = self.labelled_rows(batch)
        out = model(batch)
        per = per_modality_logits(out, self.name)
        terms = self.supervised_losses(per, batch, labelled, ctx, core.modalities)
        self.last_pseudo = {}
        taken_share: dict[str, float] = {}
        if ctx.epoch >= self.warmup_epochs and not bool(labelled.all()):
            for teacher, student in ((self.source, self.target), (self.target, self.source)):
                rows = ~labelled & batch.present[teacher] & batch.present[student]
                if not bool(rows.any()):
                    continue
                label, taken, confidence = pseudo_labels(per[teacher][rows], self.threshold)
                taken_share[f"pseudo_taken/{student}"] = float(taken.float().mean())
                self.last_pseudo[student] = (batch.index[rows][taken].cpu(), label[taken].cpu(), confidence[taken].cpu())
                if bool(taken.any()):
                    loss = balanced_cross_entropy(per[student][rows][taken], label[taken])
                    terms[f"pseudo/{teacher}->{student}"] = self.pseudo_weight * loss
        return {**self.finish(core, terms, ctx), **taken_share}


@STRATEGIES.register("cross-distill", tiny={"label_fraction": 0.5, "warmup_epochs": 0, "feature_weight": 1.0})
class CrossDistill(CoLearning):
    """Cross-modal distillation: the source's head teaches the target's through unlabelled pairs.

    temperature:    softening temperature T of both distributions (the loss is scaled by T^2)
    distill_weight: weight of the distillation term
    distill_on:     "unlabelled" (the transfer set is the unlabelled pairs) or "all" (every pair)
    feature_weight: weight of the feature-matching MSE (0 = off); needs pooled (B, D) features
    warmup_epochs:  epochs before the teacher starts teaching (it learns from the labels alone until then)
    """

    def __init__(self, label_fraction: Fraction = 1.0, label_seed: int = 0, target: str | None = None,
                 source: str | None = None, temperature: float = 4.0, distill_weight: float = 1.0,
                 distill_on: Literal["unlabelled", "all"] = "unlabelled", feature_weight: float = 0.0,
                 warmup_epochs: int = 2, labelled_share: float | None = 0.5) -> None:
        super().__init__(label_fraction, label_seed, target, source, labelled_share)
        self.temperature = check_number("temperature", temperature, strict=True)
        self.distill_weight = check_number("distill_weight", distill_weight)
        if distill_on not in ("unlabelled", "all"):
            raise ValueError(f"strategy.args.distill_on={distill_on!r}; expected 'unlabelled' or 'all'")
        self.distill_on = distill_on
        self.feature_weight = check_number("feature_weight", feature_weight)
        if not isinstance(warmup_epochs, int) or warmup_epochs < 0:
            raise ValueError(f"strategy.args.warmup_epochs={warmup_epochs!r}; expected an integer >= 0")
        self.warmup_epochs = warmup_epochs

    def setup(self, model: nn.Module, train_dataset: Any) -> None:
        super().setup(model, train_dataset)
        core = unwrap(model)
        if self.feature_weight > 0:
            check_setup(self, model, train_dataset, min_modalities=2, per_modality=True, input_level="pooled")
            project = nn.Linear(core.feature_dim(self.target), core.feature_dim(self.source))
            core.add_module(MODULE, nn.ModuleDict({"project": project}))

    def training_step(self, model: nn.Module, batch: Batch, ctx: StepContext) -> dict[str, Tensor | float]:
        core = unwrap(model)
        labelled = self.labelled_rows(batch)
        out = model(batch)
        per = per_modality_logits(out, self.name)
        terms = self.supervised_losses(per, batch, labelled, ctx, (self.source, self.target))
        if ctx.epoch >= self.warmup_epochs:
            rows = batch.present[self.source] & batch.present[self.target]
            if self.distill_on == "unlabelled":
                rows = rows & ~labelled
            if bool(rows.any()):
                teacher = per[self.source][rows].detach()
                terms["distill"] = self.distill_weight * distillation_loss(per[self.target][rows], teacher, self.temperature)
                if self.feature_weight > 0:
                    student = getattr(core, MODULE)["project"](out.features[self.target][rows])
                    target = out.features[self.source][rows].detach()
                    terms["feature_match"] = self.feature_weight * F.mse_loss(student, target)
        return self.finish(core, terms, ctx)


@STRATEGIES.register("contrastive-aux", tiny={"label_fraction": 0.5, "dim": 8})
class ContrastiveAux(CoLearning):
    """The target's classifier from its labels plus the contrastive objective over all pairs as an auxiliary.

    aux_weight: weight of the symmetric InfoNCE (CLIP loss, learnable temperature) between the projected,
                L2-normalised pooled features of target and source
    dim:        dimension of the shared embedding (one linear projection per modality)
    """

    def __init__(self, label_fraction: Fraction = 1.0, label_seed: int = 0, target: str | None = None,
                 source: str | None = None, aux_weight: float = 1.0, dim: int = 64,
                 labelled_share: float | None = 0.5) -> None:
        super().__init__(label_fraction, label_seed, target, source, labelled_share)
        self.aux_weight = check_number("aux_weight", aux_weight)
        if not isinstance(dim, int) or dim < 1:
            raise ValueError(f"strategy.args.dim={dim!r}; expected an integer >= 1")
        self.dim = dim

    def setup(self, model: nn.Module, train_dataset: Any) -> None:
        super().setup(model, train_dataset)
        check_setup(self, model, train_dataset, min_modalities=2, per_modality=True, input_level="pooled")
        core = unwrap(model)
        heads = {m: nn.Linear(core.feature_dim(m), self.dim) for m in (self.target, self.source)}
        core.add_module(MODULE, nn.ModuleDict({**heads, "objective": CLIPLoss()}))

    def training_step(self, model: nn.Module, batch: Batch, ctx: StepContext) -> dict[str, Tensor | float]:
        core = unwrap(model)
        labelled = self.labelled_rows(batch)
        out = model(batch)
        per = per_modality_logits(out, self.name)
        terms = self.supervised_losses(per, batch, labelled, ctx, (self.target,))
        rows = batch.present[self.source] & batch.present[self.target]
        if int(rows.sum()) >= 2:  # a contrastive loss needs a negative
            heads = getattr(core, MODULE)
            a = F.normalize(heads[self.target](out.features[self.target][rows]), dim=1)
            b = F.normalize(heads[self.source](out.features[self.source][rows]), dim=1)
            terms["contrastive"] = self.aux_weight * heads["objective"](a, b)
        logs = self.finish(core, terms, ctx)
        getattr(core, MODULE)["objective"].clamp_()
        return logs


__all__ = ["CoLearning", "check_share", "CoTraining", "ContrastiveAux", "CrossDistill", "LabelledOnly"]
