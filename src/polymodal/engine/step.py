"""What the engine hands a strategy for each batch: backward, step (clipping, accumulation), zero_grad.

:class:`Stepper` fills :class:`polymodal.strategies.base.StepContext`:

- ``ctx.backward(loss)`` checks that the loss is finite on every rank (else raises
  :class:`NonFiniteLoss` before any gradient exists) and back-propagates ``loss / accumulate``
  through Fabric.
- ``ctx.step(params=None, set_to_none=True)`` counts calls; only every ``accumulate``-th call
  with the same ``params`` really steps: gradient clipping (global L2 norm of ``params``, or of all
  the optimiser's parameters when ``params`` is None), ``optimizer.step()``, then gradients are
  cleared (set to None, or zeroed with ``set_to_none=False``). Returns True when it stepped.
  ``step(params, now=True)`` steps at once: for a strategy that gathers the ``accumulate`` micro-batches
  itself (MLA, whose alternating steps must each see the whole accumulated batch) and back-propagates
  each micro-batch's share of the loss times ``accumulate`` (``ctx.accumulate``).
  A strategy that steps per modality (MLA) may pass that step's parameters so that each modality
  keeps its own accumulation count and clipping norm; the optimiser still updates every parameter
  that holds a gradient, so such a strategy clears the others' gradients first.
- ``ctx.zero_grad(set_to_none)`` clears every gradient now.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from lightning_fabric import Fabric
from torch import Tensor, nn

from polymodal.strategies.base import StepContext


class NonFiniteLoss(RuntimeError):
    """Raised by ``ctx.backward`` when the loss is NaN or infinite (on any rank); nothing was stepped."""

    def __init__(self, value: float, epoch: int, batch_idx: int) -> None:
        super().__init__(f"training loss is {value} at epoch index {epoch}, batch {batch_idx}")
        self.value, self.epoch, self.batch_idx = value, epoch, batch_idx


class Stepper:
    """Backward / step / zero_grad for one optimiser, with accumulation and clipping."""

    def __init__(
        self,
        fabric: Fabric,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        *,
        accumulate: int = 1,
        grad_clip: float | None = None,
    ) -> None:
        if accumulate < 1:
            raise ValueError(f"optim.accumulate must be >= 1; got {accumulate}")
        self.fabric, self.model, self.optimizer = fabric, model, optimizer
        self.accumulate, self.grad_clip = accumulate, grad_clip
        self._pending: dict[tuple[int, ...] | None, tuple[list[Tensor] | None, int]] = {}
        self.optimizer_steps = 0  # real optimiser steps taken
        self._where = (0, 0)  # (epoch index, batch index) of the current context, for error messages

    @property
    def world_size(self) -> int:
        return self.fabric.world_size

    def all_reduce_mean(self, x: Tensor) -> Tensor:
        """Mean over ranks (identity in a single process)."""
        if self.world_size == 1:
            return x
        return self.fabric.all_reduce(x.detach().clone(), reduce_op="mean")

    def backward(self, loss: Tensor) -> None:
        bad = (~torch.isfinite(loss.detach())).any().to(torch.float32)
        if self.world_size > 1:
            bad = self.fabric.all_reduce(bad, reduce_op="sum")
        if float(bad) > 0:
            raise NonFiniteLoss(float(loss.detach().float().flatten()[0]), *self._where)
        self.fabric.backward(loss / self.accumulate if self.accumulate > 1 else loss)

    def step(self, params: Iterable[Tensor] | None = None, set_to_none: bool = True, now: bool = False) -> bool:
        plist = None if params is None else list(params)
        key = None if plist is None else tuple(id(p) for p in plist)
        if now:  # the strategy accumulated the micro-batches itself (MLA): apply what the gradients hold
            self._pending.pop(key, None)
            self._apply(plist, set_to_none)
            return True
        count = self._pending.get(key, (plist, 0))[1] + 1
        if count < self.accumulate:
            self._pending[key] = (plist, count)
            return False
        self._pending.pop(key, None)
        self._apply(plist, set_to_none)
        return True

    def flush(self) -> int:
        """Step every parameter set with accumulated, not yet applied gradients (end of an epoch)."""
        pending, self._pending = self._pending, {}
        for plist, _ in pending.values():
            self._apply(plist, True)
        return len(pending)

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.optimizer.zero_grad(set_to_none=set_to_none)

    def _apply(self, params: list[Tensor] | None, set_to_none: bool) -> None:
        if self.grad_clip is not None:
            if params is None:
                self.fabric.clip_gradients(self.model, self.optimizer, max_norm=self.grad_clip, error_if_nonfinite=False)
            else:
                raw = getattr(self.optimizer, "optimizer", self.optimizer)  # unwrap Fabric's optimizer
                self.fabric.strategy.precision.unscale_gradients(raw)
                torch.nn.utils.clip_grad_norm_(params, max_norm=self.grad_clip)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=set_to_none)
        self.optimizer_steps += 1

    def context(self, epoch: int, batch_idx: int, batches_per_epoch: int, extra: dict[str, Any],
                class_weights: Tensor | None = None) -> StepContext:
        """The StepContext of batch ``batch_idx`` of 0-based ``epoch`` (``class_weights``: ``data.class_weights``)."""
        self._where = (epoch, batch_idx)
        return StepContext(
            epoch=epoch,
            batch_idx=batch_idx,
            batches_per_epoch=batches_per_epoch,
            optimizer=self.optimizer,
            backward=self.backward,
            step=self.step,
            zero_grad=self.zero_grad,
            all_reduce_mean=self.all_reduce_mean,
            world_size=self.world_size,
            extra=extra,
            accumulate=self.accumulate,
            class_weights=class_weights,
        )
