"""docs/search.md's worked examples run as written: the bash block (CLI, real FSDD recordings) and the
Python block (label bridge over real photos); the screenshot it shows exists."""

import contextlib
import io
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from polymodal.encoders.pretrained import is_available
from polymodal.paths import default_data_root

DOC = Path(__file__).resolve().parents[2] / "docs" / "search.md"


def blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", DOC.read_text(), flags=re.S)


def test_the_bash_example_runs(tmp_path, raw_data):
    (script,) = blocks("bash")
    env = {**os.environ, "POLYMODAL_DATA": str(raw_data), "OMP_NUM_THREADS": "1",
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    done = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert "30 added" in lines[0] and "30 files, 30 vectors (flat)" in lines[0]
    hits = lines[1:4]
    assert hits[0].split() == ["1.0000", str((tmp_path / "digits" / "1_theo_4.wav").resolve())]
    assert all(float(h.split()[0]) < 1.0 for h in hits[1:])
    assert "1 file(s) removed" in lines[4]
    assert re.search(r"files\s+29", done.stdout) and re.search(r"audio-logmel@v1", done.stdout)
    shown = re.search(r"`search` prints.*?```\n(.*?)```", DOC.read_text(), flags=re.S).group(1).splitlines()
    assert [Path(line.split()[1]).name for line in shown][0] == "1_theo_4.wav"
    if raw_data == default_data_root():  # the real recordings: the docs show the real output
        assert [(line.split()[0], Path(line.split()[1]).name) for line in shown] == [
            (h.split()[0], Path(h.split()[1]).name) for h in hits
        ]


@pytest.mark.skipif(not (is_available() and (default_data_root() / "imagenet_classes.txt").is_file()),
                    reason="needs the pretrained extra and imagenet_classes.txt")
def test_the_python_example_runs(tmp_path, monkeypatch):
    (code,) = blocks("python")
    monkeypatch.chdir(tmp_path)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, str(DOC), "exec"), {})
    lines = out.getvalue().splitlines()
    assert lines[0] == "3 files added"
    assert lines[1].split()[1] == str((tmp_path / "photos" / "flower.jpg").resolve())


def test_the_screenshot_is_there():
    assert "](images/search.png)" in DOC.read_text()
    png = DOC.parent / "images" / "search.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
