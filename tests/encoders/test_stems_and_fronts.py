"""ResNet stems (standard / small / auto) and the log-STFT audio front end."""

import numpy as np
import pytest
import torch

from polymodal.data.schema import Modality
from polymodal.data.transforms import LogSTFT, STFTConfig
from polymodal.encoders.base import build_encoder

WAVE = Modality("audio", "audio", (8000,), 8000, "waveform")
LOGMEL = Modality("audio", "audio", (40, 101), 8000, "logmel")


def _naive_log_stft(wav: np.ndarray, n_fft: int, hop: int, eps: float) -> np.ndarray:
    padded = np.pad(wav, n_fft // 2, mode="reflect")  # centred frames
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)  # periodic Hann
    frames = 1 + len(wav) // hop
    out = np.empty((n_fft // 2 + 1, frames))
    k = np.arange(n_fft // 2 + 1)[:, None]
    n = np.arange(n_fft)[None, :]
    dft = np.exp(-2j * np.pi * k * n / n_fft)
    for t in range(frames):
        seg = padded[t * hop: t * hop + n_fft] * window
        out[:, t] = np.log(np.abs(dft @ seg) + eps)
    return out


def test_log_stft_equals_a_naive_dft():
    g = np.random.default_rng(0)
    wav = g.standard_normal(1000).astype(np.float32)
    got = LogSTFT(STFTConfig(n_fft=64, hop_length=32))(torch.from_numpy(wav)[None])[0].numpy()
    want = _naive_log_stft(wav.astype(np.float64), 64, 32, 1e-7)
    assert got.shape == want.shape == (33, 1 + 1000 // 32)
    np.testing.assert_allclose(got, want, atol=2e-3)


def test_stft_front_end_on_waveforms_and_its_errors():
    enc = build_encoder("audio_resnet18", WAVE, width=16, front="stft", stem="standard")
    assert enc.front.input_hw == (129, 63)
    out = enc(torch.randn(2, 8000))
    assert out.shape == (2, 16)
    assert enc.backbone.stem[0].kernel_size == (7, 7)
    cnn = build_encoder("audio_cnn", WAVE, width=8, channels=(4, 8), front="stft", stft={"n_fft": 128, "hop_length": 64})
    assert cnn(torch.randn(2, 8000)).shape == (2, 8)
    with pytest.raises(ValueError, match="data.cache_features=false"):
        build_encoder("audio_resnet18", LOGMEL, width=16, front="stft")
    with pytest.raises(ValueError, match="allowed keys: n_fft, hop_length, eps"):
        build_encoder("audio_cnn", WAVE, front="stft", stft={"nfft": 128})
    with pytest.raises(ValueError, match="front='mfcc'"):
        build_encoder("audio_cnn", WAVE, front="mfcc")
    with pytest.raises(ValueError, match="set front=stft"):
        build_encoder("audio_cnn", WAVE, stft={"n_fft": 128})


@pytest.mark.parametrize("stem,kernel", [("standard", 7), ("small", 3), ("auto", 3)])
def test_audio_resnet_stems_on_the_cached_log_mel(stem, kernel):
    enc = build_encoder("audio_resnet18", LOGMEL, width=16, stem=stem)
    assert enc.backbone.stem[0].kernel_size == (kernel, kernel)
    seq = enc.sequence(torch.randn(2, 40, 101))
    assert seq.shape == (2, 4 if kernel == 7 else 13, 16)  # time / 32 with the standard stem, / 8 with the small one


@pytest.mark.parametrize("size,stem,kernel", [(28, "auto", 3), (64, "auto", 7), (28, "standard", 7), (96, "small", 3)])
def test_image_resnet_stems(size, stem, kernel):
    mod = Modality("image", "image", (1, size, size), representation="pixels")
    enc = build_encoder("image_resnet18", mod, width=16, stem=stem)
    assert enc.backbone.stem[0].kernel_size == (kernel, kernel)
    assert enc(torch.randn(2, 1, size, size)).shape == (2, 16)


def test_bad_stem_names_the_choices():
    with pytest.raises(ValueError, match="stem='big'; expected one of standard, small, auto"):
        build_encoder("image_resnet18", Modality("image", "image", (1, 28, 28), representation="pixels"), stem="big")
