"""Tasks as registered objects: what a run learns, from the loss to the report (docs/architecture.md,
"A task"). ``get_task(name)`` gives the :class:`Task` of a dataset's ``task`` name; a new task is one
module here with a ``@TASKS.register("<name>")`` class and one import line below."""

from __future__ import annotations

from polymodal.tasks.base import (
    DEFAULT_TASK,
    TASKS,
    Task,
    get_task,
    read_predictions,
    task_of,
    task_of_labels,
    write_predictions,
)
from polymodal.tasks.classification import Classification, masked_cross_entropy
from polymodal.tasks.contrastive import Contrastive  # noqa: F401  (coordinated embeddings, docs/coordinated.md)
from polymodal.tasks.regression import Regression, masked_mse
from polymodal.tasks.survival import Survival  # noqa: F401  (time to event, docs/survival.md)

__all__ = [
    "DEFAULT_TASK",
    "TASKS",
    "Classification",
    "Regression",
    "Task",
    "get_task",
    "masked_cross_entropy",
    "masked_mse",
    "read_predictions",
    "task_of",
    "task_of_labels",
    "write_predictions",
]
