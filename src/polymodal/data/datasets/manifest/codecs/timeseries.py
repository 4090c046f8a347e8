"""Time-series files (.npy arrays, or CSV files of numbers): (time steps, channels), standardised per
channel with the train split's statistics and padded or cropped to one length."""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field

from polymodal.data.datasets.manifest.cells import is_number
from polymodal.data.datasets.manifest.codecs.base import CODECS, Codec, CodecOptions, ColumnContext
from polymodal.data.datasets.manifest.errors import ManifestError
from polymodal.data.io import MediaError, check_file
from polymodal.data.io.array import read_npy
from polymodal.data.schema import Modality


class TimeseriesOptions(CodecOptions):
    layout: Literal["time_major", "channel_major"] = "time_major"  # rows = time steps (or channels)
    length: int | None = Field(None, ge=1)  # default: the longest training series, at most 4096
    max_mb: float = Field(256.0, gt=0)  # a .npy file whose header asks for more is refused before it is read


def read_series_csv(p: Path) -> np.ndarray:
    """A CSV of numbers (an optional header line of names is skipped) as a 2-d float64 array."""
    try:
        with p.open(newline="") as f:
            first = next((row for row in csv.reader(f) if any(v.strip() for v in row)), [])
        skip = 1 if first and not all(is_number(v) for v in first) else 0
        x = np.loadtxt(p, delimiter=",", skiprows=skip, ndmin=2, dtype=np.float64)
    except (ValueError, OSError, UnicodeDecodeError, IndexError, csv.Error) as e:
        raise MediaError(f"cannot read time series {p}: {e}; expected a .npy array or a CSV of numbers") from e
    return x


@CODECS.register("timeseries", tiny={"length": 8})
class TimeseriesCodec(Codec):
    """Time-series files: (time steps, channels), standardised per channel, one length."""

    extensions = (".npy", ".csv")
    Options = TimeseriesOptions

    def read(self, source: Path) -> np.ndarray:
        p = check_file(source, "time-series file")
        if p.suffix.lower() == ".npy":
            x = read_npy(p, max_bytes=int(self.options.max_mb * 2**20), limit_name="timeseries.max_mb")
        else:
            x = read_series_csv(p)
        with np.errstate(over="ignore"):
            x = np.asarray(x, dtype=np.float32)
        if x.ndim == 1:
            x = x[:, None]
        if x.ndim != 2 or x.size == 0:
            raise MediaError(f"time series {p} has shape {x.shape}; expected (time steps, channels) with at least one value")
        if self.state.get("layout", self.options.layout) == "channel_major":
            x = x.T
        if not np.isfinite(x).all():
            raise MediaError(f"time series {p} holds NaN or infinite values; fill or drop them")
        return x

    def fit(self, values: list[np.ndarray]) -> None:
        if not values:
            raise ManifestError(f"time-series column {self.column!r}: no readable file in the train split")
        channels = Counter(x.shape[1] for x in values).most_common(1)[0][0]
        length = self.options.length or min(4096, max(len(x) for x in values))
        cat = np.concatenate([x for x in values if x.shape[1] == channels])
        self.state = {"layout": self.state.get("layout", self.options.layout), "channels": int(channels),
                      "length": int(length), "mean": cat.mean(axis=0).tolist(),
                      "std": np.maximum(cat.std(axis=0), 1e-6).tolist()}

    def finish(self, got: dict[int, Any], ctx: ColumnContext) -> dict[int, Any]:
        st = self.state
        wrong = [(r, f"{x.shape[1]} channels") for r, x in got.items() if x.shape[1] != st["channels"]]
        if wrong:
            ctx.bad(wrong, "bad_channels", f"series whose channel count is not {st['channels']} (check timeseries.layout)")
            for r, _ in wrong:
                got.pop(r)
        other = sum(1 for x in got.values() if len(x) != st["length"])
        if other:
            ctx.info("length", f"series padded with zeros or cropped to {st['length']} steps (timeseries.length)", count=other)
        return {r: self._fit(x) for r, x in got.items()}

    def _fit(self, x: np.ndarray) -> np.ndarray:
        st = self.state
        mean, std = np.array(st["mean"], np.float32), np.array(st["std"], np.float32)
        out = np.zeros((st["length"], st["channels"]), dtype=np.float32)
        x = (x[: st["length"]] - mean) / std
        out[: len(x)] = x
        return out

    def reread(self, source: Path) -> np.ndarray:
        return self._fit(self.read(source))

    def modality(self) -> Modality:
        st = self.state
        return Modality(self.name, "timeseries", (st["length"], st["channels"]), representation="features")
