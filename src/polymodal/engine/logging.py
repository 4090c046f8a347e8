"""Run logs: ``metrics.jsonl`` (the canonical record), Fabric's CSV/TensorBoard loggers, a progress bar.

``metrics.jsonl`` holds one JSON object per line with a ``"type"``:

- ``"epoch"``: ``epoch`` (counted from 1), ``step`` (optimiser steps so far), ``train/loss`` and every
  scalar the strategy returned as ``train/<name>`` (averaged over the epoch's steps and the ranks),
  ``val/loss``, ``val/fused_acc``, ``val/<modality>_acc`` (None when n/a), ``lr``, ``sec_per_epoch``,
  ``samples_per_sec`` (training samples over training time, all ranks), ``best`` (bool);
- ``"nan_loss"``: ``epoch``, ``step``, ``batch``, ``value``, ``message``;
- ``"end"``: ``stopped_reason``, ``best_epoch``, ``epochs_run``.
"""

from __future__ import annotations

import json
import math
import os
import sys
from collections.abc import Sequence
from typing import Any

from lightning_fabric.loggers import CSVLogger, Logger, TensorBoardLogger

from polymodal.runpaths import LOGS_DIR, METRICS_FILE, RunPaths  # noqa: F401  (METRICS_FILE: re-exported)


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # JSON has no NaN / inf
    return value


class MetricsLog:
    """Append-only JSON-lines file of a run's records."""

    def __init__(self, run_dir: str | os.PathLike) -> None:
        self.path = RunPaths(run_dir).metrics

    def reset(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text("")

    def append(self, record: dict[str, Any]) -> None:
        with open(self.path, "a") as f:
            f.write(json.dumps({k: _clean(v) for k, v in record.items()}) + "\n")
            f.flush()
            os.fsync(f.fileno())

    def read(self) -> list[dict[str, Any]]:
        if not self.path.is_file():
            return []
        records = []
        for line in self.path.read_text().splitlines():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:  # a line cut short by a kill while writing
                continue
        return records

    def epochs(self) -> list[dict[str, Any]]:
        return [r for r in self.read() if r.get("type") == "epoch"]

    def sorted_records(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict[str, Any], int]:
        """(epoch records, events, the closing ``"end"`` record or {}, number of unreadable lines) of the file,
        in file order; a record's kind is its ``"type"`` (or ``"event"``, the older spelling), an epoch
        record by default. What :func:`polymodal.engine.runfolder.load_run` and the report read."""
        epochs: list[dict[str, Any]] = []
        events: list[dict[str, Any]] = []
        end: dict[str, Any] = {}
        bad = 0
        if not self.path.is_file():
            return epochs, events, end, bad
        for line in self.path.read_text().splitlines():
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                bad += 1  # e.g. the last line of a run killed while writing
                continue
            if not isinstance(rec, dict):
                bad += 1
                continue
            kind = rec.get("event", rec.get("type", "epoch"))
            if kind == "epoch" and isinstance(rec.get("epoch"), int):
                epochs.append(rec)
            elif kind == "end":  # the run's closing summary: a fallback when results.json lacks these keys
                end = rec
            elif kind != "epoch":
                events.append(rec)
        return epochs, events, end, bad

    def truncate_after(self, epoch: int) -> list[dict[str, Any]]:
        """Keep only the epoch records up to ``epoch`` (what a resumed run's checkpoint covers)."""
        kept = [r for r in self.epochs() if r["epoch"] <= epoch]
        tmp = self.path.with_suffix(".jsonl.tmp")
        tmp.write_text("".join(json.dumps(r) + "\n" for r in kept))
        os.replace(tmp, self.path)
        return kept


def build_loggers(run_dir: str | os.PathLike, names: Sequence[str]) -> list[Logger]:
    """Fabric loggers writing under ``run_dir/logs`` ("csv": CSVLogger, "tensorboard": TensorBoardLogger)."""
    loggers: list[Logger] = []
    for name in names:
        if name == "csv":
            loggers.append(CSVLogger(root_dir=str(run_dir), name=LOGS_DIR, flush_logs_every_n_steps=1))
        elif name == "tensorboard":
            loggers.append(TensorBoardLogger(root_dir=str(run_dir), name=LOGS_DIR))
        else:
            raise ValueError(f"trainer.loggers: unknown logger {name!r}; expected 'csv' or 'tensorboard'")
    return loggers


def scalars(record: dict[str, Any]) -> dict[str, float]:
    """The finite numeric entries of a record (what Fabric's loggers accept)."""
    return {
        k: float(v) for k, v in record.items()
        if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(float(v))
    }


class EpochProgress:
    """A rich progress bar for one epoch, showing loss and samples/s; a no-op when disabled."""

    def __init__(self, enabled: bool, epoch: int, max_epochs: int, total: int) -> None:
        self.enabled = enabled and sys.stdout.isatty()
        self._progress = None
        if self.enabled:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self._progress = Progress(
                TextColumn(f"epoch {epoch}/{max_epochs}"), BarColumn(), MofNCompleteColumn(),
                TextColumn("{task.fields[info]}"), TimeElapsedColumn(), transient=False,
            )
            self._progress.start()
            self._task = self._progress.add_task("train", total=total, info="")

    def update(self, loss: float, samples_per_sec: float) -> None:
        if self._progress is not None:
            self._progress.update(self._task, advance=1, info=f"loss {loss:.4f}  {samples_per_sec:.0f} samples/s")

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
