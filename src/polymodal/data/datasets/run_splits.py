"""The split of every row, as a run stored it (``splits.csv``), matched against the table read again.

A run trained on a table writes ``splits.csv``: ``row, id, split, content`` per row, where ``content`` is
a short hash of the cells the run uses (the label and every input column). Evaluating the run, resuming it
or scoring its own table reads the table again and must give every row the split it had in training,
whatever order the rows are in now. Rows are matched by the id column when the run has one (ids unique),
else by their content. A table whose rows changed since (rows added, removed, or with other cells) is
refused with what changed, unless ``allow_changed_table`` is set: then only the rows whose stored split
is known are used, and the data check says which were left out.

    with run_splits("runs/my-run", allow_changed_table=True):   # what `polymodal eval --allow-changed-table` does
        evaluate_run("runs/my-run")
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import os
from collections.abc import Iterator, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from polymodal.runpaths import SPLITS_FILE, RunPaths  # noqa: F401  (SPLITS_FILE: re-exported)

FILE_DATASETS = ("manifest", "folder")


@dataclass(frozen=True)
class _RunSplits:
    run_dir: Path | None
    allow_changed_table: bool


_ACTIVE: ContextVar[_RunSplits | None] = ContextVar("polymodal_run_splits", default=None)


@contextlib.contextmanager
def run_splits(run_dir: str | os.PathLike | None = None, *, allow_changed_table: bool = False) -> Iterator[None]:
    """Datasets built inside read their splits from ``run_dir/splits.csv`` (default: the run folder of the
    config being built) and, with ``allow_changed_table``, keep only the rows whose stored split is known."""
    token = _ACTIVE.set(_RunSplits(Path(run_dir) if run_dir is not None else None, allow_changed_table))
    try:
        yield
    finally:
        _ACTIVE.reset(token)


def stored_split_options(run_dir: str | os.PathLike, dataset: str) -> dict[str, Any]:
    """Manifest options that make a table dataset use the splits stored in a run folder ({} when the
    dataset is not a table or the run stored none)."""
    active = _ACTIVE.get()
    folder = active.run_dir if active is not None and active.run_dir is not None else Path(run_dir)
    path = RunPaths(folder).splits
    if dataset not in FILE_DATASETS or not path.is_file():
        return {}
    out: dict[str, Any] = {"stored_splits": str(path.resolve())}
    if active is not None and active.allow_changed_table:
        out["allow_changed_table"] = True
    return out


def _text(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return repr(int(v)) if v.is_integer() else repr(v)
    return str(v)


def row_keys(table: dict[str, list[Any]], columns: Sequence[str], n: int) -> list[str]:
    """A 16-hex-digit hash per row of the cells of ``columns`` (absent columns count as empty)."""
    cols = [table.get(c, [None] * n) for c in columns]
    out = []
    for r in range(n):
        text = "\x1f".join(_text(col[r]) for col in cols)
        out.append(hashlib.sha1(text.encode("utf-8")).hexdigest()[:16])
    return out


@dataclass
class StoredRow:
    row: int  # 1-based row number in the training table
    id: str
    split: str  # train, val, test, "" (no label), dropped
    content: str  # "" in splits.csv files written before contents were stored
    inputs: str = ""  # the hash of the input cells only (no label)


def read_splits_csv(path: str | os.PathLike) -> list[StoredRow]:
    p = Path(path)
    try:
        reader = csv.DictReader(io.StringIO(p.read_text()))
        rows = [StoredRow(int(r["row"]), r["id"], r["split"], r.get("content") or "", r.get("inputs") or "")
                for r in reader]
    except (KeyError, ValueError, TypeError, OSError, UnicodeDecodeError) as e:
        raise ValueError(f"{p} is not a splits file written by polymodal (row,id,split[,content]): {e}; "
                         "the run's stored splits are damaged: start a new run") from e
    return rows


@dataclass
class Match:
    """Which stored row each current row is (``stored[r]``: index into the stored rows, or None)."""

    stored: list[int | None]
    added: list[int] = field(default_factory=list)  # current rows (0-based) not in the stored table
    removed: list[int] = field(default_factory=list)  # stored rows (indices) not in the current table
    changed: list[int] = field(default_factory=list)  # current rows whose id is known but whose cells changed
    by: str = "content"  # "id", "content" or "row number"

    @property
    def ok(self) -> bool:
        return not (self.added or self.removed or self.changed)


def match_rows(stored: list[StoredRow], ids: list[str] | None, keys: list[str], also: list[str] | None = None) -> Match:
    """Match the current rows (their ids when the run had an id column, and their content keys) to the
    stored rows; ``also``: a second content key per row that matches too (the text hash older runs stored)."""
    n = len(keys)
    alt = also if also is not None else keys
    have_content = all(s.content for s in stored)
    if ids is not None and len(set(ids)) == n and len({s.id for s in stored}) == len(stored):
        where = {s.id: i for i, s in enumerate(stored)}
        m = Match([None] * n, by="id")
        for r, i in enumerate(ids):
            j = where.pop(i, None)
            if j is None:
                m.added.append(r)
            elif have_content and stored[j].content not in (keys[r], alt[r]):
                m.changed.append(r)
            else:
                m.stored[r] = j
        m.removed = sorted(where.values())
        return m
    if not have_content:  # an older splits.csv: rows by position
        m = Match([r if r < len(stored) else None for r in range(n)], by="row number")
        m.added = list(range(len(stored), n))
        m.removed = list(range(n, len(stored)))
        return m
    pool: dict[str, list[int]] = {}
    for j, s in enumerate(stored):
        pool.setdefault(s.content, []).append(j)
    m = Match([None] * n, by="content")
    for r, k in enumerate(keys):
        js = pool.get(k) or pool.get(alt[r])
        if js:
            m.stored[r] = js.pop(0)
        else:
            m.added.append(r)
    m.removed = sorted(j for js in pool.values() for j in js)
    return m


def stored_splits_of(stored: list[StoredRow], input_keys: list[str], also: list[str] | None = None) -> list[str]:
    """The stored split of each row of a table to predict, found by its input cells ("" for a row that was
    not in the training table, or when the run stored no input hashes); ``also``: a second key per row that
    matches too (the text hash of the input cells, as older runs stored it)."""
    pool: dict[str, list[str]] = {}
    for s in stored:
        if s.inputs:
            pool.setdefault(s.inputs, []).append(s.split)
    out = []
    for r, k in enumerate(input_keys):
        splits = pool.get(k) or (pool.get(also[r]) if also is not None else None)
        out.append(splits.pop(0) if splits else "")
    return out


def _some(items: list[str], k: int = 5) -> str:
    return ", ".join(items[:k]) + (f" and {len(items) - k} more" if len(items) > k else "")


def _count(n: int, what: str) -> str:
    return f"{n} row{'s' if n != 1 else ''} {what}"


def describe_changes(m: Match, stored: list[StoredRow], ids: list[str] | None) -> str:
    """``1 row added (row 24, id new1); 2 rows removed (...); ...`` for a message."""

    def cur(r: int) -> str:
        return f"row {r + 1}" + (f" (id {ids[r]})" if ids is not None else "")

    def old(j: int) -> str:
        s = stored[j]
        return f"row {s.row} of the training table" + (f" (id {s.id})" if m.by == "id" else "")

    parts = []
    if m.added:
        parts.append(f"{_count(len(m.added), 'added' if m.by != 'content' else 'added or changed')}: "
                     f"{_some([cur(r) for r in m.added])}")
    if m.removed:
        parts.append(f"{_count(len(m.removed), 'removed' if m.by != 'content' else 'removed or changed')}: "
                     f"{_some([old(j) for j in m.removed])}")
    if m.changed:
        parts.append(f"{_count(len(m.changed), 'changed')}: {_some([cur(r) for r in m.changed])}")
    return "; ".join(parts)
