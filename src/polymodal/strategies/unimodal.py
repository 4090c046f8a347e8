"""Unimodal training: each encoder with its own head, trained alone (the sum of per-modality losses)."""

from __future__ import annotations

from typing import Any

from torch import Tensor

from polymodal.data.batch import Batch
from polymodal.models import ModelOutput, MultimodalModel
from polymodal.strategies.base import STRATEGIES, StepContext, Strategy, unwrap
from polymodal.strategies.joint import encoder_grad_norms
from polymodal.tasks import LOGITS


@STRATEGIES.register("unimodal")
class Unimodal(Strategy):
    """loss = sum over modalities m of CE(logits_m, y) on the rows where m is present.

    Needs a fusion that yields per-modality logits (``late``, ``shared_head``); encoders never see
    each other's gradients. Prediction uses the fusion's fused logits; each modality's own accuracy
    is the engine's per-modality evaluation. Logs ``loss/<modality>`` and ``grad_norm/<modality>``.

    Regression: each loss is the mean squared error of the modality's outputs, and the fused prediction
    is the MEAN of the per-modality outputs over the present modalities (the ``fixed`` rule with equal
    weights): every head is trained alone to predict the whole target, so summing them would count it
    once per modality.
    """

    name = "unimodal"
    default_fusion = "late"
    requires = frozenset({LOGITS})

    def setup(self, model: MultimodalModel, train_dataset: Any) -> None:
        self.bind_task(train_dataset)
        fusion = unwrap(model).fusion
        if not getattr(fusion, "yields_per_modality", False):
            raise ValueError(
                f"strategy 'unimodal' needs a fusion with per-modality logits (late or shared_head); "
                f"{type(fusion).__name__} has none (set model.fusion=late)"
            )

    def training_step(self, model: MultimodalModel, batch: Batch, ctx: StepContext) -> dict[str, Tensor | float]:
        out = model(batch)
        if out.per_modality is None:
            raise ValueError(
                f"strategy 'unimodal': the fusion {type(model.fusion).__name__} returned no per-modality logits "
                f"(set model.fusion=late)"
            )
        losses = {
            m: self.task.loss(out.per_modality[m], batch.label, rows=batch.present[m], class_weights=ctx.class_weights)
            for m in model.modalities
        }
        loss = sum(losses.values(), out.logits.sum() * 0.0)
        ctx.backward(loss)
        norms = encoder_grad_norms(model)
        ctx.step()
        return {"loss": loss.detach(), **{f"loss/{m}": v.detach() for m, v in losses.items()}, **norms}

    def predict(self, model: MultimodalModel, batch: Batch) -> ModelOutput:
        return self.task.fuse_unimodal_heads(model(batch), batch.present)
