"""What a model gives and what evaluation collects: the types every task consumes (docs/architecture.md,
"The interfaces everything meets at"). They live here, below the engine and the models, so that a task
needs nothing above ``polymodal.tasks``.

Both carry ``extras``: named per-sample outputs beside the prediction (a concept fusion's concept
probabilities, an alignment map, a teacher's logits, attributions), each a tensor or array whose first
dimension is the batch / split. Evaluation gathers them like the logits, the predictions file keeps them
(``extra_<name>`` arrays) and the report shows them (:mod:`polymodal.report.extras`), so a new kind of
extra needs no new field anywhere. Name an extra ``<group>.<rest>`` (``concept.audio.digit``): the group
chooses its report section.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from torch import Tensor


@dataclass
class ModelOutput:
    """One batch through the model.

    logits:       (B, C) fused outputs (class logits, regression outputs, log-risks, ...)
    per_modality: name -> (B, C), when the fusion yields per-modality outputs
    features:     name -> what the encoder gave the fusion
    extras:       name -> (B, ...) per-sample tensors beside the prediction (see the module docstring)
    """

    logits: Tensor
    per_modality: dict[str, Tensor] | None
    features: dict[str, Tensor]
    extras: dict[str, Tensor] = field(default_factory=dict)


@dataclass
class EvalOutputs:
    """One row per dataset sample, sorted by dataset index: the split's columns, handed whole to the task's
    metrics (:meth:`polymodal.tasks.Task.metrics`).

    index:        (N,) int64 dataset positions
    label:        (N, ...) targets of the task's ``label_dtype`` (class ids (N,); float targets (N,) or (N, K))
    logits:       (N, C) float32 fused outputs (the strategy's rule); (N, 0) for a task whose outputs have no
                  ``logits`` column
    per_modality: name -> (N, C) outputs with every other modality absent; missing when unavailable
    present:      name -> (N,) bool, whether the modality was present in the sample
    task:         the task's name (:mod:`polymodal.tasks`); by default what ``label`` says (float -> regression)
    extras:       name -> (N, ...) per-sample arrays of :attr:`ModelOutput.extras`
    columns:      the task's other columns (:meth:`polymodal.tasks.Task.batch_columns`), e.g. embeddings
    fitted:       what the task fitted on another split after training (:meth:`polymodal.tasks.Task.fit_state`:
                  a decision threshold chosen on validation, a baseline of the training split), or None
    """

    index: np.ndarray
    label: np.ndarray
    logits: np.ndarray
    per_modality: dict[str, np.ndarray]
    present: dict[str, np.ndarray]
    task: str | None = None
    extras: dict[str, np.ndarray] = field(default_factory=dict)
    columns: dict[str, np.ndarray] = field(default_factory=dict)
    fitted: Any = None

    def __post_init__(self) -> None:
        from polymodal.tasks.base import TASKS, get_task, task_of_labels

        if self.task is None:
            self.task = task_of_labels(self.label).name
        try:
            get_task(self.task)
        except KeyError:
            raise ValueError(f"task {self.task!r}; expected one of {', '.join(TASKS.names())}") from None

    def rows(self, keep: np.ndarray) -> EvalOutputs:
        """The same outputs on the rows where ``keep`` (N,) bool is True."""
        return EvalOutputs(index=self.index[keep], label=self.label[keep], logits=self.logits[keep],
                           per_modality={m: v[keep] for m, v in self.per_modality.items()},
                           present={m: v[keep] for m, v in self.present.items()}, task=self.task,
                           extras={k: v[keep] for k, v in self.extras.items()},
                           columns={k: v[keep] for k, v in self.columns.items()}, fitted=self.fitted)


__all__ = ["EvalOutputs", "ModelOutput"]
