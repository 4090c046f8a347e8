"""Test-only strategies and datasets for the engine tests (see ``register_test_components``)."""

from __future__ import annotations

import math
import time
from pathlib import Path

from polymodal.config import RunConfig, load_config
from polymodal.data.base import DATASETS
from polymodal.data.datasets.synthetic import SyntheticDataset
from polymodal.registry import Entry
from polymodal.strategies.base import STRATEGIES
from polymodal.strategies.joint import Joint

TINY = [
    "data.dataset=synthetic",
    "strategy.name=joint",
    "trainer.progress=false",
    "trainer.num_threads=1",
    "trainer.patience=null",
    "model.width=8",
    "data.batch_size=16",
    "data.eval_batch_size=16",
    "optim.lr=0.01",
]


def tiny_config(out_dir: Path, *overrides: str) -> RunConfig:
    """A seconds-long run on the synthetic dataset with width-8 tabular encoders."""
    return load_config(None, [*TINY, f"out_dir={out_dir}", *overrides])


class Interrupted(Exception):
    """Raised by the ``test-interruptible`` strategy to simulate a crash mid-epoch."""


class Interruptible(Joint):
    """Joint; raises :class:`Interrupted` at (epoch index, batch index) ``Interruptible.at`` when set."""

    at: tuple[int, int] | None = None

    def training_step(self, model, batch, ctx):
        if Interruptible.at == (ctx.epoch, ctx.batch_idx):
            raise Interrupted(f"interrupted at {Interruptible.at}")
        return super().training_step(model, batch, ctx)


class NanAt(Joint):
    """Joint whose loss becomes NaN at (epoch, batch); records the best checkpoint's bytes at that moment."""

    seen_best: bytes | None = None

    def __init__(self, epoch: int, batch: int, best_file: str) -> None:
        self.at, self.best_file = (epoch, batch), Path(best_file)

    def training_step(self, model, batch, ctx):
        if (ctx.epoch, ctx.batch_idx) != self.at:
            return super().training_step(model, batch, ctx)
        NanAt.seen_best = self.best_file.read_bytes()
        out = model(batch)
        loss = out.logits.sum() * math.nan
        ctx.backward(loss)
        ctx.step()
        return {"loss": loss.detach()}


class SlowJoint(Joint):
    """Joint that sleeps ``sleep`` seconds per step (so that a process can be killed mid-epoch)."""

    def __init__(self, sleep: float = 0.05) -> None:
        self.sleep = sleep

    def training_step(self, model, batch, ctx):
        time.sleep(self.sleep)
        return super().training_step(model, batch, ctx)


class RecordExtra(Joint):
    """Joint that keeps the class weights the engine handed it."""

    class_weights = None

    def training_step(self, model, batch, ctx):
        RecordExtra.class_weights = ctx.extra.get("class_weights")
        return super().training_step(model, batch, ctx)


class NanInputDataset(SyntheticDataset):
    """Synthetic data with NaN in modality ``a`` of training sample 5."""

    def __getitem__(self, i):
        sample = super().__getitem__(i)
        if self.split == "train" and i == 5:
            sample["inputs"]["a"] = sample["inputs"]["a"].clone().fill_(float("nan"))
        return sample


TEST_STRATEGIES = {"test-interruptible": Interruptible, "test-nan-at": NanAt,
                   "test-slow-joint": SlowJoint, "test-record-extra": RecordExtra}


def nan_input_dataset(split: str = "train", **options) -> NanInputDataset:
    """Synthetic data with a NaN input (tests only)."""
    return NanInputDataset(split=split, **options)


def register_test_components(monkeypatch=None) -> None:
    """Add the test strategies and dataset to the registries.

    With a pytest ``monkeypatch`` they are removed again after the test, so that tests iterating over
    every registered component never meet them; without it (a child process) they stay.
    """
    entries = [(STRATEGIES, name, cls) for name, cls in TEST_STRATEGIES.items()]
    entries.append((DATASETS, "test-nan-input", nan_input_dataset))
    for registry, name, factory in entries:
        if monkeypatch is None:
            if name not in registry:
                registry.register(name)(factory)
        else:
            monkeypatch.setitem(registry._entries, name, Entry(name, factory))
