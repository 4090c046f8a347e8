"""The strategy interface: how a model is trained, one batch at a time.

A strategy is a small class with one job: given the model and a batch, compute its losses and
take its optimiser step(s) through the :class:`StepContext` the engine hands it. The engine knows
nothing about any particular strategy. Adding one is a new file plus a registry line::

    @STRATEGIES.register("joint")
    class Joint(Strategy):
        requires = frozenset({LOGITS})
        def setup(self, model, train_dataset):
            self.bind_task(train_dataset)
        def training_step(self, model, batch, ctx):
            out = model(batch)
            loss = self.task.loss(out.logits, batch.label, class_weights=ctx.class_weights)
            ctx.backward(loss)
            ctx.step()
            return {"loss": loss.detach()}

Strategies are built as ``factory(**strategy.args)`` from the config; ``setup`` receives the model
and the training dataset before the optimiser exists (to add parameters or read label counts).

The dataset's task (:mod:`polymodal.tasks`) owns the loss: ``setup`` binds it (:meth:`Strategy.bind_task`,
which records it as ``self.task`` and checks that the task has every capability in the strategy's
``requires``), and the strategy calls ``self.task.loss(...)``. A strategy that requires only ``logits``
(joint, joint-concat, unimodal, mla with ``fusion_rule=fixed``) trains any task with a prediction per row
(classification, regression, multilabel, survival, ...); one that relies on softmax class probabilities
also requires ``single_label``; the ``contrastive`` strategy gives embeddings (``provides``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from polymodal.data.batch import Batch
from polymodal.registry import Registry
from polymodal.tasks.base import LOGITS, SINGLE_LABEL, Task, get_task, task_of

if TYPE_CHECKING:
    from polymodal.models import ModelOutput, MultimodalModel


@dataclass
class StepContext:
    """What the engine gives a strategy for one training batch.

    backward(loss):   loss.backward() through Fabric (handles precision, DDP)
    step(params=None, set_to_none=True, now=False): gradient clipping, optimiser step, then clear
                      gradients; honours gradient accumulation (only every ``accumulate``-th call with
                      the same ``params`` really steps, unless ``now``); returns True when it stepped
    grad_norm(module): L2 norm of a module's current gradients (for the per-encoder logging)
    class_weights:    (C,) per-class loss weights from ``data.class_weights`` (inverse class frequency), or
                      None; pass them to the task's loss (``self.task.loss(..., class_weights=ctx.class_weights)``)
    extra:            anything else the engine hands strategies (``"fabric"``); ``extra["class_weights"]``
                      mirrors ``class_weights`` for strategies written before it was a field
    """

    epoch: int
    batch_idx: int
    batches_per_epoch: int
    optimizer: torch.optim.Optimizer
    backward: Callable[[Tensor], None]
    step: Callable[..., bool]  # step(params=None, set_to_none=True) -> True when it really stepped
    zero_grad: Callable[[bool], None]  # zero_grad(set_to_none)
    all_reduce_mean: Callable[[Tensor], Tensor]  # identity in a single process
    world_size: int = 1
    extra: dict[str, Any] = field(default_factory=dict)
    accumulate: int = 1  # optim.accumulate: micro-batches per optimiser step (ctx.backward divides by it)
    class_weights: Tensor | None = None

    def __post_init__(self) -> None:
        if self.class_weights is None:
            self.class_weights = self.extra.get("class_weights")
        elif self.extra.get("class_weights") is not self.class_weights:
            self.extra = {**self.extra, "class_weights": self.class_weights}


def dataset_task(train_dataset: Any) -> Task:
    """The dataset's task object (:func:`polymodal.tasks.task_of`): the classification task when there is no
    dataset (strategies set up without one in tests) or it declares none; an unknown name is a ValueError."""
    return task_of(train_dataset)


def strategies_for(task: Task) -> list[str]:
    """The registered strategies that can train ``task`` (their ``requires`` among its capabilities and their
    ``provides`` what it scores), each as it is named in messages: ``mla (with strategy.args.fusion_rule=fixed)``
    when only the arguments of :attr:`Strategy.relaxed_by` make it fit."""
    fits = []
    for entry in STRATEGIES:
        cls = entry.factory
        if not isinstance(cls, type) or not issubclass(cls, Strategy):
            continue
        if cls.provides not in task.capabilities:
            continue
        if cls.requirements({}) <= task.capabilities:
            fits.append(entry.name)
        elif cls.relaxed_by and cls.requirements(cls.relaxed_by) <= task.capabilities:
            args = ", ".join(f"strategy.args.{k}={v}" for k, v in cls.relaxed_by.items())
            fits.append(f"{entry.name} (with {args})")
    return fits


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The MultimodalModel inside Fabric's / DDP's wrappers (for attribute access, not for forward)."""
    return getattr(model, "_original_module", getattr(model, "module", model))


def backward_and_step(core: torch.nn.Module, loss: Tensor, ctx: StepContext, logs: dict[str, Tensor | float]) -> dict[str, Tensor | float]:
    """The common end of a single-step strategy: backward, log each encoder's gradient norm, step.

    Returns ``logs`` with ``loss`` and ``grad_norm/<modality>`` added.
    """
    ctx.backward(loss)
    for m in core.modalities:
        logs[f"grad_norm/{m}"] = grad_norm(core.encoders[m])
    ctx.step()
    logs["loss"] = loss.detach()
    return logs


def grad_norm(module: torch.nn.Module) -> float:
    """L2 norm of all of ``module``'s current gradients (0.0 when none has one), with one host sync: each
    tensor's sum of squares in float32, added up in float64 in parameter order (a deterministic order)."""
    squares = [p.grad.detach().float().pow(2).sum() for p in module.parameters() if p.grad is not None]
    if not squares:
        return 0.0
    return sum(torch.stack(squares).tolist()) ** 0.5


class Strategy(ABC):
    """Base class; subclasses override ``training_step`` and optionally the hooks."""

    name: str = ""
    default_fusion: str = "late"  # fusion used when the config does not name one
    fusion_rule: str = "model"  # test-time rule: "model" = the fusion's own logits
    # the task capabilities the strategy relies on (polymodal.tasks.CAPABILITIES): "logits" for a prediction
    # per row trained by the task's loss, "single_label" too when it reads softmax class probabilities, the
    # true class's probability or class frequencies; bind_task refuses a task that lacks one
    requires: frozenset[str] = frozenset({LOGITS, SINGLE_LABEL})
    # what the strategy trains the model to give: "logits" (a prediction per row) or "embeddings" (one vector
    # per modality in a shared space); a task scores one of them (its capabilities say which)
    provides: str = LOGITS
    # strategy.args under which the strategy requires less (messages name them: mla with fusion_rule=fixed)
    relaxed_by: dict[str, Any] = {}
    # the strategy.args key that turns train_sample_weights on or off (named in messages), if it has one
    sample_weights_key: str | None = None
    _task: Task | None = None

    @classmethod
    def requirements(cls, args: dict[str, Any]) -> frozenset[str]:
        """What the strategy built with ``args`` (``strategy.args``) requires of its task; :attr:`requires` by
        default."""
        return cls.requires

    @property
    def task(self) -> Task:
        """The training dataset's task (:meth:`bind_task`); the default task before ``setup``."""
        return self._task if self._task is not None else get_task(None)

    @task.setter
    def task(self, task: Task) -> None:
        self._task = task

    def bind_task(self, train_dataset: Any) -> Task:
        """Record the training dataset's task as ``self.task`` after checking it has every capability this
        strategy requires (:meth:`polymodal.tasks.Task.check_strategy`); call it first thing in ``setup``."""
        task = dataset_task(train_dataset)
        if train_dataset is not None:  # without a dataset (a strategy set up alone) there is nothing to check
            task.check_strategy(self, self.name or type(self).__name__, getattr(train_dataset, "name", None))
        self.task = task
        return task

    def setup(self, model: MultimodalModel, train_dataset: Any) -> None:
        """Called once before the optimiser is built; binds the dataset's task (:meth:`bind_task`)."""
        self.bind_task(train_dataset)

    def train_sample_weights(self, train_dataset: Any) -> Tensor | None:
        """(N,) per-row sampling weights of the training split for the engine's sampler, or None (the default:
        a fresh random permutation of every row per epoch, or ``data.balanced_sampling``'s class weights).

        Called once after :meth:`setup`. With weights, every epoch draws N rows WITH replacement in proportion
        to them, a pure function of ``(seed, epoch)`` (so a resumed run sees the same batches); the epoch keeps
        its length (N draws, the same number of steps). Weights must be finite, >= 0, not all zero; they replace
        the sampler's rule, so ``data.balanced_sampling=true`` together with them is refused (the message names
        :attr:`sample_weights_key`). The co-learning strategies use it to put a fixed share of labelled rows in
        every batch (docs/colearning.md, "Labelled rows in every batch")."""
        return None

    def on_epoch_start(self, model: MultimodalModel, epoch: int) -> None:  # noqa: B027 - optional hook
        """Called at the start of every training epoch."""

    def prepare_evaluation(  # noqa: B027 - optional hook
        self, model: MultimodalModel, train_batches: Callable[[], Iterable[Batch]], world_size: int = 1,
        val_batches: Callable[[], Iterable[Batch]] | None = None,
    ) -> None:
        """Called before a split is evaluated (every validation, and the final val / test of the selected
        checkpoint). ``train_batches()`` iterates over the training split in a fixed order, for a
        test-time rule that depends on statistics of the trained model over the
        training data (deep CCA refits its canonical directions here); ``val_batches()`` over the
        validation split, for a rule fitted on held-out data (MLA's calibrated rules fit their
        temperatures here, once per trained state, and keep them in the checkpoint). The test split is
        never offered. Each process sees its shard, so gather across ``world_size`` processes. Nothing is
        read unless the strategy calls it."""

    @abstractmethod
    def training_step(self, model: MultimodalModel, batch: Batch, ctx: StepContext) -> dict[str, Tensor | float]:
        """Compute the losses of one batch, take the optimiser step(s), return named scalars."""

    def predict(self, model: MultimodalModel, batch: Batch) -> ModelOutput:
        """Evaluation forward pass; the returned logits are this strategy's fused prediction."""
        return model(batch)

    def state_dict(self) -> dict[str, Any]:
        """Strategy state saved with checkpoints (tensors allowed; JSON-able otherwise)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:  # noqa: B027 - stateless by default
        """Restore what ``state_dict`` returned."""


class StrategyRegistry(Registry[Strategy]):
    """The strategies: a registered class without a ``name`` of its own takes its registry name (what
    messages call it)."""

    def register(self, name: str, *, tiny: dict[str, Any] | None = None,
                 summary: str | None = None) -> Callable[[Callable[..., Strategy]], Callable[..., Strategy]]:
        add = super().register(name, tiny=tiny, summary=summary)

        def decorator(factory: Callable[..., Strategy]) -> Callable[..., Strategy]:
            if isinstance(factory, type) and issubclass(factory, Strategy) and not factory.__dict__.get("name"):
                factory.name = name
            return add(factory)

        return decorator


STRATEGIES: Registry[Strategy] = StrategyRegistry("strategy")
