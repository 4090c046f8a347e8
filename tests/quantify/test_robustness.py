"""The corruptions of every modality kind, and MultiBench's robustness summaries against their definitions."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from polymodal.data.schema import KINDS, Modality
from polymodal.quantify.robustness import CORRUPTIONS, Curve, levels_of, snr_db

INPUTS = {  # kind -> (modality, a batch of its inputs)
    "audio": (Modality("audio", "audio", (800,), sample_rate=8000, representation="waveform"), torch.randn(4, 800) * 0.3),
    "image": (Modality("image", "image", (1, 8, 8), representation="pixels"), torch.rand(4, 1, 8, 8)),
    "video": (Modality("video", "video", (3, 3, 8, 8)), torch.rand(4, 3, 3, 8, 8)),
    "timeseries": (Modality("ts", "timeseries", (10, 3)), torch.randn(4, 10, 3)),
    "tabular": (Modality("tab", "tabular", (5,), representation="features"), torch.randn(4, 5)),
    "text": (Modality("text", "text", (12,), representation="tokens", extra={"vocab_size": 50}),
             torch.cat([torch.randint(1, 50, (4, 9)), torch.zeros(4, 3, dtype=torch.long)], 1)),
}


def test_every_modality_kind_has_a_corruption():
    assert set(KINDS) <= set(CORRUPTIONS.names())
    for entry in CORRUPTIONS:
        assert entry.summary, entry.name


@pytest.mark.parametrize("kind", sorted(INPUTS))
def test_every_corruption_changes_its_input_and_leaves_level_zero_clean(kind):
    entry = CORRUPTIONS.get(kind)
    modality, x = INPUTS[kind]
    present = torch.ones(len(x), dtype=torch.bool)
    out = entry.factory(x, present, **entry.tiny, modality=modality, scale=float(x.float().std()),
                        rng=np.random.default_rng(0))
    assert out.shape == x.shape and out.dtype == x.dtype
    assert not torch.equal(out, x)
    assert torch.equal(entry.factory(x, present, level=0.0, modality=modality, rng=np.random.default_rng(0)), x)
    if kind == "text":  # padding stays padding; tokens stay in the vocabulary
        assert (out[:, 9:] == 0).all() and int(out.max()) < 50 and int(out[:, :9].min()) >= 1


def test_audio_noise_has_the_stated_snr_on_waveforms_and_log_mel():
    entry = CORRUPTIONS.get("audio")
    modality, _ = INPUTS["audio"]
    x = torch.randn(8, 20000, dtype=torch.float64) * 0.2
    for level in (0.25, 0.5, 1.0):
        out = entry.factory(x, None, level=level, modality=modality, rng=np.random.default_rng(1))
        noise = out - x
        snr = 10 * torch.log10((x ** 2).mean(1) / (noise ** 2).mean(1))
        assert snr.mean().item() == pytest.approx(snr_db(level), abs=0.2)
    logmel = Modality("audio", "audio", (40, 20), sample_rate=8000, representation="logmel")
    power = torch.rand(2, 40, 20) + 0.1
    x = torch.log(power + 1e-6)
    out = entry.factory(x, None, level=0.5, modality=logmel)
    added = (out.exp() - 1e-6) - power  # the noise power added to every mel bin and frame
    expected = power.flatten(1).mean(1) / 10 ** (snr_db(0.5) / 10)
    torch.testing.assert_close(added, expected.view(-1, 1, 1).expand_as(added), atol=1e-4, rtol=1e-3)


def test_relative_and_effective_robustness_follow_multibench():
    levels = levels_of(11)  # MultiBench's 0, 0.1, ..., 1
    f = [0.9, 0.88, 0.85, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1]
    lf = [0.8, 0.79, 0.77, 0.72, 0.65, 0.55, 0.45, 0.35, 0.3, 0.2, 0.15]
    curve = Curve(levels, f, lf)
    area = sum((f[i] + f[i + 1]) * 0.1 / 2 for i in range(10))  # relative_robustness_helper
    assert curve.relative == pytest.approx(area)
    beta = np.asarray(lf) + (f[0] - lf[0])  # effective_robustness_helper
    assert curve.effective == pytest.approx(float(np.sum(np.asarray(f) - beta)))
    assert Curve(levels, f).effective is None
    with pytest.raises(ValueError, match="at least 2 levels"):
        levels_of(1)
