"""One writer per run folder: the lock file ``run.lock``, and no folder left behind by a failed start.

    with run_folder(cfg.run_dir) as lock:   # RunLocked when another live process writes there
        ...                                 # train; config.yaml is written once the checks pass

The lock is a file created atomically (``O_CREAT | O_EXCL``) that holds the writer's PID, host name,
start time and command line. It is removed when the writer ends, also on an error. A lock left by a
process that no longer runs (killed with SIGKILL, a power cut) is detected by its PID on the same host,
reported, and taken over; a lock held by a live process, or by a process on another host (whose PID
cannot be checked from here), refuses the second writer with a message that names the holder.

A start that fails before training began (no ``config.yaml`` written yet) removes the folder when this
start created it; a folder that held anything before (an existing run) is never removed.

The lock is re-entrant within one process (``Predictor.fit`` takes it and then calls ``train``), and only
rank 0 of a multi-process run takes it (the other ranks write no files).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from polymodal.runpaths import CONFIG_FILE, DATA_STATE_FILE, LOCK_FILE, PREDICTIONS_FILE, RunPaths

log = logging.getLogger(__name__)

_TAKEOVER_SUFFIX = ".takeover"
_STALE_TAKEOVER_S = 30.0  # a takeover marker older than this was left by a killed process

_HELD: dict[str, RunLock] = {}  # resolved run folder -> the lock this process holds


class RunLocked(RuntimeError):
    """Another process writes to the run folder (``holder`` is what its lock file says)."""

    def __init__(self, message: str, holder: dict[str, Any]) -> None:
        super().__init__(message)
        self.holder = holder


@dataclass
class RunLock:
    """The lock this process holds on ``run_dir``; ``created``: the folder was empty or absent before."""

    run_dir: Path
    info: dict[str, Any]
    created: bool
    depth: int = 1

    @property
    def path(self) -> Path:
        return self.run_dir / LOCK_FILE


def _host() -> str:
    return socket.gethostname()


def _now() -> str:
    return datetime.now(UTC).astimezone().isoformat(timespec="seconds")


def _is_secondary_rank() -> bool:
    """True in rank > 0 of a multi-process launch (Lightning / torchrun set these variables)."""
    for var in ("RANK", "LOCAL_RANK"):
        value = os.environ.get(var)
        if value is not None:
            try:
                return int(value) > 0
            except ValueError:
                return False
    return False


def _process_start(pid: int) -> float | None:
    """Start time of ``pid`` (seconds since the epoch) from /proc; None where it cannot be read."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        ticks = int(stat.rsplit(")", 1)[1].split()[19])
        boot = next(float(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines()
                    if line.startswith("btime "))
        return boot + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return None


def _alive(info: dict[str, Any]) -> bool:
    """Whether the process named by a lock on this host still runs (and is the one that took the lock:
    a PID reused by a process started after the lock was taken does not count)."""
    pid = info.get("pid")
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    started = _process_start(pid)
    taken = info.get("time")
    if started is not None and isinstance(taken, int | float) and started > taken + 2.0:
        return False  # the PID now belongs to a process that started after the lock was taken
    return True


def describe_holder(info: dict[str, Any]) -> str:
    """``PID 123 on host h since 2026-01-01T10:00:00+00:00 (polymodal train ...)``."""
    command = info.get("command")
    cmd = f" ({' '.join(map(str, command))[:200]})" if isinstance(command, list) and command else ""
    return f"PID {info.get('pid', '?')} on host {info.get('host', '?')} since {info.get('started', '?')}{cmd}"


def read_lock(run_dir: str | os.PathLike) -> dict[str, Any] | None:
    """What ``run_dir/run.lock`` says (None when there is no lock); ``{}`` for an unreadable lock file."""
    path = Path(run_dir) / LOCK_FILE
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    except OSError:
        return {}
    try:
        info = json.loads(text)
    except json.JSONDecodeError:
        return {}
    return info if isinstance(info, dict) else {}


def _read_settled(path: Path) -> dict[str, Any] | None:
    """The lock's content; waits up to ~2 s for a lock file that was created but not yet written."""
    for _ in range(20):
        info = read_lock(path.parent)
        if info != {}:
            return info
        time.sleep(0.1)
    return {}


def _refusal(run_dir: Path, info: dict[str, Any], reason: str) -> RunLocked:
    lock = run_dir / LOCK_FILE
    return RunLocked(
        f"run folder {run_dir} is being written by another process: {describe_holder(info)}{reason}. Wait for it "
        f"to finish, or train under another name (name=...); if you are sure that process no longer writes "
        f"there, delete {lock} and start again",
        info,
    )


def _take_over_stale(lock: Path, info: dict[str, Any]) -> bool:
    """Remove a stale lock unless another process got there first; True when the lock file is gone."""
    marker = lock.with_name(lock.name + _TAKEOVER_SUFFIX)
    try:
        fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        try:
            if time.time() - marker.stat().st_mtime > _STALE_TAKEOVER_S:
                marker.unlink(missing_ok=True)
        except FileNotFoundError:
            pass
        return False
    try:
        os.close(fd)
        if read_lock(lock.parent) == info:  # still the same stale lock, not a fresh one
            lock.unlink(missing_ok=True)
        return True
    finally:
        marker.unlink(missing_ok=True)


def acquire(run_dir: str | os.PathLike) -> RunLock:
    """Take the lock of ``run_dir`` (creating the folder); raises :class:`RunLocked` when a live process
    holds it. A lock left by a dead process on this host is reported and taken over."""
    run_dir = Path(run_dir)
    key = str(run_dir.resolve())
    held = _HELD.get(key)
    if held is not None:
        held.depth += 1
        return held
    existed = run_dir.is_dir() and any(p.name != LOCK_FILE for p in run_dir.iterdir())
    run_dir.mkdir(parents=True, exist_ok=True)
    lock = run_dir / LOCK_FILE
    argv = list(sys.argv)
    if argv and argv[0].endswith("__main__.py"):
        argv[0] = "polymodal"
    me = {"pid": os.getpid(), "host": _host(), "started": _now(), "time": time.time(), "command": argv}
    for _ in range(50):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            info = _read_settled(lock)
            if info is None:  # released in the meantime
                continue
            if not info:
                raise _refusal(run_dir, {"pid": "?", "host": "?", "started": "?"},
                               f" (its lock file {lock} cannot be read)") from None
            if info.get("host") != _host():
                raise _refusal(run_dir, info, " (another host: its PID cannot be checked from here)") from None
            if _alive(info):
                raise _refusal(run_dir, info, "") from None
            log.warning("run folder %s: taking over the lock left by %s, which no longer runs", run_dir,
                        describe_holder(info))
            print(f"note: run folder {run_dir} was locked by {describe_holder(info)}, which no longer runs; "
                  "taking over its lock", file=sys.stderr)
            if not _take_over_stale(lock, info):
                time.sleep(0.1)
            continue
        with os.fdopen(fd, "w") as f:
            json.dump(me, f)
            f.flush()
            os.fsync(f.fileno())
        handle = RunLock(run_dir, me, created=not existed)
        _HELD[key] = handle
        return handle
    raise RunLocked(f"could not take the lock {lock}: other processes keep taking it; try again", {})


def release(handle: RunLock) -> None:
    """Give the lock back (the lock file is removed only while it is still this process's)."""
    handle.depth -= 1
    if handle.depth > 0:
        return
    _HELD.pop(str(handle.run_dir.resolve()), None)
    info = read_lock(handle.run_dir)
    if info and info.get("pid") == handle.info["pid"] and info.get("time") == handle.info["time"]:
        handle.path.unlink(missing_ok=True)


@contextmanager
def run_folder(run_dir: str | os.PathLike) -> Iterator[RunLock | None]:
    """Hold ``run_dir``'s lock for the block (rank 0 only; other ranks get None). When the block fails
    before training began (no ``config.yaml``) in a folder this start created, the folder is removed."""
    if _is_secondary_rank():
        yield None
        return
    handle = acquire(run_dir)
    outer = handle.depth == 1
    try:
        yield handle
    except BaseException:
        if outer and handle.created and not (handle.run_dir / CONFIG_FILE).exists():
            _HELD.pop(str(handle.run_dir.resolve()), None)
            shutil.rmtree(handle.run_dir, ignore_errors=True)  # the lock file goes with it
            log.info("removed %s: the start failed before training began", handle.run_dir)
        else:
            release(handle)
        raise
    release(handle)


def remove_unfinished_run(run_dir: str | os.PathLike) -> None:
    """Delete a run folder that never finished (bench restarts those), unless a live process holds its
    lock (then :class:`RunLocked`)."""
    run_dir = Path(run_dir)
    info = read_lock(run_dir)
    stale = bool(info) and info.get("host") == _host() and not _alive(info)  # the lock of a killed run
    if info is not None and not stale:
        raise _refusal(run_dir, info or {"pid": "?", "host": "?", "started": "?"}, "")
    shutil.rmtree(run_dir)


DATA_STATE_KEYS: dict[str, type] = {"version": int, "label": str, "task": str, "class_names": list, "columns": dict,
                                    "modalities": list, "stats": dict, "options": dict}
"""what ``data_state.json`` (a manifest's fitted state, written by training) must hold: key -> type"""


def read_data_state(path: str | os.PathLike) -> dict[str, Any]:
    """Read a run's ``data_state.json``; :class:`DamagedRunFile` when it is not JSON or lacks what reading
    new rows needs (label, task, class names, columns, modalities, statistics, options)."""
    from polymodal.engine.checkpoint import DamagedRunFile

    path = Path(path)
    fix = (f"restore it from a copy of the run, or train the run again (its table and settings are in "
           f"{path.parent / CONFIG_FILE}); the file is written by training and is not meant to be edited")
    try:
        state = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DamagedRunFile(path, f"not valid JSON ({e})", fix) from None
    if not isinstance(state, dict):
        raise DamagedRunFile(path, f"holds a JSON {type(state).__name__}, expected an object", fix)
    problems = [f"{k!r} is missing" if k not in state else f"{k!r} is a {type(state[k]).__name__}, expected {t.__name__}"
                for k, t in DATA_STATE_KEYS.items() if not isinstance(state.get(k), t) or isinstance(state.get(k), bool)]
    bad_modalities = [i for i, m in enumerate(state.get("modalities") or [])
                      if not (isinstance(m, dict) and isinstance(m.get("name"), str) and isinstance(m.get("columns"), list))]
    if bad_modalities and isinstance(state.get("modalities"), list):
        problems.append(f"'modalities' entries {bad_modalities} lack a name or their columns")
    if problems:
        raise DamagedRunFile(path, "not a data state polymodal can read: " + "; ".join(problems), fix)
    return state


# ----------------------------------------------------------------------------- reading a run folder

def predictions_file(run_dir: str | os.PathLike, split: str) -> Path:
    """``run_dir/predictions_<split>.npz`` (:meth:`RunPaths.predictions`; the content is written and read by
    :func:`polymodal.tasks.write_predictions` / :func:`polymodal.tasks.read_predictions`)."""
    return RunPaths(run_dir).predictions(split)


def run_files() -> tuple[str, ...]:
    """The files :func:`load_run` reads, in the order it reports missing ones."""
    from polymodal.runpaths import METRICS_FILE, PROVENANCE_FILE, RESULTS_FILE

    return (CONFIG_FILE, METRICS_FILE, RESULTS_FILE, PREDICTIONS_FILE.format(split="test"), PROVENANCE_FILE)


@dataclass
class Run:
    """A run folder as :func:`load_run` read it; any file may be missing (``notes`` says which, and what
    could not be read). The model and the checkpoints' strategy state are read on request.

    config:      ``config.yaml`` as a dict (:meth:`run_config` validates it as a :class:`~polymodal.config.RunConfig`)
    results:     ``results.json`` (val / test metrics, best epoch, ``selection``, ``task``, ...); metrics it lacks
                 for a split are filled in from that split's predictions file
    records:     the epoch records of ``metrics.jsonl``, in file order; ``events``: its other records
                 (``nan_loss``, ...); ``end``: its closing ``"end"`` record, if any
    predictions: split -> the task's predictions object of ``predictions_<split>.npz``
    provenance:  ``provenance.json``; ``data_state``: ``data_state.json`` of a table dataset (None without one)
    """

    run_dir: Path
    config: dict[str, Any] = field(default_factory=dict)
    results: dict[str, Any] = field(default_factory=dict)
    records: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    end: dict[str, Any] = field(default_factory=dict)
    predictions: dict[str, Any] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)
    data_state: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)
    _models: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def task(self) -> Any:
        """The run's :class:`~polymodal.tasks.Task`: what ``results.json`` names, else the task of the test
        predictions, else the one whose metrics the results hold (classification by default)."""
        from polymodal.tasks import DEFAULT_TASK, TASKS, get_task

        if isinstance(self.results.get("task"), str) and self.results["task"] in TASKS:
            return get_task(self.results["task"])
        if self.predictions:
            pred = self.predictions.get("test", next(iter(self.predictions.values())))
            return get_task(pred.task)
        splits = [d for d in (self.results.get("val"), self.results.get("test")) if isinstance(d, dict)]
        for name in TASKS.names():
            if name != DEFAULT_TASK and get_task(name).infer_from_metrics(splits):
                return get_task(name)
        return get_task(DEFAULT_TASK)

    @property
    def metrics(self) -> dict[str, dict[str, Any]]:
        """split -> metrics (``results.json``'s ``val`` and ``test``, completed from the predictions files)."""
        return {s: self.results[s] for s in ("val", "test") if isinstance(self.results.get(s), dict)}

    @property
    def test_predictions(self) -> Any:
        """The test split's predictions object, or None."""
        return self.predictions.get("test")

    def run_config(self, overrides: list[str] | None = None) -> Any:
        """``config.yaml`` as a validated :class:`~polymodal.config.RunConfig` (with ``overrides``)."""
        from polymodal.config import load_config

        path = self.run_dir / CONFIG_FILE
        if not path.is_file():
            raise FileNotFoundError(f"{path} does not exist; is {self.run_dir} a run folder written by train()?")
        return load_config(path, overrides or [])

    def checkpoint(self, which: str = "best") -> Any:
        """The ``best`` or ``last`` :class:`~polymodal.engine.checkpoint.Checkpoint` (model, optimiser, strategy
        and training state), read from disk on every call."""
        from polymodal.engine.checkpoint import checkpoint_dir, load_checkpoint

        return load_checkpoint(checkpoint_dir(self.run_dir, which))

    def strategy_state(self, which: str = "best") -> dict[str, Any]:
        """The strategy's state saved with the ``best`` (or ``last``) checkpoint."""
        return self.checkpoint(which).strategy

    def datasets(self, splits: list[str] | tuple[str, ...] = ("train", "val", "test")) -> dict[str, Any]:
        """split -> dataset, as training built them (a table dataset keeps each row's stored split)."""
        from polymodal.engine.build import build_datasets

        return build_datasets(self.run_config(), list(splits))

    def model(self, which: str = "best") -> Any:
        """The trained model with its ``best`` (or ``last``) checkpoint loaded, in eval mode; built (from
        ``config.yaml`` and the training split's schema) on the first call and kept."""
        return self.trained(which)[0]

    def trained(self, which: str = "best") -> tuple[Any, Any, Any]:
        """(model in eval mode, strategy with its checkpointed state, training split) of the ``best`` (or
        ``last``) checkpoint, built on the first call and kept (:func:`polymodal.engine.build.restore_trained`)."""
        if which not in self._models:
            from polymodal.engine.build import build_datasets, restore_trained

            cfg = self.run_config()
            train = build_datasets(cfg, ["train"])["train"]
            model, strategy = restore_trained(cfg, self.run_dir, train, which, self.checkpoint(which))
            self._models[which] = (model.eval(), strategy, train)
        return self._models[which]


def load_run(path: str | os.PathLike) -> Run:
    """Read the run folder ``path`` (what training leaves: config, metrics log, results, predictions,
    provenance, data state); the model and the checkpoints are read on request (:meth:`Run.model`,
    :meth:`Run.strategy_state`). Raises FileNotFoundError when the folder holds none of the run files.

    Metrics that ``results.json`` lacks for a split (a key absent, not a null) are computed from
    ``predictions_<split>.npz`` when that file exists (``notes`` says which).
    """
    import yaml

    from polymodal.engine.logging import METRICS_FILE, MetricsLog
    from polymodal.engine.results import read_provenance, read_results
    from polymodal.tasks import get_task, read_predictions

    run_dir = Path(path)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"run folder {run_dir} does not exist (expected the out_dir/name of a training run)")
    names = run_files()
    present = [f for f in names if (run_dir / f).is_file()]
    if not present:
        raise FileNotFoundError(f"run folder {run_dir} holds none of {', '.join(names)}; is it a training run folder?")
    run = Run(run_dir=run_dir)
    run.notes += [f"`{f}` is missing." for f in names if f not in present]
    if (p := run_dir / CONFIG_FILE).is_file():
        try:
            cfg = yaml.safe_load(p.read_text()) or {}
        except yaml.YAMLError as e:
            raise ValueError(f"{p} is not valid YAML: {e}") from None
        run.config = cfg if isinstance(cfg, dict) else {}
    run.records, run.events, run.end, bad = MetricsLog(run_dir).sorted_records()
    if bad:
        run.notes.append(f"{bad} unreadable line(s) in `{METRICS_FILE}` were skipped.")
    run.results = read_results(run_dir) or {}
    for key in ("best_epoch", "epochs_run", "stopped_reason"):
        if key not in run.results and key in run.end:
            run.results[key] = run.end[key]
    for split in ("val", "test"):
        if (p := predictions_file(run_dir, split)).is_file():
            pred = read_predictions(p)
            run.predictions[split] = pred
            logged = run.results.setdefault(split, {}) if isinstance(run.results.get(split, {}), dict) else {}
            summary = get_task(pred.task).summarize(pred)
            # regression: the engine logs the fused MSE as "loss"; do not repeat it as "mse"
            filled = [k for k in summary if k != "n" and k not in logged and not (k == "mse" and "loss" in logged)]
            logged.update({k: summary[k] for k in filled})
            if filled:
                run.notes.append(f"{split} {', '.join(filled)} computed from `{p.name}`.")
    run.provenance = read_provenance(run_dir) or {}
    if (p := run_dir / DATA_STATE_FILE).is_file():
        try:
            run.data_state = read_data_state(p)
        except ValueError as e:  # a damaged data state does not hide the rest of the run
            run.notes.append(f"`{DATA_STATE_FILE}` could not be read: {e}")
    return run
