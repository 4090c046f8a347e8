"""Numeric cells: standardised with the train split's mean and std, an empty cell imputed with the mean
and flagged by an indicator feature (two features per column of the tabular modality)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from polymodal.data.datasets.manifest.cells import finite
from polymodal.data.datasets.manifest.codecs.base import CODECS, Codec, ColumnContext


@CODECS.register("numeric", tiny={})
class NumericCodec(Codec):
    """Numbers: standardised on the train split, with a missing-value indicator."""

    tabular = True
    width = 2

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.imputed = 0  # rows encoded with an empty cell since the last report
        self._any_imputed = False  # any row encoded without a number (empty or not a number) since then

    def check(self, cells: Sequence[Any], rows: np.ndarray, ctx: ColumnContext) -> None:
        bad = [(int(r), repr(cells[r])) for r in rows if cells[r] is not None and finite(cells[r]) is None]
        ctx.bad(bad, "bad_number", "cells that are not finite numbers in a numeric column (words, NaN, infinite or "
                "too large values; fix them, leave them empty to impute them, or set the column's kind to "
                "categorical in the schema)", skip=("treat the cell as empty: imputed", "these cells are treated as empty: imputed"))

    def read(self, source: Any) -> float | None:
        return finite(source)

    def fit(self, values: list[Any]) -> None:
        vals = np.array([x for x in values if x is not None])
        mean = float(vals.mean()) if len(vals) else 0.0
        std = float(vals.std()) if len(vals) > 1 and vals.std() > 0 else 1.0
        self.state = {"column": self.column, "mean": mean, "std": std}

    def encode(self, value: Any) -> np.ndarray:
        out = np.zeros(2, dtype=np.float32)
        x = None if value is None else finite(value)
        if x is None:
            out[1] = 1.0  # indicator: the value was missing (imputed with the train mean -> 0 after scaling)
            self.imputed += value is None  # cells that are not numbers are reported as bad_number
            self._any_imputed = True
        else:
            out[0] = (x - self.state["mean"]) / self.state["std"]
        return out

    def report(self, ctx: ColumnContext) -> None:
        if self._any_imputed:
            ctx.info("imputed", "empty numeric cells imputed with the training mean, with a missing-value indicator",
                     count=self.imputed)
        self.imputed, self._any_imputed = 0, False
