import pytest
import soundfile as sf
import torch

from polymodal.data.transforms import LogMel, LogMelConfig, logmel_numpy_reference, mel_filterbank


def test_filterbank_triangles():
    fb = mel_filterbank(129, 40, 8000)
    assert fb.shape == (129, 40)
    assert torch.all(fb >= 0) and torch.all(fb <= 1)
    peaks = fb.argmax(dim=0)
    assert torch.all(peaks[1:] >= peaks[:-1])  # centres increase with the mel index
    with pytest.raises(ValueError, match="f_max"):
        mel_filterbank(129, 40, 8000, f_max=5000)


def test_logmel_matches_naive_dft():
    cfg = LogMelConfig()
    wav = torch.randn(2, 8000, generator=torch.Generator().manual_seed(0))
    fast = LogMel(cfg)(wav)
    assert fast.shape == (2, cfg.n_mels, cfg.frames(8000))
    ref = logmel_numpy_reference(wav[1], cfg)
    assert torch.allclose(fast[1].double(), ref, atol=1e-3)


def test_logmel_on_real_speech(raw_data):
    rec = raw_data / "fsdd" / "recordings" / "3_jackson_0.wav"
    x, sr = sf.read(rec, dtype="float32")
    assert sr == 8000
    mel = LogMel(LogMelConfig(sample_rate=sr))(torch.from_numpy(x)[None])
    # speech energy sits well above the silence floor in some frames
    assert torch.isfinite(mel).all()
    assert float(mel.max() - mel.median()) > 5.0


def test_logmel_rejects_wrong_rank():
    with pytest.raises(ValueError, match=r"\(B, samples\)"):
        LogMel()(torch.zeros(8000))
