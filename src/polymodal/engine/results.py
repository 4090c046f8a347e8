"""What a run hands back and leaves on disk besides checkpoints: TrainResult, results.json, provenance.json."""

from __future__ import annotations

import json
import platform
import subprocess
import sys
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, Literal

from polymodal.runpaths import PROVENANCE_FILE, RESULTS_FILE, RunPaths  # noqa: F401  (re-exported)
from polymodal.tasks import DEFAULT_TASK, get_task

StoppedReason = Literal["max_epochs", "early_stopping", "nan_loss"]


@dataclass
class TrainResult:
    """Outcome of :func:`polymodal.engine.train`.

    metrics:     final TEST metrics of the best checkpoint, the task's (:meth:`polymodal.tasks.Task.metrics`):
                 for classification ``loss``, ``fused_acc``, ``<modality>_acc`` (None when the fusion cannot
                 run with that modality alone), ``n``; empty when no epoch finished (NaN loss in the first
                 epoch). Regression: ``loss`` (MSE), ``rmse``, ``mae``, ``r2``, ``<modality>_rmse``,
                 ``<modality>_r2``, ``n``
    val_metrics: the same on the validation split
    history:     one dict per finished epoch (the ``"epoch"`` records of metrics.jsonl)
    best_epoch:  epoch (counted from 1) with the best validation value of the task's ``monitor`` (the highest
                 fused accuracy; regression: the lowest RMSE), ties -> earlier
    task:        the dataset's task name (:mod:`polymodal.tasks`)
    selection:   the criterion that chose ``best_epoch``, e.g. "val fused_acc" or "val rmse"
    """

    run_dir: Path
    best_epoch: int | None
    epochs_run: int
    metrics: dict[str, Any]
    history: list[dict[str, Any]]
    stopped_reason: StoppedReason
    val_metrics: dict[str, Any] = field(default_factory=dict)
    message: str = ""
    task: str = DEFAULT_TASK
    selection: str = field(default_factory=lambda: get_task(DEFAULT_TASK).selection)


class TrainingDiverged(RuntimeError):
    """The training loss became NaN/inf; ``result`` holds what the run reached (stopped_reason "nan_loss").

    The checkpoints written before the bad step are kept (``best`` and ``last``).
    """

    def __init__(self, message: str, result: TrainResult) -> None:
        super().__init__(message)
        self.result = result


def write_results(result: TrainResult, sec_per_epoch: float | None) -> Path:
    """``run_dir/results.json``: val and test metrics, best epoch and the criterion that selected it
    (``selection``), task, epochs run, stopped reason, timing."""
    path = RunPaths(result.run_dir).results
    payload = {
        "val": result.val_metrics,
        "test": result.metrics,
        "best_epoch": result.best_epoch,
        "selection": result.selection,
        "task": result.task,
        "epochs_run": result.epochs_run,
        "stopped_reason": result.stopped_reason,
        "sec_per_epoch": sec_per_epoch,
        "message": result.message,
    }
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(payload, indent=1))
    tmp.replace(path)
    return path


def read_results(run_dir: str | Path) -> dict[str, Any] | None:
    """``run_dir/results.json`` as :func:`write_results` wrote it (None when there is none); a file that is
    not a JSON object is a ValueError naming it."""
    return _read_object(RunPaths(run_dir).results)


def read_provenance(run_dir: str | Path) -> dict[str, Any] | None:
    """``run_dir/provenance.json`` as :func:`write_provenance` wrote it (None when there is none)."""
    return _read_object(RunPaths(run_dir).provenance)


def _read_object(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{path} is not valid JSON ({e}); fix or delete the file and run the report again") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path} must hold a JSON object at top level; got {type(data).__name__}")
    return data


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _git(args: list[str], cwd: Path) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip()


def provenance(datasets: dict[str, Any], extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Versions, git commit (None outside a git checkout), dataset provenance, command line; no host names."""
    import lightning_fabric
    import numpy
    import torch

    import polymodal

    here = Path(polymodal.__file__).resolve().parent
    commit = _git(["rev-parse", "HEAD"], here)
    status = _git(["status", "--porcelain", "--untracked-files=no"], here) if commit else None
    return {
        "versions": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "numpy": numpy.__version__,
            "lightning_fabric": lightning_fabric.__version__,
            "polymodal": polymodal.__version__,
            "safetensors": _version("safetensors"),
        },
        "git": {"commit": commit, "dirty": bool(status) if status is not None else None},
        "platform": {"system": platform.system(), "machine": platform.machine()},
        "command": list(sys.argv),
        "datasets": {split: dict(getattr(ds, "provenance", {}) or {}) for split, ds in datasets.items()},
        **(extra or {}),
    }


def write_provenance(run_dir: Path, info: dict[str, Any]) -> Path:
    path = RunPaths(run_dir).provenance
    path.write_text(json.dumps(info, indent=1, default=str))
    return path
