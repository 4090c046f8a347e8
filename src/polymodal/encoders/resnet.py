"""A ResNet-18 written from scratch (He et al., 2016), 1-D or 2-D, with channel widths scaled from ``width``.

At ``width=512`` and the standard stem the 2-D network is the classic ResNet-18: BasicBlock
stages [2, 2, 2, 2] with 64-128-256-512 channels, 11,176,512 backbone parameters for 3-channel
input, 11,689,512 with a 1000-class classifier. A smaller ``width`` scales every stage
proportionally (stage i has ``width * 2**i / 8`` channels); ``small_input=True`` swaps the
7x7/2 stem + max-pool for a 3x3/1 stem (CIFAR style), for inputs such as 28x28 images or
40x101 log-mels.

Registered encoders built on it: ``image_resnet18`` (image.py) and ``audio_resnet18`` (audio.py), whose
``stem`` option is ``standard`` (7x7/2 + max-pool: the network sees the input at 1/4 resolution after
the stem, a quarter of the compute of ``small`` on 2-D input of a given size), ``small`` (3x3/1, no
max-pool), or ``auto``: ``small`` when the input's smaller side is under ``AUTO_SMALL_BELOW`` (64) pixels
or frames, else ``standard``.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn

_CONV = {1: nn.Conv1d, 2: nn.Conv2d}
_BN = {1: nn.BatchNorm1d, 2: nn.BatchNorm2d}
_MAXPOOL = {1: nn.MaxPool1d, 2: nn.MaxPool2d}
_AVGPOOL = {1: nn.AdaptiveAvgPool1d, 2: nn.AdaptiveAvgPool2d}


STEMS = ("standard", "small", "auto")
AUTO_SMALL_BELOW = 64


def small_stem(stem: str, input_hw: Sequence[int], encoder: str) -> bool:
    """Resolve a ``stem`` option to ``small_input`` for an input of spatial size ``input_hw``."""
    if stem not in STEMS:
        raise ValueError(f"encoder {encoder!r}: stem={stem!r}; expected one of {', '.join(STEMS)}")
    if stem == "auto":
        return min(input_hw) < AUTO_SMALL_BELOW
    return stem == "small"


def _check_dims(dims: int) -> None:
    if dims not in (1, 2):
        raise ValueError(f"ResNet dims={dims!r}; expected 1 (sequences, (B, C, T)) or 2 (images, (B, C, H, W))")


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with BatchNorm and an identity (or 1x1 projection) shortcut."""

    def __init__(self, in_ch: int, out_ch: int, stride: int = 1, dims: int = 2) -> None:
        super().__init__()
        _check_dims(dims)
        conv, bn = _CONV[dims], _BN[dims]
        self.conv1 = conv(in_ch, out_ch, 3, stride=stride, padding=1, bias=False)
        self.bn1 = bn(out_ch)
        self.conv2 = conv(out_ch, out_ch, 3, stride=1, padding=1, bias=False)
        self.bn2 = bn(out_ch)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_ch != out_ch:
            self.shortcut = nn.Sequential(conv(in_ch, out_ch, 1, stride=stride, bias=False), bn(out_ch))

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.shortcut(x))


def stage_widths(width: int) -> tuple[int, int, int, int]:
    """Channels of the four stages: (width/8, width/4, width/2, width), at least 1; 512 -> 64-128-256-512."""
    if width < 1:
        raise ValueError(f"ResNet width must be a positive channel count; got {width}")
    return (max(1, width // 8), max(1, width // 4), max(1, width // 2), width)


class ResNet(nn.Module):
    """ResNet backbone over (B, C, H, W) (``dims=2``) or (B, C, T) (``dims=1``).

    forward(x)     -> (B, widths[-1]) globally average-pooled features, or (B, num_classes) logits
                      when ``num_classes`` is given
    stem(x)        -> the stem's output map: (B, widths[0], H/4, W/4), or (B, widths[0], H, W) with
                      ``small_input``
    features(x)    -> the last stage's map: (B, widths[-1], H/32, W/32), or (H/8, W/8) with ``small_input``
    """

    def __init__(
        self,
        in_channels: int,
        widths: Sequence[int] = (64, 128, 256, 512),
        layers: Sequence[int] = (2, 2, 2, 2),
        dims: int = 2,
        small_input: bool = False,
        num_classes: int | None = None,
    ) -> None:
        super().__init__()
        _check_dims(dims)
        if len(widths) != len(layers):
            raise ValueError(f"ResNet needs one width per stage; got widths={tuple(widths)}, layers={tuple(layers)}")
        conv, bn = _CONV[dims], _BN[dims]
        c0 = widths[0]
        if small_input:
            self.stem = nn.Sequential(conv(in_channels, c0, 3, padding=1, bias=False), bn(c0), nn.ReLU(inplace=True))
        else:
            self.stem = nn.Sequential(
                conv(in_channels, c0, 7, stride=2, padding=3, bias=False), bn(c0), nn.ReLU(inplace=True),
                _MAXPOOL[dims](3, stride=2, padding=1),
            )
        stages: list[nn.Module] = []
        in_ch = c0
        for i, (out_ch, n) in enumerate(zip(widths, layers, strict=True)):
            blocks = [BasicBlock(in_ch, out_ch, stride=1 if i == 0 else 2, dims=dims)]
            blocks += [BasicBlock(out_ch, out_ch, 1, dims) for _ in range(n - 1)]
            stages.append(nn.Sequential(*blocks))
            in_ch = out_ch
        self.stages = nn.Sequential(*stages)
        self.pool = _AVGPOOL[dims](1)
        self.out_channels = in_ch
        self.stem_channels = c0
        self.fc = nn.Linear(in_ch, num_classes) if num_classes is not None else None
        for m in self.modules():
            if isinstance(m, nn.Conv1d | nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def features(self, x: Tensor) -> Tensor:
        return self.stages(self.stem(x))

    def forward(self, x: Tensor) -> Tensor:
        h = self.pool(self.features(x)).flatten(1)  # (B, widths[-1])
        return self.fc(h) if self.fc is not None else h


def resnet18(
    in_channels: int = 3, width: int = 512, dims: int = 2, small_input: bool = False, num_classes: int | None = None
) -> ResNet:
    """ResNet-18 ([2, 2, 2, 2] BasicBlocks) whose last stage has ``width`` channels."""
    return ResNet(in_channels, stage_widths(width), (2, 2, 2, 2), dims, small_input, num_classes)
