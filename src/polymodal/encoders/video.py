"""Video encoder: the small image CNN shared over frames, then temporal pooling.

Input: (B, T, C, H, W) float frames in [0, 1] (``modality.shape = (T, C, H, W)``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F
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


@ENCODERS.register("video_resnet18", tiny={"width": 8})
def video_resnet18(
    modality: Modality, width: int = 512, stem: Literal["standard", "small", "auto"] = "auto", low_level_grid: int = 4,
) -> VideoFrames:
    """ResNet-18 shared over the frames of a clip (B, T, C, H, W), features averaged over frames and space: the
    visual encoder of OGM-GE / MLA on CREMA-D and Kinetics-Sounds (3 frames of 224 x 224; their 3-D average
    pool over time and space equals this mean of per-frame global averages). width 512 is the standard network.
    """
    from polymodal.encoders.image import ImageResNet18
    from polymodal.encoders.resnet import small_stem

    check_kind(modality, "video", "video_resnet18")
    if len(modality.shape) != 4:
        raise ValueError(f"encoder 'video_resnet18': video modality {modality.name!r} must have shape (T, C, H, W); "
                         f"got {modality.shape}")
    _, c, h, w = modality.shape
    frame = ImageResNet18(c, width, small_stem(stem, (h, w), "video_resnet18"), low_level_grid, name="video_resnet18")
    return VideoFrames(frame, "mean", name="video_resnet18")  # type: ignore[arg-type]


class VideoR2Plus1D(Encoder):
    """(B, T, C, H, W) -> (B, width): a small (2+1)-D CNN (Tran et al., CVPR 2018: each 3-D convolution
    factorised into a spatial k x k convolution and a temporal 3-tap one), global average pool, linear + ReLU.

    The stem embeds each frame's non-overlapping ``stem_stride`` x ``stem_stride`` patches linearly (a
    convolution with kernel = stride = patch size, computed as one matrix product: the "patchify" stem of ViT /
    ConvNeXt, several times faster on CPU than a strided 3-D convolution), then BatchNorm and ReLU; every
    block then halves H and W (spatial conv stride 2) and keeps T (so ``sequence`` has one step per input
    frame), so the cost stays small on CPU.
    sequence(x)  -> (B, T, width): the last map pooled over space, per frame
    low_level(x) -> (B, channels[0] * grid**2): the stem's map averaged over time and pooled to grid x grid
    """

    kind = "video"
    supports_sequence = True

    def __init__(
        self, in_channels: int, width: int = 64, channels: Sequence[int] = (16, 32, 64), stem_stride: int = 2,
        low_level_grid: int = 4, name: str = "video_r2plus1d",
    ) -> None:
        super().__init__()
        if not channels:
            raise ValueError(f"encoder {name!r}: channels must list at least one block; got {channels!r}")
        self.name, self.in_channels, self.grid = name, in_channels, low_level_grid
        self.patch = stem_stride
        self.stem = nn.Linear(in_channels * stem_stride**2, channels[0], bias=False)
        self.stem_norm = nn.BatchNorm3d(channels[0])
        blocks = []
        for a, b in zip((channels[0], *channels[:-1]), channels, strict=True):
            mid = max(a, b)
            blocks.append(nn.Sequential(
                nn.Conv3d(a, mid, (1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1), bias=False),
                nn.BatchNorm3d(mid), nn.ReLU(inplace=True),
                nn.Conv3d(mid, b, (3, 1, 1), padding=(1, 0, 0), bias=False),
                nn.BatchNorm3d(b), nn.ReLU(inplace=True),
            ))
        self.blocks = nn.ModuleList(blocks)
        self.head = nn.Sequential(nn.Linear(channels[-1], width), nn.ReLU())
        self.out_dim = width
        self.low_level_dim = channels[0] * low_level_grid**2

    def _front(self, x: Tensor) -> Tensor:
        check_input(self.name, x, f"(B, T, {self.in_channels}, H, W)", 5, (2, self.in_channels))
        p = self.patch
        x = x.to(self.param_dtype())
        b, t, c, h, w = x.shape
        x = F.pad(x, (0, -w % p, 0, -h % p))  # zero-pad H and W up to multiples of the patch size
        hp, wp = x.shape[3] // p, x.shape[4] // p
        patches = x.reshape(b, t, c, hp, p, wp, p).permute(0, 1, 3, 5, 2, 4, 6).reshape(b, t, hp, wp, c * p * p)
        h0 = self.stem(patches).permute(0, 4, 1, 2, 3)  # (B, C0, T, H/p, W/p)
        return F.relu(self.stem_norm(h0))

    def _map(self, x: Tensor) -> Tensor:
        h = self._front(x)
        for block in self.blocks:
            h = block(h)
        return h  # (B, C, T, H'', W'')

    def sequence(self, x: Tensor) -> Tensor:
        return self.head(self._map(x).mean(dim=(3, 4)).transpose(1, 2))  # (B, T, width)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self._map(x).mean(dim=(2, 3, 4)))

    def low_level(self, x: Tensor) -> Tensor:
        return F.adaptive_avg_pool2d(self._front(x).mean(dim=2), self.grid).flatten(1)


@ENCODERS.register("video_r2plus1d", tiny={"width": 8, "channels": (4, 8)})
def video_r2plus1d(
    modality: Modality,
    width: int = 64,
    channels: Sequence[int] = (16, 32, 64),
    stem_stride: int = 2,
    low_level_grid: int = 4,
) -> VideoR2Plus1D:
    """Small (2+1)-D CNN over a clip (B, T, C, H, W): patch stem, factorised space / time convolutions, pooling.

    stem_stride: side of the stem's non-overlapping patches (2 by default: 60x80 frames become 30x40).
    """
    check_kind(modality, "video", "video_r2plus1d")
    if len(modality.shape) != 4:
        raise ValueError(
            f"encoder 'video_r2plus1d': video modality {modality.name!r} must have shape (T, C, H, W); "
            f"got {modality.shape}"
        )
    return VideoR2Plus1D(modality.shape[1], width, tuple(channels), stem_stride, low_level_grid)
