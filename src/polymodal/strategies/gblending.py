"""Gradient-Blending (G-Blending): weight unimodal and multimodal losses by their generalisation.

Paper: W. Wang, D. Tran, M. Feiszli, "What Makes Training Multi-modal Classification Networks Hard?",
CVPR 2020, arXiv 1905.12681. Re-implementation followed for the online schedule: BalanceBenchmark
(github GeWu-Lab/BalanceBenchmark, ``GBlending_trainer.py``).

Training loss: ``sum_m w_m CE(o_m) + w_fused CE(fused)`` (late fusion: ``o_m`` are the per-modality
heads' logits, ``fused`` their sum; each ``CE(o_m)`` uses only the rows where m is present).

Online G-Blending (the paper's Algorithm 2): at the start of every super-epoch, from the current
weights, each branch k (each modality alone, and the fused model) is trained on its own copy for
``probe_epochs`` epochs; its training loss L^T and held-out loss L^V are measured before (n) and after
(n + N) that probe training, and

    Delta_G_k = L^V_n - L^V_{n+N}                            (generalisation gained)
    Delta_O_k = (L^V_{n+N} - L^T_{n+N}) - (L^V_n - L^T_n)    (overfitting gained)
    w_k = max(Delta_G_k, 0) / Delta_O_k^2,   normalised to sum to 1   (uniform if every w_k is 0)

Held-out data: a fraction ``holdout`` of the TRAINING set, carved once in ``setup`` with a fixed seed
(a permutation of the dataset positions by ``numpy.random.default_rng(seed)``); those rows are never
trained on (they are dropped from every training batch by their dataset index) and the validation and
test splits are never touched. Losses are means over samples, measured in eval mode at the same weights
(the reference code sums batch losses of a training epoch, which mixes scales). A branch whose held-out
loss got worse gets weight 0 (the reference code takes ``abs(Delta_G)``, rewarding it).

Cost: each estimation trains (M + 1) copies for ``probe_epochs`` epochs. Probe copies use a fresh
optimiser of the run's optimiser class and current hyper-parameters (first parameter group), and run
under a forked RNG seeded by (seed, epoch), so they neither perturb nor depend on the main run's RNG.
Under DDP every rank repeats the (deterministic) estimation on the full data and gets the same weights.

Hyper-parameters: ``super_epoch`` 10 (BalanceBenchmark; the paper re-estimates every super-epoch and
trains each probe for the super-epoch's length, ``probe_epochs=None``), ``holdout`` 0.1.
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader

from polymodal.data.batch import Batch
from polymodal.strategies.base import STRATEGIES, StepContext, Strategy, backward_and_step, unwrap
from polymodal.strategies.toolkit import check_setup, per_modality_logits, subset_loader, unimodal_losses
from polymodal.tasks.base import Task

FUSED = "fused"  # branch key of the multimodal (fused) loss



def blending_weights(
    before: Mapping[str, tuple[float, float]], after: Mapping[str, tuple[float, float]], eps: float = 1e-12
) -> dict[str, float]:
    """G-Blending weights from per-branch (train loss, held-out loss) before and after a super-epoch.

    w_k = max(Delta_G_k, 0) / (Delta_O_k^2 + eps), normalised over branches (uniform if all are 0).
    """
    raw = {}
    for k, (t0, v0) in before.items():
        t1, v1 = after[k]
        gain = v0 - v1
        overfit = (v1 - t1) - (v0 - t0)
        raw[k] = max(gain, 0.0) / (overfit * overfit + eps)
    total = sum(raw.values())
    if total <= 0:  # no branch generalised better: fall back to equal weights
        return {k: 1.0 / len(raw) for k in raw}
    return {k: v / total for k, v in raw.items()}


def _branch_loss(task: Task, model: nn.Module, batch: Batch, branch: str, weight: Tensor | None) -> Tensor | None:
    """The task's loss (mean CE) of one branch on a batch; None when the branch's modality is absent from every row."""
    if branch == FUSED:
        return task.loss(model(batch).logits, batch.label, class_weights=weight)
    rows = batch.present[branch]
    if not bool(rows.any()):
        return None
    sub = batch if bool(rows.all()) else batch.select(rows)
    return task.loss(model(sub, modalities=[branch]).per_modality[branch], sub.label, class_weights=weight)


@STRATEGIES.register("gblending", tiny={"super_epoch": 1, "probe_epochs": 1, "holdout": 0.25})
class GBlending(Strategy):
    """Online Gradient-Blending: loss weights from each branch's overfitting-to-generalisation ratio.

    super_epoch:   epochs between two weight estimations (10, as BalanceBenchmark)
    probe_epochs:  epochs each branch copy trains during an estimation (None = super_epoch, the paper)
    holdout:       fraction of the training set held out to measure generalisation (0 < holdout < 1)
    seed:          seed of the held-out carving and of the probe trainings
    probe_batch_size: batch size of the probe loaders (None = the size of the training batch)
    Fusion: needs per-modality logits (default ``late``).
    """

    def __init__(
        self,
        super_epoch: int = 10,
        probe_epochs: int | None = None,
        holdout: float = 0.1,
        seed: int = 0,
        probe_batch_size: int | None = None,
    ) -> None:
        if not (isinstance(super_epoch, int) and super_epoch >= 1):
            raise ValueError(f"strategy.args.super_epoch={super_epoch!r}; expected an integer >= 1 (epochs)")
        if probe_epochs is not None and not (isinstance(probe_epochs, int) and probe_epochs >= 1):
            raise ValueError(f"strategy.args.probe_epochs={probe_epochs!r}; expected an integer >= 1 or null")
        if not (isinstance(holdout, int | float) and 0 < holdout < 1):
            raise ValueError(f"strategy.args.holdout={holdout!r}; expected a fraction strictly between 0 and 1")
        if probe_batch_size is not None and not (isinstance(probe_batch_size, int) and probe_batch_size >= 1):
            raise ValueError(f"strategy.args.probe_batch_size={probe_batch_size!r}; expected an integer >= 1")
        self.super_epoch = super_epoch
        self.probe_epochs = probe_epochs if probe_epochs is not None else super_epoch
        self.holdout = float(holdout)
        self.seed = seed
        self.probe_batch_size = probe_batch_size
        self.weights: dict[str, float] | None = None  # branch -> weight; None until the first estimate
        self.estimated_at = -1  # epoch of the last estimation
        self.history: list[dict[str, float]] = []  # weights of every estimation, in order
        self._dataset: Any = None
        self._train_idx: np.ndarray | None = None
        self._holdout_idx: np.ndarray | None = None
        self._is_holdout: Tensor | None = None
        self._due = False

    def setup(self, model: nn.Module, train_dataset: Any) -> None:
        core = check_setup(self, model, train_dataset, per_modality=True,
                           dataset_for="carve its held-out part")
        if FUSED in core.modalities:
            raise ValueError(f"strategy 'gblending' names its fused branch {FUSED!r}; rename that modality")
        n = len(train_dataset)
        n_hold = int(round(self.holdout * n))
        if n_hold < 1 or n - n_hold < 1:
            raise ValueError(
                f"strategy.args.holdout={self.holdout} leaves {n_hold} held-out and {n - n_hold} training "
                f"samples out of {n}; both must be >= 1 (change holdout)"
            )
        perm = np.random.default_rng(self.seed).permutation(n)
        self._holdout_idx = np.sort(perm[:n_hold])
        self._train_idx = np.sort(perm[n_hold:])
        self._is_holdout = torch.zeros(n, dtype=torch.bool)
        self._is_holdout[torch.from_numpy(self._holdout_idx)] = True
        self._dataset = train_dataset
        self._branches = [*core.modalities, FUSED]

    def on_epoch_start(self, model: nn.Module, epoch: int) -> None:
        # the estimate needs the optimiser, known only in training_step: run it on the epoch's first batch
        self._due = epoch % self.super_epoch == 0 and epoch != self.estimated_at

    def _loader(self, idx: np.ndarray, batch_size: int, shuffle: bool, gen: torch.Generator | None) -> DataLoader:
        return subset_loader(self._dataset, idx, batch_size, shuffle, gen)

    def _mean_loss(
        self,
        model: nn.Module, loader: Iterable[Batch], branch: str, device: torch.device, w: Tensor | None
    ) -> float:
        model.eval()
        total, count = 0.0, 0
        with torch.no_grad():
            for batch in loader:
                batch = batch.to(device)
                n = int(batch.size if branch == FUSED else batch.present[branch].sum())
                loss = _branch_loss(self.task, model, batch, branch, w)
                if loss is not None:
                    total, count = total + float(loss) * n, count + n
        return total / max(count, 1)

    def estimate(self, model: nn.Module, optimizer: torch.optim.Optimizer, batch_size: int, epoch: int,
                 class_weights: Tensor | None = None) -> dict[str, float]:
        """Train a copy per branch for ``probe_epochs`` epochs from the current weights; return w_k."""
        if self._dataset is None:
            raise RuntimeError("GBlending.estimate() called before setup(model, train_dataset)")
        core = unwrap(model)
        device = next(core.parameters()).device
        inner = getattr(optimizer, "optimizer", optimizer)  # Fabric wraps the optimiser
        group = inner.param_groups[0]
        accepted = inspect.signature(type(inner).__init__).parameters
        opt_kwargs = {k: v for k, v in group.items() if k != "params" and k in accepted}
        bs = self.probe_batch_size or batch_size
        devices = [device] if device.type == "cuda" else []
        before, after = {}, {}
        with torch.random.fork_rng(devices=devices):
            for i, branch in enumerate(self._branches):
                torch.manual_seed(self.seed * 100_003 + epoch * 101 + i)
                gen = torch.Generator().manual_seed(self.seed * 100_003 + epoch * 101 + i)
                probe = copy.deepcopy(core)
                probe.zero_grad(set_to_none=True)
                opt = type(inner)(probe.parameters(), **opt_kwargs)
                train_eval = self._loader(self._train_idx, bs, False, None)
                held = self._loader(self._holdout_idx, bs, False, None)
                before[branch] = (self._mean_loss(probe, train_eval, branch, device, class_weights),
                                  self._mean_loss(probe, held, branch, device, class_weights))
                for _ in range(self.probe_epochs):
                    probe.train()
                    for batch in self._loader(self._train_idx, bs, True, gen):
                        loss = _branch_loss(self.task, probe, batch.to(device), branch, class_weights)
                        if loss is None:
                            continue
                        opt.zero_grad(set_to_none=True)
                        loss.backward()
                        opt.step()
                after[branch] = (self._mean_loss(probe, train_eval, branch, device, class_weights),
                                 self._mean_loss(probe, held, branch, device, class_weights))
                del probe, opt
        core.train()
        return blending_weights(before, after)

    def training_step(self, model: nn.Module, batch: Batch, ctx: StepContext) -> dict[str, Tensor | float]:
        core = unwrap(model)
        if self._is_holdout is None:
            raise RuntimeError("strategy 'gblending' was not set up: call setup(model, train_dataset) first")
        weights_ce = ctx.class_weights
        if self._due or self.weights is None:
            self.weights = self.estimate(model, ctx.optimizer, batch.size, ctx.epoch, weights_ce)
            self.estimated_at, self._due = ctx.epoch, False
            self.history.append(dict(self.weights))
        keep = ~self._is_holdout[batch.index.cpu()].to(batch.label.device)
        logs: dict[str, Tensor | float] = {f"weight/{k}": w for k, w in self.weights.items()}
        if not bool(keep.any()):  # every row of this batch is held out: nothing to train on
            return {"loss": 0.0, **logs}
        sub = batch if bool(keep.all()) else batch.select(keep)
        out = model(sub)
        per = per_modality_logits(out, "G-Blending")
        loss_fused = self.task.loss(out.logits, sub.label, class_weights=weights_ce)
        loss = self.weights[FUSED] * loss_fused
        logs[f"loss/{FUSED}"] = loss_fused.detach()
        for m, loss_m in unimodal_losses(self.task, per, sub.present, sub.label, weights_ce, names=core.modalities).items():
            loss = loss + self.weights[m] * loss_m
            logs[f"loss/{m}"] = loss_m.detach()
        return backward_and_step(core, loss, ctx, logs)

    def state_dict(self) -> dict[str, Any]:
        return {"weights": dict(self.weights) if self.weights is not None else None,
                "estimated_at": self.estimated_at, "history": [dict(h) for h in self.history]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        w = state.get("weights")
        self.weights = {k: float(v) for k, v in w.items()} if w is not None else None
        self.estimated_at = int(state.get("estimated_at", -1))
        self.history = [{k: float(v) for k, v in h.items()} for h in state.get("history", [])]
