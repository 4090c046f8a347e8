"""The label side of a task, for tables: what a label cell holds, which task a label column looks like and
why, and what reading a column found (docs/byod.md, "The label column").

A task reads its own label column (:meth:`polymodal.tasks.Task.parse_labels`) and says whether a column
looks like its labels (:meth:`polymodal.tasks.Task.claim`); :func:`infer_task` asks every registered task
and keeps the most specific claim. A claim may name odd cells: a column that is almost all small
integers (class ids) with a ``3.5`` or a ``nan`` among them is neither a clean set of classes nor a
regression target, and inference stops there rather than guess (``task=`` decides).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np


def is_number(v: Any) -> bool:
    """Whether a cell reads as a number (``nan``, ``inf`` and ``1e999`` do; see :func:`finite`)."""
    if isinstance(v, int | float):
        return True
    try:
        float(v)
        return True
    except (TypeError, ValueError):
        return False


def finite(v: Any) -> float | None:
    """The cell as a finite float, or None (not a number, NaN, infinite, or too large for a float)."""
    try:
        x = float(v)
    except (TypeError, ValueError, OverflowError):
        return None
    return x if math.isfinite(x) else None


def label_text(v: Any) -> str:
    """A label cell as the class name it stands for (``3.0`` and ``"3.0"`` are class ``"3"``)."""
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    if isinstance(v, str) and is_number(v) and float(v).is_integer() and "." in v:
        return str(int(float(v)))
    return str(v)


def integer_cell(v: Any) -> bool:
    """Whether a cell is a finite whole number (``3``, ``3.0``, ``"3"``)."""
    x = finite(v)
    return x is not None and float(x).is_integer()


def sorted_names(values: Sequence[Any]) -> tuple[str, ...]:
    """Distinct label texts, numbers first in numeric order, then the others alphabetically."""
    return tuple(sorted({label_text(v) for v in values}, key=_name_order))


def _name_order(name: str) -> tuple[float, str]:
    x = finite(name)  # "nan" and "inf" sort as words: a NaN key would make the order depend on the input's
    return (x, name) if x is not None else (math.inf, name)


@dataclass
class Claim:
    """A task's reading of a label column: ``reason`` (shown in the data check, e.g. "10 distinct integer
    values"), and the cells that do not fit that reading (``odd``: (position in the column, cell)), which
    stop inference with ``problem`` (what the column looks like and why these cells break it)."""

    reason: str
    odd: list[tuple[int, Any]] = field(default_factory=list)
    problem: str = ""


@dataclass
class LabelProblem:
    """Something reading a label column found: a data-check row (``check``, ``severity`` error / warning /
    info, ``detail``) about the cells at ``positions`` (their places in the column, for row numbers; with
    their ``values``), or about ``items`` (shown as they are)."""

    check: str
    severity: str
    detail: str
    positions: list[int] = field(default_factory=list)
    values: list[Any] = field(default_factory=list)
    items: list[str] = field(default_factory=list)  # what to show instead of rows (e.g. "cat: 1/0/0")


@dataclass
class LabelColumn:
    """A label column as targets: ``y`` (N, ...) of the task's ``label_dtype`` with a placeholder on rows
    without a usable label, ``has_label`` (N,) bool, and what reading it found."""

    y: np.ndarray
    has_label: np.ndarray
    problems: list[LabelProblem] = field(default_factory=list)


def infer_task(cells: Sequence[Any]) -> tuple[str, str, Claim]:
    """(task name, why, the claim) for a label column's non-empty ``cells``: every registered task with an
    :attr:`~polymodal.tasks.Task.infer_priority` is asked in decreasing priority, and the first that claims
    the column wins. Raises :class:`LabelInferenceError` when that claim names odd cells."""
    from polymodal.tasks.base import TASKS, get_task

    tasks = [get_task(n) for n in TASKS.names()]
    tasks = sorted((t for t in tasks if t.infer_priority is not None), key=lambda t: -int(t.infer_priority or 0))
    for task in tasks:
        claim = task.claim(cells)
        if claim is None:
            continue
        if claim.odd:
            raise LabelInferenceError(task.name, claim)
        return task.name, claim.reason, claim
    raise LabelInferenceError("", Claim("no registered task reads this column"))


class LabelInferenceError(ValueError):
    """Inference stopped on a label column: ``claim.odd`` holds the cells that do not fit ``task``."""

    def __init__(self, task: str, claim: Claim) -> None:
        super().__init__(claim.problem or claim.reason)
        self.task, self.claim = task, claim


__all__ = ["Claim", "LabelColumn", "LabelInferenceError", "LabelProblem", "finite", "infer_task", "integer_cell",
           "is_number", "label_text", "sorted_names"]
