"""The task interface: what a run learns, from the loss to the report (docs/architecture.md, "A task").

A dataset declares its task by name (``MultimodalDataset.task``); everything after the model asks the
:class:`Task` object of that name instead of comparing strings:

- training:   :meth:`Task.loss` (rows to ignore, class weights), :attr:`Task.uses_classes` (class weights,
              balanced sampling, classification-only strategies);
- evaluation: :meth:`Task.batch_columns` (what one batch's model output contributes to the split's
              columns: logits, or per-modality embeddings), :meth:`Task.predictions` (the split's columns
              -> a predictions object), :meth:`Task.metrics` / :meth:`Task.summarize` (computed once over
              the whole split, so retrieval metrics fit), :attr:`Task.monitor` / :attr:`Task.mode`
              (the validation metric that selects the best epoch);
- files:      :meth:`Task.to_arrays` / :meth:`Task.from_arrays` (the predictions file's arrays; the file
              itself is written and read by :func:`write_predictions` / :func:`read_predictions` only);
- data:       :attr:`Task.label_dtype`, :meth:`Task.read_targets` (a label column -> targets),
              :meth:`Task.strata` (stratified splits);
- report:     :meth:`Task.results_table`, :meth:`Task.report_section`, :meth:`Task.figures`.

A new task is one module with a subclass registered in :data:`TASKS`::

    @TASKS.register("ordinal")
    class Ordinal(Task):
        '''Ordered classes: ...'''
        name, monitor, mode = "ordinal", "mae", "min"
        ...
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import numpy as np
from torch import Tensor

from polymodal.registry import Registry

if TYPE_CHECKING:
    from polymodal.engine.evaluate import EvalOutputs
    from polymodal.models import ModelOutput

DEFAULT_TASK = "classification"
"""The task of a dataset that declares none (and of strategies set up without a dataset)."""

TASK_KEY = "task"
"""The predictions file's array that names its task (files without it are read by their arrays)."""


class Task(ABC):
    """One kind of supervision: its loss, its whole-split metrics, its predictions file and report section.

    Tasks are stateless; :func:`get_task` builds one per call. Class attributes:

    name:              the registry name, the value of ``MultimodalDataset.task`` and of ``results.json``'s ``task``
    monitor, mode:     the validation metric that selects the best epoch, "max" or "min" (ties keep the earlier)
    log_suffix:        the per-modality metric shown in the epoch log line (``val/<m>_<log_suffix>``)
    label_dtype:       dtype of the targets in the collected outputs and the predictions file
    uses_classes:      targets are class ids: class weights, balanced sampling and classification-only
                       strategies are allowed, and splits are stratified by class
    per_modality_eval: the engine also predicts with every other modality marked absent (per-modality metrics)
    embeddings:        the outputs are per-modality embeddings in one space (retrieval metrics), not class logits
    mean_of_heads:     heads trained alone each predict the whole target, so a strategy that trains them
                       independently fuses them by their mean (regression), not by the fusion's own sum
    """

    name: ClassVar[str] = ""
    monitor: ClassVar[str] = ""
    mode: ClassVar[Literal["max", "min"]] = "max"
    log_suffix: ClassVar[str] = ""
    label_dtype: ClassVar[type[np.generic]] = np.int64
    uses_classes: ClassVar[bool] = False
    per_modality_eval: ClassVar[bool] = True
    embeddings: ClassVar[bool] = False
    mean_of_heads: ClassVar[bool] = False

    # A task equals its name, so code written when tasks were strings (``strategy.task == "regression"``)
    # keeps working; new code asks the task's attributes instead of comparing names.
    def __eq__(self, other: object) -> bool:
        if isinstance(other, Task):
            return self.name == other.name
        if isinstance(other, str):
            return self.name == other
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self.name)

    def __str__(self) -> str:
        return self.name

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"

    # -- training ---------------------------------------------------------------------------------
    @abstractmethod
    def loss(self, output: Tensor | dict[str, Tensor], target: Tensor, *, rows: Tensor | None = None,
             class_weights: Tensor | None = None) -> Tensor:
        """The training loss of one output (logits, or a dict of per-modality tensors) against ``target``.

        rows:          (B,) bool, the rows that count (None: all); with no row selected the result is a
                       zero that still depends on ``output`` (every rank of a distributed run backpropagates)
        class_weights: (C,) from ``data.class_weights``; a task without classes raises a ValueError
        """

    # -- model outputs -> the split's columns ----------------------------------------------------
    def batch_columns(self, output: ModelOutput) -> dict[str, Tensor]:
        """The columns one batch's model output contributes, each (B, ...): gathered over ranks, de-duplicated
        on the dataset index and handed to :meth:`predictions` / :meth:`metrics` as whole-split arrays.
        ``"logits"`` fills ``EvalOutputs.logits``; any other key goes to ``EvalOutputs.columns``."""
        return {"logits": output.logits.float()}

    @abstractmethod
    def predictions(self, out: EvalOutputs, class_names: Sequence[str] = ()) -> Any:
        """The split's collected outputs as this task's predictions object (the content of its predictions
        file; it has a class attribute ``task`` naming this task)."""

    # -- metrics over a whole split --------------------------------------------------------------
    @abstractmethod
    def summarize(self, pred: Any) -> dict[str, float | int | None]:
        """Headline metrics of a predictions object, fused and per modality (over the rows where the
        modality is present), plus ``n``: what reports and ``polymodal eval`` show."""

    @abstractmethod
    def metrics(self, out: EvalOutputs, modalities: list[str]) -> dict[str, float | None]:
        """What the engine logs per epoch and writes to ``results.json``: ``loss``, the task's metrics
        (every modality of ``modalities`` gets its per-modality keys, None when unavailable) and ``n``.
        Must hold :attr:`monitor`."""

    def is_improvement(self, value: float | None, best: float | None) -> bool:
        """Whether ``value`` of :attr:`monitor` beats ``best`` (None: nothing yet); ties do not."""
        if best is None:
            return True
        if value is None:
            return False
        return value > best if self.mode == "max" else value < best

    @property
    def selection(self) -> str:
        """What ``results.json`` records as ``"selection"``, e.g. ``"val fused_acc"``."""
        return f"val {self.monitor}"

    # -- the predictions file --------------------------------------------------------------------
    @abstractmethod
    def to_arrays(self, pred: Any) -> dict[str, np.ndarray]:
        """The arrays of the predictions file (``index`` and the task name are added by :func:`write_predictions`)."""

    @abstractmethod
    def from_arrays(self, arrays: Mapping[str, np.ndarray], path: Path) -> Any:
        """The predictions object back from the file's arrays; errors name ``path``."""

    def owns_file(self, files: set[str]) -> bool:
        """Whether a predictions file without a ``task`` array (written before tasks were named) is this task's."""
        return False

    # -- data ------------------------------------------------------------------------------------
    def read_targets(self, values: np.ndarray) -> np.ndarray:
        """A label column (or collected labels) as targets of :attr:`label_dtype`."""
        return np.asarray(values).astype(self.label_dtype)

    def strata(self, y: np.ndarray) -> np.ndarray:
        """(N,) int stratum per row for stratified splits: the class by default."""
        return np.unique(np.asarray(y).astype(str), return_inverse=True)[1]

    def stratum_names(self, y: np.ndarray) -> np.ndarray | None:
        """Names of the rows' strata for messages (the class), or None when strata are not named."""
        return np.asarray(y).astype(str) if self.uses_classes else None

    # -- report ----------------------------------------------------------------------------------
    results_intro: ClassVar[str] = ""
    """The sentence above the results table: units, and what n/a means."""

    @abstractmethod
    def results_table(self, results: dict[str, Any]) -> list[str]:
        """Markdown lines of the val / test table of ``results.json``'s metrics."""

    @abstractmethod
    def report_section(self, pred: Any, run_dir: Path) -> list[str]:
        """Markdown lines about the test predictions (``## ...`` headings); may write files under ``run_dir``."""

    def learning_curve(self) -> tuple[str, str, str]:
        """What the report's learning-curve figure draws beside the loss: (fused validation metric, per-modality
        key suffix, axis label); the :attr:`monitor` and :attr:`log_suffix` by default."""
        return self.monitor, self.log_suffix, self.monitor

    def figures(self, pred: Any, fig_dir: Path) -> dict[str, tuple[Path, str]]:
        """Figures of the test predictions: key -> (PNG written under ``fig_dir``, alt text)."""
        return {}

    def infer_from_metrics(self, splits: list[dict[str, Any]]) -> bool:
        """Whether logged metrics (``results.json``'s val / test) look like this task's (a results file
        that names no task)."""
        return False

    # -- the tiny variant the registry-parametrised tests use ------------------------------------
    def example_outputs(self, n: int = 24, modalities: Sequence[str] = ("a", "b"), num_outputs: int = 3,
                        seed: int = 0) -> EvalOutputs:
        """Collected outputs of a small split with some rows missing a modality, as the engine gives
        :meth:`metrics`: class ids (a task with classes) or float targets, logits / outputs of
        ``num_outputs`` per row. A task whose model outputs are not logits overrides this."""
        from polymodal.engine.evaluate import EvalOutputs

        rng = np.random.default_rng(seed)
        if self.uses_classes:
            label = self.read_targets(np.arange(n) % num_outputs)
        else:
            label = self.read_targets(rng.standard_normal((n, num_outputs)) if num_outputs > 1 else rng.standard_normal(n))
        present = {m: rng.random(n) < 0.75 for m in modalities}
        return EvalOutputs(
            index=np.arange(n, dtype=np.int64),
            label=label,
            logits=rng.standard_normal((n, num_outputs)).astype(np.float32),
            per_modality={m: rng.standard_normal((n, num_outputs)).astype(np.float32) for m in modalities},
            present=present,
            task=self.name,
        )


TASKS: Registry[Task] = Registry("task")


def get_task(name: str | Task | None) -> Task:
    """The task named ``name`` (a :class:`Task` is returned as it is; None: :data:`DEFAULT_TASK`).
    An unknown name raises a KeyError that lists the registered tasks."""
    if isinstance(name, Task):
        return name
    import polymodal.tasks  # noqa: F401  (fills TASKS)

    return TASKS.create(DEFAULT_TASK if name is None else str(name))


def task_of(dataset: Any) -> Task:
    """The task a dataset declares (its ``task`` attribute); :data:`DEFAULT_TASK` when there is no dataset
    (strategies set up without one in tests) or it declares none. An unknown name is a ValueError."""
    name = getattr(dataset, "task", None) or DEFAULT_TASK
    try:
        return get_task(name)
    except KeyError:
        import polymodal.tasks  # noqa: F401

        raise ValueError(f"dataset task {name!r}; expected one of {', '.join(TASKS.names())}") from None


def task_of_labels(label: np.ndarray) -> Task:
    """The task when only the labels are known: float targets are a regression, anything else classes."""
    return get_task("regression" if np.issubdtype(np.asarray(label).dtype, np.floating) else DEFAULT_TASK)


# ----------------------------------------------------------------------------- the predictions file


def write_predictions(pred: Any, path: str | os.PathLike) -> Path:
    """Write a task's predictions object as ``.npz`` (compressed): the task's arrays, ``index`` and ``task``.
    This and :func:`read_predictions` are the only code that touches the file format."""
    task = get_task(pred.task)
    arrays = task.to_arrays(pred)
    y = arrays.get("y_true")
    n = len(y) if y is not None else 0
    arrays["index"] = np.asarray(pred.index) if getattr(pred, "index", None) is not None else np.arange(n)
    arrays[TASK_KEY] = np.asarray(task.name)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:  # a file object keeps numpy from appending a second ".npz"
        np.savez_compressed(f, **arrays)
    return path


def read_predictions(path: str | os.PathLike) -> Any:
    """Read a predictions ``.npz`` written by :func:`write_predictions` (or by an older version, which named
    no task: the arrays tell). Raises FileNotFoundError / ValueError naming the file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"predictions file {path} does not exist")
    import polymodal.tasks  # noqa: F401  (fills TASKS)

    with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    if TASK_KEY in arrays:
        name = str(arrays[TASK_KEY])
        if name not in TASKS:
            raise ValueError(f"predictions file {path} names task {name!r}; known tasks: {', '.join(TASKS.names())}")
        task = get_task(name)
    else:
        owners = [get_task(n) for n in TASKS.names()]
        owners = [t for t in owners if t.owns_file(set(arrays))]
        task = owners[0] if owners else get_task(DEFAULT_TASK)
    return task.from_arrays(arrays, path)


__all__ = ["DEFAULT_TASK", "TASKS", "Task", "get_task", "read_predictions", "task_of", "task_of_labels",
           "write_predictions"]
