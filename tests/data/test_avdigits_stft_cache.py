"""AV-digits with ``stft=...``: the log-STFT spectrogram computed once per split, kept on disk, reused, and
recomputed when its settings change."""

import pytest
import torch

from polymodal.data.datasets.avdigits import AVDigits
from polymodal.data.transforms import LogSTFT, STFTConfig
from polymodal.paths import cache_dir


def _files() -> set[str]:
    folder = cache_dir() / "avdigits"
    return {p.name for p in folder.glob("stft-*.npy")} if folder.is_dir() else set()


def test_cached_stft_equals_the_front_end_on_the_waveforms_and_is_reused(monkeypatch, tmp_path):
    monkeypatch.setenv("POLYMODAL_CACHE", str(tmp_path))
    calls = []
    real = LogSTFT.forward

    def counting(self, wav):
        calls.append(wav.shape[0])
        return real(self, wav)

    monkeypatch.setattr(LogSTFT, "forward", counting)
    ds = AVDigits("avdigits-hard", "val", stft={"n_fft": 256, "hop_length": 128})
    assert ds.schema[0].representation == "stft" and ds.schema[0].shape == (129, 63)
    assert ds.schema[0].extra["stft"] == {"n_fft": 256, "hop_length": 128, "eps": 1e-7, "pad_mode": "reflect"}
    assert ds.provenance["stft"]["hop_length"] == 128 and ds.provenance["logmel"] is None
    waves = AVDigits("avdigits-hard", "val", cache_features=False)
    assert torch.allclose(ds.tensor("audio")[:16], real(LogSTFT(STFTConfig()), waves.tensor("audio")[:16]), atol=1e-5)
    first = _files()
    assert len(first) == 1 and sum(calls) == len(ds) + 1  # the split, plus the fingerprint's chirp
    calls.clear()
    again = AVDigits("avdigits-hard", "val", stft={"n_fft": 256, "hop_length": 128})
    assert torch.equal(again.tensor("audio"), ds.tensor("audio"))
    assert sum(calls) == 1 and _files() == first  # read from disk: only the fingerprint ran
    calls.clear()
    zero = AVDigits("avdigits-hard", "val", stft={"n_fft": 256, "hop_length": 128, "pad_mode": "constant"})
    assert sum(calls) == len(zero) + 1 and len(_files()) == 2  # other settings: computed and kept apart
    assert not torch.equal(zero.tensor("audio"), ds.tensor("audio"))
    hop = AVDigits("avdigits-hard", "val", stft={"n_fft": 256, "hop_length": 64})
    assert hop.schema[0].shape == (129, 126) and len(_files()) == 3


def test_stft_cache_written_by_another_front_end_is_not_reused(monkeypatch, tmp_path):
    monkeypatch.setenv("POLYMODAL_CACHE", str(tmp_path))
    AVDigits("avdigits-hard", "val", stft={"n_fft": 256, "hop_length": 128})
    real = LogSTFT.forward
    monkeypatch.setattr(LogSTFT, "forward", lambda self, wav: real(self, wav) + 1.0)  # a changed front end
    ds = AVDigits("avdigits-hard", "val", stft={"n_fft": 256, "hop_length": 128})
    assert len(_files()) == 2  # its fingerprint differs: a new file, the old one untouched
    assert float(ds.tensor("audio")[0].mean()) == pytest.approx(
        float(real(LogSTFT(STFTConfig()), AVDigits("avdigits-hard", "val", cache_features=False).tensor("audio")[:1]).mean()) + 1.0,
        abs=1e-4)


def test_stft_option_errors():
    with pytest.raises(ValueError, match="needs cache_features=true"):
        AVDigits("avdigits-hard", "val", cache_features=False, stft={"n_fft": 256})
    with pytest.raises(ValueError, match="valid keys"):
        AVDigits("avdigits-hard", "val", stft={"nfft": 256}, persist_features=False)
    with pytest.raises(ValueError, match="pad_mode"):
        AVDigits("avdigits-hard", "val", stft={"pad_mode": "wrap"}, persist_features=False)
