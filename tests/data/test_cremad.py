"""CREMA-D preparation from a tiny fake release in the official layout (AudioWAV/*.wav, VideoFlash/*.flv), with
clip names from the shipped published lists."""

import json
import re

import numpy as np
import pytest
import torch

from polymodal.data.base import build_dataset
from polymodal.data.datasets import cremad as cremad_mod
from polymodal.data.datasets.fake_av import write_video, write_wav
from polymodal.data.prepare import prepare


def _pick(per_class: int = 2):
    """per_class clips of each class from each of the OGM-GE train and test lists (their real names)."""
    listed, _ = cremad_mod.read_protocols()
    chosen = {}
    for split in ("train", "test"):
        for label in range(6):
            ids = [c for c, (lab, sp) in sorted(listed.items()) if lab == label and sp.get("ogmge") == split]
            for c in ids[:per_class]:
                chosen[c] = listed[c]
    return chosen


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    root = tmp_path_factory.mktemp("crema") / "CREMA-D"
    chosen = _pick()
    for i, clip in enumerate(sorted(chosen)):
        seconds = 1.5 if i == 0 else 2.4  # the first clip ends before 2 s: its third frame repeats the last
        write_video(root / "VideoFlash" / f"{clip}.flv", seconds, "flv")
        write_wav(root / "AudioWAV" / f"{clip}.wav", seconds, 44100 if i == 1 else 16000, 300.0 + 50 * (i % 6))
    corrupt = sorted(chosen)[2]
    (root / "VideoFlash" / f"{corrupt}.flv").write_bytes(b"FLV\x01 not really a video")
    return root, chosen, corrupt


def _complete_lists(monkeypatch, chosen):
    """Make the published lists the fake release's clips only (so the copy is complete), keeping the reader."""
    real = cremad_mod.read_protocols

    def subset():
        listed, record = real()
        return {c: listed[c] for c in chosen}, record

    monkeypatch.setattr(cremad_mod, "read_protocols", subset)


@pytest.fixture(scope="module")
def prepared(release, tmp_path_factory):
    root, chosen, _ = release
    out = tmp_path_factory.mktemp("cremad-out") / "prepared"
    lines = []
    with pytest.MonkeyPatch.context() as mp:
        _complete_lists(mp, chosen)
        mp.setenv("POLYMODAL_PREPARE_WORKERS", "2")
        report = prepare("cremad", root.parent, out, lines.append)
    return out, report, lines


def test_prepare_reports_skips_and_serves_arrays(release, prepared, monkeypatch):
    root, chosen, corrupt = release
    out, report, lines = prepared
    _complete_lists(monkeypatch, chosen)
    assert report["clips"] == len(chosen) - 1 and report["skipped"] == 1 and report["missing"] == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["skipped"][0]["clip"] == corrupt and "unreadable video" in manifest["skipped"][0]["reason"]
    assert not manifest["complete"] and "protocol" in manifest["differences"]
    assert any(f"skipped {corrupt}" in line for line in lines)
    assert set(manifest["counts"]) == {"ogmge", "mla"}
    assert manifest["protocol"]["split_source"]["lists"]["cremad_ogmge/train.csv"]["rows"] == 6698
    assert manifest["settings"] == {"sample_rate": 16000, "fps": 1.0, "frames": 3, "size": 224, "min_audio_s": 0.1}
    clips = json.loads((out / "clips.json").read_text())
    ids = [c[0] for c in clips]
    assert corrupt not in ids and len(ids) == len(chosen) - 1
    labels = np.load(out / "labels.npy")
    assert [cremad_mod.CLASSES[x] for x in labels] == [c.split("_")[2] for c in ids]
    frames = np.load(out / "frames.npy", mmap_mode="r")
    times = np.load(out / "frame_times.npy")
    assert frames.shape == (len(ids), 3, 3, 224, 224) and frames.dtype == np.uint8
    first = ids.index(sorted(chosen)[0])  # 1.5 s clip: frames at 0 s, 1 s, and its last frame (1.467 s)
    np.testing.assert_allclose(times[first], [0.0, 1.0, 44 / 30], atol=1e-3)
    other = [i for i in range(len(ids)) if i != first][0]
    np.testing.assert_allclose(times[other], [0.0, 1.0, 2.0], atol=1e-3)
    grey = frames[other, :, 0, 100, 100].astype(int)  # frame i has grey level 3 i: frames 0, 30, 60
    assert np.all(np.abs(grey - [0, 90, 180]) <= 6), grey
    offsets = np.load(out / "audio_offsets.npy")
    lengths = np.diff(offsets)
    resampled = ids.index(sorted(chosen)[1])  # written at 44.1 kHz, resampled to 16 kHz
    assert abs(lengths[resampled] - 2.4 * 16000) <= 2 and abs(lengths[other] - 2.4 * 16000) <= 2
    audio = np.load(out / "audio.npy", mmap_mode="r")[offsets[resampled]:offsets[resampled + 1]] / 32767.0
    spectrum = np.abs(np.fft.rfft(audio))
    tone = 300.0 + 50 * (1 % 6)
    assert abs(np.argmax(spectrum) * 16000 / len(audio) - tone) < 5  # the resampler kept the pitch

    with pytest.raises(ValueError, match="allow_incomplete"):
        build_dataset("cremad", "test", root=str(out))
    test = build_dataset("cremad", "test", root=str(out), allow_incomplete=True)
    assert test.provenance["manifest"]["protocol"]["dataset"] == "CREMA-D"
    assert len(test) == sum(1 for c in clips if c[2]["ogmge"] == "test")
    s = test[0]
    assert s["inputs"]["audio"].shape == (80000,) and s["inputs"]["video"].shape == (3, 3, 224, 224)
    wave = s["inputs"]["audio"].numpy()
    n = lengths[test.rows[0]]
    np.testing.assert_allclose(wave[n:2 * n], wave[:n], atol=1e-6)  # tiled
    train = build_dataset("cremad", "train", root=str(out), allow_incomplete=True, frame_size=32)
    val = build_dataset("cremad", "val", root=str(out), allow_incomplete=True)
    assert not set(train.clip_ids) & set(val.clip_ids) and not set(train.clip_ids) & set(test.clip_ids)
    torch.manual_seed(0)
    assert train[0]["inputs"]["video"].shape == (3, 3, 32, 32)
    mla = build_dataset("cremad", "test", root=str(out), allow_incomplete=True, protocol="mla")
    assert set(mla.clip_ids) == {c[0] for c in clips if c[2].get("mla") == "test"}

    again = []
    assert prepare("cremad", root.parent, out, again.append)["reused"] is True  # nothing redone


def test_missing_clips_are_reported_per_class_before_writing(release, tmp_path):
    root, chosen, _ = release
    lines = []
    plan, _ = cremad_mod.plan(root.parent, lines.append)  # the real lists: 7442 clips, the copy has 24
    assert len(plan.clips) == len(chosen) and len(plan.missing) == 7442 - len(chosen)
    text = "\n".join(lines)
    listed, _ = cremad_mod.read_protocols()
    neutral = sum(1 for lab, sp in listed.values() if lab == 0 and sp.get("ogmge") == "train")
    assert neutral > 900  # the OGM-GE list's neutral training clips
    assert re.search(rf"ogmge train +NEU: protocol +{neutral}, found +2\n", text)
    assert "mla" in text and "skipped; the prepared copy is marked incomplete" in text
    assert not (tmp_path / "cremad").exists()


def test_absent_raw_and_prepared_data_explain_where_to_get_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="ODbL"):
        prepare("cremad", tmp_path, tmp_path / "out", print)
    with pytest.raises(FileNotFoundError, match="is not a folder.*ODbL"):
        prepare("cremad", tmp_path / "no-such-folder", tmp_path / "out", print)
    with pytest.raises(FileNotFoundError, match="prepared data is absent"):
        build_dataset("cremad", "val", root=str(tmp_path))


def test_resume_redoes_only_missing_parts(release, tmp_path, monkeypatch):
    root, chosen, corrupt = release
    some = dict(list(sorted(chosen.items()))[:4])
    _complete_lists(monkeypatch, some)
    monkeypatch.setenv("POLYMODAL_PREPARE_WORKERS", "1")
    plan, protocol = cremad_mod.plan(root.parent, print)
    from polymodal.data.datasets.av_clips import _fingerprint, _work

    out = tmp_path / "o"
    (out / ".parts").mkdir(parents=True)
    c = plan.clips[0]
    from polymodal.data.datasets.av_clips import ClipSettings

    part = out / ".parts" / f"{c.clip_id}.{_fingerprint(c, ClipSettings())}.npz"
    assert _work((c, ClipSettings(), str(part))) == (c.clip_id, None)
    lines = []
    cremad_mod.prepare_clips("cremad", plan, out, protocol, cremad_mod.CLASSES, lines.append)
    assert any("1 already prepared" in line and "3 to decode" in line for line in lines)


def test_train_configs_cremad_on_the_prepared_copy(prepared, tmp_path):
    """`polymodal train configs/cremad.yaml` (shrunk: width 8, 32 px frames, 1 s audio) for one epoch; the run's
    provenance quotes the protocol manifest."""
    from pathlib import Path

    from polymodal.cli import main

    out, _, _ = prepared
    config = Path(__file__).resolve().parents[2] / "configs" / "cremad.yaml"
    args = ["train", str(config), f"data.root={out}", f"out_dir={tmp_path}", "name=cremad", "trainer.max_epochs=1",
            "trainer.progress=false", "model.width=8", "data.options.allow_incomplete=true",
            "data.options.frame_size=32", "data.options.audio_seconds=1", "data.options.tile_seconds=2",
            "data.batch_size=8"]
    assert main(args) == 0
    results = json.loads((tmp_path / "cremad" / "results.json").read_text())
    assert results["test"]["n"] == 12 and 0 <= results["test"]["fused_acc"] <= 1
    provenance = json.dumps(json.loads((tmp_path / "cremad" / "provenance.json").read_text()))
    assert "cremad_ogmge/train.csv" in provenance and "split_source" in provenance
