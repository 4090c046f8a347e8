"""What one cell of a table holds: empty, a number, a file of some kind, a label."""

from __future__ import annotations

import math
from typing import Any

import numpy as np


def cell(v: Any) -> Any:
    """None for an empty cell, else a str (stripped), float or int."""
    if v is None:
        return None
    if isinstance(v, float | np.floating):
        return None if math.isnan(float(v)) else float(v)
    if isinstance(v, bool | np.bool_):
        return int(v)
    if isinstance(v, int | np.integer):
        return int(v)
    s = str(v).strip()
    return s or None


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
