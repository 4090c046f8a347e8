"""What makes a row of a manifest what it is for a run: its label and input cells, as values.

A run stores a hash of every row's cells (``splits.csv``: ``content`` with the label, ``inputs`` without),
which finds each row again when the table is read later, whatever the order of its rows. The hash is taken
over the values the model reads, not over the text of the file: a number column's cells as numbers
(``-29.90``, ``-29.9`` and ``-2.99e1`` are one value, as after re-saving a table with pandas; an integer column
that gained an empty cell and is written ``3.0`` is still ``3``), class labels as the class they name
(``3.0`` is class ``3``) and regression targets as numbers. Text, categories and file paths are compared as
written. A cell that is not a number in a number column (a ``bad_number``) keeps its text.

Runs trained before hashed the text of the cells; :func:`row_keys` also gives those text hashes, so a
stored split written then is still found (``run_splits.match_rows``'s ``also``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from polymodal.data.datasets import run_splits
from polymodal.data.datasets.manifest.cells import finite

if TYPE_CHECKING:
    from polymodal.data.datasets.manifest.core import Manifest

NUMBER_KINDS = ("numeric",)  # column kinds whose cells are read as numbers


def _number(v: Any) -> Any:
    """A number cell as its value (a float), or its text when it is not a finite number."""
    if v is None:
        return None
    x = finite(v)
    return x if x is not None else str(v)


def content_values(m: Manifest, columns: list[str]) -> dict[str, list[Any]]:
    """The cells of ``columns`` as the run reads them: numbers as floats, labels as class names or targets."""
    out: dict[str, list[Any]] = {}
    for col in columns:
        cells = m.table.get(col, [None] * m.n)
        if col == m.label:
            task = m.task_object  # what a label cell stands for is the task's (a class name, a number, a set)
            out[col] = [None if v is None else task.label_value(v) for v in cells]
        elif m.kinds.get(col) in NUMBER_KINDS:
            out[col] = [_number(v) for v in cells]
        else:
            out[col] = list(cells)
    return out


def row_keys(m: Manifest, columns: list[str], by_value: bool = True) -> list[str]:
    """The hash of every row's cells of ``columns`` (see the module docstring); ``by_value=False``: of their
    text, as runs stored them before."""
    table = content_values(m, columns) if by_value else m.table
    return run_splits.row_keys(table, columns, m.n)
