"""`polymodal align` through the real CLI entry point, on tiny speech and handwriting CTC runs trained here by
`polymodal train` (6 strings, 1 epoch: the alignments are poor, the command's contract is what is checked): the
monotonic spans of an audio file against a text, of a digitstrings sample against its row and its digits, and
clear errors for a run of another kind, an empty or over-long audio, a row of the wrong shape and an unknown
modality."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import soundfile as sf
import yaml
from PIL import Image

from polymodal.cli import main

TINY = ["data.options.strings=6", "trainer.max_epochs=1", "trainer.progress=false", "model.fusion_args.hidden=8",
        "model.width=8"]


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    out = tmp_path_factory.mktemp("align-runs")
    assert main(["train", "configs/digitstrings_ctc.yaml", f"out_dir={out}", "name=speech", *TINY,
                 "model.encoders.audio.channels=8"]) == 0
    assert main(["train", "configs/digitstrings_ctc_image.yaml", f"out_dir={out}", "name=hand", *TINY,
                 "model.encoders.image.channels=[4,8]"]) == 0
    return out / "speech", out / "hand"


def _wav(path, seconds: float, amplitude: float = 0.3):
    t = np.arange(int(8000 * seconds)) / 8000
    sf.write(path, (amplitude * np.sin(2 * np.pi * 440 * t)).astype(np.float32), 8000, subtype="PCM_16")
    return path


def _check_spans(result: dict, n: int, duration_ms: float) -> None:
    spans = result["positions"]
    assert [s["position"] for s in spans] == list(range(1, n + 1))
    edges = [x for s in spans for x in (s["start_ms"], s["end_ms"])]
    assert edges == sorted(edges) and edges[-1] <= duration_ms + result["frame_ms"]  # monotonic, inside the audio
    assert [s["end_ms"] for s in spans[:-1]] == result["boundaries_ms"]
    labels = [k for k in result["frame_labels"] if k >= 0]
    assert labels == sorted(labels) and set(labels) <= set(range(n))


def test_align_an_audio_file_to_a_text(runs, tmp_path, capsys):
    speech, _ = runs
    wav = _wav(tmp_path / "s.wav", 2.0)
    code, out, err = run(capsys, "align", speech, "--audio", wav, "--to", "text:482", "--json")
    assert code == 0, err
    result = json.loads(out)
    assert result["digits"] == "482" and result["method"] == "ctc" and result["frame_ms"] == 80.0
    assert result["duration_ms"] == 2000.0 and len(result["frame_labels"]) >= 2000 / 80
    _check_spans(result, 3, 2000.0)
    code, out, err = run(capsys, "align", speech, "--audio", wav, "--to", "text:482", "--shift", 1, "--json")
    assert code == 0, err
    shifted = json.loads(out)
    last = len(result["frame_labels"]) * 80.0
    assert shifted["boundaries_ms"] == [min(b + 80.0, last) for b in result["boundaries_ms"]]
    _check_spans(shifted, 3, 2000.0)
    code, out, err = run(capsys, "align", speech, "--audio", wav, "--to", "text:482", "--method", "dtw", "--radius", 1)
    assert code == 0, err
    assert "3 positions (482) over 2.00 s of audio" in out and "method dtw" in out and "boundaries (ms):" in out


def test_align_a_digitstrings_sample_to_its_row_and_to_its_digits(runs, capsys):
    from polymodal.data.base import build_dataset

    speech, hand = runs
    ds = build_dataset("digitstrings", "val")
    n = int(ds.lengths[2])
    code, out, err = run(capsys, "align", speech, "--split", "val", "--index", 2, "--image-run", hand, "--json")
    assert code == 0, err
    result = json.loads(out)
    assert len(result["digits"]) == n and result["text"] == ds.texts[2]  # the row's positions, read by the tiny run
    _check_spans(result, n, 1000 * int(ds.audio_samples[2]) / 8000)
    assert len(result["boundary_error_ms"]) == n - 1 and result["mean_boundary_error_ms"] >= 0
    truth = [[round(a / 8, 1), round(b / 8, 1)] for a, b in ds.boundaries[2, :n]]
    assert result["true_segments_ms"] == truth
    code, out, err = run(capsys, "align", speech, "--split", "val", "--index", 2, "--to", "text")
    assert code == 0, err
    assert f"{n} positions ({ds.texts[2]})" in out and "boundary error to the silence (ms)" in out


def test_align_an_image_file(runs, tmp_path, capsys):
    from polymodal.data.base import build_dataset

    speech, hand = runs
    ds = build_dataset("digitstrings", "val", strings=4, modalities=["image"])
    n = int(ds.lengths[0])
    png = tmp_path / "row.png"
    Image.fromarray((255 * ds.tensor("image")[0, 0, :, : 28 * n].numpy()).astype(np.uint8)).save(png)
    wav = _wav(tmp_path / "s.wav", 3.0)
    code, out, err = run(capsys, "align", speech, "--audio", wav, "--to", f"image:{png}", "--image-run", hand, "--json")
    assert code == 0, err
    _check_spans(json.loads(out), n, 3000.0)


def test_align_refuses_runs_of_another_kind(runs, tmp_path, capsys):
    speech, hand = runs
    wav = _wav(tmp_path / "s.wav", 1.0)
    code, _, err = run(capsys, "align", hand, "--audio", wav, "--to", "text:12")
    assert code == 1 and "reads ['image']" in err and "modality alone" in err
    code, _, err = run(capsys, "align", speech, "--split", "val", "--index", 0, "--image-run", speech)
    assert code == 1 and "--image-run" in err and "reads ['audio']" in err
    other = tmp_path / "concat"
    shutil.copytree(speech, other)
    cfg = yaml.safe_load((other / "config.yaml").read_text())
    cfg["model"]["fusion"] = "concat"
    (other / "config.yaml").write_text(yaml.safe_dump(cfg))
    code, _, err = run(capsys, "align", other, "--audio", wav, "--to", "text:12")
    assert code == 1 and "model.fusion='concat'" in err and "no per-frame digit posteriors" in err
    code, _, err = run(capsys, "align", tmp_path / "nothing", "--audio", wav, "--to", "text:12")
    assert code == 1 and "not a training run folder" in err
    gen = tmp_path / "gen"
    gen.mkdir()
    (gen / "generator.json").write_text("{}")
    code, _, err = run(capsys, "align", gen, "--audio", wav, "--to", "text:12")
    assert code == 1 and "is a generator run" in err


def test_align_refuses_empty_and_over_long_audio_and_bad_rows(runs, tmp_path, capsys):
    speech, hand = runs
    empty = tmp_path / "empty.wav"
    sf.write(empty, np.zeros(0, np.float32), 8000, subtype="PCM_16")
    code, _, err = run(capsys, "align", speech, "--audio", empty, "--to", "text:12")
    assert code == 1 and "empty" in err
    code, _, err = run(capsys, "align", speech, "--audio", _wav(tmp_path / "long.wav", 9.0), "--to", "text:12")
    assert code == 1 and "9.00 s long" in err and "at most 7.90 s" in err
    code, _, err = run(capsys, "align", speech, "--audio", _wav(tmp_path / "z.wav", 1.0, 0.0), "--to", "text:12")
    assert code == 1 and "is silent" in err
    code, _, err = run(capsys, "align", speech, "--audio", _wav(tmp_path / "short.wav", 0.1), "--to", "text:1234567")
    assert code == 1 and "too few for 7 digit positions" in err
    wav = _wav(tmp_path / "s.wav", 1.0)
    bad = tmp_path / "bad.png"
    Image.fromarray(np.full((30, 50), 255, np.uint8)).save(bad)
    code, _, err = run(capsys, "align", speech, "--audio", wav, "--to", f"image:{bad}", "--image-run", hand)
    assert code == 1 and "has shape (30, 50)" in err and "multiple of 28" in err
    black = tmp_path / "black.png"
    Image.fromarray(np.zeros((28, 56), np.uint8)).save(black)
    code, _, err = run(capsys, "align", speech, "--audio", wav, "--to", f"image:{black}", "--image-run", hand)
    assert code == 1 and "is empty (no ink" in err
    code, _, err = run(capsys, "align", speech, "--audio", wav, "--to", "text:")
    assert code == 1 and "is empty" in err
    code, _, err = run(capsys, "align", speech, "--audio", wav, "--to", "text:12345678")
    assert code == 1 and "at most 7" in err


def test_align_refuses_an_unknown_modality_and_bad_options(runs, tmp_path, capsys):
    speech, hand = runs
    wav = _wav(tmp_path / "s.wav", 1.0)
    code, _, err = run(capsys, "align", speech, "--audio", wav, "--to", "video:clip.mp4")
    assert code == 1 and "unknown modality 'video'" in err and "image:ROW.png" in err
    code, _, err = run(capsys, "align", speech, "--audio", wav, "--to", f"image:{wav}")
    assert code == 1 and "needs --image-run" in err
    code, _, err = run(capsys, "align", speech, "--audio", wav, "--to", "text:12", "--radius", 2)
    assert code == 1 and "--method dtw" in err
    code, _, err = run(capsys, "align", speech, "--split", "val")
    assert code == 1 and "needs --index" in err
    code, _, err = run(capsys, "align", speech, "--split", "val", "--index", 300, "--to", "text")
    assert code == 1 and "holds 300 strings" in err
    code, _, err = run(capsys, "align", speech, "--audio", wav)
    assert code == 1 and "--audio needs --to" in err
