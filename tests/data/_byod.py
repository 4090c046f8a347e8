"""Small real-data tables for the bring-your-own-data tests: FSDD recordings (WAV, as shipped in the
shared data) and MNIST digits exported to PNG, plus a text column and two numeric columns."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import soundfile as sf
from PIL import Image

from polymodal.data.datasets.avdigits import read_idx_gz

from .._rawdata import raw_data_root

HEADER = "sample,audio,image,note,loudness,ink,speaker,digit"


def shared_data() -> Path:
    """The raw FSDD / MNIST folder: the real one, or the same files written from the shipped artifact."""
    return raw_data_root()


def write_digits(folder: Path, per_class: int = 4, speakers: tuple[str, ...] = ("george", "jackson", "lucas")) -> list[dict]:
    """Copy nothing: audio cells point at the shared FSDD wavs (absolute paths); images are MNIST test digits
    written as PNG into ``folder/img``. Returns one dict per row (the manifest is written by the caller)."""
    root = shared_data()
    images = read_idx_gz(root / "mnist" / "t10k-images-idx3-ubyte.gz", 3)
    labels = read_idx_gz(root / "mnist" / "t10k-labels-idx1-ubyte.gz", 1)
    (folder / "img").mkdir(parents=True, exist_ok=True)
    rows = []
    for d in range(10):
        mnist_rows = np.flatnonzero(labels == d)
        for k in range(per_class):
            spk = speakers[k % len(speakers)]
            wav = root / "fsdd" / "recordings" / f"{d}_{spk}_{k}.wav"
            x, _ = sf.read(wav, dtype="float32")
            png = folder / "img" / f"{d}_{k}.png"
            Image.fromarray(images[mnist_rows[k]]).save(png)
            rows.append({"sample": f"{d}-{k}", "audio": str(wav), "image": f"img/{d}_{k}.png",
                         "note": f"recorded by {spk} in take {k} of the session",
                         "loudness": f"{20 * np.log10(np.sqrt(np.mean(x ** 2)) + 1e-8):.3f}",
                         "ink": f"{images[mnist_rows[k]].mean() / 255:.4f}", "speaker": spk, "digit": str(d)})
    return rows


def write_csv(path: Path, rows: list[dict], columns: list[str] | None = None) -> Path:
    """Write ``rows`` as a CSV (cells missing from a row are empty) through the csv module."""
    columns = columns or list(rows[0])
    with path.open("w", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows([str(r.get(c, "")) for c in columns] for r in rows)
    return path
