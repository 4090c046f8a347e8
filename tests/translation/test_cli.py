"""`polymodal generate` and `polymodal translate` through the real CLI entry point: a grid of samples from a saved
(tiny, untrained) generator run, and a clear error for a run of another kind, an empty or over-long input, an
unknown modality and a bad sample count."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch
from PIL import Image

from polymodal.cli import main
from polymodal.translation.generate import GENERATORS, MAX_TEXT, AudioDigitNet, GeneratorRun


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def gen_run(tmp_path):
    torch.manual_seed(0)
    cv = GENERATORS.create("cvae", conditions={"audio": 8, "text": 10}, latent=2, hidden=16, cond=8)
    info = {"model": {"name": "cvae", "conditions": {"audio": 8, "text": 10}, "latent": 2, "hidden": 16, "cond": 8,
                      "n_mels": 40, "audio_channels": 8}}
    GeneratorRun(cv.eval(), AudioDigitNet(dim=8, channels=8).eval(), info).save(tmp_path / "gen")
    return tmp_path / "gen"


def _wav(path, seconds: float, amplitude: float = 0.3):
    t = np.arange(int(8000 * seconds)) / 8000
    sf.write(path, (amplitude * np.sin(2 * np.pi * 440 * t)).astype(np.float32), 8000, subtype="PCM_16")
    return path


def test_generate_writes_a_grid_from_text_and_from_audio(gen_run, tmp_path, capsys):
    code, out, err = run(capsys, "generate", gen_run, "--condition", "text:307", "--n", 2, "--out", tmp_path / "t.png")
    assert code == 0, err
    assert "3 character(s), 2 sample(s) each" in out
    assert Image.open(tmp_path / "t.png").size == ((3 * 30 + 2) * 2, (2 * 30 + 2) * 2)  # a row per sample
    wav = _wav(tmp_path / "five.wav", 0.6)
    code, out, err = run(capsys, "generate", gen_run, "--condition", f"audio:{wav}", "--n", 4)
    assert code == 0, err
    assert Image.open(gen_run / "samples.png").size == ((4 * 30 + 2) * 2, (1 * 30 + 2) * 2)
    first = (gen_run / "samples.png").read_bytes()
    assert run(capsys, "generate", gen_run, "--condition", f"audio:{wav}", "--n", 4)[0] == 0
    assert (gen_run / "samples.png").read_bytes() == first  # seeded: the same picture again


def test_generate_refuses_a_run_of_another_kind(tmp_path, capsys):
    other = tmp_path / "classifier"
    other.mkdir()
    (other / "config.yaml").write_text("name: classifier\n")
    code, _, err = run(capsys, "generate", other, "--condition", "text:12")
    assert code == 1 and "is not a generator run" in err and "training run of `polymodal train`" in err
    code, _, err = run(capsys, "generate", tmp_path / "missing", "--condition", "text:12")
    assert code == 1 and "does not exist" in err and "--train" in err


def test_generate_refuses_empty_and_over_long_inputs(gen_run, tmp_path, capsys):
    code, _, err = run(capsys, "generate", gen_run, "--condition", "text:")
    assert code == 1 and "is empty" in err
    code, _, err = run(capsys, "generate", gen_run, "--condition", "text:" + "7" * (MAX_TEXT + 1))
    assert code == 1 and f"{MAX_TEXT + 1} characters; at most {MAX_TEXT} digits" in err
    code, _, err = run(capsys, "generate", gen_run, "--condition", "text:12b")
    assert code == 1 and "only the digits 0-9" in err
    long_wav = _wav(tmp_path / "long.wav", 3.0)
    code, _, err = run(capsys, "generate", gen_run, "--condition", f"audio:{long_wav}")
    assert code == 1 and "3.00 s long" in err and "one spoken digit" in err
    silent = _wav(tmp_path / "silent.wav", 0.5, amplitude=0.0)
    code, _, err = run(capsys, "generate", gen_run, "--condition", f"audio:{silent}")
    assert code == 1 and "is silent" in err
    empty = tmp_path / "empty.wav"
    sf.write(empty, np.zeros(0, np.float32), 8000, subtype="PCM_16")
    code, _, err = run(capsys, "generate", gen_run, "--condition", f"audio:{empty}")
    assert code == 1 and "empty" in err
    code, _, err = run(capsys, "generate", gen_run, "--condition", f"audio:{tmp_path / 'nope.wav'}")
    assert code == 1 and "nope.wav" in err


def test_generate_refuses_an_unknown_modality_and_bad_options(gen_run, tmp_path, capsys):
    code, _, err = run(capsys, "generate", gen_run, "--condition", "video:clip.mp4")
    assert code == 1 and "unknown modality 'video'" in err and "audio or text" in err
    code, _, err = run(capsys, "generate", gen_run, "--condition", "4821")
    assert code == 1 and "expected MODALITY:VALUE" in err
    code, _, err = run(capsys, "generate", gen_run, "--condition", "text:12", "--n", 0)
    assert code == 1 and "--n 0" in err
    code, _, err = run(capsys, "generate", gen_run, "--condition", "text:12", "--out", tmp_path / "grid.jpg")
    assert code == 1 and "PNG" in err
    code, _, err = run(capsys, "generate", gen_run, "--train", "--out", tmp_path / "x.png")
    assert code == 1 and "--out goes with --condition" in err
    code, _, err = run(capsys, "generate", gen_run, "--train")
    assert code == 1 and "not empty" in err  # an existing run is never overwritten


def test_translate_refuses_runs_of_another_kind(gen_run, tmp_path, capsys):
    wav = _wav(tmp_path / "s.wav", 1.0)
    code, _, err = run(capsys, "translate", gen_run, "--audio", wav)
    assert code == 1 and "is a generator run" in err
    code, _, err = run(capsys, "translate", tmp_path / "nothing", "--audio", wav)
    assert code == 1 and "not a training run folder" in err
