"""Categorical cells: one-hot over the values of the train split, plus one feature for a value not seen
in training (``len(values) + 1`` features per column of the tabular modality)."""

from __future__ import annotations

from typing import Any

import numpy as np

from polymodal.data.datasets.manifest.codecs.base import CODECS, Codec, ColumnContext


@CODECS.register("categorical", tiny={})
class CategoricalCodec(Codec):
    """Few distinct short values: one-hot over the training values, plus 'other'."""

    tabular = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.unseen: list[str] = []  # values encoded as 'other' since the last report

    def read(self, source: Any) -> str:
        return str(source)

    def fit(self, values: list[Any]) -> None:
        self.state = {"column": self.column, "values": sorted(set(values))}

    @property
    def width(self) -> int:  # type: ignore[override]
        return len(self.state["values"]) + 1

    def encode(self, value: Any) -> np.ndarray:
        vocab = self.state["values"]
        out = np.zeros(len(vocab) + 1, dtype=np.float32)
        if value is not None and str(value) in vocab:
            out[vocab.index(str(value))] = 1.0
        elif value is not None:
            out[len(vocab)] = 1.0  # a value not seen in training
            self.unseen.append(str(value))
        return out

    def report(self, ctx: ColumnContext) -> None:
        if self.unseen:
            ctx.info("unseen_category", "values not seen in the train split, encoded as 'other'", sorted(set(self.unseen)),
                     count=len(self.unseen))
        self.unseen = []
