"""The data check of a manifest: every problem found is a row of its report (error / warning / info).

Bad cells (missing or unreadable files, odd cells whose extension does not fit the column's kind, cells
that are not numbers) follow the ``bad_files`` option; duplicates, files or groups in two splits, empty
splits, rows with no input and classes too small for the split are checked on the whole table.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from polymodal.data.io import MediaError

if TYPE_CHECKING:
    from polymodal.data.datasets.manifest.codecs import Codec
    from polymodal.data.datasets.manifest.core import Manifest

SKIP_FILE = ("treat as a missing modality", "the modality is missing for these rows")


def bad_cells(m: Manifest, spec: dict, rows: list[tuple[int, str]], check: str, what: str, column: str | None = None,
              skip: tuple[str, str] = SKIP_FILE) -> None:
    """Report ``rows`` (row, message) as ``check``; ``bad_files`` decides: error, skip (``skip``: what it does,
    what was done) or drop the rows."""
    if not rows:
        return
    mode = m.options.bad_files
    how = ("bad_files=skip (polymodal predict --bad-files skip)" if m.fitted else "bad_files=skip")
    action = {"error": f"set {how} ({skip[0]}) or bad_files=drop (drop the row) to go on",
              "skip": f"{skip[1]} (bad_files=skip)",
              "drop": "these rows are dropped (bad_files=drop)"}[mode]
    m.report.add(check, "error" if mode == "error" else "info", column or spec["columns"][0], f"{what}; {action}",
                 [f"row {m.row_number[r]}: {msg}" for r, msg in rows], count=len(rows))
    if mode == "drop":
        m.dropped[[r for r, _ in rows]] = True


def file_cells(m: Manifest, spec: dict, codec: Codec) -> list[tuple[int, Path]]:
    """(row, path) of the column's cells in use; cells whose extension does not fit the column's kind are
    reported as ``odd_cell`` (and follow ``bad_files``)."""
    col, kind = spec["columns"][0], spec["kind"]
    exts = codec.extensions
    out, odd = [], []
    for r, cell in enumerate(m.table[col]):
        if cell is None or (m.split[r] == "" and not m.fitted):
            continue
        if not str(cell).lower().endswith(exts):
            odd.append((r, repr(cell)))
            continue
        out.append((r, m.path(str(cell))))
    bad_cells(m, spec, odd, "odd_cell", f"cells that do not fit the column's kind {kind} (expected a path ending in "
              f"{' '.join(exts)}, like the rest of the column: a typo, or another kind of value)")
    return out


def read_all(m: Manifest, spec: dict, read: Callable[[Any], Any], items: list[tuple[int, Any]]) -> dict[int, Any]:
    """Apply ``read`` to every (row, source); file errors become report rows, the rest propagate."""
    got: dict[int, Any] = {}
    missing, broken = [], []
    for r, src in items:
        try:
            got[r] = read(src)
        except FileNotFoundError:  # MediaNotFoundError: the file is not there
            missing.append((r, str(src)))
        except (MediaError, OSError) as e:  # OSError: permissions, a symbolic link loop, an I/O error
            broken.append((r, f"{src}: {e}"))
    bad_cells(m, spec, missing, "missing_file", "files that do not exist")
    bad_cells(m, spec, broken, "unreadable_file", "files that cannot be read")
    return got


def keep_duplicates_together(m: Manifest, split: np.ndarray, given: np.ndarray | None) -> None:
    """Report rows whose label and input cells are all equal, and keep each set of copies in one split."""
    cols = [c for md in m.modality_specs for c in md["columns"]]
    where: dict[str, list[int]] = {}
    for r in range(m.n):
        if split[r] != "" and any(m.table[c][r] is not None for c in cols):
            where.setdefault(m.keys[r], []).append(r)
    dups = [rows for rows in where.values() if len(rows) > 1]
    if not dups:
        return
    for rows in dups:
        target = split[rows[0]]
        for r in rows[1:]:
            if given is None or given[r] == "":
                split[r] = target
    m.report.add("duplicate_rows", "warning", "", "rows whose label and input cells are all equal: each set of copies "
                 "is kept in one split (unless the split column says otherwise); remove the copies if they are not "
                 "meant, as they weigh more in training and scoring",
                 [f"rows {', '.join(str(m.row_number[r]) for r in rows)}" for rows in dups], count=len(dups))


def group_leakage(m: Manifest, groups: np.ndarray, split: np.ndarray) -> None:
    """Groups (``splits.group``) whose rows are in more than one split are an error."""
    spans = {}
    for gv in np.unique(groups):
        where = sorted(set(split[groups == gv]))
        if len(where) > 1:
            spans[gv] = where
    if spans:
        m.report.add("group_leakage", "error", m.options.splits.group, "groups found in more than one split (their rows "
                     "must share one split; fix the split column or leave it empty to assign)",
                     [f"{g}: {'/'.join(w)}" for g, w in spans.items()], count=len(spans))


def file_leakage(m: Manifest, codecs: dict[str, Codec]) -> None:
    """The same file (resolved path) in more than one split is an error."""
    for spec in m.modality_specs:
        codec = codecs.get(spec["name"])
        if codec is None or not codec.extensions:
            continue
        col = spec["columns"][0]
        seen: dict[str, set[str]] = {}
        for r, cell in enumerate(m.table[col]):
            if cell is None or m.split[r] == "" or m.dropped[r]:
                continue
            if codec.inline and not str(cell).lower().endswith(codec.extensions):
                continue
            seen.setdefault(resolved(m.path(str(cell))), set()).add(m.split[r])
        leaks = {p: s for p, s in seen.items() if len(s) > 1}
        if leaks:
            m.report.add("file_leakage", "error", col, "the same file is used in more than one split; each file may belong "
                         "to one split only (fix the split column, or use splits.group)",
                         [f"{p}: {'/'.join(sorted(s))}" for p, s in leaks.items()], count=len(leaks))


def empty_splits(m: Manifest) -> None:
    """An empty split is an error that names the option (or the split column) that fills it."""
    opt = m.options.splits
    col = opt.column if opt.column in m.table else None
    if len(m.rows["train"]) == 0:
        m.report.add("empty_split", "error", col or "", "the train split is empty: mark rows train in the split column, "
                     "or leave split cells empty to be assigned", count=0)
        return
    for part, frac in (("val", opt.val), ("test", opt.test)):
        if len(m.rows[part]) or m.options.stored_splits:
            continue
        if frac == 0:
            how = f"splits.{part}=0 asks for none: set splits.{part} > 0 (default 0.15)"
        else:
            how = f"too few rows to carve one out with splits.{part}={frac:g}: raise splits.{part} or add rows"
        given = f", or mark rows {part} in the column {col!r}" if col else ""
        m.report.add("empty_split", "error", col or "", f"the {part} split is empty ({how}{given}); models are "
                     "selected on val and scored on test", count=0)


def empty_rows(m: Manifest) -> None:
    """Rows with no modality present: an error in training; at prediction, output rows marked no_input."""
    kept = np.zeros(m.n, dtype=bool)
    for rows in m.rows.values():
        kept[rows] = True
    empty = np.flatnonzero(kept & ~np.any([p for p in m.present.values()], axis=0))
    nothing = [f"row {m.row_number[r]}" for r in empty]
    m.no_input = np.zeros(m.n, dtype=bool)
    if nothing and m.fitted:  # at prediction: the row gets an output marked as having no input
        m.no_input[empty] = True
        m.rows["predict"] = np.setdiff1d(m.rows["predict"], empty)
        m.report.add("empty_row", "warning", "", "rows with no modality present (all file, text and tabular cells empty "
                     "or skipped): nothing to predict from, their output rows are marked no_input", nothing,
                     count=len(nothing))
    elif nothing:
        m.report.add("empty_row", "error", "", "rows with no modality present (all file, text and tabular cells empty or "
                     "skipped); remove them", nothing, count=len(nothing))


def resolved(p: Path) -> str:
    """The real path of ``p``; its absolute path when it cannot be resolved (a symbolic link loop)."""
    try:
        return str(p.resolve())
    except (OSError, RuntimeError):
        return str(p.absolute())
