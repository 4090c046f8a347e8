"""The task interface: what a run learns, from the label column to the report (docs/architecture.md, "A task").

A dataset declares its task by name (``MultimodalDataset.task``); everything after the model asks the
:class:`Task` object of that name instead of comparing strings or reading flags:

- labels:     :meth:`Task.claim` / :meth:`Task.parse_labels` / :meth:`Task.class_names_from` (a table's label
              column: which task it looks like and why, its targets, its classes), :meth:`Task.check_labels`
              (a dataset's labels fit the task), :meth:`Task.synthetic_data` (the synthetic dataset's targets),
              :meth:`Task.read_targets`, :meth:`Task.strata` / :meth:`Task.split_problems` (splits);
- training:   :meth:`Task.loss` (rows to ignore, class weights), :meth:`Task.sample_losses`,
              :meth:`Task.class_weights` / :meth:`Task.sample_weights` (``data.class_weights``,
              ``data.balanced_sampling``), :attr:`Task.capabilities` and :meth:`Task.check_strategy` (which
              strategies can train it: a strategy's ``requires`` must be among them);
- evaluation: :meth:`Task.batch_columns` (what one batch's model output contributes to the split's columns),
              :meth:`Task.modalities_alone`, :meth:`Task.predictions` (the split's columns -> a predictions
              object), :meth:`Task.metrics` / :meth:`Task.summarize` (computed once over the whole split),
              :attr:`Task.monitor` / :attr:`Task.mode` (the validation metric that selects the best epoch),
              :meth:`Task.fit_state` (what is fitted on another split after training: a threshold, a baseline);
- files:      :meth:`Task.to_arrays` / :meth:`Task.from_arrays` (the predictions file's arrays; the file
              itself is written and read by :func:`write_predictions` / :func:`read_predictions` only);
- prediction: :meth:`Task.prediction_columns` (the ``Predictor``'s output columns), :meth:`Task.embeddings`;
- report:     :meth:`Task.results_table`, :meth:`Task.report_section`, :meth:`Task.figures`.

A new task is one module with a subclass registered in :data:`TASKS` (found without any import line,
:mod:`polymodal.registries`)::

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
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import numpy as np
from torch import Tensor

from polymodal.registry import Registry
from polymodal.tasks.labels import Claim, LabelColumn, LabelProblem, finite
from polymodal.tasks.outputs import EvalOutputs, ModelOutput

if TYPE_CHECKING:
    from polymodal.strategies.base import Strategy

DEFAULT_TASK = "classification"
"""The task of a dataset that declares none (and of strategies set up without a dataset)."""

TASK_KEY = "task"
"""The predictions file's array that names its task (files without it are read by their arrays)."""

EXTRA_PREFIX = "extra_"
"""Prefix of the predictions file's arrays that hold the outputs' extras (``extra_<name>``)."""

# -- capabilities: what a task offers the strategies that train it -----------------------------------------
LOGITS = "logits"
EMBEDDINGS = "embeddings"
SINGLE_LABEL = "single_label"
PER_MODALITY = "per_modality"
CAPABILITIES: dict[str, str] = {
    LOGITS: "the model gives one prediction row per sample, trained by the task's loss",
    EMBEDDINGS: "the model gives one embedding per modality in a shared space",
    SINGLE_LABEL: "one class per sample: softmax probabilities, the true class's probability, class frequencies",
    PER_MODALITY: "each modality's own prediction is scored too",
}
"""Every capability a task may have (:attr:`Task.capabilities`) and a strategy may require
(``Strategy.requires``), with what it means (error messages quote it)."""


@dataclass
class SyntheticSpec:
    """What the ``synthetic`` dataset asks a task for (:meth:`Task.synthetic_data`): ``n`` samples of two
    tabular modalities of widths ``dims`` from the split's generator ``rng``; ``seed`` draws what every
    split shares (prototypes, read-out directions); the dataset's options ``num_classes``, ``num_targets``,
    ``noise`` (per modality) and ``target_noise``."""

    n: int
    dims: tuple[int, ...]
    rng: np.random.Generator
    seed: int
    num_classes: int
    num_targets: int
    noise: tuple[float, ...]
    target_noise: float


@dataclass
class SyntheticData:
    """The synthetic dataset's labels and features from a task: ``labels`` (N, ...) of the task's
    ``label_dtype``, ``x`` one (N, D_m) float32 array per modality, ``num_outputs``, ``class_names`` and
    what the provenance records (``provenance``)."""

    labels: np.ndarray
    x: list[np.ndarray]
    num_outputs: int
    class_names: tuple[str, ...] = ()
    provenance: dict[str, Any] | None = None


class Task(ABC):
    """One kind of supervision: its labels, loss, whole-split metrics, predictions file and report section.

    Tasks are stateless; :func:`get_task` builds one per call. Class attributes:

    name:            the registry name, the value of ``MultimodalDataset.task`` and of ``results.json``'s ``task``
    monitor, mode:   the validation metric that selects the best epoch, "max" or "min" (ties keep the earlier)
    log_suffix:      the per-modality metric shown in the epoch log line (``val/<m>_<log_suffix>``)
    label_dtype:     dtype of the targets in the collected outputs and the predictions file
    capabilities:    what strategies may rely on (:data:`CAPABILITIES`); a strategy whose ``requires`` are not
                     all here refuses the task with a message that names the strategies that fit
    fit_on:          the split whose outputs :meth:`fit_state` fits after training ("val", "train"), or None
    infer_priority:  the order in which :func:`polymodal.tasks.labels.infer_task` asks the task whether a
                     table's label column is its (higher first); None: only chosen by name
    """

    name: ClassVar[str] = ""
    monitor: ClassVar[str] = ""
    mode: ClassVar[Literal["max", "min"]] = "max"
    log_suffix: ClassVar[str] = ""
    label_dtype: ClassVar[type[np.generic]] = np.float32
    capabilities: ClassVar[frozenset[str]] = frozenset({LOGITS, PER_MODALITY})
    fit_on: ClassVar[str | None] = None
    infer_priority: ClassVar[int | None] = None

    # Tasks are compared with tasks (one registered name each); a task is not equal to its name.
    def __eq__(self, other: object) -> bool:
        if isinstance(other, Task):
            return self.name == other.name
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self.name)

    def __str__(self) -> str:
        return self.name

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"

    # -- labels ----------------------------------------------------------------------------------
    def claim(self, cells: Sequence[Any]) -> Claim | None:
        """Whether a table's label column (its non-empty ``cells``) looks like this task's labels: a
        :class:`~polymodal.tasks.labels.Claim` with the reason (shown in the data check), or None. Asked in
        :attr:`infer_priority` order; a claim with odd cells stops inference and names them."""
        return None

    def class_names_from(self, cells: Sequence[Any]) -> tuple[str, ...]:
        """The classes of a table's label column (non-empty ``cells``); () for a task without classes. A
        column that cannot be this task's labels raises a ValueError saying why."""
        return ()

    def parse_labels(self, cells: Sequence[Any], class_names: Sequence[str]) -> LabelColumn:
        """A table's label column (None: empty cell) as targets. By default finite numbers, one per cell:
        NaN on rows without a label; a cell that is not a finite number is an error of the data check."""
        bad = [r for r, v in enumerate(cells) if v is not None and finite(v) is None]
        problems = []
        if bad:
            problems.append(LabelProblem("bad_target", "error", f"{self.name} targets must be finite numbers (not "
                                         "words, NaN or infinite values); fix them, or leave them empty to predict "
                                         "those rows", bad, [cells[r] for r in bad]))
        values = np.array([x if (x := None if v is None else finite(v)) is not None else np.nan for v in cells],
                          dtype=np.float64)
        return LabelColumn(self.read_targets(values), np.array([v is not None for v in cells]), problems)

    def label_value(self, cell: Any) -> Any:
        """What a (non-empty) label cell stands for, so that two spellings of one label are one value (the
        row hashes a run stores): by default the number (``-29.90`` and ``-2.99e1`` are one target), or the
        text of a cell that is not a finite number."""
        x = finite(cell)
        return x if x is not None else str(cell)

    def num_outputs_for(self, class_names: Sequence[str], y: np.ndarray) -> int:
        """The model's outputs per sample for a table with these classes / targets: one per class, else one
        per target column."""
        return len(class_names) if class_names else (1 if np.asarray(y).ndim == 1 else int(np.asarray(y).shape[1]))

    def fill_missing(self, y: np.ndarray) -> np.ndarray:
        """Targets with the placeholder of rows without a label replaced by a valid value (those rows are
        not trained on; the value only keeps batches well formed)."""
        return np.nan_to_num(np.asarray(y))

    def label_shape(self, num_outputs: int) -> tuple[int, ...]:
        """The shape of one sample's target: () for one number, (K,) for K targets."""
        return () if num_outputs == 1 else (num_outputs,)

    def check_labels(self, labels: np.ndarray, num_outputs: int, where: str = "dataset") -> None:
        """A ValueError naming ``where`` when a dataset's ``labels`` (N, ...) are not targets of this task for
        ``num_outputs`` outputs: their shape, dtype or values."""
        y = np.asarray(labels)
        want = self.label_shape(num_outputs)
        if y.ndim == 0 or y.shape[1:] != want:
            raise ValueError(f"{where}: {self.name} labels of shape {y.shape}; expected (N{''.join(f', {k}' for k in want)}) "
                             f"for {num_outputs} output(s)")
        try:
            targets = self.read_targets(y)
        except ValueError as e:
            raise ValueError(f"{where}: {e}") from None
        if np.issubdtype(targets.dtype, np.floating) and not np.all(np.isfinite(targets)):
            raise ValueError(f"{where}: {self.name} labels hold NaN or infinite values")

    def read_targets(self, values: np.ndarray) -> np.ndarray:
        """A label column (or collected labels) as targets of :attr:`label_dtype`."""
        return np.asarray(values).astype(self.label_dtype)

    def strata(self, y: np.ndarray) -> np.ndarray:
        """(N,) int stratum per row for stratified splits: one stratum per distinct target by default."""
        return np.unique(np.asarray(y).astype(str), return_inverse=True)[1]

    def stratum_names(self, y: np.ndarray) -> np.ndarray | None:
        """Names of the rows' strata for messages (the class), or None when strata are not named."""
        return None

    def split_problems(self, y: np.ndarray, split: np.ndarray, class_names: Sequence[str]) -> list[LabelProblem]:
        """What the data check says about the labels of each split (``split`` (N,) train / val / test / ""),
        e.g. classes too small to be both learnt and scored."""
        return []

    def synthetic_data(self, spec: SyntheticSpec) -> SyntheticData:
        """The ``synthetic`` dataset's features and labels for this task (a task that defines none cannot
        be trained on it: a ValueError says so)."""
        raise ValueError(f"the synthetic dataset has no {self.name} variant: task {self.name!r} defines no "
                         "synthetic_data; pick another task or another dataset")

    # -- training ---------------------------------------------------------------------------------
    @abstractmethod
    def loss(self, output: Tensor | dict[str, Tensor], target: Tensor, *, rows: Tensor | None = None,
             class_weights: Tensor | None = None) -> Tensor:
        """The training loss of one output (logits, or a dict of per-modality tensors) against ``target``.

        rows:          (B,) bool, the rows that count (None: all); with no row selected the result is a
                       zero that still depends on ``output`` (every rank of a distributed run backpropagates)
        class_weights: what :meth:`class_weights` gave (``data.class_weights``)
        """

    def loss_input(self, output: ModelOutput) -> Tensor | dict[str, Tensor]:
        """What :meth:`loss` takes from a model's fused output (the ``joint`` strategies): its logits by default;
        a task trained on other outputs overrides it (the sequence task: the per-frame emissions)."""
        return output.logits

    def sample_losses(self, output: Tensor, target: Tensor, *, class_weights: Tensor | None = None) -> Tensor:
        """(B,) the loss of every sample (per-sample scores such as QMF's history); a task that has none
        raises a ValueError."""
        raise ValueError(f"task {self.name!r} has no per-sample loss")

    def class_weights(self, labels: np.ndarray, num_outputs: int) -> Tensor:
        """The loss weights that ``data.class_weights=true`` gives (from the training labels); a task without
        them raises a ValueError naming the setting."""
        raise ValueError(f"data.class_weights=true needs classes (per-class loss weights), but the dataset is a "
                         f"{self.name} task; set data.class_weights=false")

    def sample_weights(self, labels: np.ndarray, num_outputs: int) -> Tensor:
        """(N,) sampling weights of ``data.balanced_sampling=true`` (every class drawn equally often); a task
        without them raises a ValueError naming the setting."""
        raise ValueError(f"data.balanced_sampling=true needs classes (one class per sample, drawn equally often), but "
                         f"the dataset is a {self.name} task; set data.balanced_sampling=false")

    def fuse_unimodal_heads(self, out: ModelOutput, present: Mapping[str, Tensor]) -> ModelOutput:
        """The prediction of per-modality heads trained alone (the ``unimodal`` strategy): the model's own
        fusion by default; a task whose heads each predict the whole target overrides it (their mean)."""
        return out

    def check_strategy(self, strategy: Strategy, name: str, dataset: str | None = None) -> None:
        """A ValueError when ``strategy`` (registered as ``name``) requires a capability this task lacks; the
        message names what is missing and the strategies that can train the task."""
        from polymodal.strategies.base import strategies_for

        missing = sorted(set(strategy.requires) - set(self.capabilities))
        on = f" dataset {dataset!r} is" if dataset else " the dataset is"
        if strategy.provides not in self.capabilities:
            gives = CAPABILITIES.get(strategy.provides, strategy.provides)
            scored = " or ".join(CAPABILITIES[c] for c in (LOGITS, EMBEDDINGS) if c in self.capabilities) or "neither"
            problem = (f"strategy {name!r} trains a prediction per row ({strategy.provides}: {gives})"
                       if strategy.provides == LOGITS else f"strategy {name!r} trains {strategy.provides} ({gives})")
            problem += f", but{on} a {self.name} task, scored on what {scored}"
        elif missing:
            what = "; ".join(f"{c} ({CAPABILITIES.get(c, c)})" for c in missing)
            problem = f"strategy {name!r} needs {what}, but{on} a {self.name} task"
        else:
            return
        fits = strategies_for(self)
        choice = " or ".join(f"strategy.name={f}" for f in fits) if fits else "no registered strategy"
        raise ValueError(f"{problem}; a {self.name} task is trained by {choice}")

    # -- model outputs -> the split's columns ----------------------------------------------------
    def batch_columns(self, output: ModelOutput) -> dict[str, Tensor]:
        """The columns one batch's model output contributes, each (B, ...): gathered over ranks, de-duplicated
        on the dataset index and handed to :meth:`predictions` / :meth:`metrics` as whole-split arrays.
        ``"logits"`` fills ``EvalOutputs.logits``; any other key goes to ``EvalOutputs.columns``."""
        return {"logits": output.logits.float()}

    def modalities_alone(self, names: Sequence[str]) -> list[str]:
        """The modalities the engine also predicts alone (every other one marked absent) for per-modality
        metrics: all of them by default."""
        return list(names)

    @abstractmethod
    def predictions(self, out: EvalOutputs, class_names: Sequence[str] = ()) -> Any:
        """The split's collected outputs as this task's predictions object (the content of its predictions
        file): a dataclass with a class attribute ``task`` naming this task, ``y_true``, ``index`` and an
        ``extras`` dict (filled from ``out.extras`` by :func:`to_predictions`)."""

    def fit_state(self, out: EvalOutputs) -> Any:
        """What the task fits on the outputs of split :attr:`fit_on` of the best checkpoint (a threshold chosen on
        validation, a baseline of the training split); the engine hands it to every split's outputs
        (``EvalOutputs.fitted``) and keeps it in the run folder (:meth:`state_to_arrays`)."""
        return None

    def state_to_arrays(self, state: Any) -> dict[str, np.ndarray]:
        """The arrays that keep :meth:`fit_state`'s result in the run folder."""
        return {}

    def state_from_arrays(self, arrays: Mapping[str, np.ndarray], path: Path) -> Any:
        """:meth:`fit_state`'s result back from :meth:`state_to_arrays`; errors name ``path``."""
        return None

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
        """The arrays of the predictions file (``index``, ``task`` and the extras are added by
        :func:`write_predictions`)."""

    @abstractmethod
    def from_arrays(self, arrays: Mapping[str, np.ndarray], path: Path) -> Any:
        """The predictions object back from the file's arrays; errors name ``path``."""

    def owns_file(self, files: set[str]) -> bool:
        """Whether a predictions file without a ``task`` array (written before tasks were named) is this task's."""
        return False

    # -- the Predictor -----------------------------------------------------------------------------
    def prediction_columns(self, out: EvalOutputs, class_names: Sequence[str]) -> dict[str, np.ndarray]:
        """The columns ``Predictor.predict`` gives for the predicted rows of ``out`` (dataset order), each
        (N,) (or an object array of one value per row): ``prediction`` by default, the fused output (one
        number per row, or one array of K per row). Rows without input get NaN / "" / None."""
        values = np.asarray(out.logits)
        if values.ndim == 2 and values.shape[1] == 1:
            return {"prediction": values[:, 0].astype(np.float64)}
        column = np.empty(len(values), dtype=object)
        column[:] = [row.astype(np.float64) for row in values]
        return {"prediction": column}

    def embeddings(self, out: EvalOutputs | None, modalities: Sequence[str]) -> dict[str, np.ndarray]:
        """Each modality's (N, D) embeddings of the predicted rows (``Predictor.embed``); a task whose model
        gives no embeddings raises a ValueError."""
        raise ValueError(f"embed() is for coordinated towers (a task whose model gives per-modality embeddings, "
                         f"task='contrastive'); this predictor's task is {self.name} (use predict)")

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

    # -- polymodal bench ---------------------------------------------------------------------------
    bench_extra: ClassVar[tuple[str, ...]] = ()
    """Fused test metrics a benchmark tabulates beside the monitor and the per-modality metrics."""
    bench_percent: ClassVar[bool] = False
    """Whether the benchmark's metrics of this task are fractions in [0, 1] (shown in %)."""
    bench_score: ClassVar[str | None] = None
    """The test metric that is the mean of :meth:`sample_scores` (what ``polymodal bench`` compares between
    methods with a paired bootstrap); None: the task's metrics are not means of per-sample scores."""
    bench_score_label: ClassVar[str] = ""
    """How the tables' notes name :attr:`bench_score` (e.g. "fused test accuracy")."""

    def bench_metrics(self, test: Mapping[str, Any]) -> list[str]:
        """The test metrics a benchmark tabulates, in table order: the monitor, each modality's
        (``<m>_<log_suffix>``), then :attr:`bench_extra` (those that ``test`` holds)."""
        per = sorted(k for k in test if k.endswith(f"_{self.log_suffix}") and k != self.monitor)
        return [k for k in (self.monitor, *per, *self.bench_extra) if k in test]

    def accepts_metric(self, metric: str) -> bool:
        """Whether ``metric`` is one a benchmark of this task tabulates (results files check the names)."""
        return metric in (self.monitor, *self.bench_extra, self.bench_score) or metric.endswith(f"_{self.log_suffix}")

    def sample_scores(self, pred: Any) -> np.ndarray | None:
        """(N,) per-sample scores of a predictions object in dataset order, whose mean is :attr:`bench_score`
        (booleans: per-sample correctness), or None when the task has none."""
        return None

    # -- the tiny variant the registry-parametrised tests use ------------------------------------
    def example_labels(self, rng: np.random.Generator, n: int, num_outputs: int) -> np.ndarray:
        """Targets of a small split for :meth:`example_outputs`: standard normal, (N,) or (N, K)."""
        return self.read_targets(rng.standard_normal((n, num_outputs)) if num_outputs > 1 else rng.standard_normal(n))

    def example_outputs(self, n: int = 24, modalities: Sequence[str] = ("a", "b"), num_outputs: int = 3,
                        seed: int = 0) -> EvalOutputs:
        """Collected outputs of a small split with some rows missing a modality, as the engine gives
        :meth:`metrics`: :meth:`example_labels`, logits / outputs of ``num_outputs`` per row. A task whose
        model outputs are not logits overrides this."""
        rng = np.random.default_rng(seed)
        label = self.example_labels(rng, n, num_outputs)
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


def mean_of_present_heads(out: ModelOutput, present: Mapping[str, Tensor]) -> ModelOutput:
    """``out`` with its fused output replaced by the mean of the per-modality outputs over the present
    modalities (the ``fixed`` rule with equal weights): what a task whose heads each predict the whole target
    (regression, survival) gives for :meth:`Task.fuse_unimodal_heads`, since summing them would count the
    target once per modality."""
    from polymodal.inference.rules import fixed_fusion

    if out.per_modality is None:
        raise ValueError("strategy 'unimodal' needs per-modality outputs to predict (set model.fusion=late)")
    out.logits = fixed_fusion(out.per_modality, present)
    return out


# ----------------------------------------------------------------------------- the predictions file


def to_predictions(out: EvalOutputs, class_names: Sequence[str] = ()) -> Any:
    """The task's predictions object of collected outputs (:meth:`Task.predictions`), carrying their extras."""
    pred = get_task(out.task).predictions(out, tuple(class_names))
    if out.extras:
        pred.extras = dict(out.extras)
    return pred


def write_predictions(pred: Any, path: str | os.PathLike) -> Path:
    """Write a task's predictions object as ``.npz`` (compressed): the task's arrays, ``index``, ``task`` and
    one ``extra_<name>`` array per extra. This and :func:`read_predictions` are the only code that touches
    the file format."""
    task = get_task(pred.task)
    arrays = task.to_arrays(pred)
    y = arrays.get("y_true")
    n = len(y) if y is not None else 0
    arrays["index"] = np.asarray(pred.index) if getattr(pred, "index", None) is not None else np.arange(n)
    arrays[TASK_KEY] = np.asarray(task.name)
    arrays.update({f"{EXTRA_PREFIX}{k}": np.asarray(v) for k, v in (getattr(pred, "extras", None) or {}).items()})
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:  # a file object keeps numpy from appending a second ".npz"
        np.savez_compressed(f, **arrays)
    return path


LEGACY_EXTRAS = {"concept_": "concept."}
"""Arrays of files written before outputs carried extras: prefix -> the extra's group (``concept_<key>`` is
the extra ``concept.<key>``)."""


def read_predictions(path: str | os.PathLike) -> Any:
    """Read a predictions ``.npz`` written by :func:`write_predictions` (or by an older version, which named
    no task: the arrays tell). Raises FileNotFoundError / ValueError naming the file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"predictions file {path} does not exist")
    with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    extras = {k[len(EXTRA_PREFIX):]: arrays.pop(k) for k in list(arrays) if k.startswith(EXTRA_PREFIX)}
    for old, group in LEGACY_EXTRAS.items():
        extras.update({group + k[len(old):]: arrays.pop(k) for k in list(arrays) if k.startswith(old)})
    if TASK_KEY in arrays:
        name = str(arrays[TASK_KEY])
        if name not in TASKS:
            raise ValueError(f"predictions file {path} names task {name!r}; known tasks: {', '.join(TASKS.names())}")
        task = get_task(name)
    else:
        owners = [get_task(n) for n in TASKS.names()]
        owners = [t for t in owners if t.owns_file(set(arrays))]
        task = owners[0] if owners else get_task(DEFAULT_TASK)
    pred = task.from_arrays(arrays, path)
    if extras:
        pred.extras = extras
    return pred


def read_task_state(task: Task, path: str | os.PathLike) -> Any:
    """:meth:`Task.fit_state`'s result kept in a run folder (None when the file does not exist)."""
    path = Path(path)
    if not path.is_file():
        return None
    with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    return task.state_from_arrays(arrays, path)


def write_task_state(task: Task, state: Any, path: str | os.PathLike) -> Path | None:
    """Keep :meth:`Task.fit_state`'s result in a run folder (nothing is written for a task without one)."""
    arrays = task.state_to_arrays(state) if state is not None else {}
    if not arrays:
        return None
    path = Path(path)
    with open(path, "wb") as f:
        np.savez_compressed(f, **arrays)
    return path


__all__ = ["CAPABILITIES", "DEFAULT_TASK", "EMBEDDINGS", "LOGITS", "PER_MODALITY", "SINGLE_LABEL", "TASKS",
           "SyntheticData", "SyntheticSpec", "Task", "get_task", "mean_of_present_heads", "read_predictions", "read_task_state", "task_of",
           "task_of_labels", "to_predictions", "write_predictions", "write_task_state"]
