"""The kind of a column: a file kind from its cells' extensions (any registered codec with
``extensions``), else numeric, text or categorical from what its cells look like."""

from __future__ import annotations

import os
import re
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np

from polymodal.data.datasets.manifest.cells import is_number
from polymodal.data.datasets.manifest.codecs import CODECS

# kind -> file extensions of every registered file kind (the registry keeps this dict up to date)
FILE_EXTENSIONS: dict[str, tuple[str, ...]] = CODECS.file_extensions
IGNORE = "ignore"  # the kind of a column that is not read


def column_kinds() -> tuple[str, ...]:
    """Every kind a column may have: the registered ones, and ``ignore``."""
    return (*CODECS.kinds(), IGNORE)


COLUMN_KINDS = (*CODECS.registered(), IGNORE)  # the kinds built in (every registered kind: column_kinds())


def file_kind(cell: Any) -> str | None:
    """The file kind whose extension the cell ends in, or None."""
    if not isinstance(cell, str):
        return None
    ext = os.path.splitext(cell.lower())[1]
    return next((k for k, exts in FILE_EXTENSIONS.items() if ext in exts), None)


def infer_kind_detail(values: Sequence[Any]) -> tuple[str, str]:
    """(kind, why) of a column from its non-empty cells: the kind of the MAJORITY of the cells, so one odd
    cell (a typo in an extension, a word in a column of numbers) does not change the column's kind; the
    cells that do not fit are reported by the data check."""
    cells = [v for v in values if v is not None]
    if not cells:
        return IGNORE, "every cell is empty"
    n = len(cells)
    files = Counter(file_kind(v) for v in cells)
    files.pop(None, None)
    if files:
        kind, k = files.most_common(1)[0]
        if 2 * k > n:
            return kind, f"{k} of {n} cells end in {'/'.join(FILE_EXTENSIONS[kind])}"
    k = sum(1 for v in cells if is_number(v))
    if 2 * k > n:
        return "numeric", f"{k} of {n} cells are numbers"
    words = np.mean([len(str(v).split()) for v in cells])
    distinct = len(set(map(str, cells)))
    if words >= 3 or distinct > max(20, n // 2):
        return "text", f"{distinct} distinct values of {words:.1f} words on average"
    return "categorical", f"{distinct} distinct short values"


def infer_kind(values: Sequence[Any]) -> str:
    """The kind of a column from its non-empty cells (see :func:`infer_kind_detail`)."""
    return infer_kind_detail(values)[0]


def looks_like_id(values: Sequence[Any]) -> bool:
    """Every cell a different single word (at least 10 rows): an identifier, not an input."""
    cells = [str(v) for v in values if v is not None]
    if all(c.lower().endswith(FILE_EXTENSIONS["text"]) for c in cells):
        return False
    return len(cells) >= 10 and len(set(cells)) == len(cells) and not any(c.split()[1:] for c in cells)


def modality_name(column: str) -> str:
    """A modality name made of a column name (word characters, not starting with a digit)."""
    name = re.sub(r"\W+", "_", column).strip("_") or "column"
    return name if not name[0].isdigit() else f"m_{name}"
