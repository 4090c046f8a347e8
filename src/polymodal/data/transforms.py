"""Deterministic front ends shared by encoders and feature caches (log-mel on ``torch.stft``)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import Tensor, nn


def hz_to_mel(f: Tensor | float) -> Tensor:
    """HTK mel scale."""
    return 2595.0 * torch.log10(1.0 + torch.as_tensor(f, dtype=torch.float64) / 700.0)


def mel_to_hz(m: Tensor) -> Tensor:
    return 700.0 * (10.0 ** (m / 2595.0) - 1.0)


def mel_filterbank(n_freqs: int, n_mels: int, sample_rate: int, f_min: float = 0.0, f_max: float | None = None) -> Tensor:
    """Triangular mel filters, (n_freqs, n_mels), HTK scale, no area normalisation.

    n_freqs = n_fft // 2 + 1 linear-frequency bins from 0 to sample_rate / 2.
    """
    f_max = sample_rate / 2 if f_max is None else f_max
    if not 0 <= f_min < f_max <= sample_rate / 2:
        raise ValueError(f"need 0 <= f_min < f_max <= sample_rate/2; got f_min={f_min}, f_max={f_max}, sr={sample_rate}")
    freqs = torch.linspace(0, sample_rate / 2, n_freqs, dtype=torch.float64)
    mel_pts = torch.linspace(float(hz_to_mel(f_min)), float(hz_to_mel(f_max)), n_mels + 2, dtype=torch.float64)
    hz_pts = mel_to_hz(mel_pts)
    lower, center, upper = hz_pts[:-2], hz_pts[1:-1], hz_pts[2:]
    f = freqs[:, None]
    up = (f - lower) / (center - lower)
    down = (upper - f) / (upper - center)
    return torch.clamp(torch.minimum(up, down), min=0.0).float()


def centred_stft(wav: Tensor, n_fft: int, hop_length: int, window: Tensor, who: str, pad_mode: str = "reflect") -> Tensor:
    """Complex STFT (B, n_fft // 2 + 1, 1 + samples // hop) of waveforms (B, samples), centred frames
    (the signal padded by n_fft // 2 on each side, ``pad_mode`` "reflect" or "constant" (zeros))."""
    if wav.dim() != 2:
        raise ValueError(f"{who} expects waveforms of shape (B, samples); got {tuple(wav.shape)}")
    return torch.stft(wav.float(), n_fft, hop_length, window=window, center=True, pad_mode=pad_mode,
                      return_complex=True)


@dataclass(frozen=True)
class LogMelConfig:
    sample_rate: int = 8000
    n_fft: int = 256  # 32 ms at 8 kHz
    hop_length: int = 80  # 10 ms
    n_mels: int = 40
    f_min: float = 0.0
    f_max: float | None = None
    eps: float = 1e-6

    def frames(self, num_samples: int) -> int:
        return 1 + num_samples // self.hop_length  # torch.stft with center=True

    def key(self) -> str:
        return "-".join(f"{k}{v}" for k, v in asdict(self).items())


class LogMel(nn.Module):
    """Waveform (B, samples) -> log-mel (B, n_mels, frames). Deterministic, no parameters."""

    def __init__(self, cfg: LogMelConfig | None = None) -> None:
        super().__init__()
        self.cfg = cfg or LogMelConfig()
        c = self.cfg
        self.register_buffer("window", torch.hann_window(c.n_fft), persistent=False)
        self.register_buffer(
            "fbank", mel_filterbank(c.n_fft // 2 + 1, c.n_mels, c.sample_rate, c.f_min, c.f_max), persistent=False
        )

    def forward(self, wav: Tensor) -> Tensor:
        spec = centred_stft(wav, self.cfg.n_fft, self.cfg.hop_length, self.window, "LogMel")  # (B, F, T)
        power = spec.real.square() + spec.imag.square()
        mel = torch.einsum("bft,fm->bmt", power, self.fbank)
        return torch.log(mel + self.cfg.eps)


@dataclass(frozen=True)
class STFTConfig:
    """Log-magnitude STFT spectrogram: log(|STFT| + eps), Hann window, centred frames.

    The defaults (256-point FFT, hop 128: 32 ms / 16 ms at 8 kHz) are what MLA's reference code uses
    on spoken digits; its CREMA-D recipe uses n_fft 512, hop 353 at 22.05 kHz. ``pad_mode``: how the
    signal is extended by n_fft // 2 at each end for the centred first and last frames: "reflect"
    (torch's default) or "constant" (zeros, what ``librosa.stft`` does since librosa 0.10 and so the
    reference code's spectrograms).
    """

    n_fft: int = 256
    hop_length: int = 128
    eps: float = 1e-7
    pad_mode: str = "reflect"

    def frames(self, num_samples: int) -> int:
        return 1 + num_samples // self.hop_length

    @property
    def n_freqs(self) -> int:
        return self.n_fft // 2 + 1


STFT_PAD_MODES = ("reflect", "constant")


class LogSTFT(nn.Module):
    """Waveform (B, samples) -> log-magnitude spectrogram (B, n_fft // 2 + 1, frames). No parameters."""

    def __init__(self, cfg: STFTConfig | None = None) -> None:
        super().__init__()
        self.cfg = cfg or STFTConfig()
        if self.cfg.n_fft < 2 or self.cfg.hop_length < 1:
            raise ValueError(f"stft options n_fft={self.cfg.n_fft}, hop_length={self.cfg.hop_length}: need n_fft >= 2, hop >= 1")
        if self.cfg.pad_mode not in STFT_PAD_MODES:
            raise ValueError(f"stft option pad_mode={self.cfg.pad_mode!r}; expected one of {', '.join(STFT_PAD_MODES)}")
        self.register_buffer("window", torch.hann_window(self.cfg.n_fft), persistent=False)

    def forward(self, wav: Tensor) -> Tensor:
        spec = centred_stft(wav, self.cfg.n_fft, self.cfg.hop_length, self.window, "LogSTFT", self.cfg.pad_mode)  # (B, F, T)
        return torch.log(spec.abs() + self.cfg.eps)


def logmel_numpy_reference(wav: Tensor, cfg: LogMelConfig) -> Tensor:
    """Slow, obvious log-mel (framing + DFT by matrix product) used by tests as the naive twin."""
    n = cfg.n_fft
    pad = n // 2
    x = torch.nn.functional.pad(wav.double()[None, None], (pad, pad), mode="reflect")[0, 0]
    frames = [x[i : i + n] for i in range(0, x.numel() - n + 1, cfg.hop_length)]
    win = torch.hann_window(n, dtype=torch.float64)
    k = torch.arange(n // 2 + 1, dtype=torch.float64)[:, None]
    t = torch.arange(n, dtype=torch.float64)[None, :]
    basis = torch.exp(-2j * math.pi * k * t / n)
    power = torch.stack([(basis @ (f * win).to(torch.complex128)).abs() ** 2 for f in frames], dim=1)
    fb = mel_filterbank(n // 2 + 1, cfg.n_mels, cfg.sample_rate, cfg.f_min, cfg.f_max).double()
    return torch.log(fb.T @ power + cfg.eps)
