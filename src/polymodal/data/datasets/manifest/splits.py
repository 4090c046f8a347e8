"""Labels and splits of a manifest's rows: the label column read as class ids or targets, the split of
every row (the split column, a seeded assignment, or the splits a run stored)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from polymodal.data.datasets import run_splits
from polymodal.data.datasets.manifest import checks
from polymodal.data.datasets.manifest.errors import ManifestError
from polymodal.data.splits import assign_splits as assign_split_rows
from polymodal.tasks.labels import LabelProblem

if TYPE_CHECKING:
    from polymodal.data.datasets.manifest.core import Manifest

SPLIT_VALUES = ("train", "val", "test")


def read_labels(m: Manifest) -> None:
    """Set ``y`` (the task's targets, :meth:`polymodal.tasks.Task.parse_labels`: class ids with -1 without one,
    float targets with NaN, ...) and ``has_label``; what reading found goes to the data check."""
    cells = m.table.get(m.label) if m.label in m.table else [None] * m.n
    column = m.task_object.parse_labels(cells, m.class_names)
    m.y, m.has_label = column.y, np.asarray(column.has_label, dtype=bool).copy()
    for problem in column.problems:
        add_label_problem(m, problem)
    if not m.fitted and not m.has_label.all():
        rows = [f"row {m.row_number[r]}" for r in np.flatnonzero(~m.has_label)]
        m.report.add("missing_label", "warning", m.label, "rows without a label are left out of training and evaluation "
                     "(predict them with Predictor.predict)", rows, count=len(rows))


def add_label_problem(m: Manifest, problem: LabelProblem) -> None:
    """One data-check row about the label column, its rows named by their row numbers in the table."""
    rows = problem.items or [f"row {m.row_number[r]}: {v!r}" for r, v in zip(problem.positions, problem.values, strict=True)]
    m.report.add(problem.check, problem.severity, m.label, problem.detail, rows, count=len(rows))


def assign_splits(m: Manifest) -> None:
    """Set ``split`` (train / val / test per row, "" for rows left out; "predict" for a fitted manifest)
    and report what the split column, the groups and the classes look like."""
    if m.fitted:
        m.split = np.full(m.n, "predict", dtype=object)
        return
    if m.stored_split is not None:
        m.split = m.stored_split
        return
    opt = m.options.splits
    keep = m.has_label.copy()
    given = None
    if opt.column in m.table:
        raw = [str(v).lower() if v is not None else "" for v in m.table[opt.column]]
        bad = [f"row {m.row_number[r]}: {v!r}" for r, v in enumerate(raw) if v not in ("", *SPLIT_VALUES)]
        if bad:
            m.report.add("bad_split", "error", opt.column, "split values must be train, val or test (or empty to assign)",
                         bad, count=len(bad))
            raw = [v if v in SPLIT_VALUES else "" for v in raw]
        given = np.array(raw, dtype=object)
    groups = None
    if opt.group:
        g = m.table[opt.group]
        empty = [f"row {m.row_number[r]}" for r, v in enumerate(g) if v is None and keep[r]]
        if empty:
            m.report.add("missing_group", "error", opt.group, "every row needs a group value when splits.group is set", empty,
                         count=len(empty))
        groups = np.array([str(v) for v in g], dtype=object)
    split = np.array([""] * m.n, dtype=object)
    idx = np.flatnonzero(keep)
    if len(idx):
        try:
            res = assign_split_rows(m.y[idx], task=m.task, groups=None if groups is None else groups[idx],
                                    given=None if given is None else given[idx], val=opt.val, test=opt.test,
                                    seed=opt.seed, folds=opt.folds, fold=opt.fold)
        except ValueError as e:
            raise ManifestError(f"manifest {m.source}: {e} (splits.* options)") from None
        split[idx] = res.split
        for note in res.notes:
            m.report.add("split", "warning", m.label, note, count=len(idx))
        for note in res.info:
            m.report.add("split", "info", opt.column if given is not None else m.label, note, count=len(idx))
    checks.keep_duplicates_together(m, split, given)
    m.split = split
    if groups is not None:
        checks.group_leakage(m, groups[idx], split[idx])
    if len(idx):
        for problem in m.task_object.split_problems(m.y, split, m.class_names):
            add_label_problem(m, problem)


def match_stored_splits(m: Manifest, path: Path) -> None:
    """Give every row the split stored with the run (``splits.csv``) and put the rows in the training
    table's order, so that statistics and batches are those of training; a changed table is an error
    unless ``allow_changed_table``."""
    stored = run_splits.read_splits_csv(path)
    ids = m.row_ids(np.arange(m.n)) if m.options.id and m.options.id in m.table else None
    match = run_splits.match_rows(stored, ids, m.keys, also=m.text_keys)  # text: splits stored by older runs
    if not match.ok:
        what = run_splits.describe_changes(match, stored, ids)
        if not m.options.allow_changed_table:
            raise ManifestError(
                f"manifest {m.source} changed since the run was trained: its rows no longer match the splits stored "
                f"in {path} ({what}). Evaluating or resuming on it would put rows in other splits than in training "
                "(training rows scored as test). Start a new run on the changed table (polymodal train ... "
                "name=<a new name>), or pass --allow-changed-table (Predictor: allow_changed_table=True) to use only "
                "the rows whose stored split is known")
        m.report.add("table_changed", "warning", "", f"the table changed since the run was trained ({what}); only the "
                     "rows whose stored split is known are used (allow_changed_table); statistics are refitted on "
                     "the remaining train rows", count=len(match.added) + len(match.removed) + len(match.changed))
    else:
        m.report.add("stored_split", "info", "", f"every row has the split stored with the run in {path.name} "
                     f"(rows matched by {match.by})", count=m.n)
    known = [r for r in range(m.n) if match.stored[r] is not None]
    perm = sorted(known, key=lambda r: stored[match.stored[r]].row) + [r for r in range(m.n) if match.stored[r] is None]
    split = np.array([""] * m.n, dtype=object)
    for i, r in enumerate(perm):
        j = match.stored[r]
        if j is not None and stored[j].split in SPLIT_VALUES:
            split[i] = stored[j].split
    m.table = {c: [cells[r] for r in perm] for c, cells in m.table.items()}
    m.keys = [m.keys[r] for r in perm]
    m.input_keys = [m.input_keys[r] for r in perm]
    m.text_keys = [m.text_keys[r] for r in perm]
    m.text_input_keys = [m.text_input_keys[r] for r in perm]
    m.row_number = m.row_number[perm]
    m.stored_split = split
