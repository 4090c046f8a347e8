"""Reading the table: CSV (pandas, with the column separator detected from the header line), Parquet,
JSON Lines, or a pandas DataFrame, as columns of cleaned cells (see :func:`cells.cell`).

A CSV separated by something other than a comma (``;``, tab, ``|``) is how spreadsheets write numbers with
a decimal comma: there, a column whose cells are numbers once a decimal comma is read as a point (``-28,28``,
``1.234,5`` with points grouping thousands) is read as numbers, and the data check says so
(``decimal_comma``), rather than turning the column into text.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from polymodal.data.datasets.manifest.cells import cell, is_number
from polymodal.data.datasets.manifest.errors import ManifestError

if TYPE_CHECKING:
    from polymodal.data.validation import ValidationReport

TABLE_FORMATS = (".csv", ".tsv", ".parquet", ".pq", ".jsonl", ".ndjson", ".json")
DELIMITERS = (",", ";", "\t", "|")


def read_table(source: Any, delimiter: str | None = None) -> tuple[dict[str, list[Any]], str, Path | None]:
    """(columns -> cells, a name for messages, the folder relative paths default to)."""
    table, name, folder, _ = read_table_info(source, delimiter)
    return table, name, folder


def sniff_delimiter(path: Path) -> str:
    """The separator of a CSV from its header line: a comma when it has one, else ; tab or |."""
    with path.open("r", encoding="utf-8-sig", errors="replace") as f:
        header = f.readline()
    if "," in header:
        return ","
    found = [d for d in DELIMITERS[1:] if d in header]
    if len(found) == 1:
        return found[0]
    if len(header.strip().split()) > 1 or any(c in header for c in ":#"):
        raise ManifestError(f"manifest {path}: cannot tell the column separator of its header line {header.strip()[:80]!r}; "
                            "set it with the delimiter option (e.g. data.options.delimiter=';', or delimiter=';' in Python)")
    return ","


# a number written with a decimal comma, optionally with points grouping thousands: -28,28  ,5  1.234,5  2,5e3
DECIMAL_COMMA = re.compile(r"[+-]?(?:\d{1,3}(?:\.\d{3})+|\d*),\d+(?:[eE][+-]?\d+)?")
SHOWN = 5  # example cells in a message


def decimal_commas(cells: list[Any]) -> tuple[list[Any], list[int], list[int]]:
    """A column of a CSV whose separator is not a comma, with its decimal-comma numbers read as numbers:
    (the cells, with ``-28,28`` as ``-28.28`` and ``1.234,5`` as ``1234.5``; the rows changed; the rows
    of other numbers written with a point, which then mix two conventions). The column is left as it is
    unless its decimal-comma cells make numbers of the majority of its non-empty cells."""
    filled = [(r, v) for r, v in enumerate(cells) if isinstance(v, str)]
    commas = [r for r, v in filled if DECIMAL_COMMA.fullmatch(v)]
    numbers = sum(1 for _, v in filled if is_number(v))
    if not commas or 2 * (len(commas) + numbers) <= len(filled):
        return cells, [], []
    out = list(cells)
    for r in commas:
        out[r] = cells[r].replace(".", "").replace(",", ".")
    points = [r for r, v in filled if "." in v and is_number(v)]
    return out, commas, points


def report_table_info(report: ValidationReport, info: dict[str, Any], n: int) -> None:
    """Add what reading the table did to the data check: the detected separator (``delimiter``) and the
    numbers read from decimal commas (``decimal_comma``)."""
    sep = info.get("delimiter")
    if sep:
        report.add("delimiter", "info", "", f"columns separated by {sep!r}, detected from the header line (set the "
                   "delimiter option to choose another)", count=n)
    for col, (rows, cells, points) in info.get("decimal_comma", {}).items():
        report.add("decimal_comma", "info", col, f"numbers written with a decimal comma read as numbers (e.g. "
                   f"{cells[rows[0]]!r} as {float(cells[rows[0]].replace('.', '').replace(',', '.')):g}): in a CSV "
                   f"separated by {info.get('separator')!r} a comma is the decimal separator, and points "
                   "group thousands", [f"row {r + 1}: {cells[r]!r}" for r in rows[:SHOWN]], count=len(rows))
        if points:
            report.add("decimal_comma", "warning", col, "numbers written with a point in a column of decimal commas: "
                       "read as written (1.5 is one and a half); if the point groups thousands there (1.234 for "
                       "1234), write those cells with a decimal comma too or without the point",
                       [f"row {r + 1}: {cells[r]!r}" for r in points[:SHOWN]], count=len(points))


def _nested(v: Any) -> bool:
    return isinstance(v, list | tuple | dict | set | np.ndarray)


def read_table_info(source: Any, delimiter: str | None = None) -> tuple[dict[str, list[Any]], str, Path | None, dict[str, Any]]:
    """:func:`read_table` plus what the data check reports: the detected ``delimiter`` (None for the
    default one) and the ``nested`` columns (Parquet lists or structs, kept as their text)."""
    import pandas as pd

    info: dict[str, Any] = {"delimiter": None, "nested": [], "decimal_comma": {}, "separator": None}
    if isinstance(source, pd.DataFrame):
        df, name, folder = source, "the data frame", None
    else:
        path = Path(source).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"manifest {path} does not exist; pass a CSV, Parquet or JSON Lines file (or a data frame)")
        suffix = path.suffix.lower()
        try:
            if suffix in (".csv", ".tsv"):
                sep = delimiter or ("\t" if suffix == ".tsv" else sniff_delimiter(path))
                if sep != ("\t" if suffix == ".tsv" else ","):
                    info["delimiter"] = sep
                info["separator"] = sep
                df = pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False)
            elif suffix in (".parquet", ".pq"):
                df = pd.read_parquet(path)
            elif suffix in (".jsonl", ".ndjson", ".json"):
                df = pd.read_json(path, lines=suffix != ".json", dtype=False)
            else:
                raise ManifestError(f"manifest {path}: unknown table format {suffix!r}; expected one of {', '.join(TABLE_FORMATS)}")
        except (ValueError, OSError, ImportError) as e:
            if isinstance(e, ManifestError):
                raise
            raise ManifestError(f"cannot read manifest {path}: {e}") from e
        name, folder = str(path), path.parent
    if len(df.columns) == 0 or len(df) == 0:
        raise ManifestError(f"manifest {name} has no rows or no columns; expected one row per sample with a header line")
    cols = [str(c) for c in df.columns]
    dup = [c for c, n in Counter(cols).items() if n > 1]
    if dup:
        raise ManifestError(f"manifest {name}: duplicate column names {dup}; every column needs its own name")
    if len(cols) == 1 and any(d in cols[0] for d in DELIMITERS):
        raise ManifestError(f"manifest {name} has a single column named {cols[0]!r}: its separator is not a comma; "
                            "set it with the delimiter option (e.g. data.options.delimiter=';')")
    table = {}
    for c in df.columns:
        values = df[c].tolist()
        if any(_nested(v) for v in values):
            info["nested"].append(str(c))
            table[str(c)] = [None if v is None or (isinstance(v, float) and math.isnan(v)) else str(v) for v in values]
        else:
            table[str(c)] = [cell(v) for v in values]
        if info["separator"] not in (None, ","):
            cells = table[str(c)]
            table[str(c)], commas, points = decimal_commas(cells)
            if commas:
                info["decimal_comma"][str(c)] = (commas, cells, points)
    return table, name, folder, info
