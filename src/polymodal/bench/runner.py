"""Run many trainings (methods x datasets x seeds) in parallel processes, resumable.

A finished run (its ``results.json`` exists) is kept and skipped, so a long grid can be filled over
several invocations. Each run is an ordinary run folder under ``runs_dir``.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Job:
    name: str  # run folder name, unique within runs_dir
    overrides: tuple[str, ...]  # key=value config overrides
    tags: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)  # method, dataset, seed...


def _param_count(run_dir: Path) -> int | None:
    from safetensors import safe_open

    from polymodal.engine.checkpoint import model_file

    path = model_file(run_dir)
    if not path.is_file():
        return None
    total = 0
    with safe_open(str(path), framework="pt") as f:
        for key in f.keys():
            if key.endswith(("running_mean", "running_var", "num_batches_tracked")):
                continue
            total += _numel(f.get_slice(key).get_shape())
    return total


def _numel(shape: Sequence[int]) -> int:
    n = 1
    for s in shape:
        n *= int(s)
    return n


def _run_one(config: str | None, overrides: Sequence[str], threads: int) -> None:
    import torch

    torch.set_num_threads(threads)
    from polymodal.config import load_config
    from polymodal.engine import train

    train(load_config(config, list(overrides)))


def run_jobs(
    jobs: Sequence[Job],
    runs_dir: str | Path,
    *,
    config: str | None = None,
    processes: int | None = None,
    threads_per_process: int = 1,
    log=print,
) -> dict[str, dict[str, Any]]:
    """Train every job not yet finished; return name -> results.json content (+ ``params``).

    processes defaults to the number of CPU cores; each process uses ``threads_per_process`` torch
    threads. A failing job is reported and left out of the returned dict.
    """
    runs_dir = Path(runs_dir)
    runs_dir.mkdir(parents=True, exist_ok=True)
    names = [j.name for j in jobs]
    if len(set(names)) != len(names):
        raise ValueError("job names must be unique")
    from polymodal.engine.results import RESULTS_FILE, read_results

    todo = [j for j in jobs if not (runs_dir / j.name / RESULTS_FILE).is_file()]
    for j in todo:  # a run killed before it finished restarts from scratch (not one another process is writing)
        stale = runs_dir / j.name
        if stale.exists():
            from polymodal.engine.runfolder import remove_unfinished_run

            remove_unfinished_run(stale)
    log(f"{len(jobs) - len(todo)} of {len(jobs)} runs already finished; {len(todo)} to run")
    processes = processes or os.cpu_count() or 1
    ctx = mp.get_context("spawn")
    t0 = time.time()
    with ctx.Pool(processes=processes, maxtasksperchild=1) as pool:
        pending = {
            j.name: pool.apply_async(
                _run_one,
                (config, [*j.overrides, f"out_dir={runs_dir}", f"name={j.name}", "trainer.progress=false"], threads_per_process),
            )
            for j in todo
        }
        for i, (name, res) in enumerate(pending.items(), 1):
            try:
                res.get()
                log(f"[{i}/{len(todo)}] {name} done ({time.time() - t0:.0f} s elapsed)")
            except Exception as e:  # noqa: BLE001 - report and go on with the other runs
                log(f"[{i}/{len(todo)}] {name} FAILED: {type(e).__name__}: {e}")
    out: dict[str, dict[str, Any]] = {}
    for j in jobs:
        res = read_results(runs_dir / j.name)
        if res is not None:
            res["params"] = _param_count(runs_dir / j.name)
            out[j.name] = res
    return out
