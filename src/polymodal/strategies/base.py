"""The strategy interface: how a model is trained, one batch at a time.

A strategy is a small class with one job: given the model and a batch, compute its losses and
take its optimiser step(s) through the :class:`StepContext` the engine hands it. The engine knows
nothing about any particular strategy. Adding one is a new file plus a registry line::

    @STRATEGIES.register("joint")
    class Joint(Strategy):
        def training_step(self, model, batch, ctx):
            out = model(batch)
            loss = F.cross_entropy(out.logits, batch.label)
            ctx.backward(loss)
            ctx.step()
            return {"loss": loss.detach()}

Strategies are built as ``factory(**strategy.args)`` from the config; ``setup`` receives the model
and the training dataset before the optimiser exists (to add parameters or read label counts).

The dataset's task (:mod:`polymodal.tasks`, :func:`dataset_task`) owns the loss: a strategy with
``supports_regression = True`` (joint, joint-concat, unimodal, mla with ``fusion_rule=fixed``) records the
task object in ``setup`` (``self.task``) and calls ``self.task.loss(...)``, so it trains a regression (mean
squared error) as well as a classification. Every other strategy needs classes and calls
:func:`require_classification` first thing in ``setup``.
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
from polymodal.tasks import Task, get_task, task_of

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


REGRESSION_STRATEGIES = "joint, joint-concat, unimodal and mla (with strategy.args.fusion_rule=fixed)"


def dataset_task(train_dataset: Any) -> Task:
    """The dataset's task object (:func:`polymodal.tasks.task_of`): the classification task when there is no
    dataset (strategies set up without one in tests) or it declares none; an unknown name is a ValueError."""
    return task_of(train_dataset)


def require_classification(strategy: str, train_dataset: Any) -> None:
    """Raise a ValueError naming ``strategy`` when ``train_dataset``'s task has no classes (a regression)."""
    task = dataset_task(train_dataset)
    if not task.uses_classes:
        name = getattr(train_dataset, "name", None)
        raise ValueError(
            f"strategy {strategy!r} supports classification only, but the dataset"
            f"{f' {name!r}' if name else ''} is a {task.name} task; {task.name} is supported by "
            f"{REGRESSION_STRATEGIES}"
        )


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
    supports_regression: bool = False  # True: setup() accepts a regression dataset
    # what the strategy trains the model to output: "logits" (a prediction per row, scored by the task's
    # loss) or "embeddings" (one vector per modality in a shared space); a task whose ``embeddings`` flag is
    # set needs an "embeddings" strategy and the engine refuses any other (engine.build.check_task)
    outputs: str = "logits"
    task: Task = get_task(None)  # the training dataset's task; set in setup() by regression-capable strategies

    def setup(self, model: MultimodalModel, train_dataset: Any) -> None:  # noqa: B027 - optional hook
        """Called once before the optimiser is built."""

    def on_epoch_start(self, model: MultimodalModel, epoch: int) -> None:  # noqa: B027 - optional hook
        """Called at the start of every training epoch."""

    def prepare_evaluation(  # noqa: B027 - optional hook
        self, model: MultimodalModel, train_batches: Callable[[], Iterable[Batch]], world_size: int = 1
    ) -> None:
        """Called before a split is evaluated (every validation, and the final val / test of the selected
        checkpoint). ``train_batches()`` iterates over the training split in a fixed order, for a
        test-time rule that depends on statistics of the trained model over the
        training data (deep CCA refits its canonical directions here); each process sees its shard, so
        gather across ``world_size`` processes. Nothing is read unless the strategy calls it."""

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


STRATEGIES: Registry[Strategy] = Registry("strategy")
