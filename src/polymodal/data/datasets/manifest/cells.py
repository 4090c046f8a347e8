"""What one cell of a table holds: empty, a number, a file of some kind, a label."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from polymodal.tasks.labels import finite, is_number, label_text  # noqa: F401  (label cells are the tasks')


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
