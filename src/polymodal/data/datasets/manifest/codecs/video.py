"""Video files (mp4 avi mkv flv mov webm): a fixed number of frames, resized, pixels in [0, 1]."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
import torch
from pydantic import Field

from polymodal.data.datasets.manifest.codecs.base import CODECS, Codec, CodecOptions
from polymodal.data.io import read_video
from polymodal.data.schema import Modality


class VideoOptions(CodecOptions):
    frames: int = Field(8, ge=1)
    size: tuple[int, int] = (64, 64)
    mode: Literal["RGB", "L"] = "RGB"


@CODECS.register("video", tiny={"frames": 2, "size": (8, 8)})
class VideoCodec(Codec):
    """Video files: a fixed number of frames of a fixed size."""

    extensions = (".mp4", ".avi", ".mkv", ".flv", ".mov", ".webm")
    Options = VideoOptions

    def setup(self, probes: list) -> None:
        opt = self.options
        self.state = {"frames": opt.frames, "size": list(opt.size), "mode": opt.mode}

    def read(self, source: Path) -> np.ndarray:
        st = self.state
        x = read_video(source, num_frames=st["frames"], size=tuple(st["size"]), mode=st["mode"])
        return np.ascontiguousarray(x.transpose(0, 3, 1, 2))  # (T, C, H, W) uint8

    def to_tensor(self, x: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(x).float().div_(255.0)

    def modality(self) -> Modality:
        st = self.state
        c = 3 if st["mode"] == "RGB" else 1
        return Modality(self.name, "video", (st["frames"], c, *st["size"]), representation="pixels")
