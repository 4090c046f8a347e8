"""AVE and VGGSound preparation from tiny fake releases with their own split files (AVE's &-separated lists,
VGGSound's csv): .mp4 clips with an AAC track written with PyAV, one damaged clip, one listed clip absent."""

import json
import re

import numpy as np
import pytest

from polymodal.data.base import build_dataset
from polymodal.data.datasets.fake_av import write_video
from polymodal.data.prepare import prepare


def test_prepare_ave_with_its_validation_list(tmp_path, monkeypatch):
    raw = tmp_path / "AVE_Dataset"
    lists = {"trainSet.txt": [("Church bell", "a1"), ("Dog", "a2"), ("Dog", "a3")],
             "valSet.txt": [("Church bell", "b1"), ("Dog", "b2")], "testSet.txt": [("Dog", "c1"), ("Church bell", "c2")]}
    for name, rows in lists.items():
        (raw / name).parent.mkdir(parents=True, exist_ok=True)
        (raw / name).write_text("Category&VideoID&Quality&StartTime&EndTime\n"
                                + "".join(f"{c}&{v}&good&0&10\n" for c, v in rows))
    for rows in lists.values():
        for _, vid in rows:
            if vid != "c2":  # listed, absent
                write_video(raw / "AVE" / f"{vid}.mp4", 2.1, "mpeg4", audio_rate=22050)
    (raw / "AVE" / "a3.mp4").write_bytes(b"broken")
    monkeypatch.setenv("POLYMODAL_PREPARE_WORKERS", "1")
    lines = []
    out = tmp_path / "out"
    report = prepare("ave", raw, out, lines.append)
    assert report["clips"] == 5 and report["missing"] == 1 and report["skipped"] == 1
    text = "\n".join(lines)
    assert re.search(r"official test +Church bell: protocol +1, found +0\n", text)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["protocol"]["split_source"]["classes"] == ["Church bell", "Dog"]
    assert manifest["counts"]["official"]["val"] == {"Church bell": 1, "Dog": 1}
    val = build_dataset("ave", "val", root=str(out), allow_incomplete=True, frame_size=32)
    assert sorted(val.clip_ids) == ["b1", "b2"]  # the official validation list, not a carve of training
    s = val[0]
    assert s["inputs"]["audio"].shape == (80000,) and s["inputs"]["video"].shape == (3, 3, 32, 32)


def test_prepare_vggsound_from_its_csv(tmp_path, monkeypatch):
    raw = tmp_path / "vgg"
    rows = [("abc", 30, "dog barking", "train"), ("abd", 0, "dog barking", "train"), ("abe", 5, "playing piano", "train"),
            ("abf", 7, "playing piano", "train"), ("abg", 12, "dog barking", "test"), ("abh", 1, "playing piano", "test")]
    raw.mkdir()
    (raw / "vggsound.csv").write_text("".join(f'{y},{s},"{lab}",{sp}\n' for y, s, lab, sp in rows))
    for k, (y, s, _, _) in enumerate(rows):
        name = f"{y}_{s:06d}" if k % 2 == 0 else f"{y}_{s}"  # both namings of the download scripts
        write_video(raw / "video" / f"{name}.mp4", 2.1, "mpeg4", audio_rate=16000)
    monkeypatch.setenv("POLYMODAL_PREPARE_WORKERS", "2")
    out = tmp_path / "out"
    report = prepare("vggsound", raw, out, print)
    assert report["clips"] == 6 and report["skipped"] == 0 and report["missing"] == 0
    assert json.loads((out / "manifest.json").read_text())["complete"]
    test = build_dataset("vggsound", "test", root=str(out), frame_size=32)  # complete: no allow_incomplete needed
    assert test.class_names == ("dog barking", "playing piano") and sorted(test.labels.tolist()) == [0, 1]
    np.testing.assert_allclose(np.load(out / "frame_times.npy"), np.tile([0.0, 1.0, 2.0], (6, 1)), atol=1e-3)
    with pytest.raises(FileNotFoundError, match="CC BY 4.0"):
        prepare("vggsound", tmp_path / "out", tmp_path / "o2", print)
