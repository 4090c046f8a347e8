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
