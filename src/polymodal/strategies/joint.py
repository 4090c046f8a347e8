"""Joint training: one loss on the fused logits (docs/benchmarks.md's ``joint`` and ``joint-concat``).

The loss is the dataset's task's (:mod:`polymodal.tasks`) on what the task reads from the fused output
(``Task.loss_input``): cross-entropy of the logits for classification, the mean squared error of the fused
outputs under regression, CTC of the per-frame emissions for the sequence task (``model.fusion=ctc``).
"""

from __future__ import annotations

from torch import Tensor

from polymodal.data.batch import Batch, present_any
from polymodal.models import MultimodalModel
from polymodal.strategies.base import STRATEGIES, StepContext, Strategy, grad_norm
from polymodal.tasks import LOGITS, Task, get_task
from polymodal.tasks.classification import masked_cross_entropy
from polymodal.tasks.regression import masked_mse


def task_loss(
    logits: Tensor,
    label: Tensor,
    rows: Tensor | None = None,
    weight: Tensor | None = None,
    task: str | Task | None = None,
) -> Tensor:
    """The training loss of one output under ``task`` (a name or a :class:`~polymodal.tasks.Task`; default
    classification): ``get_task(task).loss(logits, label, rows=rows, class_weights=weight)``, i.e.
    cross-entropy for classification, the mean squared error for regression."""
    return get_task(task).loss(logits, label, rows=rows, class_weights=weight)


def encoder_grad_norms(model: MultimodalModel) -> dict[str, float]:
    """``grad_norm/<modality>``: L2 norm of each encoder's current gradients."""
    return {f"grad_norm/{m}": grad_norm(model.encoders[m]) for m in model.modalities}


@STRATEGIES.register("joint")
class Joint(Strategy):
    """One cross-entropy on the fused logits; default fusion ``late`` (sum of per-modality heads' logits).

    Rows with no modality present are left out of the loss. ``data.class_weights`` (inverse class
    frequency, given by the engine as ``ctx.class_weights``) weights the cross-entropy.
    Regression: the mean squared error of the fused outputs (the task's loss).
    """

    name = "joint"
    default_fusion = "late"
    requires = frozenset({LOGITS})  # any task with a prediction per row: its loss

    def training_step(self, model: MultimodalModel, batch: Batch, ctx: StepContext) -> dict[str, Tensor | float]:
        out = model(batch)
        loss = self.task.loss(self.task.loss_input(out), batch.label, rows=present_any(batch.present),
                              class_weights=ctx.class_weights)
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
