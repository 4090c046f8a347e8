"""Kinetics-Sounds preparation from a tiny fake folder of clips named as in the OGM-GE lists: .mp4 files with their
own AAC audio track (44.1 kHz stereo, decoded with PyAV and resampled), one clip with an extracted .wav beside it,
one damaged file; and the CREMA-D default config against the registered encoders."""

import json
from pathlib import Path

import numpy as np
import pytest

from polymodal.config import load_config
from polymodal.data.base import build_dataset
from polymodal.data.datasets import kinetics_sounds as ks
from polymodal.data.datasets.fake_av import write_video, write_wav
from polymodal.data.prepare import prepare


def test_prepare_kinetics_sounds_from_mp4_clips(tmp_path, monkeypatch):
    listed, record = ks.read_protocol()
    assert record["lists"]["kinetics_sounds_ogmge/my_train.txt"]["rows"] == 14799
    assert len({lab for lab, _ in listed.values()}) == 31
    chosen = {}
    for split in ("train", "test"):
        for label in range(3):
            ids = [c for c, (lab, sp) in sorted(listed.items()) if lab == label and sp["ogmge"] == split]
            chosen.update({c: listed[c] for c in ids[:2]})
    raw = tmp_path / "ks"
    names = sorted(chosen)
    for i, clip in enumerate(names):
        sub = raw / f"class_{chosen[clip][0]}"  # class sub-folders are searched
        if i == 0:  # a clip whose audio was extracted to a .wav (read instead of the track)
            write_video(sub / f"{clip}.mp4", 2.2, "mpeg4")
            write_wav(raw / "audio" / f"{clip}.wav", 2.2, 22050)
        else:
            write_video(sub / f"{clip}.mp4", 2.2, "mpeg4", audio_rate=44100)
    (raw / f"class_{chosen[names[3]][0]}" / f"{names[3]}.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42 truncated")
    monkeypatch.setattr(ks, "read_protocol", lambda: ({c: listed[c] for c in chosen}, record))
    monkeypatch.setenv("POLYMODAL_PREPARE_WORKERS", "2")
    out = tmp_path / "prepared"
    lines = []
    report = prepare("kinetics-sounds", raw, out, lines.append)
    assert report["clips"] == len(chosen) - 1 and report["skipped"] == 1
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["skipped"][0]["clip"] == names[3]
    clips = json.loads((out / "clips.json").read_text())
    assert [c[0] for c in clips] == [n for n in names if n != names[3]]
    assert [c[1] for c in clips] == [chosen[c[0]][0] for c in clips]
    offsets = np.load(out / "audio_offsets.npy")
    assert np.all(np.abs(np.diff(offsets) - 2.2 * 16000) <= 0.05 * 16000)  # AAC priming may add a few ms
    times = np.load(out / "frame_times.npy")
    np.testing.assert_allclose(times, np.tile([0.0, 1.0, 2.0], (len(clips), 1)), atol=1e-3)
    frames = np.load(out / "frames.npy", mmap_mode="r")
    assert np.all(np.abs(frames[:, :, 1, 50, 50].astype(int) - [0, 90, 180]) <= 6)
    test = build_dataset("kinetics-sounds", "test", root=str(out), allow_incomplete=True, frame_size=64)
    assert len(test) == sum(1 for c in clips if c[2]["ogmge"] == "test")
    s = test[0]
    assert s["inputs"]["audio"].shape == (80000,) and s["inputs"]["video"].shape == (3, 3, 64, 64)
    assert test.provenance["manifest"]["protocol"]["dataset"] == "Kinetics-Sounds"


def test_kinetics_sounds_without_clips_says_where_to_get_them(tmp_path):
    with pytest.raises(FileNotFoundError, match="CC BY 4.0"):
        prepare("kinetics-sounds", tmp_path, tmp_path / "o", print)


def test_cremad_config_names_registered_components():
    config = Path(__file__).resolve().parents[2] / "configs" / "cremad.yaml"
    cfg = load_config(config)  # binds every encoder, strategy and data option to its registered signature
    assert cfg.data.dataset == "cremad" and cfg.model.encoders["video"]["name"] == "video_resnet18"
    assert (cfg.optim.lr, cfg.optim.momentum, cfg.optim.weight_decay, cfg.data.batch_size) == (1e-3, 0.9, 1e-4, 64)


def test_video_resnet18_pools_frames():
    import torch

    from polymodal.data.schema import Modality
    from polymodal.encoders.base import ENCODERS

    enc = ENCODERS.create("video_resnet18", modality=Modality("video", "video", (3, 3, 32, 32)), width=8)
    x = torch.rand(2, 3, 3, 32, 32)
    assert enc(x).shape == (2, 8)
    torch.testing.assert_close(enc(x), enc(x.flip(1)))  # a mean over frames: order does not matter
