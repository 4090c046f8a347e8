"""Image encoders: a small CNN (the default, also the frame encoder of ``video_frames``) and a ResNet-18.

Input: (B, C, H, W) float pixels (datasets give [0, 1]); C comes from ``modality.shape = (C, H, W)``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from itertools import pairwise
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from polymodal.data.schema import Modality
from polymodal.encoders.base import ENCODERS, Encoder
from polymodal.encoders.resnet import resnet18


def check_input(encoder: str, x: Tensor, expected: str, dim: int, channels: tuple[int, int] | None = None) -> None:
    """Cheap input check shared by the encoders: the number of dimensions and one channel count.

    expected: the expected shape as text, e.g. "(B, 3, H, W)"; channels: (axis, count) to check.
    Raises ValueError naming the encoder, the expected and the received shape.
    """
    bad = x.dim() != dim or (channels is not None and x.shape[channels[0]] != channels[1])
    if bad:
        raise ValueError(
            f"encoder {encoder!r} expects input of shape {expected}; got {tuple(x.shape)} "
            f"(check the modality's shape and representation, or pick an encoder for this input)"
        )


def check_kind(modality: Modality, kind: str, encoder: str) -> None:
    """Raise ValueError when ``modality`` is not of the kind the encoder takes (before any shape check)."""
    if modality.kind != kind:
        raise ValueError(
            f"encoder {encoder!r} takes {kind} input but modality {modality.name!r} is {modality.kind}; "
            f"choose one of the {modality.kind} encoders (`polymodal list encoders`)"
        )


def conv_block(in_ch: int, out_ch: int, stride: int = 1) -> nn.Sequential:
    """3x3 conv (stride ``stride``) + 2x2 max-pool + BatchNorm + ReLU; spatial size / (2 * stride), rounded up.

    Pooling before the normalisation runs BatchNorm and ReLU on a quarter of the positions (about
    20 % faster per block on CPU than the usual conv-BN-ReLU-pool order).
    """
    return nn.Sequential(
        nn.Conv2d(in_ch, out_ch, 3, stride=stride, padding=1, bias=False),
        nn.MaxPool2d(2, ceil_mode=True),
        nn.BatchNorm2d(out_ch),
        nn.ReLU(inplace=True),
    )


def image_modality_shape(modality: Modality, encoder: str) -> tuple[int, int, int]:
    check_kind(modality, "image", encoder)
    if len(modality.shape) != 3:
        raise ValueError(
            f"encoder {encoder!r}: image modality {modality.name!r} must have shape (C, H, W); got {modality.shape}"
        )
    c, h, w = modality.shape
    return c, h, w


class ImageCNN(Encoder):
    """(B, C, H, W) -> (B, width): conv blocks (16-32-64 channels by default), global average pool, linear + ReLU.

    Each block halves H and W (the first one quarters them when ``stem_stride=2``, for large images).
    low_level(x) -> (B, channels[0] * grid**2): the first block's map average-pooled to grid x grid.
    sequence(x) -> (B, H'*W', width): the last map's positions as tokens (row-major), each through the
    same linear + ReLU as the pooled feature, for fusions that attend over parts of an image; with
    ``tokens="columns"``, (B, W', width): one token per column of the map (its mean over the height), left to
    right, for reading a line of handwriting (the ``ctc`` fusion).
    """

    kind = "image"
    supports_sequence = True

    def __init__(
        self,
        in_channels: int,
        width: int = 64,
        channels: Sequence[int] = (16, 32, 64),
        stem_stride: int = 1,
        low_level_grid: int = 4,
        name: str = "image_cnn",
        tokens: Literal["positions", "columns"] = "positions",
    ) -> None:
        super().__init__()
        if not channels:
            raise ValueError(f"encoder {name!r}: channels must list at least one conv block; got {channels!r}")
        if tokens not in ("positions", "columns"):
            raise ValueError(f"encoder {name!r}: tokens={tokens!r}; expected 'positions' or 'columns'")
        self.name, self.in_channels, self.grid, self.tokens = name, in_channels, low_level_grid, tokens
        chans = [in_channels, *channels]
        self.blocks = nn.ModuleList(
            conv_block(a, b, stem_stride if i == 0 else 1) for i, (a, b) in enumerate(pairwise(chans))
        )
        self.head = nn.Sequential(nn.Linear(chans[-1], width), nn.ReLU())
        self.out_dim = width
        self.low_level_dim = channels[0] * low_level_grid**2

    def _check(self, x: Tensor) -> None:
        check_input(self.name, x, f"(B, {self.in_channels}, H, W)", 4, (1, self.in_channels))

    def feature_map(self, x: Tensor) -> Tensor:
        """(B, C, H, W) -> last block's map (B, channels[-1], H', W')."""
        h = x.to(self.param_dtype())
        for block in self.blocks:
            h = block(h)
        return h

    def forward(self, x: Tensor) -> Tensor:
        self._check(x)
        return self.head(self.feature_map(x).mean(dim=(2, 3)))  # (B, width)

    def sequence(self, x: Tensor) -> Tensor:
        self._check(x)
        fmap = self.feature_map(x)
        if self.tokens == "columns":
            return self.head(fmap.mean(dim=2).transpose(1, 2))  # (B, W', width)
        return self.head(fmap.flatten(2).transpose(1, 2))  # (B, H'*W', width)

    def sequence_mask(self, x: Tensor) -> Tensor | None:
        """With ``tokens="columns"``: (B, W') True up to the token of the last column that holds ink (a column
        of the input that is not zero everywhere); the blank columns after it are padding (a row of
        handwriting padded on the right). A row without ink keeps its first token. None otherwise."""
        if self.tokens != "columns":
            return None
        self._check(x)
        w = x.shape[-1]
        out = w
        for block in self.blocks:  # each block: stride of its conv, then a 2x2 max-pool (sizes rounded up)
            out = math.ceil(math.ceil(out / block[0].stride[1]) / 2)
        with torch.no_grad():
            ink = x.abs().amax(dim=(1, 2)) > 0  # (B, W)
            cols = torch.arange(w, device=x.device)
            last = torch.where(ink, cols, torch.zeros_like(cols)).amax(dim=1)  # (B,)
            per_token = -(-w // out)  # input columns per token
            return torch.arange(out, device=x.device)[None, :] <= (last // per_token)[:, None]

    def low_level(self, x: Tensor) -> Tensor:
        self._check(x)
        h = self.blocks[0](x.to(self.param_dtype()))
        return F.adaptive_avg_pool2d(h, self.grid).flatten(1)  # (B, channels[0] * grid**2)


class ImageResNet18(Encoder):
    """(B, C, H, W) -> (B, width): ResNet-18 whose last stage has ``width`` channels, global average pool.

    ``normalize`` (mean, std): pixels become (x - mean) / std before the network; ``replicate``: a grey
    (B, 1, H, W) image is repeated to this many channels (3: an RGB network's input, as MLA's reference code
    feeds MNIST-style digits). Both default to off (the pixels as the dataset serves them).
    low_level(x) -> (B, stem_channels * grid**2): the stem's map average-pooled to grid x grid.
    """

    kind = "image"

    def __init__(
        self, in_channels: int, width: int = 512, small_input: bool = False, low_level_grid: int = 4,
        name: str = "image_resnet18", normalize: tuple[float, float] | None = None, replicate: int = 1,
    ) -> None:
        super().__init__()
        self.name, self.in_channels, self.grid = name, in_channels, low_level_grid
        self.normalize, self.replicate = normalize, replicate
        self.backbone = resnet18(in_channels * replicate, width, dims=2, small_input=small_input)
        self.out_dim = width
        self.low_level_dim = self.backbone.stem_channels * low_level_grid**2

    def _check(self, x: Tensor) -> None:
        check_input(self.name, x, f"(B, {self.in_channels}, H, W)", 4, (1, self.in_channels))

    def _prepare(self, x: Tensor) -> Tensor:
        x = x.to(self.param_dtype())
        if self.normalize is not None:
            x = (x - self.normalize[0]) / self.normalize[1]
        if self.replicate > 1:
            x = x.repeat(1, self.replicate, 1, 1)  # (B, C * replicate, H, W)
        return x

    def forward(self, x: Tensor) -> Tensor:
        self._check(x)
        return self.backbone(self._prepare(x))  # (B, width)

    def low_level(self, x: Tensor) -> Tensor:
        self._check(x)
        return F.adaptive_avg_pool2d(self.backbone.stem(self._prepare(x)), self.grid).flatten(1)


@ENCODERS.register("image_cnn", tiny={"width": 8, "channels": (4, 8)})
def image_cnn(
    modality: Modality,
    width: int = 64,
    channels: Sequence[int] = (16, 32, 64),
    stem_stride: int | None = None,
    low_level_grid: int = 4,
    tokens: Literal["positions", "columns"] = "positions",
) -> ImageCNN:
    """Small CNN for images (B, C, H, W): conv-pool-BN-ReLU blocks, e.g. 28x28 grey or larger RGB.

    stem_stride: stride of the first conv; None picks 2 for images of 64 px or more, else 1.
    tokens: the sequence features, "positions" (every position of the last map) or "columns" (one per
    column, left to right: a line of handwriting read by the ctc fusion).
    """
    c, h, w = image_modality_shape(modality, "image_cnn")
    if stem_stride is None:
        stem_stride = 2 if min(h, w) >= 64 else 1
    return ImageCNN(c, width, tuple(channels), stem_stride, low_level_grid, tokens=tokens)


@ENCODERS.register("image_resnet18", tiny={"width": 8})
def image_resnet18(
    modality: Modality, width: int = 512, stem: Literal["standard", "small", "auto"] = "auto", low_level_grid: int = 4,
    normalize: Sequence[float] | None = None, replicate: int = 1,
) -> ImageResNet18:
    """ResNet-18 for images (B, C, H, W); width 512 is the standard network.

    stem: "standard" (7x7/2 + max-pool, ImageNet), "small" (3x3/1, no max-pool) or "auto" (small for
    images under 64 px). normalize: [mean, std] applied to the pixels first (e.g. [0.449, 0.226], the
    grey value of the ImageNet statistics, as MLA's reference code uses); replicate: repeat the channels
    this many times (3 turns a grey image into the 3-channel input of an RGB network).
    """
    from polymodal.encoders.resnet import small_stem

    c, h, w = image_modality_shape(modality, "image_resnet18")
    norm: tuple[float, float] | None = None
    if normalize is not None:
        vals = list(normalize) if not isinstance(normalize, str) else []
        ok = len(vals) == 2 and all(isinstance(v, int | float) and not isinstance(v, bool) for v in vals)
        if not ok or not vals[1] > 0:
            raise ValueError(f"encoder 'image_resnet18': normalize={normalize!r}; expected [mean, std] with std > 0, "
                             f"e.g. [0.449, 0.226]")
        norm = (float(vals[0]), float(vals[1]))
    if isinstance(replicate, bool) or not isinstance(replicate, int) or replicate < 1:
        raise ValueError(f"encoder 'image_resnet18': replicate={replicate!r}; expected a positive integer (3 turns "
                         f"a grey image into 3 channels)")
    return ImageResNet18(c, width, small_stem(stem, (h, w), "image_resnet18"), low_level_grid, normalize=norm,
                         replicate=replicate)
