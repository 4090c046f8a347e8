"""What a dataset check found, as a table: problems are reported, never silently fixed.

Every problem has a severity:

- ``error``: training would be wrong or impossible (a file is missing, the same file is in two
  splits, a split value is unknown). :meth:`ValidationReport.raise_for_errors` raises with the table.
- ``warning``: training runs but a number may mislead (a class too small for the split).
- ``info``: something was changed as configured and the report says so (images resized, audio
  resampled, missing numbers imputed, files skipped on request).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

Severity = Literal["error", "warning", "info"]
_ORDER = {"error": 0, "warning": 1, "info": 2}


class DatasetValidationError(ValueError):
    """The dataset check found errors; ``report`` holds every problem found, not only the first."""

    def __init__(self, message: str, report: ValidationReport) -> None:
        super().__init__(message)
        self.report = report


@dataclass
class Problem:
    """One kind of problem in one column (or the whole table when ``column`` is "")."""

    check: str  # short name: missing_file, unreadable_file, resized, leakage, ...
    severity: Severity
    column: str
    count: int  # rows (or files, classes, groups) concerned
    detail: str  # what was found and what was done or should be done
    examples: list[str] = field(default_factory=list)  # a few of the rows / files / values concerned

    def to_dict(self) -> dict:
        return {"check": self.check, "severity": self.severity, "column": self.column, "count": self.count,
                "detail": self.detail, "examples": list(self.examples)}


class ValidationReport:
    """Problems found while reading a dataset, with Markdown rendering."""

    def __init__(self, source: str = "dataset") -> None:
        self.source = source
        self.problems: list[Problem] = []

    def add(self, check: str, severity: Severity, column: str, detail: str, examples: Sequence[str] = (),
            count: int | None = None) -> None:
        examples = [str(e) for e in examples]
        self.problems.append(Problem(check, severity, column, len(examples) if count is None else count, detail,
                                     examples[:5]))

    def by_check(self, check: str) -> list[Problem]:
        return [p for p in self.problems if p.check == check]

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    def __bool__(self) -> bool:  # truthy when anything was found
        return bool(self.problems)

    def to_markdown(self) -> str:
        from polymodal.report.escape import md_text

        if not self.problems:
            return f"Dataset check of {md_text(self.source)}: no problems found.\n"
        from polymodal.report.table import markdown_table

        # column names, file names, class names and cells come from the user: escaped, so that no renderer of
        # the Markdown makes HTML or links of them (docs/troubleshooting.md)
        rows = [[p.severity, p.check, md_text(p.column or "-"), p.count, md_text(p.detail.replace("|", "/")),
                 md_text(", ".join(p.examples))]
                for p in sorted(self.problems, key=lambda p: (_ORDER[p.severity], p.check, p.column))]
        lines = [f"Dataset check of {md_text(self.source)}:", "",
                 *markdown_table(["severity", "check", "column", "count", "detail", "examples"], rows, "lllrll")]
        return "\n".join(lines) + "\n"

    def to_dict(self) -> dict:
        return {"source": self.source, "problems": [p.to_dict() for p in self.problems]}

    def raise_for_errors(self) -> None:
        """Raise :class:`DatasetValidationError` with the whole table when any problem is an error."""
        if self.errors:
            n = len(self.errors)
            raise DatasetValidationError(
                f"{self.source}: {n} error{'s' if n > 1 else ''} found by the data check; nothing was changed. "
                f"Fix the table or the files (or set the option named in the detail column):\n\n{self.to_markdown()}",
                self,
            )
