"""Small pieces that the balancing strategies share, written once (docs/architecture.md, "A strategy").

The balancing strategies (OGM-GE, AGM, PMR, MMPareto, QMF, G-Blending, UMT / UME) differ in their
rules, not in their plumbing. What they have in common lives here, so that a new strategy is written
from these pieces instead of from a copy of another strategy's file:

- :func:`check_setup`: the checks of ``setup`` (the task's capabilities, enough modalities, a fusion with
  per-modality logits or over pooled features, a training dataset), with errors that name the
  configuration key to change; :func:`per_modality_logits` is the matching guard at step time.
- :func:`check_number` and :func:`check_window`: the validation of ``strategy.args`` numbers and of a
  ``modulation_starts`` .. ``modulation_ends`` epoch window; :func:`in_window` reads the window.
- :class:`GradSnapshot`: this step's gradient apart from what earlier micro-batches accumulated
  (``optim.accumulate``), so that a strategy rescales or replaces only its own step's gradient
  (OGM-GE, AGM, MMPareto).
- :func:`present_sum`, :func:`mean_over_present` and :func:`true_class_probability`: per-modality
  scores as means over the rows where the modality is present, all-reduced under DDP so that every
  rank applies the same coefficients (OGM-GE, AGM, PMR); :func:`dominance_ratios`: each modality's
  score over the mean of the others' (OGM-GE, PMR).
- :func:`unimodal_losses`: the task's loss per modality over its present rows (MMPareto,
  G-Blending, UME, the per-modality logs of OGM-GE).
- :func:`eval_mode`, :func:`subset_loader`, :func:`prefixed_state` and :func:`from_prefixed_state`:
  passes over the training set in eval mode (PMR's prototypes, AGM's coalitions, G-Blending's probes)
  and per-modality tensors in a strategy's checkpointed state (PMR, QMF).

Every helper keeps the arithmetic of the code it replaced, operation for operation, so that a
fixed-seed run gives the same numbers to the last digit.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Subset

from polymodal.strategies.base import StepContext, Strategy, unwrap
from polymodal.tasks.base import Task

# --- setup checks ------------------------------------------------------------------------------------


def check_setup(
    strategy: Strategy,
    model: nn.Module,
    train_dataset: Any,
    *,
    min_modalities: int = 2,
    per_modality: bool = False,
    input_level: Literal["pooled", "sequence", "low_level"] | None = None,
    dataset_for: str | None = None,
) -> nn.Module:
    """The checks of a balancing strategy's ``setup``; returns the unwrapped model.

    strategy:       the strategy being set up (its ``name`` is named in every error; its task is bound)
    min_modalities: the fewest modalities the strategy can balance
    per_modality:   the fusion must yield per-modality logits (``yields_per_modality``, e.g. ``late``)
    input_level:    the fusion must take encoder features at this level (e.g. "pooled" (B, D))
    dataset_for:    the strategy reads the training dataset in ``setup`` (this says what for); a
                    missing dataset is an error

    Order of the checks: the task (:meth:`Strategy.bind_task`: the capabilities the strategy requires), the
    model, the dataset.
    """
    strategy.bind_task(train_dataset)
    name = strategy.name
    core = unwrap(model)
    level = "pooled (B, D)" if input_level == "pooled" else input_level
    wants = [f">= {min_modalities} modalities"] if min_modalities > 1 else []
    wants += ["a fusion with per-modality logits"] if per_modality else []
    wants += [f"a fusion over {level} encoder features"] if input_level is not None else []
    fits = (
        len(core.modalities) >= min_modalities
        and (not per_modality or getattr(core.fusion, "yields_per_modality", False))
        and (input_level is None or getattr(core.fusion, "input_level", "pooled") == input_level)
    )
    if not fits:  # the message names everything the strategy needs, so that one fix is enough
        fix = " (model.fusion=late)" if per_modality or input_level is not None else ""
        raise ValueError(
            f"strategy {name!r} needs {' and '.join(wants)}{fix}; got {type(core.fusion).__name__} "
            f"over {core.modalities}"
        )
    if dataset_for is not None and train_dataset is None:
        raise ValueError(f"strategy {name!r} needs the training dataset in setup() to {dataset_for}")
    return core


def per_modality_logits(out: Any, who: str) -> dict[str, Tensor]:
    """``out.per_modality`` of a model output; a ValueError naming ``who`` when the fusion yields none."""
    if out.per_modality is None:
        raise ValueError(f"{who} needs per-modality logits; use model.fusion=late")
    return out.per_modality


# --- strategy.args validation --------------------------------------------------------------------------


def check_number(key: str, value: Any, *, minimum: float = 0.0, strict: bool = False, note: str = "") -> float:
    """``value`` of ``strategy.args.<key>`` as a float, or a ValueError saying what was expected.

    Accepted: an int or a float ``>= minimum`` (``> minimum`` when ``strict``). ``note`` is added to the
    message in parentheses (e.g. the published default).
    """
    ok = isinstance(value, int | float) and (value > minimum if strict else value >= minimum)
    if not ok:
        bound = f"{'>' if strict else '>='} {minimum:g}"
        raise ValueError(f"strategy.args.{key}={value!r}; expected a number {bound}{f' ({note})' if note else ''}")
    return float(value)


def check_window(starts: Any, ends: Any) -> None:
    """Validate ``strategy.args.modulation_starts`` (an epoch >= 0) and ``modulation_ends`` (>= starts)."""
    if not (isinstance(starts, int) and starts >= 0):
        raise ValueError(f"strategy.args.modulation_starts={starts!r}; expected an epoch >= 0")
    if not (isinstance(ends, int) and ends >= starts):
        raise ValueError(f"strategy.args.modulation_ends={ends!r}; expected an epoch >= modulation_starts ({starts})")


def in_window(epoch: int, starts: int, ends: int) -> bool:
    """True when ``starts <= epoch <= ends`` (both inclusive): the strategy's modulation is active."""
    return starts <= epoch <= ends


# --- this step's gradient --------------------------------------------------------------------------------


class GradSnapshot:
    """The gradients already present before a backward pass, to tell this step's gradient apart.

    Under gradient accumulation (``optim.accumulate``) ``.grad`` holds the sum over the micro-batches
    so far; a strategy that rescales or replaces its gradient must touch only the current micro-batch's
    part and keep the earlier ones, so every micro-batch is modulated by its own coefficients::

        snap = GradSnapshot(core.encoders.parameters())
        ctx.backward(loss)
        snap.scale(core.encoders[m].parameters(), k)       # this step's gradient times k

    Taken with no earlier gradient (the common case), ``step_grad`` is ``.grad`` itself.
    """

    def __init__(self, params: Iterable[Tensor]) -> None:
        self.before: dict[int, Tensor] = {id(p): p.grad.detach().clone() for p in params if p.grad is not None}

    def step_grad(self, p: Tensor) -> Tensor | None:
        """This step's gradient of ``p`` (None when ``p`` has no gradient)."""
        if p.grad is None:
            return None
        prev = self.before.get(id(p))
        return p.grad if prev is None else p.grad - prev

    def replace(self, p: Tensor, new: Tensor) -> None:
        """Set ``p``'s gradient to ``new`` plus what earlier micro-batches accumulated."""
        prev = self.before.get(id(p))
        p.grad = new if prev is None else prev + new

    def scale(self, params: Iterable[Tensor], k: float) -> None:
        """Multiply this step's gradient of every parameter in ``params`` that has one by ``k``."""
        for p in params:
            g = self.step_grad(p)
            if g is not None:
                self.replace(p, g * k)


# --- per-modality scores ---------------------------------------------------------------------------------


def true_class_probability(logits: Tensor, label: Tensor) -> Tensor:
    """(N, C) logits, (N,) labels -> (N,) softmax probability of the true class (in float32 at least)."""
    return torch.softmax(logits.float(), dim=1).gather(1, label[:, None]).squeeze(1)


@torch.no_grad()
def present_sum(values: Tensor, rows: Tensor) -> Tensor:
    """(2,) = [sum of ``values`` (one per present row), number of present rows]: one modality's part of
    :func:`mean_over_present`, without gradient."""
    return torch.stack([values.sum(), rows.sum().float()])


@torch.no_grad()
def mean_over_present(stats: Mapping[str, Tensor], ctx: StepContext) -> dict[str, float]:
    """Per-modality means from :func:`present_sum` pairs, over the rows of every rank.

    Under DDP the (sum, count) pairs are all-reduced first (one collective), so every rank gets the
    same means and applies the same coefficients. A modality with no present row is left out.
    """
    names = list(stats)
    stacked = torch.stack([stats[m] for m in names])  # (M, 2): sum, present rows
    if ctx.world_size > 1:
        stacked = ctx.all_reduce_mean(stacked)
    return {m: float(s / n) for m, (s, n) in zip(names, stacked.tolist(), strict=True) if n > 0}


def dominance_ratios(scores: Mapping[str, float]) -> dict[str, float]:
    """ratio_m = score_m / mean over the other modalities of their scores (inf when those are all 0).

    For two modalities this is OGM-GE's and PMR's published ratio (s_a / s_v); for more, each modality
    is compared with the mean of the others. A ratio above 1 marks a dominant modality.
    """
    names = list(scores)
    if len(names) < 2:
        raise ValueError(f"dominance ratios need scores of >= 2 modalities; got {names}")
    ratios: dict[str, float] = {}
    for m in names:
        others = sum(scores[j] for j in names if j != m) / (len(names) - 1)
        ratios[m] = scores[m] / others if others > 0 else math.inf
    return ratios


# --- losses ------------------------------------------------------------------------------------------------


def unimodal_losses(
    task: Task,
    per_modality: Mapping[str, Tensor],
    present: Mapping[str, Tensor],
    label: Tensor,
    weight: Tensor | None = None,
    names: Sequence[str] | None = None,
) -> dict[str, Tensor]:
    """modality -> the task's loss of its logits over the rows where it is present (a classification: the mean
    cross-entropy).

    ``names`` fixes the order (default: the order of ``per_modality``); a modality present in no row
    is left out. ``weight`` is what ``data.class_weights`` gave (``ctx.class_weights``).
    """
    out: dict[str, Tensor] = {}
    for m in per_modality if names is None else names:
        rows = present[m]
        if bool(rows.any()):
            out[m] = task.loss(per_modality[m], label, rows=rows, class_weights=weight)
    return out


# --- passes over the training set, checkpointed state ---------------------------------------------------


@contextmanager
def eval_mode(module: nn.Module) -> Iterator[nn.Module]:
    """Put ``module`` in eval mode for the block and restore its previous mode afterwards."""
    was_training = module.training
    module.eval()
    try:
        yield module
    finally:
        module.train(was_training)


def subset_loader(
    dataset: Any, idx: Sequence[int] | np.ndarray, batch_size: int, shuffle: bool = False,
    generator: torch.Generator | None = None,
) -> DataLoader:
    """A DataLoader over the dataset positions ``idx`` (a list or a numpy array), collated as the dataset
    collates its batches."""
    positions = idx.tolist() if isinstance(idx, np.ndarray) else list(idx)
    return DataLoader(
        Subset(dataset, positions), batch_size=batch_size, shuffle=shuffle, generator=generator,
        collate_fn=dataset.collate_fn(),
    )


def prefixed_state(prefix: str, tensors: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """``{"<prefix>/<modality>": tensor}``: per-modality tensors for a strategy's ``state_dict``, as CPU
    copies."""
    return {f"{prefix}/{m}": t.detach().cpu().clone() for m, t in tensors.items()}


def from_prefixed_state(state: Mapping[str, Any], prefix: str, dtype: torch.dtype) -> dict[str, Tensor]:
    """The inverse of :func:`prefixed_state`: modality -> tensor of ``dtype`` (entries of other prefixes
    are ignored)."""
    head = f"{prefix}/"
    return {k[len(head):]: torch.as_tensor(v).to(dtype).clone() for k, v in state.items() if k.startswith(head)}


__all__ = [
    "GradSnapshot",
    "check_number",
    "check_setup",
    "check_window",
    "dominance_ratios",
    "eval_mode",
    "from_prefixed_state",
    "in_window",
    "mean_over_present",
    "per_modality_logits",
    "prefixed_state",
    "present_sum",
    "subset_loader",
    "true_class_probability",
    "unimodal_losses",
]
