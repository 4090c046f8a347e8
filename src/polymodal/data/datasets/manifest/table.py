"""Reading the table: CSV (pandas, with the column separator detected from the header line), Parquet,
JSON Lines, or a pandas DataFrame, as columns of cleaned cells (see :func:`cells.cell`)."""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from polymodal.data.datasets.manifest.cells import cell
from polymodal.data.datasets.manifest.errors import ManifestError

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


def _nested(v: Any) -> bool:
    return isinstance(v, list | tuple | dict | set | np.ndarray)


def read_table_info(source: Any, delimiter: str | None = None) -> tuple[dict[str, list[Any]], str, Path | None, dict[str, Any]]:
    """:func:`read_table` plus what the data check reports: the detected ``delimiter`` (None for the
    default one) and the ``nested`` columns (Parquet lists or structs, kept as their text)."""
    import pandas as pd

    info: dict[str, Any] = {"delimiter": None, "nested": []}
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
    return table, name, folder, info
