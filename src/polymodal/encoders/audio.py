"""Audio encoders: a log-mel front end, then a small 2-D CNN (default) or a ResNet-18 over (1, n_mels, frames),
or a 1-D CNN over the frames with the mel bands as channels (``audio_frames``, for speech to text).

Input depends on ``modality.representation``:

- ``"waveform"`` (or the schema default ``"raw"``): (B, samples) at ``modality.sample_rate`` Hz;
  the encoder computes the log-mel with :class:`polymodal.data.transforms.LogMel` (config from
  the ``logmel`` kwarg, sample rate from the modality).
- ``"logmel"``: (B, n_mels, frames), already computed (datasets cache it).

Each log-mel is normalised per sample (zero mean, unit variance over mel x time) by default, so raw log
magnitudes (around -14 for silence) do not hurt training; ``standardize=False`` feeds the log spectrogram as
it is, as MLA's reference code does (docs/benchmarks.md, "MLA against its reference code": on avdigits-hard
the per-sample standardisation costs the ResNet-18's audio branch accuracy). Both encoders are sequence-capable:
``sequence(x)`` pools over frequency and keeps the (downsampled) time axis.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict
from itertools import pairwise
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from polymodal.data.schema import Modality
from polymodal.data.transforms import LogMel, LogMelConfig, LogSTFT, STFTConfig
from polymodal.encoders.base import ENCODERS, Encoder
from polymodal.encoders.image import check_input, check_kind, conv_block
from polymodal.encoders.resnet import resnet18, small_stem

WAVEFORM_REPRESENTATIONS = ("waveform", "raw")
FRONTS = ("logmel", "stft")


def _logmel_config(modality: Modality, logmel: LogMelConfig | Mapping[str, Any] | None, encoder: str) -> LogMelConfig:
    if logmel is None:  # the dataset's own front end, when it declares one
        logmel = modality.extra.get("logmel")
    given = asdict(logmel) if isinstance(logmel, LogMelConfig) else dict(logmel or {})
    sr = given.setdefault("sample_rate", modality.sample_rate)
    if sr != modality.sample_rate:
        raise ValueError(
            f"encoder {encoder!r}: logmel.sample_rate={sr} Hz but modality {modality.name!r} is sampled at "
            f"{modality.sample_rate} Hz (drop logmel.sample_rate or resample the audio)"
        )
    try:
        return LogMelConfig(**given)
    except TypeError as err:
        fields = ", ".join(LogMelConfig.__dataclass_fields__)
        raise ValueError(f"encoder {encoder!r}: bad logmel options {given}; allowed keys: {fields}") from err


class AudioFrontEnd(nn.Module):
    """Waveform (B, samples) or spectrogram (B, bins, frames) -> spectrogram (B, 1, bins, frames).

    front="logmel" (default): the log-mel (computed here from a waveform, or the dataset's cached one);
    front="stft": the log-magnitude STFT spectrogram (``stft`` options: n_fft, hop_length, eps, pad_mode;
    see :class:`polymodal.data.transforms.STFTConfig`) of a waveform, or the dataset's cached one
    (representation "stft": AV-digits with ``cache_features`` and ``stft`` options).
    ``input_hw``: (bins, frames) of the spectrogram, what the ResNet's ``stem="auto"`` looks at.
    ``standardize``: subtract each spectrogram's mean and divide by its standard deviation (over bins x
    frames; default); False returns the log spectrogram unchanged (only a channel axis is added).
    """

    def __init__(
        self, modality: Modality, logmel: LogMelConfig | Mapping[str, Any] | None = None, encoder: str = "audio",
        front: Literal["logmel", "stft"] = "logmel", stft: STFTConfig | Mapping[str, Any] | None = None,
        standardize: bool = True,
    ) -> None:
        super().__init__()
        check_kind(modality, "audio", encoder)
        if not isinstance(standardize, bool):
            raise ValueError(f"encoder {encoder!r}: standardize={standardize!r}; expected true or false")
        rep, shape = modality.representation, tuple(modality.shape)
        self.encoder = encoder
        self.standardize = standardize
        self.logmel: LogMel | None = None
        self.stft: LogSTFT | None = None
        if front not in FRONTS:
            raise ValueError(f"encoder {encoder!r}: front={front!r}; expected one of {', '.join(FRONTS)}")
        if front == "stft" and rep == "stft":  # the dataset's cached log-STFT (cache_features with stft options)
            self._cached_stft(modality, stft, shape)
            return
        if rep == "stft":
            raise ValueError(f"encoder {encoder!r}: modality {modality.name!r} holds a cached log-STFT spectrogram; "
                             f"set front=stft (or serve log-mels: drop the dataset's stft option)")
        if front == "stft":
            if rep not in WAVEFORM_REPRESENTATIONS or len(shape) != 1:
                raise ValueError(
                    f"encoder {encoder!r}: front=stft computes a spectrogram from waveforms, but modality "
                    f"{modality.name!r} holds {rep!r} of shape {shape}; serve waveforms (for the AV-digits "
                    f"datasets: data.cache_features=false) or use front=logmel"
                )
            given = asdict(stft) if isinstance(stft, STFTConfig) else dict(stft or {})
            try:
                self.stft = LogSTFT(STFTConfig(**given))
            except TypeError:
                raise ValueError(f"encoder {encoder!r}: bad stft options {given}; allowed keys: "
                                 f"{', '.join(STFTConfig.__dataclass_fields__)}") from None
            self.n_mels = self.stft.cfg.n_freqs
            self.input_hw = (self.n_mels, self.stft.cfg.frames(shape[0]))
            return
        if stft is not None:
            raise ValueError(f"encoder {encoder!r}: stft options are given but front={front!r}; set front=stft")
        if rep in WAVEFORM_REPRESENTATIONS:
            if len(shape) != 1:
                raise ValueError(
                    f"encoder {encoder!r}: audio modality {modality.name!r} is a {rep!r} and must have shape "
                    f"(samples,); got {shape} (set representation='logmel' for (n_mels, frames) inputs)"
                )
            self.logmel = LogMel(_logmel_config(modality, logmel, encoder))
            self.n_mels = self.logmel.cfg.n_mels
            self.input_hw = (self.n_mels, self.logmel.cfg.frames(shape[0]))
        elif rep == "logmel":
            if len(shape) != 2:
                raise ValueError(
                    f"encoder {encoder!r}: log-mel modality {modality.name!r} must have shape (n_mels, frames); "
                    f"got {shape}"
                )
            self.n_mels = shape[0]
            self.input_hw = (shape[0], shape[1])
            if logmel is not None:
                cfg = _logmel_config(modality, logmel, encoder)
                if cfg.n_mels != self.n_mels:
                    raise ValueError(
                        f"encoder {encoder!r}: logmel.n_mels={cfg.n_mels} but modality {modality.name!r} "
                        f"holds {self.n_mels} mel bands; make them agree"
                    )
        else:
            raise ValueError(
                f"encoder {encoder!r}: audio modality {modality.name!r} has representation {rep!r}; "
                f"expected 'waveform' (B, samples) or 'logmel' (B, n_mels, frames)"
            )

    def _cached_stft(self, modality: Modality, stft: STFTConfig | Mapping[str, Any] | None, shape: tuple[int, ...]) -> None:
        """Input is the dataset's log-STFT (B, bins, frames); the encoder's ``stft`` options, when given, must be
        the settings the dataset computed it with (``modality.extra["stft"]``)."""
        if len(shape) != 2:
            raise ValueError(f"encoder {self.encoder!r}: log-STFT modality {modality.name!r} must have shape (bins, frames); "
                             f"got {shape}")
        cached = modality.extra.get("stft")
        if stft is not None and cached is not None:
            want = asdict(stft) if isinstance(stft, STFTConfig) else dict(stft)
            try:
                want_cfg = STFTConfig(**want)
            except TypeError:
                raise ValueError(f"encoder {self.encoder!r}: bad stft options {want}; allowed keys: "
                                 f"{', '.join(STFTConfig.__dataclass_fields__)}") from None
            if want_cfg != STFTConfig(**cached):
                raise ValueError(
                    f"encoder {self.encoder!r}: stft options {asdict(want_cfg)} differ from the settings the dataset "
                    f"cached modality {modality.name!r} with ({cached}); give the dataset the same stft options "
                    f"(data.options.stft) or drop the encoder's")
        self.n_mels = shape[0]
        self.input_hw = (shape[0], shape[1])

    def forward(self, x: Tensor) -> Tensor:
        if self.logmel is not None or self.stft is not None:
            check_input(self.encoder, x, "(B, samples) waveform", 2)
            mel = self.logmel(x) if self.logmel is not None else self.stft(x)  # (B, bins, frames)
        else:
            check_input(self.encoder, x, f"(B, {self.n_mels}, frames) spectrogram", 3, (1, self.n_mels))
            mel = x.float()
        if not self.standardize:
            return mel.unsqueeze(1)  # (B, 1, bins, frames)
        mean = mel.mean(dim=(1, 2), keepdim=True)
        std = mel.std(dim=(1, 2), keepdim=True)
        return ((mel - mean) / (std + 1e-5)).unsqueeze(1)  # (B, 1, bins, frames)


class AudioCNN(Encoder):
    """Log-mel -> conv-pool-BN-ReLU blocks (16-32-64 by default) -> per-time-step linear + ReLU.

    sequence(x)  -> (B, T', width), T' = frames / 2**len(channels) rounded up (frequency averaged out)
    forward(x)   -> (B, width), the time average of ``sequence``
    low_level(x) -> (B, channels[0] * grid**2), the first block's map average-pooled to grid x grid
    """

    kind = "audio"
    supports_sequence = True

    def __init__(
        self, front: AudioFrontEnd, width: int = 64, channels: Sequence[int] = (16, 32, 64), low_level_grid: int = 4,
        name: str = "audio_cnn",
    ) -> None:
        super().__init__()
        if not channels:
            raise ValueError(f"encoder {name!r}: channels must list at least one conv block; got {channels!r}")
        self.name, self.front, self.grid = name, front, low_level_grid
        chans = [1, *channels]
        self.blocks = nn.ModuleList(conv_block(a, b) for a, b in pairwise(chans))
        self.head = nn.Sequential(nn.Linear(chans[-1], width), nn.ReLU())
        self.out_dim = width
        self.low_level_dim = channels[0] * low_level_grid**2

    def sequence(self, x: Tensor) -> Tensor:
        h = self.front(x).to(self.param_dtype())
        for block in self.blocks:
            h = block(h)  # (B, C, F', T')
        return self.head(h.mean(dim=2).transpose(1, 2))  # (B, T', width)

    def forward(self, x: Tensor) -> Tensor:
        return self.sequence(x).mean(dim=1)  # (B, width)

    def low_level(self, x: Tensor) -> Tensor:
        return F.adaptive_avg_pool2d(self.blocks[0](self.front(x).to(self.param_dtype())), self.grid).flatten(1)


class AudioResNet18(Encoder):
    """Spectrogram -> ResNet-18 whose last stage has ``width`` channels (``small_input``: 3x3/1 stem without
    max-pool; else the standard 7x7/2 stem + max-pool).

    sequence(x)  -> (B, T', width), T' = frames / 8 (small stem) or / 32 rounded up (frequency averaged out)
    forward(x)   -> (B, width), the time average of ``sequence``
    low_level(x) -> (B, stem_channels * grid**2), the stem's map average-pooled to grid x grid
    """

    kind = "audio"
    supports_sequence = True

    def __init__(self, front: AudioFrontEnd, width: int = 512, low_level_grid: int = 4, name: str = "audio_resnet18",
                 small_input: bool = True) -> None:
        super().__init__()
        self.name, self.front, self.grid = name, front, low_level_grid
        self.backbone = resnet18(1, width, dims=2, small_input=small_input)
        self.out_dim = width
        self.low_level_dim = self.backbone.stem_channels * low_level_grid**2

    def sequence(self, x: Tensor) -> Tensor:
        return self.backbone.features(self.front(x).to(self.param_dtype())).mean(dim=2).transpose(1, 2)  # (B, T', width)

    def forward(self, x: Tensor) -> Tensor:
        return self.sequence(x).mean(dim=1)

    def low_level(self, x: Tensor) -> Tensor:
        return F.adaptive_avg_pool2d(self.backbone.stem(self.front(x).to(self.param_dtype())), self.grid).flatten(1)


@ENCODERS.register("audio_cnn", tiny={"width": 8, "channels": (4, 8)})
def audio_cnn(
    modality: Modality,
    width: int = 64,
    channels: Sequence[int] = (16, 32, 64),
    logmel: LogMelConfig | Mapping[str, Any] | None = None,
    low_level_grid: int = 4,
    front: Literal["logmel", "stft"] = "logmel",
    stft: STFTConfig | Mapping[str, Any] | None = None,
    standardize: bool = True,
) -> AudioCNN:
    """Small 2-D CNN over the log-mel of a waveform (B, samples) or of a cached log-mel (B, n_mels, frames).

    front: "logmel" (default) or "stft" (log-magnitude STFT of a waveform, ``stft`` options n_fft, hop_length,
    eps, pad_mode). standardize: per-sample zero mean / unit variance of the spectrogram (default true).
    """
    fe = AudioFrontEnd(modality, logmel, "audio_cnn", front, stft, standardize)
    return AudioCNN(fe, width, tuple(channels), low_level_grid)


class AudioFrames(Encoder):
    """Log-mel -> 1-D convolutions over time with the mel bands as channels (a per-frame model: the spectrum
    of every frame is kept whole, nothing is averaged over frequency), for transcribing speech frame by frame.

    sequence(x)  -> (B, T', width), T' = frames / stride rounded up: Conv1d(n_mels, channels, 5)-BN-ReLU,
                    Conv1d(channels, channels, 5, stride)-BN-ReLU, Conv1d(channels, width, 3)-ReLU
                    (receptive field 13 frames at stride 2)
    sequence_mask(x) -> (B, T'): the output frames up to the recording's end (the trailing silence of zero
                    padding is not data), so that a fusion or CTC leaves the padding out
    forward(x)   -> (B, width), the time average of ``sequence``
    low_level(x) -> (B, channels * grid), the first layer's map average-pooled to ``grid`` time steps
    """

    kind = "audio"
    supports_sequence = True

    def __init__(self, front: AudioFrontEnd, width: int = 64, channels: int = 64, stride: int = 2,
                 low_level_grid: int = 4, name: str = "audio_frames") -> None:
        super().__init__()
        for key, value in (("channels", channels), ("stride", stride), ("width", width)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"encoder {name!r}: {key}={value!r}; expected an integer >= 1")
        self.name, self.front, self.grid, self.stride = name, front, low_level_grid, stride
        self.first = nn.Sequential(nn.Conv1d(front.n_mels, channels, 5, padding=2), nn.BatchNorm1d(channels), nn.ReLU())
        self.rest = nn.Sequential(nn.Conv1d(channels, channels, 5, stride=stride, padding=2), nn.BatchNorm1d(channels),
                                  nn.ReLU(), nn.Conv1d(channels, width, 3, padding=1), nn.ReLU())
        self.out_dim = width
        self.low_level_dim = channels * low_level_grid

    def _mel(self, x: Tensor) -> Tensor:
        return self.front(x).to(self.param_dtype())[:, 0]  # (B, n_mels, frames)

    def sequence_mask(self, x: Tensor) -> Tensor:
        """(B, T') True up to the output frame of the last input frame that is not silent: the silence after a
        recording's end (zero padding, at the spectrogram's floor in every band) is padding, not data; a
        silence inside the recording stays data. A row that is silent throughout keeps its first frame."""
        front = self.front
        with torch.no_grad():
            if front.logmel is not None or front.stft is not None:
                mel = front.logmel(x) if front.logmel is not None else front.stft(x)
            else:
                mel = x.float()
            loud = mel.amax(dim=1) > mel.amin(dim=(1, 2))[:, None] + 1e-4  # (B, frames)
            frames = torch.arange(mel.shape[2], device=mel.device)
            last = torch.where(loud, frames, torch.zeros_like(frames)).amax(dim=1)  # (B,) 0 when all silent
            out = -(-mel.shape[2] // self.stride)
            return torch.arange(out, device=mel.device)[None, :] <= (last // self.stride)[:, None]

    def sequence(self, x: Tensor) -> Tensor:
        return self.rest(self.first(self._mel(x))).transpose(1, 2)  # (B, T', width)

    def forward(self, x: Tensor) -> Tensor:
        return self.sequence(x).mean(dim=1)

    def low_level(self, x: Tensor) -> Tensor:
        return F.adaptive_avg_pool1d(self.first(self._mel(x)), self.grid).flatten(1)


@ENCODERS.register("audio_frames", tiny={"width": 8, "channels": 8})
def audio_frames(
    modality: Modality,
    width: int = 64,
    channels: int = 64,
    stride: int = 2,
    logmel: LogMelConfig | Mapping[str, Any] | None = None,
    low_level_grid: int = 4,
    standardize: bool = True,
) -> AudioFrames:
    """1-D CNN over the log-mel's frames (mel bands as channels), a per-frame model for speech to text.

    stride: the time step of the output frames, in input frames (default 2: 40 ms on AV-digits' 20 ms hop).
    """
    fe = AudioFrontEnd(modality, logmel, "audio_frames", "logmel", None, standardize)
    return AudioFrames(fe, width, channels, stride, low_level_grid)


@ENCODERS.register("audio_resnet18", tiny={"width": 8})
def audio_resnet18(
    modality: Modality,
    width: int = 512,
    logmel: LogMelConfig | Mapping[str, Any] | None = None,
    low_level_grid: int = 4,
    stem: Literal["standard", "small", "auto"] = "auto",
    front: Literal["logmel", "stft"] = "logmel",
    stft: STFTConfig | Mapping[str, Any] | None = None,
    standardize: bool = True,
) -> AudioResNet18:
    """ResNet-18 over the log-mel of a waveform (B, samples) or of a cached log-mel (B, n_mels, frames).

    stem: "standard" (7x7/2 + max-pool), "small" (3x3/1) or "auto" (small when the spectrogram has fewer
    than 64 bins or frames; the 40 x 101 log-mel of AV-digits gets it). front: "logmel" or "stft".
    standardize: per-sample zero mean / unit variance of the spectrogram (default true; false = the
    reference code's input, log(|STFT| + eps) as it is).
    """
    fe = AudioFrontEnd(modality, logmel, "audio_resnet18", front, stft, standardize)
    return AudioResNet18(fe, width, low_level_grid, small_input=small_stem(stem, fe.input_hw, "audio_resnet18"))
