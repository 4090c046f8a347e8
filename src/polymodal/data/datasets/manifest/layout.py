"""The layout of a manifest: every column's kind, the modalities they form, the task and the classes;
either inferred from the table and the options, or restored from a saved state."""

from __future__ import annotations

import difflib
from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from polymodal.data.datasets.manifest.codecs import CODECS
from polymodal.data.datasets.manifest.errors import ManifestError
from polymodal.data.datasets.manifest.kinds import (
    IGNORE,
    column_kinds,
    infer_kind_detail,
    looks_like_id,
    modality_name,
)
from polymodal.data.datasets.manifest.options import AUTO_TASK, STATE_VERSION
from polymodal.tasks import TASKS, get_task
from polymodal.tasks.labels import LabelInferenceError, infer_task

if TYPE_CHECKING:
    from polymodal.data.datasets.manifest.core import Manifest

TABULAR = "tabular"  # the modality kind of the tabular (numeric, categorical) columns


def check_columns(m: Manifest, cols: Sequence[str], key: str) -> None:
    """Every column of option ``key`` is in the table (else an error with the closest names)."""
    for c in cols:
        if c not in m.table:
            close = difflib.get_close_matches(c, list(m.table), n=3, cutoff=0.5)
            hint = f" (did you mean {', '.join(map(repr, close))}?)" if close else ""
            raise ManifestError(f"{key}: column {c!r} is not in manifest {m.source}{hint}; its columns are {list(m.table)}")


def label_name(label: str | Sequence[str]) -> str:
    """The name of the label column; a label of several columns (a survival target's time and event) is read as
    one column of tuples, named by its columns joined with ``+`` (``time+event``)."""
    return label if isinstance(label, str) else "+".join(label)


def join_label_columns(m: Manifest) -> None:
    """A label of several columns (``label=[time, event]``) becomes one column of tuples, one per row (None where
    every cell is empty), which the task parses (:meth:`polymodal.tasks.Task.parse_labels`). A table without
    those columns (rows to predict) is left as it is."""
    label = m.options.label
    if label is None or isinstance(label, str):
        return
    if len(label) < 2 or len(set(label)) != len(label):
        raise ManifestError(f"label={list(label)}: a label of several columns names at least two different columns "
                            "(e.g. label=[time, event]); give one column as a plain name")
    if not any(c in m.table for c in label):
        return
    check_columns(m, label, "label")
    name = label_name(label)
    if name in m.table:
        raise ManifestError(f"manifest {m.source}: label={list(label)} is read as a column named {name!r}, but the "
                            "table already has one; rename that column")
    m.table[name] = [None if all(v is None for v in row) else tuple(row) for row in zip(*(m.table[c] for c in label), strict=True)]


def infer_layout(m: Manifest) -> None:
    """Set ``kinds``, ``modality_specs``, ``label``, ``task``, ``class_names`` and an empty ``stats``."""
    opt = m.options
    if opt.label is None:
        raise ManifestError(f"manifest {m.source}: no label column given; pass label=<column> (one of {list(m.table)})")
    label = label_name(opt.label)
    check_columns(m, [label], "label")
    sources = [] if isinstance(opt.label, str) else list(opt.label)  # a label of several columns: none is an input
    reserved = {label, *sources, opt.splits.column, opt.splits.group, opt.id} - {None}
    if opt.splits.group:
        check_columns(m, [opt.splits.group], "splits.group")
    if opt.id:
        check_columns(m, [opt.id], "id")
    check_columns(m, list(opt.schema_), "schema")
    nested = [c for c in m.nested if c not in reserved and opt.schema_.get(c) != IGNORE]
    if nested:
        raise ManifestError(f"manifest {m.source}: columns {nested} hold lists or structs (Parquet list/struct "
                            "columns), not one value per cell; flatten them into one column per value, or set their "
                            f"kind to ignore (schema: {{{nested[0]}: ignore}})")
    allowed = column_kinds()
    kinds: dict[str, str] = {}
    for col, cells in m.table.items():
        if col in reserved:
            continue
        given = opt.schema_.get(col)
        if given is not None and given not in allowed:
            raise ManifestError(f"schema: column {col!r} has kind {given!r}; allowed kinds: {', '.join(allowed)}")
        kind, why = (given, "given in the schema") if given else infer_kind_detail(cells)
        kinds[col] = kind
        if given is None and kind == IGNORE:
            m.report.add("empty_column", "warning", col, "every cell is empty: the column is ignored", count=m.n)
        if given is None and kind in ("text", "categorical") and looks_like_id(cells):
            kinds[col] = IGNORE
            why = "every cell is a different single word, like an identifier"
            m.report.add("id_column", "info", col, "every cell is a different single word, like an identifier: the column "
                         f"is ignored (set id={col} to name predictions by it, or schema: {{{col}: text}} to use it)",
                         [c for c in cells if c is not None][:3], count=m.n)
        shown = "ignored" if kinds[col] == IGNORE else kinds[col]
        m.report.add("column_kind", "info", col, f"{shown} ({why})", count=sum(v is not None for v in cells))
    tabular = CODECS.tabular_kinds()
    groups = {k: list(v) for k, v in opt.tabular_groups.items()}
    for g, cols in groups.items():
        check_columns(m, cols, f"tabular_groups.{g}")
        bad = [c for c in cols if kinds.get(c) not in tabular]
        if bad:
            raise ManifestError(f"tabular_groups.{g}: columns {bad} are {[kinds.get(c) for c in bad]}, not "
                                f"{' or '.join(tabular)}; a tabular group holds {' and '.join(tabular)} columns only")
    grouped = {c for cols in groups.values() for c in cols}
    rest = [c for c, k in kinds.items() if k in tabular and c not in grouped]
    if rest:
        groups = {TABULAR: rest, **groups} if TABULAR not in groups else {**groups, "tabular_rest": rest}
    mods: list[dict[str, Any]] = []
    for col, k in kinds.items():
        if k != IGNORE and k not in tabular:
            mods.append({"name": modality_name(col), "kind": k, "columns": [col]})
    mods += [{"name": g, "kind": TABULAR, "columns": cols} for g, cols in groups.items()]
    names = [md["name"] for md in mods]
    clash = [n for n, c in Counter(names).items() if c > 1]
    if clash:
        raise ManifestError(f"manifest {m.source}: modality names {clash} come from more than one column; rename the columns")
    if not mods:
        raise ManifestError(f"manifest {m.source}: no input column besides the label; column kinds found: {kinds}")
    m.kinds, m.modality_specs = kinds, mods
    m.label = label
    cells = m.table[label]
    labels = [v for v in cells if v is not None]
    if opt.task == AUTO_TASK:
        m.task, why = infer_label_task(m, cells)
        m.report.add("task", "info", label, f"{m.task}, inferred: {why} (set the task option, data.options.task=..., "
                     "to choose another)", count=len(labels))
    else:
        m.task = get_task(opt.task).name
        m.report.add("task", "info", label, f"{m.task}, given (task={opt.task})", count=len(labels))
    try:
        m.class_names = m.task_object.class_names_from(labels)
    except ValueError as e:
        raise ManifestError(f"label column {label!r} has {e}") from None
    m.stats = {}


def infer_label_task(m: Manifest, cells: Sequence[Any]) -> tuple[str, str]:
    """``task=auto``: the task that claims the label column (:func:`polymodal.tasks.labels.infer_task`) and why.
    A column that is almost all class ids with a few other cells stops here, naming those rows."""
    present = [r for r, v in enumerate(cells) if v is not None]
    try:
        name, why, _ = infer_task([cells[r] for r in present])
    except LabelInferenceError as e:
        rows = [f"row {m.row_number[present[i]]}: {v!r}" for i, v in e.claim.odd]
        shown = ", ".join(rows[:10]) + (f" and {len(rows) - 10} more" if len(rows) > 10 else "")
        tasks = ", ".join(TASKS.names())
        raise ManifestError(
            f"manifest {m.source}: label column {m.options.label!r}: {e}: {shown}. Fix those cells (leave a cell "
            f"empty for a row without a label), or say which task the column is with the task option "
            f"(data.options.task=<task>, Predictor(task=...); one of {tasks})") from None
    return name, why


def load_state(m: Manifest, state: dict[str, Any]) -> None:
    """Restore the layout and the fitted statistics of :meth:`Manifest.state`; the table must hold the
    columns the model was trained with."""
    if state.get("version") != STATE_VERSION:
        raise ManifestError(f"data state version {state.get('version')!r}; this polymodal reads version {STATE_VERSION}")
    m.kinds = dict(state["columns"])
    m.modality_specs = [dict(md) for md in state["modalities"]]
    m.label, m.task = state["label"], state["task"]
    try:
        get_task(m.task)
    except KeyError:
        raise ManifestError(f"data state of manifest {m.source}: task {m.task!r} is not registered; known tasks: "
                            f"{', '.join(TASKS.names())} (import the module that registers it)") from None
    m.class_names = tuple(state["class_names"])
    m.stats = {k: dict(v) for k, v in state["stats"].items()}
    used = {c for md in m.modality_specs for c in md["columns"]}
    nested = sorted(used & set(m.nested))
    if nested:
        raise ManifestError(f"manifest {m.source}: columns {nested} hold lists or structs, not one value per cell "
                            "as in the table the model was trained on; flatten them")
    needed = sorted(used - set(m.table))
    if needed:
        raise ManifestError(f"manifest {m.source} lacks the columns {needed} that the model was trained with; "
                            "add them (empty cells are fine: the modality is then missing)")
    unknown = sorted({md["kind"] for md in m.modality_specs} - {*CODECS.kinds(), TABULAR})
    if unknown:
        raise ManifestError(f"data state of manifest {m.source}: column kinds {unknown} are not registered; "
                            f"known kinds: {', '.join(CODECS.kinds())} (import the module that registers them)")
