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
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

LOCK_FILE = "run.lock"
CONFIG_FILE = "config.yaml"
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
