"""Joint training: one cross-entropy on the fused logits (BENCHMARKS.md's ``joint`` and ``joint-concat``)."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from polymodal.data.batch import Batch, present_any
from polymodal.models import MultimodalModel
from polymodal.strategies.base import STRATEGIES, StepContext, Strategy, grad_norm


def masked_cross_entropy(logits: Tensor, label: Tensor, rows: Tensor, weight: Tensor | None = None) -> Tensor:
    """Mean cross-entropy (nats) of ``logits`` (B, C) on the rows where ``rows`` (B,) is True.

    ``weight`` (C,) weights each class as in ``F.cross_entropy`` (the mean is over the summed weights).
    With no row selected the result is a zero that still depends on ``logits`` (every rank of a
    distributed run then takes part in the backward pass).
    """
    if not bool(rows.any()):
        return logits.sum() * 0.0
    w = None if weight is None else weight.to(logits.device, logits.dtype)
    return F.cross_entropy(logits[rows], label[rows], weight=w)


def encoder_grad_norms(model: MultimodalModel) -> dict[str, float]:
    """``grad_norm/<modality>``: L2 norm of each encoder's current gradients."""
    return {f"grad_norm/{m}": grad_norm(model.encoders[m]) for m in model.modalities}


@STRATEGIES.register("joint")
class Joint(Strategy):
    """One cross-entropy on the fused logits; default fusion ``late`` (sum of per-modality heads' logits).

    Rows with no modality present are left out of the loss. ``data.class_weights`` (inverse class
    frequency, given by the engine as ``ctx.extra["class_weights"]``) weights the cross-entropy.
    """

    name = "joint"
    default_fusion = "late"

    def training_step(self, model: MultimodalModel, batch: Batch, ctx: StepContext) -> dict[str, Tensor | float]:
        out = model(batch)
        loss = masked_cross_entropy(out.logits, batch.label, present_any(batch.present),
                                    ctx.extra.get("class_weights"))
        ctx.backward(loss)
        norms = encoder_grad_norms(model)
        ctx.step()
        return {"loss": loss.detach(), **norms}


@STRATEGIES.register("joint-concat")
class JointConcat(Joint):
    """Joint cross-entropy with one linear head on the concatenated features (default fusion ``concat``)."""

    name = "joint-concat"
    default_fusion = "concat"


__all__ = ["Joint", "JointConcat", "encoder_grad_norms", "masked_cross_entropy"]
