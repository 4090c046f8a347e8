"""Every registered encoder (tiny variant) forward + backward on its kind of input; ResNet-18 structure;
input-shape errors; an overfitting sanity check of the audio encoder on real spoken digits."""

import inspect
from pathlib import Path

import numpy as np
import pytest
import torch

from polymodal.data.schema import Modality
from polymodal.encoders import DEFAULT_ENCODER, ENCODERS, build_encoder, pretrained_available
from polymodal.encoders.resnet import resnet18

B = 3

# one or more modalities per kind: (case id, Modality)
MODALITIES: dict[str, list[tuple[str, Modality]]] = {
    "audio": [
        ("waveform", Modality("audio", "audio", (1600,), sample_rate=8000, representation="waveform")),
        ("logmel", Modality("audio", "audio", (40, 21), sample_rate=8000, representation="logmel")),
    ],
    "image": [
        ("grey28", Modality("image", "image", (1, 28, 28), representation="pixels")),
        ("rgb32", Modality("image", "image", (3, 32, 32), representation="pixels")),
    ],
    "text": [("tokens", Modality("text", "text", (12,), representation="tokens", extra={"vocab_size": 1000}))],
    "tabular": [("features", Modality("tab", "tabular", (6,), representation="features"))],
    "timeseries": [("features", Modality("ts", "timeseries", (16, 3), representation="features"))],
    "video": [("frames", Modality("video", "video", (4, 1, 16, 16), representation="pixels"))],
}


def _kind(entry) -> str:
    """The kind an encoder takes, read from its factory's return class (no weights are loaded)."""
    ret = inspect.signature(entry.factory, eval_str=True).return_annotation
    return getattr(ret, "kind", "") or entry.name.split("_")[0]


def _input(mod: Modality, gen: torch.Generator) -> torch.Tensor:
    if mod.kind == "text":
        x = torch.randint(1, mod.extra["vocab_size"], (B, *mod.shape), generator=gen)
        x[0, 7:] = 0  # a padded row
        return x
    if mod.kind in ("image", "video"):
        return torch.rand((B, *mod.shape), generator=gen)
    if mod.representation == "logmel":
        return torch.randn((B, *mod.shape), generator=gen) * 3 - 8  # raw log magnitudes
    return torch.randn((B, *mod.shape), generator=gen)


CASES = [
    pytest.param(entry.name, case, mod, id=f"{entry.name}-{case}")
    for entry in ENCODERS
    for case, mod in MODALITIES[_kind(entry)]
]


@pytest.mark.parametrize("name,case,modality", CASES)
def test_every_encoder_forward_backward(name, case, modality):
    if not pretrained_available(name):
        pytest.skip(f"{name} needs the optional packages: pip install 'polymodal[pretrained]'")
    entry = ENCODERS.get(name)
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    enc = build_encoder(name, modality, **entry.tiny)
    assert enc.kind == modality.kind
    assert enc.out_dim == entry.tiny.get("width", enc.out_dim)
    x = _input(modality, gen)

    out, low = enc(x), enc.low_level(x)
    assert out.shape == (B, enc.out_dim)
    assert low.shape == (B, enc.low_level_dim)
    loss = (out * torch.randn(out.shape, generator=gen)).sum() + (low * torch.randn(low.shape, generator=gen)).sum()
    if enc.supports_sequence:
        seq = enc.sequence(x)
        assert seq.dim() == 3 and seq.shape[0] == B and seq.shape[2] == enc.out_dim and seq.shape[1] >= 1
        if modality.kind in ("text", "timeseries", "video"):  # time axis kept at input resolution
            assert seq.shape[1] == modality.shape[0]
        loss = loss + (seq * torch.randn(seq.shape, generator=gen)).sum()
    else:
        with pytest.raises(TypeError, match="sequence-capable"):
            enc.sequence(x)
    for t in (out, low, loss):
        assert torch.isfinite(t).all()
    loss.backward()

    trainable = [(n, p) for n, p in enc.named_parameters() if p.requires_grad]
    assert trainable, f"{name} has no trainable parameter"
    for pname, p in trainable:
        assert p.grad is not None, f"{name}: no gradient reaches {pname}"
        assert torch.isfinite(p.grad).all(), f"{name}: non-finite gradient in {pname}"
        assert p.grad.abs().sum() > 0, f"{name}: zero gradient in {pname}"

    # absent slots are zero-filled; the model probes encoders with them in eval mode: must stay finite
    enc.eval()
    with torch.no_grad():
        zeros = torch.zeros_like(x)
        assert torch.isfinite(enc(zeros)).all() and torch.isfinite(enc.low_level(zeros)).all()
        if enc.supports_sequence:
            assert torch.isfinite(enc.sequence(zeros)).all()


def test_every_kind_has_its_default_and_every_encoder_a_case():
    kinds = {_kind(e) for e in ENCODERS}
    assert kinds <= set(MODALITIES)
    for kind, name in DEFAULT_ENCODER.items():
        assert name in ENCODERS and _kind(ENCODERS.get(name)) == kind


def test_resnet18_has_the_standard_parameter_count():
    with_fc = resnet18(3, 512, num_classes=1000)
    assert sum(p.numel() for p in with_fc.parameters()) == 11_689_512  # torchvision's resnet18
    backbone = resnet18(3, 512)
    assert sum(p.numel() for p in backbone.parameters()) == 11_176_512
    enc = build_encoder("image_resnet18", Modality("im", "image", (3, 224, 224)))
    assert sum(p.numel() for p in enc.parameters()) == 11_176_512 and enc.out_dim == 512
    stages = [[type(b).__name__ for b in s] for s in backbone.stages]
    assert stages == [["BasicBlock"] * 2] * 4
    x = torch.randn(2, 3, 64, 64)
    assert backbone.features(x).shape == (2, 512, 2, 2)  # /32 with the 7x7 stem + max-pool
    assert resnet18(3, 64, small_input=True).features(x).shape == (2, 64, 8, 8)  # /8 without


def test_resnet18_one_dimensional():
    torch.manual_seed(0)
    net = resnet18(in_channels=2, width=16, dims=1, small_input=True, num_classes=5)
    assert net(torch.randn(4, 2, 50)).shape == (4, 5)
    assert net.features(torch.randn(4, 2, 50)).shape == (4, 16, 7)
    with pytest.raises(ValueError, match="dims=3"):
        resnet18(dims=3)


@pytest.mark.parametrize(
    "name,modality,bad,expected",
    [
        ("image_cnn", MODALITIES["image"][0][1], torch.rand(2, 3, 28, 28), "(B, 1, H, W)"),
        ("image_cnn", MODALITIES["image"][0][1], torch.rand(2, 28, 28), "(B, 1, H, W)"),
        ("image_resnet18", MODALITIES["image"][1][1], torch.rand(2, 1, 32, 32), "(B, 3, H, W)"),
        ("audio_cnn", MODALITIES["audio"][0][1], torch.randn(2, 40, 21), "(B, samples)"),
        ("audio_resnet18", MODALITIES["audio"][1][1], torch.randn(2, 64, 21), "(B, 40, frames)"),
        ("text_transformer", MODALITIES["text"][0][1], torch.rand(2, 12), "int64 token ids"),
        ("text_transformer", MODALITIES["text"][0][1], torch.ones(2, 13, dtype=torch.long), "(B, L<=12)"),
        ("tabular_mlp", MODALITIES["tabular"][0][1], torch.randn(2, 7), "(B, 6)"),
        ("timeseries_cnn", MODALITIES["timeseries"][0][1], torch.randn(2, 16, 4), "(B, T, 3)"),
        ("timeseries_gru", MODALITIES["timeseries"][0][1], torch.randn(2, 16), "(B, T, 3)"),
        ("video_frames", MODALITIES["video"][0][1], torch.rand(2, 1, 16, 16), "(B, T, 1, H, W)"),
    ],
)
def test_wrong_input_shape_names_encoder_expected_and_received(name, modality, bad, expected):
    enc = build_encoder(name, modality, **ENCODERS.get(name).tiny)
    with pytest.raises(ValueError) as info:
        enc(bad)
    msg = str(info.value)
    assert repr(name) in msg and expected in msg and str(tuple(bad.shape)) in msg


def test_modality_errors_are_clear():
    text = Modality("caption", "text", (12,), representation="tokens")
    with pytest.raises(ValueError, match=r"'caption' has no extra\['vocab_size'\]"):
        build_encoder("text_transformer", text)
    odd = Modality("a", "audio", (1600,), sample_rate=8000, representation="mfcc")
    with pytest.raises(ValueError, match="representation 'mfcc'.*'waveform'.*'logmel'"):
        build_encoder("audio_cnn", odd)
    wav = MODALITIES["audio"][0][1]
    with pytest.raises(ValueError, match="16000 Hz.*8000 Hz"):
        build_encoder("audio_cnn", wav, logmel={"sample_rate": 16000})
    with pytest.raises(ValueError, match="allowed keys"):
        build_encoder("audio_cnn", wav, logmel={"n_mel": 40})
    with pytest.raises(ValueError, match="takes image input but modality 'tab' is tabular"):
        build_encoder("image_cnn", MODALITIES["tabular"][0][1])
    with pytest.raises(ValueError, match="divisible by heads"):
        build_encoder("text_transformer", MODALITIES["text"][0][1], width=10, heads=4)
    with pytest.raises(ValueError, match="pool='max'"):
        build_encoder("video_frames", MODALITIES["video"][0][1], pool="max")


def test_logmel_config_reaches_the_front_end():
    wav = MODALITIES["audio"][0][1]
    enc = build_encoder("audio_cnn", wav, width=8, channels=(4,), logmel={"n_mels": 24, "hop_length": 160})
    assert enc.front.logmel.cfg.n_mels == 24 and enc.front.logmel.cfg.sample_rate == 8000
    x = torch.randn(2, 1600)
    assert enc.front(x).shape == (2, 1, 24, 11)
    seq = enc.sequence(x)
    assert seq.shape == (2, 6, 8)  # 11 frames, one 2x2 max-pool (rounded up)
    assert torch.allclose(enc(x), seq.mean(dim=1))


def test_audio_front_end_normalises_and_agrees_across_representations():
    """A waveform and its precomputed log-mel give the same features (caching never changes results)."""
    from polymodal.data.transforms import LogMel

    torch.manual_seed(0)
    (_, wav_mod), (_, mel_mod) = MODALITIES["audio"]
    a = build_encoder("audio_cnn", wav_mod, width=8, channels=(4, 8)).eval()
    b = build_encoder("audio_cnn", mel_mod, width=8, channels=(4, 8)).eval()
    b.load_state_dict(a.state_dict())
    wav = torch.randn(2, 1600) * 0.3
    mel = LogMel()(wav)
    norm = a.front(wav)
    assert torch.allclose(norm.mean(dim=(1, 2, 3)), torch.zeros(2), atol=1e-5)
    assert torch.allclose(norm.std(dim=(1, 2, 3)), torch.ones(2), atol=1e-3)
    with torch.no_grad():
        assert torch.allclose(a(wav), b(mel), atol=1e-5)


def test_text_padding_is_ignored():
    torch.manual_seed(0)
    enc = build_encoder("text_transformer", MODALITIES["text"][0][1], width=8, depth=1, heads=2).eval()
    x = torch.randint(1, 1000, (2, 12))
    x[:, 6:] = 0
    short = Modality("text", "text", (6,), representation="tokens", extra={"vocab_size": 1000})
    enc_short = build_encoder("text_transformer", short, width=8, depth=1, heads=2).eval()
    state = enc.state_dict()
    state["pos.weight"] = state["pos.weight"][:6]
    enc_short.load_state_dict(state)
    with torch.no_grad():
        assert torch.allclose(enc(x), enc_short(x[:, :6]), atol=1e-5)
        assert (enc.sequence(x)[:, 6:] == 0).all()


def test_video_attention_pool_weights_frames():
    torch.manual_seed(0)
    enc = build_encoder("video_frames", MODALITIES["video"][0][1], width=8, channels=(4, 8), pool="attention").eval()
    x = torch.rand(2, 4, 1, 16, 16)
    with torch.no_grad():
        seq = enc.sequence(x)
        w = torch.softmax(enc.score(seq), dim=1)
        assert torch.allclose(enc(x), (w * seq).sum(dim=1), atol=1e-6)
        same = x[:, :1].expand_as(x)  # identical frames: attention pooling = any frame's features
        assert torch.allclose(enc(same), enc.sequence(same)[:, 0], atol=1e-5)


def _fsdd_clips(root: Path, n_per_digit: int = 2, samples: int = 8000) -> tuple[torch.Tensor, torch.Tensor]:
    import soundfile as sf

    folder = root / "fsdd" / "recordings"
    waves, labels = [], []
    for digit in range(10):
        for idx in range(n_per_digit):
            path = folder / f"{digit}_jackson_{idx + 5}.wav"
            wav, sr = sf.read(path, dtype="float32")
            if sr != 8000:
                raise ValueError(f"{path} has {sr} Hz; this test expects the 8 kHz FSDD recordings")
            clip = np.zeros(samples, dtype=np.float32)
            clip[: min(samples, len(wav))] = wav[:samples]
            waves.append(torch.from_numpy(clip))
            labels.append(digit)
    return torch.stack(waves), torch.tensor(labels)


def test_audio_cnn_overfits_twenty_spoken_digits(raw_data):
    wav, labels = _fsdd_clips(raw_data)  # (20, 8000), 2 clips per digit
    torch.manual_seed(0)
    mod = Modality("audio", "audio", (8000,), sample_rate=8000, representation="waveform")
    enc = build_encoder("audio_cnn", mod, width=32)
    head = torch.nn.Linear(enc.out_dim, 10)
    params = [*enc.parameters(), *head.parameters()]
    opt = torch.optim.Adam(params, lr=3e-3)
    losses = []
    for _ in range(40):
        loss = torch.nn.functional.cross_entropy(head(enc(wav)), labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0], losses


@pytest.mark.parametrize("kind", ["audio", "image", "text", "tabular", "timeseries", "video"])
def test_default_encoders_follow_the_weights_dtype(kind):
    """Fabric's 64-true / bf16-true precision converts the weights; inputs arrive as float32."""
    name = DEFAULT_ENCODER[kind]
    for _, modality in MODALITIES[kind]:
        enc = build_encoder(name, modality, **ENCODERS.get(name).tiny).double().eval()
        with torch.no_grad():
            out = enc(_input(modality, torch.Generator().manual_seed(0)))
        assert out.dtype == torch.float64
