"""Tasks as registered objects: what a run learns, from the label column to the report (docs/architecture.md,
"A task"). ``get_task(name)`` gives the :class:`Task` of a dataset's ``task`` name; a new task is one
module with a ``@TASKS.register("<name>")`` class, found by the registry (:mod:`polymodal.registries`)
without an import line here. What tasks consume lives here too (:mod:`polymodal.tasks.outputs`)."""

from __future__ import annotations

from polymodal.tasks.base import (
    CAPABILITIES,
    DEFAULT_TASK,
    EMBEDDINGS,
    LOGITS,
    PER_MODALITY,
    SINGLE_LABEL,
    TASKS,
    SyntheticData,
    SyntheticSpec,
    Task,
    get_task,
    read_predictions,
    read_task_state,
    task_of,
    task_of_labels,
    to_predictions,
    write_predictions,
    write_task_state,
)
from polymodal.tasks.classification import Classification, Predictions, masked_cross_entropy
from polymodal.tasks.outputs import EvalOutputs, ModelOutput
from polymodal.tasks.regression import Regression, RegressionPredictions, masked_mse
from polymodal.tasks.survival import Survival  # noqa: F401  (time to event, docs/survival.md)

__all__ = [
    "CAPABILITIES",
    "DEFAULT_TASK",
    "EMBEDDINGS",
    "LOGITS",
    "PER_MODALITY",
    "SINGLE_LABEL",
    "TASKS",
    "Classification",
    "EvalOutputs",
    "ModelOutput",
    "Predictions",
    "Regression",
    "RegressionPredictions",
    "SyntheticData",
    "SyntheticSpec",
    "Task",
    "get_task",
    "masked_cross_entropy",
    "masked_mse",
    "read_predictions",
    "read_task_state",
    "task_of",
    "task_of_labels",
    "to_predictions",
    "write_predictions",
    "write_task_state",
]
