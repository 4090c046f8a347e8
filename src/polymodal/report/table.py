"""The one Markdown table writer of the project (reports, results tables, the data check)."""

from __future__ import annotations

from collections.abc import Sequence


def cell(x: object) -> str:
    """A table cell: ``|`` escaped, line breaks folded into spaces."""
    return str(x).replace("|", "\\|").replace("\n", " ")


def markdown_table(header: Sequence[object], rows: Sequence[Sequence[object]], align: str | None = None) -> list[str]:
    """Lines of a Markdown table. ``align`` has one letter per column, ``l`` (``---``) or ``r`` (``---:``);
    by default the first column is left-aligned and the others right-aligned."""
    align = align if align is not None else "l" + "r" * (len(header) - 1)
    if len(align) != len(header) or set(align) - {"l", "r"}:
        raise ValueError(f"align {align!r} must give l or r for each of the {len(header)} columns")
    bad = [i for i, row in enumerate(rows) if len(row) != len(header)]
    if bad:
        raise ValueError(f"table rows {bad[:5]} do not have the header's {len(header)} cells")
    lines = ["| " + " | ".join(cell(c) for c in header) + " |", "|" + "".join("---|" if a == "l" else "---:|" for a in align)]
    lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]
    return lines


def is_number(x: object) -> bool:
    """A finite int or float (numpy scalars included), not a bool."""
    import math

    import numpy as np

    return isinstance(x, int | float | np.integer | np.floating) and not isinstance(x, bool) and math.isfinite(x)


def pct(x: object) -> str:
    """A fraction as a percentage with two decimals; "n/a" for anything that is not a finite number."""
    return f"{100 * x:.2f}" if is_number(x) else "n/a"  # type: ignore[operator]


def num(x: object, fmt: str = ".4f") -> str:
    """An int as it is, a finite float in ``fmt``; "n/a" otherwise."""
    if isinstance(x, int) and not isinstance(x, bool):
        return str(x)
    return format(x, fmt) if is_number(x) else "n/a"


def modality_names(results: dict, suffixes: tuple[str, ...]) -> list[str]:
    """Modality names of the per-modality keys ``<m><suffix>`` in a results.json's val / test metrics
    (fused keys and keys with ``@`` left out), in order of first appearance."""
    names: dict[str, None] = {}
    for split in ("val", "test"):
        for key in results.get(split) or {}:
            for suffix in suffixes:
                if key.endswith(suffix) and "@" not in key and key != f"fused{suffix}" and len(key) > len(suffix):
                    names[key[: -len(suffix)]] = None
    return list(names)
