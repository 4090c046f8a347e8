"""Video encoder: the small image CNN shared over frames, then temporal pooling.

Input: (B, T, C, H, W) float frames in [0, 1] (``modality.shape = (T, C, H, W)``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
from torch import Tensor, nn

from polymodal.data.schema import Modality
from polymodal.encoders.base import ENCODERS, Encoder
from polymodal.encoders.image import ImageCNN, check_input, check_kind


class VideoFrames(Encoder):
    """Per-frame :class:`ImageCNN` features, pooled over time by their mean or by attention.

    sequence(x)  -> (B, T, width) per-frame features
    forward(x)   -> (B, width): mean over frames, or softmax(linear score)-weighted sum ("attention")
    low_level(x) -> (B, frame_encoder.low_level_dim), the frames' shallow features averaged over time
    """

    kind = "video"
    supports_sequence = True

    def __init__(self, frame_encoder: ImageCNN, pool: Literal["mean", "attention"] = "mean", name: str = "video_frames") -> None:
        super().__init__()
        if pool not in ("mean", "attention"):
            raise ValueError(f"encoder {name!r}: pool={pool!r}; expected 'mean' or 'attention'")
        self.name, self.pool = name, pool
        self.frames = frame_encoder
        self.score = nn.Linear(frame_encoder.out_dim, 1) if pool == "attention" else None
        self.out_dim = frame_encoder.out_dim
        self.low_level_dim = frame_encoder.low_level_dim

    def _flat(self, x: Tensor) -> Tensor:
        c = self.frames.in_channels
        check_input(self.name, x, f"(B, T, {c}, H, W)", 5, (2, c))
        return x.flatten(0, 1)  # (B*T, C, H, W)

    def sequence(self, x: Tensor) -> Tensor:
        b, t = x.shape[:2]
        return self.frames(self._flat(x)).view(b, t, -1)  # (B, T, width)

    def forward(self, x: Tensor) -> Tensor:
        h = self.sequence(x)
        if self.score is None:
            return h.mean(dim=1)
        w = torch.softmax(self.score(h), dim=1)  # (B, T, 1)
        return (w * h).sum(dim=1)  # (B, width)

    def low_level(self, x: Tensor) -> Tensor:
        b, t = x.shape[:2]
        return self.frames.low_level(self._flat(x)).view(b, t, -1).mean(dim=1)


@ENCODERS.register("video_frames", tiny={"width": 8, "channels": (4, 8), "pool": "attention"})
def video_frames(
    modality: Modality,
    width: int = 64,
    channels: Sequence[int] = (16, 32, 64),
    pool: Literal["mean", "attention"] = "mean",
    stem_stride: int | None = None,
    low_level_grid: int = 4,
) -> VideoFrames:
    """Small image CNN shared over the frames of a clip (B, T, C, H, W), mean or attention pooling over time.

    stem_stride: stride of the frame CNN's first conv; None picks 2 for frames of 64 px or more, else 1.
    """
    check_kind(modality, "video", "video_frames")
    if len(modality.shape) != 4:
        raise ValueError(
            f"encoder 'video_frames': video modality {modality.name!r} must have shape (T, C, H, W); "
            f"got {modality.shape}"
        )
    _, c, h, w = modality.shape
    if stem_stride is None:
        stem_stride = 2 if min(h, w) >= 64 else 1
    frame_encoder = ImageCNN(c, width, tuple(channels), stem_stride, low_level_grid, name="video_frames")
    return VideoFrames(frame_encoder, pool)
