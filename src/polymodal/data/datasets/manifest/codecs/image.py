"""Image files (jpg jpeg png webp bmp): one size and colour mode fitted on the train split, each channel
standardised with the train split's mean and std. Pixels are 8-bit levels: a 16-bit grey PNG is scaled by
its bit depth (``read_image``), never clipped."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from polymodal.data.datasets.manifest.codecs.base import CODECS, Codec, CodecOptions, ColumnContext
from polymodal.data.datasets.manifest.errors import ManifestError
from polymodal.data.io import read_image
from polymodal.data.io.image import WIDE_GREY_MODES
from polymodal.data.schema import Modality

GREY_MODES = ("L", "1", "LA", *WIDE_GREY_MODES)  # 16-bit grey is read as 8-bit levels (data.io.image)


class ImageOptions(CodecOptions):
    size: tuple[int, int] | None = None  # (height, width); default: the most common training size
    mode: Literal["auto", "L", "RGB"] = "auto"  # auto: grey when every training image is grey
    normalize: bool = True  # standardise each channel with the train split's mean and std (else pixels in [0, 1])


@CODECS.register("image", tiny={"size": (8, 8)})
class ImageCodec(Codec):
    """Image files: one size and mode fitted on the train split, channels standardised."""

    extensions = (".jpg", ".jpeg", ".png", ".webp", ".bmp")
    Options = ImageOptions

    def probe(self, source: Path) -> tuple[tuple[int, int], str]:
        from PIL import Image

        with Image.open(source) as im:
            return (im.height, im.width), im.mode

    def setup(self, probes: list[tuple[tuple[int, int], str]]) -> None:
        opt = self.options
        sizes = Counter(s for s, _ in probes)
        if not sizes:
            raise ManifestError(f"image column {self.column!r}: no readable image in the train split")
        size = tuple(opt.size) if opt.size else sizes.most_common(1)[0][0]
        mode = opt.mode
        if mode == "auto":
            mode = "L" if all(m in GREY_MODES for _, m in probes) else "RGB"
        self.state = {"size": list(size), "mode": mode}

    def describe(self, probes: dict[int, tuple[tuple[int, int], str]], ctx: ColumnContext) -> None:
        size = tuple(self.state["size"])
        other = Counter(s for s, _ in probes.values() if tuple(s) != size)
        if other:
            ctx.info("resized", f"images of {len(other)} other size(s) (e.g. {'x'.join(map(str, other.most_common(1)[0][0]))}) "
                     f"resized to {size[0]}x{size[1]} (height x width; image.size)", count=sum(other.values()))

    def read(self, source: Path) -> np.ndarray:
        x = read_image(source, mode=self.state["mode"], size=tuple(self.state["size"]), resize=True)
        return x[None] if x.ndim == 2 else np.ascontiguousarray(x.transpose(2, 0, 1))  # (C, H, W) uint8

    def fit(self, values: list[np.ndarray]) -> None:
        st = self.state
        if not self.options.normalize:
            st["mean"], st["std"] = [0.0] * self._channels, [1.0] * self._channels
            return
        if not values:
            raise ManifestError(f"image column {self.column!r}: no readable image in the train split")
        stack = np.stack(values).astype(np.float64) / 255.0
        st["mean"] = stack.mean(axis=(0, 2, 3)).tolist()
        st["std"] = np.maximum(stack.std(axis=(0, 2, 3)), 1e-3).tolist()

    @property
    def _channels(self) -> int:
        return 1 if self.state["mode"] == "L" else 3

    def finish(self, got: dict, ctx: ColumnContext) -> dict:
        st = self.state
        self._norm = (torch.tensor(st["mean"]).view(-1, 1, 1), torch.tensor(st["std"]).view(-1, 1, 1))
        return got

    def to_tensor(self, x: np.ndarray) -> torch.Tensor:
        mean, std = self._norm
        return (torch.from_numpy(x).float().div_(255.0) - mean) / std

    def modality(self) -> Modality:
        st = self.state
        return Modality(self.name, "image", (self._channels, *st["size"]), representation="pixels",
                        extra={"mean": st["mean"], "std": st["std"]})
