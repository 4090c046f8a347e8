"""The raw FSDD and MNIST files, for the tests that read them, on any clone.

Where the raw data folder (``$POLYMODAL_DATA``, else ``../shared/data`` beside the checkout) holds the
3,000 FSDD recordings and the MNIST t10k files, the tests read it. Otherwise the files are written once
per test session into a temporary folder, in the same layout, from the AV-digits artifact that ships with
the package (``src/polymodal/artifacts/avdigits-v1``):

    fsdd/recordings/<digit>_<speaker>_<index>.wav   8 kHz mono 16-bit PCM WAV, one per recording
    mnist/t10k-images-idx3-ubyte.gz                 byte-identical to the published file
    mnist/t10k-labels-idx1-ubyte.gz                 byte-identical to the published file

The artifact keeps the first 8,000 samples (1 s) of every recording, which are the recording's own
samples; 2,980 of the 3,000 recordings are that short and are written back exactly. The 20 longer ones
lost their tail in the artifact: they are written with their real first second followed by silence up
to their original length (the index's ``source_samples``), so that file lengths, and the artifact
rebuilt from these files, match the originals. Tests that read past the first second of a recording
would see that silence; none does.
"""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from polymodal.data.datasets import avdigits as av
from polymodal.paths import default_data_root

FSDD_RECORDINGS = 3000

_factory: pytest.TempPathFactory | None = None  # set by the session fixture in tests/conftest.py
_written: Path | None = None  # the folder written in this session, if any


def has_raw_data(root: Path) -> bool:
    """Whether ``root`` holds every FSDD recording and both MNIST t10k files."""
    folder = root / "fsdd" / "recordings"
    if not folder.is_dir() or not all((root / "mnist" / n).is_file() for n in (av.MNIST_IMAGES, av.MNIST_LABELS)):
        return False
    return sum(1 for _ in folder.glob("*.wav")) == FSDD_RECORDINGS


def write_raw_data(dest: Path, artifact_dir: Path | None = None) -> Path:
    """Write the raw FSDD / MNIST layout under ``dest`` from the shipped artifact; return ``dest``."""
    art = av.load_artifact(artifact_dir)
    with (art.path / av.INDEX_FILE).open(newline="", encoding="utf-8") as f:
        source_samples = [int(r["source_samples"]) for r in csv.DictReader(f)]
    recordings = dest / "fsdd" / "recordings"
    recordings.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(art.files):
        n = int(art.lengths[i])
        pcm = np.zeros(source_samples[i], dtype=np.int16)  # (samples,) silence after the kept first second
        pcm[:n] = art.clips[i, :n]
        sf.write(recordings / name, pcm, av.SAMPLE_RATE, format="WAV", subtype="PCM_16")
    (dest / "mnist").mkdir(exist_ok=True)
    for name in (av.MNIST_IMAGES, av.MNIST_LABELS):
        shutil.copyfile(art.path / name, dest / "mnist" / name)
    return dest


def raw_data_root() -> Path:
    """The raw data folder when it is complete, else the files written from the artifact (once)."""
    global _written
    root = default_data_root()
    if has_raw_data(root):
        return root
    if _written is None:
        if _factory is None:
            raise RuntimeError("raw_data_root() writes into the test session's temporary folder: run it under pytest")
        _written = write_raw_data(_factory.mktemp("rawdata"))
    return _written
