"""Helpers shared by the balancing-baseline tests: a hand-made StepContext and tiny synthetic setups."""

from __future__ import annotations

import torch
import torch.nn.functional as F

import polymodal.fusion.late  # noqa: F401  (registers the late fusion)
from polymodal.data.base import build_dataset
from polymodal.data.batch import Batch
from polymodal.models import build_model
from polymodal.strategies.base import StepContext


class Ctx:
    """Builds StepContexts around one optimiser; ``captured`` keeps each step's gradients (pre-step).

    ``accumulate`` mirrors the engine: backward of loss / accumulate, a real step every accumulate-th call.
    """

    def __init__(self, model: torch.nn.Module, opt: str = "adam", lr: float = 1e-2, accumulate: int = 1) -> None:
        self.model, self.accumulate, self.calls = model, accumulate, 0
        if opt == "adam":
            self.opt = torch.optim.Adam(model.parameters(), lr=lr)
        else:
            self.opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
        self.captured: list[dict[str, torch.Tensor]] = []
        self.steps = 0

    def _step(self, params=None, set_to_none: bool = True) -> bool:
        self.calls += 1
        if self.calls % self.accumulate:
            return False
        self.captured.append(
            {n: p.grad.detach().clone() for n, p in self.model.named_parameters() if p.grad is not None}
        )
        self.opt.step()
        self.opt.zero_grad(set_to_none=set_to_none)
        self.steps += 1
        return True

    def make(self, epoch: int = 0, batch_idx: int = 0, n: int = 10) -> StepContext:
        return StepContext(
            epoch=epoch, batch_idx=batch_idx, batches_per_epoch=n, optimizer=self.opt,
            backward=lambda loss: (loss / self.accumulate).backward(), step=self._step,
            zero_grad=lambda set_to_none: self.opt.zero_grad(set_to_none=set_to_none),
            all_reduce_mean=lambda t: t,
        )


def make_setup(strategy, size: int = 48, missing: float = 0.0, seed: int = 0):
    """(model, dataset) on the synthetic dataset, width 8, late fusion; ``strategy.setup`` called."""
    torch.manual_seed(seed)
    ds = build_dataset("synthetic", "train", size=size, missing=missing, seed=seed)
    model = build_model(ds.schema, ds.num_outputs, fusion="late", width=8)
    if strategy is not None:
        strategy.setup(model, ds)
    return model, ds


def full_batch(ds, n: int | None = None) -> Batch:
    n = len(ds) if n is None else n
    return ds.collate_fn()([ds[i] for i in range(n)])


def eval_loss(strategy, model, batch: Batch) -> float:
    """Cross-entropy of the strategy's prediction (eval mode)."""
    was = model.training
    model.eval()
    with torch.no_grad():
        loss = float(F.cross_entropy(strategy.predict(model, batch).logits, batch.label))
    model.train(was)
    return loss


def train(strategy, model, ds, ctx: Ctx, epochs: int = 4, batch_size: int = 16) -> list[dict]:
    """A tiny epoch loop (fixed order) calling the strategy hooks; returns every step's logs."""
    collate = ds.collate_fn()
    logs = []
    n_batches = (len(ds) + batch_size - 1) // batch_size
    for epoch in range(epochs):
        strategy.on_epoch_start(model, epoch)
        for b in range(n_batches):
            batch = collate([ds[i] for i in range(b * batch_size, min(len(ds), (b + 1) * batch_size))])
            logs.append(strategy.training_step(model, batch, ctx.make(epoch, b, n_batches)))
    return logs


def plain_grads(model, loss: torch.Tensor) -> dict[str, torch.Tensor]:
    """Gradients of ``loss`` w.r.t. every parameter (None-safe), without touching ``.grad``."""
    names, params = zip(*[(n, p) for n, p in model.named_parameters()], strict=True)
    grads = torch.autograd.grad(loss, params, allow_unused=True, retain_graph=True)
    return {n: (torch.zeros_like(p) if g is None else g) for n, p, g in zip(names, params, grads, strict=True)}


def make_teacher_run(run_dir, model, strategy: str = "unimodal"):
    """A fake finished run: ``checkpoints/best/model.safetensors`` of ``model`` + a ``config.yaml``."""
    from pathlib import Path

    import yaml
    from safetensors.torch import save_file

    run_dir = Path(run_dir)
    (run_dir / "checkpoints" / "best").mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(run_dir / "checkpoints" / "best" / "model.safetensors"))
    (run_dir / "config.yaml").write_text(yaml.safe_dump({"name": run_dir.name, "strategy": {"name": strategy}}))
    return run_dir
