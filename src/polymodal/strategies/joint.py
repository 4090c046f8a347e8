"""Joint training: one cross-entropy on the fused logits (docs/benchmarks.md's ``joint`` and ``joint-concat``).

Under regression the loss is the mean squared error of the fused outputs (:func:`task_loss`).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from polymodal.data.batch import Batch, present_any
from polymodal.models import MultimodalModel
from polymodal.strategies.base import STRATEGIES, StepContext, Strategy, dataset_task, grad_norm


def masked_cross_entropy(logits: Tensor, label: Tensor, rows: Tensor, weight: Tensor | None = None) -> Tensor:
    """Mean cross-entropy (nats) of ``logits`` (B, C) on the rows where ``rows`` (B,) is True.

    ``weight`` (C,) weights each class as in ``F.cross_entropy`` (the mean is over the summed weights).
    With no row selected the result is a zero that still depends on ``logits`` (every rank of a
    distributed run then takes part in the backward pass).
    """
    if not bool(rows.any()):
        return logits.sum() * 0.0
    w = None if weight is None else weight.to(logits.device, logits.dtype)
    if bool(rows.all()):  # the common case: no copy of the selected rows (the same numbers)
        return F.cross_entropy(logits, label, weight=w)
    return F.cross_entropy(logits[rows], label[rows], weight=w)


def masked_mse(pred: Tensor, target: Tensor, rows: Tensor | None = None) -> Tensor:
    """Mean squared error of ``pred`` (B, K) against ``target`` (B,) or (B, K) on the rows where ``rows``
    (B,) is True (all rows if None); the mean is over rows and targets.

    With no row selected the result is a zero that still depends on ``pred`` (as :func:`masked_cross_entropy`).
    """
    if target.shape[0] != pred.shape[0] or target.numel() != pred.numel():
        raise ValueError(
            f"regression targets of shape {tuple(target.shape)} do not match the model's outputs "
            f"{tuple(pred.shape)}; the dataset's num_outputs must equal the number of targets"
        )
    dtype = torch.promote_types(pred.dtype, torch.float32)  # targets keep full precision under bf16/fp16
    pred, target = pred.to(dtype), target.reshape(pred.shape).to(dtype)
    if rows is None:
        return F.mse_loss(pred, target)
    if not bool(rows.any()):
        return pred.sum() * 0.0
    return F.mse_loss(pred[rows], target[rows])


def task_loss(
    logits: Tensor,
    label: Tensor,
    rows: Tensor | None = None,
    weight: Tensor | None = None,
    task: str = "classification",
) -> Tensor:
    """The training loss of one output: cross-entropy for classification, MSE for regression.

    classification: ``F.cross_entropy(logits, label, weight=weight)`` when ``rows`` is None, else
                    :func:`masked_cross_entropy` on the selected rows (unchanged numerics)
    regression:     :func:`masked_mse`; class ``weight`` is not defined there (ValueError)
    """
    if task == "classification":
        if rows is None:
            return F.cross_entropy(logits, label, weight=weight)
        return masked_cross_entropy(logits, label, rows, weight)
    if task == "regression":
        if weight is not None:
            raise ValueError("class weights (data.class_weights) are not defined for a regression task")
        return masked_mse(logits, label, rows)
    raise ValueError(f"task {task!r}; expected 'classification' or 'regression'")


def encoder_grad_norms(model: MultimodalModel) -> dict[str, float]:
    """``grad_norm/<modality>``: L2 norm of each encoder's current gradients."""
    return {f"grad_norm/{m}": grad_norm(model.encoders[m]) for m in model.modalities}


@STRATEGIES.register("joint")
class Joint(Strategy):
    """One cross-entropy on the fused logits; default fusion ``late`` (sum of per-modality heads' logits).

    Rows with no modality present are left out of the loss. ``data.class_weights`` (inverse class
    frequency, given by the engine as ``ctx.extra["class_weights"]``) weights the cross-entropy.
    Regression: the mean squared error of the fused outputs.
    """

    name = "joint"
    default_fusion = "late"
    supports_regression = True

    def setup(self, model: MultimodalModel, train_dataset: Any) -> None:
        self.task = dataset_task(train_dataset)

    def training_step(self, model: MultimodalModel, batch: Batch, ctx: StepContext) -> dict[str, Tensor | float]:
        out = model(batch)
        loss = task_loss(out.logits, batch.label, present_any(batch.present), ctx.extra.get("class_weights"),
                         self.task)
        ctx.backward(loss)
        norms = encoder_grad_norms(model)
        ctx.step()
        return {"loss": loss.detach(), **norms}


@STRATEGIES.register("joint-concat")
class JointConcat(Joint):
    """Joint cross-entropy with one linear head on the concatenated features (default fusion ``concat``).

    Regression: the mean squared error of that head's outputs.
    """

    name = "joint-concat"
    default_fusion = "concat"


__all__ = ["Joint", "JointConcat", "encoder_grad_norms", "masked_cross_entropy", "masked_mse", "task_loss"]
