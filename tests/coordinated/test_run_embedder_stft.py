"""A run trained on AV-digits' cached log-STFT embeds raw audio through the same front end."""

import numpy as np
import pytest
import torch

from polymodal.coordinated.run_embedder import RunEmbedder
from polymodal.data.schema import Modality
from polymodal.data.transforms import LogSTFT, STFTConfig


def _embedder() -> RunEmbedder:
    emb = object.__new__(RunEmbedder)  # only the input preparation is exercised: no run folder needed
    emb.model_id, emb._front = "polymodal-run:test", None
    return emb


def test_raw_audio_becomes_the_cached_log_stft():
    stft = {"n_fft": 256, "hop_length": 128, "eps": 1e-7, "pad_mode": "constant"}
    m = Modality("audio", "audio", (129, 63), 8000, "stft", extra={"stft": stft})
    wave = np.random.default_rng(0).standard_normal(6000).astype(np.float32) * 0.1
    got = _embedder()._audio(m, (wave, 8000))
    clip = torch.zeros(8000)
    clip[:6000] = torch.from_numpy(wave)
    assert torch.allclose(got, LogSTFT(STFTConfig(**stft))(clip[None])[0])
    wrong = Modality("audio", "audio", (129, 50), 8000, "stft", extra={"stft": stft})
    with pytest.raises(ValueError, match="log-STFT of one clip is"):
        _embedder()._audio(wrong, (wave, 8000))
