"""IEMOCAP preparation from a tiny fake release in the licensed layout (SessionK/dialog/EmoEvaluation, transcriptions,
avi/DivX/*.avi written with PyAV, sentences/wav/*.wav written with soundfile, or the dialog's wav), with
utterance names from the shipped MLA lists."""

import json
import re
from collections import defaultdict

import numpy as np
import pytest
import soundfile as sf
import torch

from polymodal.data.base import build_dataset
from polymodal.data.datasets import iemocap as iemo
from polymodal.data.datasets.fake_av import FPS, write_video, write_wav
from polymodal.data.prepare import prepare

CODE = {"Angry": "ang", "Happy": "exc", "Neutral": "neu", "Sad": "sad"}


def _span(k: int) -> tuple[float, float]:
    """The k-th utterance of a fake dialog: 1 s long, every 1.2 s from 0.5 s (middle 1.0 + 1.2 k)."""
    return 0.5 + 1.2 * k, 1.5 + 1.2 * k


def _choose():
    """One listed utterance of each (split, class), each from its own dialog, with another listed utterance of that
    dialog: dialog -> [(utterance, label, split)], sorted."""
    rows, _ = iemo.read_protocol()
    by_dialog = defaultdict(list)
    for r in sorted(rows):
        by_dialog[r[0].rsplit("_", 1)[0]].append(r)
    chosen: dict[str, list] = {}
    for split in ("train", "test"):
        for label in range(4):
            r = next(r for r in sorted(rows) if r[1:] == (label, split) and r[0].rsplit("_", 1)[0] not in chosen)
            dialog = r[0].rsplit("_", 1)[0]
            chosen[dialog] = sorted([r, next(x for x in by_dialog[dialog] if x != r)])
    return chosen


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    root = tmp_path_factory.mktemp("iemocap") / "IEMOCAP_full_release"
    chosen = _choose()
    dialogs = sorted(chosen)
    cut_dialog, short_dialog = dialogs[0], dialogs[1]  # audio from the dialog's wav; video ends early
    corrupt = chosen[dialogs[2]][0][0]
    spans = {}
    for d in dialogs:
        session = root / f"Session{int(d[3:5])}"
        utts = chosen[d]
        emo, text = ["% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]", ""], []
        for k, (utt, label, _) in enumerate(utts):
            start, end = _span(k)
            spans[utt] = (start, end)
            code = "fru" if (d == dialogs[3] and k == 0) else CODE[iemo.CLASSES[label]]
            emo += [f"[{start:.4f} - {end:.4f}]\t{utt}\t{code}\t[2.5000, 3.0000, 3.0000]", "C-E2:\tNeutral;\t()",
                    "A-E3:\tval 3; act 2; dom  2;\t()", ""]
            text.append(f"{utt} [{start:08.4f}-{end:08.4f}]: words of {utt.lower()}, said once.")
            if d != cut_dialog:
                write_wav(session / "sentences" / "wav" / d / f"{utt}.wav", end - start, 16000, 200.0 + 40 * k)
        text.append(f"{d}_MXX0 [000.0000-000.1000]: [LAUGHTER]")  # a line of another form, not read
        (session / "dialog" / "EmoEvaluation").mkdir(parents=True, exist_ok=True)
        (session / "dialog" / "EmoEvaluation" / f"{d}.txt").write_text("\n".join(emo) + "\n")
        (session / "dialog" / "transcriptions").mkdir(parents=True, exist_ok=True)
        (session / "dialog" / "transcriptions" / f"{d}.txt").write_text("\n".join(text) + "\n")
        seconds = 1.0 + 1.2 * len(utts) - 0.5
        if d == short_dialog:
            seconds = 1.5  # the second utterance's middle (2.2 s) is after the last frame: skipped, not replaced
        write_video(session / "dialog" / "avi" / "DivX" / f"{d}.avi", seconds, "mpeg4")
        (session / "dialog" / "avi" / "DivX" / f"._{d}.avi").write_bytes(b"\x00\x05\x16\x07 mac metadata")
        if d == cut_dialog:  # a ramp: the sample at time t is t / 10, so a cut names where it was taken
            (session / "dialog" / "wav").mkdir(parents=True)
            t = np.arange(int((seconds + 1) * 16000)) / 16000
            sf.write(str(session / "dialog" / "wav" / f"{d}.wav"), t / 10, 16000, subtype="PCM_16")
    wav = root / f"Session{int(corrupt[3:5])}" / "sentences" / "wav" / corrupt.rsplit("_", 1)[0] / f"{corrupt}.wav"
    wav.write_bytes(b"RIFF\x10\x00\x00\x00WAVE not really audio")
    short = chosen[short_dialog][1][0]
    return root, chosen, spans, {"cut": cut_dialog, "corrupt": corrupt, "short": short,
                                 "disagree": chosen[dialogs[3]][0][0]}


@pytest.fixture(scope="module")
def prepared(release, tmp_path_factory):
    root, _, _, _ = release
    out = tmp_path_factory.mktemp("iemocap-out") / "prepared"
    lines: list[str] = []
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("POLYMODAL_PREPARE_WORKERS", "1")
        report = prepare("iemocap", root.parent, out, lines.append)
    return out, report, lines


def test_prepare_iemocap_reports_skips_and_serves_three_modalities(release, prepared, monkeypatch):
    root, chosen, spans, special = release
    out, report, lines = prepared
    n = sum(len(v) for v in chosen.values())
    assert report["utterances"] == n - 2 and report["skipped"] == 2 and report["missing"] == 3318 + 1107 - n
    assert report["label_disagreements"] == 1
    text = "\n".join(lines)
    assert "1 listed label(s) differ from EmoEvaluation" in text and special["disagree"] in text
    manifest = json.loads((out / "manifest.json").read_text())
    skipped = {s["utterance"]: s["reason"] for s in manifest["skipped"]}
    assert "unreadable audio" in skipped[special["corrupt"]]
    assert "after the video's last frame" in skipped[special["short"]]
    assert any(f"skipped {special['corrupt']}" in line for line in lines)
    assert not manifest["complete"] and "protocol" in manifest["differences"]
    assert manifest["protocol"]["split_source"]["lists"]["mla/my_train_iemo.txt"]["rows"] == 3318
    assert manifest["protocol"]["split_source"]["audio_cut_from_dialog_wav"] == len(chosen[special["cut"]])
    assert all(m["reason"].startswith(("no Session", "not in Session")) for m in manifest["missing"])
    assert sum(manifest["counts"]["mla"]["train"].values()) + sum(manifest["counts"]["mla"]["test"].values()) == n - 2
    items = json.loads((out / "items.json").read_text())
    ids = [it[0] for it in items]
    assert special["corrupt"] not in ids and special["short"] not in ids
    listed = {u: (label, split) for u, label, split in iemo.read_protocol()[0]}
    assert all(listed[it[0]] == (it[1], it[2]["mla"]) for it in items)  # the list's labels and splits
    texts = json.loads((out / "texts.json").read_text())
    assert texts[0] == f"words of {ids[0].lower()}, said once."
    images = np.load(out / "images.npy", mmap_mode="r")
    times = np.load(out / "frame_times.npy")
    assert images.shape == (n - 2, 3, 224, 224) and images.dtype == np.uint8
    for row, utt in enumerate(ids):  # the frame on screen at the middle of the span: frame floor(t * 30)
        middle = sum(spans[utt]) / 2
        frame = int(np.floor(middle * FPS + 1e-6))
        assert abs(times[row] - frame / FPS) < 1e-3, (utt, times[row], middle)
        assert abs(int(images[row, 0, 100, 100]) - 3 * frame % 256) <= 6
    offsets = np.load(out / "audio_offsets.npy")
    lengths = np.diff(offsets)
    assert np.all(np.abs(lengths - 16000) <= 2)  # every span is 1 s
    for utt, _, _ in chosen[special["cut"]]:  # cut from the dialog's wav at the utterance's span
        row = ids.index(utt)
        audio = np.load(out / "audio.npy", mmap_mode="r")[offsets[row]:offsets[row + 1]] / 32767.0
        np.testing.assert_allclose(audio[[0, -1]], np.array(spans[utt]) / 10, atol=1e-3)

    with pytest.raises(ValueError, match="allow_incomplete"):
        build_dataset("iemocap", "test", root=str(out))
    test = build_dataset("iemocap", "test", root=str(out), allow_incomplete=True, image_size=32, audio_seconds=2)
    assert len(test) == sum(1 for it in items if it[2]["mla"] == "test")
    s = test[0]
    assert s["inputs"]["audio"].shape == (32000,) and s["inputs"]["image"].shape == (3, 32, 32)
    assert s["inputs"]["text"].shape == (64,) and s["inputs"]["text"][0] == 1  # bos, hashed words
    assert torch.all(s["inputs"]["audio"][16002:] == 0)  # 1 s utterance, zero-padded to 2 s
    assert test.num_outputs == 4 and test.class_names == ("Angry", "Happy", "Neutral", "Sad")
    assert test.schema[0].extra["logmel"] == {"n_fft": 400, "hop_length": 160, "n_mels": 128}
    assert test.provenance["manifest"]["protocol"]["dataset"] == "IEMOCAP"
    train = build_dataset("iemocap", "train", root=str(out), allow_incomplete=True, image_size=32)
    val = build_dataset("iemocap", "val", root=str(out), allow_incomplete=True)
    assert not set(train.item_ids) & set(val.item_ids) and not set(train.item_ids) & set(test.item_ids)
    batch = train.collate_fn()([train[i] for i in range(len(train))])
    batch.validate(train.schema)
    assert prepare("iemocap", root.parent, out, print)["reused"] is True  # nothing redone


def test_missing_utterances_are_reported_per_class_before_writing(release, tmp_path):
    root, chosen, _, _ = release
    lines: list[str] = []
    plan, _ = iemo.plan(root.parent, lines.append)
    n = sum(len(v) for v in chosen.values())
    assert len(plan.items) == n and len(plan.missing) == 4425 - n
    text = "\n".join(lines)
    rows, _ = iemo.read_protocol()
    neutral = sum(1 for _, label, split in rows if label == 2 and split == "train")
    assert neutral == 1014
    found = sum(1 for us in chosen.values() for _, label, split in us if label == 2 and split == "train")
    assert re.search(rf"mla train +Neutral: protocol +{neutral}, found +{found}\n", text)
    assert "skipped; the prepared copy is marked incomplete" in text
    assert not (tmp_path / "iemocap").exists()


def test_resume_redoes_only_missing_dialogs(release, tmp_path, monkeypatch):
    root, _, _, _ = release
    monkeypatch.setenv("POLYMODAL_PREPARE_WORKERS", "1")
    plan, protocol = iemo.plan(root.parent, print)
    first = sorted(plan.items, key=lambda u: (u.dialog, u.utt_id))
    dialog = first[0].dialog
    utts = [u for u in first if u.dialog == dialog]
    s = iemo.UtteranceSettings()
    out = tmp_path / "o"
    (out / ".parts").mkdir(parents=True)
    part = out / ".parts" / f"{dialog}.{iemo._fingerprint(dialog, utts, s)}.npz"
    assert iemo._dialog_work((dialog, utts, s, str(part)))[0] == dialog
    lines: list[str] = []
    iemo.prepare_utterances(plan, out, protocol, lines.append)
    dialogs = len({u.dialog for u in plan.items})
    assert any("1 dialogs already prepared" in line and f"{dialogs - 1} to decode" in line for line in lines)


def test_wrong_layout_and_absent_data_are_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="sail.usc.edu.*research use only"):
        prepare("iemocap", tmp_path, tmp_path / "out", print)
    flat = tmp_path / "flat" / "Session1" / "wav"
    flat.mkdir(parents=True)
    write_wav(flat / "Ses01F_impro01_F000.wav", 0.5, 16000)
    with pytest.raises(FileNotFoundError, match=r"Session1 has no dialog/EmoEvaluation/.*SessionK/dialog/avi/DivX"):
        prepare("iemocap", tmp_path / "flat", tmp_path / "out", print)
    bad = tmp_path / "bad" / "Session1" / "dialog"
    (bad / "EmoEvaluation").mkdir(parents=True)
    (bad / "transcriptions").mkdir()
    (bad / "EmoEvaluation" / "Ses01F_impro01.txt").write_text("[6.29 8.23] Ses01F_impro01_F000 neu\n")
    with pytest.raises(ValueError, match=r"Ses01F_impro01.txt, line 1: .*expected '\[start - end\]"):
        prepare("iemocap", tmp_path / "bad", tmp_path / "out", print)
    assert not (tmp_path / "out").exists()
    with pytest.raises(FileNotFoundError, match="prepared data is absent"):
        build_dataset("iemocap", "val", root=str(tmp_path))
