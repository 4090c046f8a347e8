"""Options that reproduce MLA's reference code: the spectrogram without per-sample standardisation, zero
padding of the STFT, image normalisation and grey-to-3-channel replication, the Xavier-normal shared head,
and the dataset's cached log-STFT served to ``front: stft`` encoders."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from polymodal.data.schema import Modality
from polymodal.data.transforms import LogSTFT, STFTConfig
from polymodal.encoders.audio import AudioFrontEnd
from polymodal.encoders.base import build_encoder
from polymodal.fusion.shared_head import SharedHeadFusion

WAVE = Modality("audio", "audio", (8000,), 8000, "waveform")
GREY = Modality("image", "image", (1, 28, 28), representation="pixels")


def _wave(n: int = 3) -> torch.Tensor:
    return torch.from_numpy(np.random.default_rng(0).standard_normal((n, 8000)).astype(np.float32) * 0.1)


def test_front_end_without_standardisation_is_the_log_stft_exactly():
    wav = _wave()
    fe = AudioFrontEnd(WAVE, front="stft", stft={"n_fft": 256, "hop_length": 128}, standardize=False)
    want = torch.log(torch.stft(wav, 256, 128, window=torch.hann_window(256), center=True,
                                return_complex=True).abs() + 1e-7)
    got = fe(wav)
    assert got.shape == (3, 1, 129, 63)
    assert torch.equal(got[:, 0], want)
    assert torch.equal(got[:, 0], LogSTFT(STFTConfig())(wav))


def test_front_end_standardises_each_spectrogram_by_default():
    got = AudioFrontEnd(WAVE, front="stft")(_wave())[:, 0]
    assert torch.allclose(got.mean(dim=(1, 2)), torch.zeros(3), atol=1e-5)
    assert torch.allclose(got.std(dim=(1, 2)), torch.ones(3), atol=1e-3)


@pytest.mark.parametrize("bad", ["no", 0, None])
def test_standardize_must_be_a_bool(bad):
    with pytest.raises(ValueError, match="standardize"):
        build_encoder("audio_resnet18", WAVE, width=8, front="stft", standardize=bad)


def test_stft_zero_padding_matches_explicit_zero_padding():
    wav = _wave(2)
    got = LogSTFT(STFTConfig(pad_mode="constant"))(wav)
    padded = F.pad(wav, (128, 128))  # zeros, n_fft // 2 each side
    want = torch.log(torch.stft(padded, 256, 128, window=torch.hann_window(256), center=False,
                                return_complex=True).abs() + 1e-7)
    assert torch.allclose(got, want, atol=1e-5)
    reflect = LogSTFT(STFTConfig())(wav)
    assert torch.allclose(got[:, :, 1:-1], reflect[:, :, 1:-1], atol=1e-5)  # only the edge frames differ
    assert not torch.allclose(got[:, :, 0], reflect[:, :, 0], atol=1e-3)


def test_stft_pad_mode_is_checked():
    with pytest.raises(ValueError, match="pad_mode"):
        LogSTFT(STFTConfig(pad_mode="circular"))


def test_image_normalisation_and_replication_equal_doing_it_by_hand():
    torch.manual_seed(0)
    enc = build_encoder("image_resnet18", GREY, width=16, stem="standard", normalize=[0.449, 0.226], replicate=3)
    assert enc.backbone.stem[0].weight.shape[1] == 3
    x = torch.rand(4, 1, 28, 28)
    enc.eval()
    manual = enc.backbone(((x - 0.449) / 0.226).repeat(1, 3, 1, 1))
    assert torch.equal(enc(x), manual)
    plain = build_encoder("image_resnet18", GREY, width=16, stem="standard")
    assert plain.backbone.stem[0].weight.shape[1] == 1


@pytest.mark.parametrize("kwargs,match", [
    ({"normalize": [0.5]}, "normalize"), ({"normalize": [0.5, 0.0]}, "normalize"), ({"normalize": "0.5,0.2"}, "normalize"),
    ({"replicate": 0}, "replicate"), ({"replicate": 2.5}, "replicate"), ({"replicate": True}, "replicate"),
])
def test_image_options_are_checked(kwargs, match):
    with pytest.raises(ValueError, match=match):
        build_encoder("image_resnet18", GREY, width=8, **kwargs)


def test_shared_head_xavier_initialisation():
    torch.manual_seed(0)
    fusion = SharedHeadFusion({"audio": 512, "image": 512}, 10, init="xavier")
    w = fusion.head.weight
    assert torch.equal(fusion.head.bias, torch.zeros(10))
    assert float(w.detach().std()) == pytest.approx((2 / (512 + 10)) ** 0.5, rel=0.1)
    default = SharedHeadFusion({"audio": 512, "image": 512}, 10)
    assert float(default.head.bias.detach().abs().max()) > 0  # PyTorch's uniform bias
    with pytest.raises(ValueError, match="init"):
        SharedHeadFusion({"audio": 8, "image": 8}, 10, init="orthogonal")


def test_cached_log_stft_feeds_the_front_end_like_the_waveform_does():
    spec_mod = Modality("audio", "audio", (129, 63), 8000, "stft", extra={"stft": {"n_fft": 256, "hop_length": 128,
                                                                               "eps": 1e-7, "pad_mode": "reflect"}})
    wav = _wave()
    cached = LogSTFT(STFTConfig())(wav)
    for standardize in (True, False):
        a = AudioFrontEnd(spec_mod, front="stft", standardize=standardize)(cached)
        b = AudioFrontEnd(WAVE, front="stft", standardize=standardize)(wav)
        assert torch.allclose(a, b, atol=1e-6)
    enc = build_encoder("audio_resnet18", spec_mod, width=8, front="stft", stem="standard",
                        stft={"n_fft": 256, "hop_length": 128})
    assert enc.front.input_hw == (129, 63)
    with pytest.raises(ValueError, match="differ from the settings the dataset"):
        build_encoder("audio_resnet18", spec_mod, width=8, front="stft", stft={"n_fft": 256, "hop_length": 64})
    with pytest.raises(ValueError, match="set front=stft"):
        build_encoder("audio_resnet18", spec_mod, width=8)
