"""Time-series encoders over (B, T, C) (``modality.shape = (T, C)``): a dilated 1-D CNN and a GRU.

Both normalise each input channel (BatchNorm over batch and time), keep the time axis at full
resolution for ``sequence(x) -> (B, T, width)`` and pool by averaging over time.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise

import torch.nn.functional as F
from torch import Tensor, nn

from polymodal.data.schema import Modality
from polymodal.encoders.base import ENCODERS, Encoder
from polymodal.encoders.image import check_input, check_kind


def _timeseries_shape(modality: Modality, encoder: str) -> tuple[int, int]:
    check_kind(modality, "timeseries", encoder)
    if len(modality.shape) != 2:
        raise ValueError(
            f"encoder {encoder!r}: time-series modality {modality.name!r} must have shape (T, channels); "
            f"got {modality.shape}"
        )
    t, c = modality.shape
    return t, c


class TimeseriesCNN(Encoder):
    """(B, T, C) -> dilated conv blocks (kernel k, dilation 1, 2, 4, ...; 'same' length) -> per-step linear + ReLU.

    sequence(x)  -> (B, T, width)
    forward(x)   -> (B, width), the time average of ``sequence``
    low_level(x) -> (B, channels[0] * grid), the first block's output average-pooled to ``grid`` steps
    """

    kind = "timeseries"
    supports_sequence = True

    def __init__(
        self, in_channels: int, width: int = 64, channels: Sequence[int] = (32, 64, 64), kernel_size: int = 5,
        low_level_grid: int = 8, name: str = "timeseries_cnn",
    ) -> None:
        super().__init__()
        if not channels or kernel_size % 2 == 0:
            raise ValueError(
                f"encoder {name!r}: need at least one block and an odd kernel_size; got channels={channels!r}, "
                f"kernel_size={kernel_size}"
            )
        self.name, self.in_channels, self.grid = name, in_channels, low_level_grid
        self.norm_in = nn.BatchNorm1d(in_channels)
        chans = [in_channels, *channels]
        self.blocks = nn.ModuleList(
            nn.Sequential(
                nn.Conv1d(a, b, kernel_size, padding=(kernel_size // 2) * 2**i, dilation=2**i, bias=False),
                nn.BatchNorm1d(b),
                nn.ReLU(inplace=True),
            )
            for i, (a, b) in enumerate(pairwise(chans))
        )
        self.head = nn.Sequential(nn.Linear(chans[-1], width), nn.ReLU())
        self.out_dim = width
        self.low_level_dim = channels[0] * low_level_grid

    def _front(self, x: Tensor) -> Tensor:
        check_input(self.name, x, f"(B, T, {self.in_channels})", 3, (2, self.in_channels))
        return self.norm_in(x.to(self.norm_in.weight.dtype).transpose(1, 2))  # (B, C, T)

    def sequence(self, x: Tensor) -> Tensor:
        h = self._front(x)
        for block in self.blocks:
            h = block(h)
        return self.head(h.transpose(1, 2))  # (B, T, width)

    def forward(self, x: Tensor) -> Tensor:
        return self.sequence(x).mean(dim=1)

    def low_level(self, x: Tensor) -> Tensor:
        return F.adaptive_avg_pool1d(self.blocks[0](self._front(x)), self.grid).flatten(1)


class TimeseriesGRU(Encoder):
    """(B, T, C) -> GRU (optionally bidirectional) -> per-step linear to width.

    sequence(x)  -> (B, T, width)
    forward(x)   -> (B, width), the time average of ``sequence``
    low_level(x) -> (B, C * grid), the channel-normalised input average-pooled to ``grid`` steps
    """

    kind = "timeseries"
    supports_sequence = True

    def __init__(
        self, in_channels: int, width: int = 64, hidden: int | None = None, num_layers: int = 1,
        bidirectional: bool = True, dropout: float = 0.0, low_level_grid: int = 8, name: str = "timeseries_gru",
    ) -> None:
        super().__init__()
        self.name, self.in_channels, self.grid = name, in_channels, low_level_grid
        hidden = hidden or width
        self.norm_in = nn.BatchNorm1d(in_channels)
        self.gru = nn.GRU(
            in_channels, hidden, num_layers, batch_first=True, bidirectional=bidirectional,
            dropout=dropout if num_layers > 1 else 0.0,
        )
        self.proj = nn.Linear(hidden * (2 if bidirectional else 1), width)
        self.out_dim = width
        self.low_level_dim = in_channels * low_level_grid

    def _front(self, x: Tensor) -> Tensor:
        check_input(self.name, x, f"(B, T, {self.in_channels})", 3, (2, self.in_channels))
        return self.norm_in(x.to(self.norm_in.weight.dtype).transpose(1, 2))  # (B, C, T)

    def sequence(self, x: Tensor) -> Tensor:
        out, _ = self.gru(self._front(x).transpose(1, 2))  # (B, T, hidden * directions)
        return self.proj(out)  # (B, T, width)

    def forward(self, x: Tensor) -> Tensor:
        return self.sequence(x).mean(dim=1)

    def low_level(self, x: Tensor) -> Tensor:
        return F.adaptive_avg_pool1d(self._front(x), self.grid).flatten(1)  # (B, C * grid)


@ENCODERS.register("timeseries_cnn", tiny={"width": 8, "channels": (4, 8)})
def timeseries_cnn(
    modality: Modality,
    width: int = 64,
    channels: Sequence[int] = (32, 64, 64),
    kernel_size: int = 5,
    low_level_grid: int = 8,
) -> TimeseriesCNN:
    """Dilated 1-D CNN over a multichannel time series (B, T, C), time axis kept."""
    _, c = _timeseries_shape(modality, "timeseries_cnn")
    return TimeseriesCNN(c, width, tuple(channels), kernel_size, low_level_grid)


@ENCODERS.register("timeseries_gru", tiny={"width": 8, "hidden": 4})
def timeseries_gru(
    modality: Modality,
    width: int = 64,
    hidden: int | None = None,
    num_layers: int = 1,
    bidirectional: bool = True,
    dropout: float = 0.0,
    low_level_grid: int = 8,
) -> TimeseriesGRU:
    """GRU (bidirectional by default) over a multichannel time series (B, T, C).

    hidden: GRU units per direction (default ``width``).
    """
    _, c = _timeseries_shape(modality, "timeseries_gru")
    return TimeseriesGRU(c, width, hidden, num_layers, bidirectional, dropout, low_level_grid)
