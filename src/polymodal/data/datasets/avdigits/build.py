"""Build the ``avdigits-v1`` artifact from the raw FSDD recordings and MNIST t10k files.

    python -m polymodal.data.datasets.avdigits build [--root RAW] [--out DIR]
    python -m polymodal.data.datasets.avdigits verify [--artifact-dir DIR]

The artifact holds the clean signals once: one FLAC file (int16 PCM, 8 kHz) with the first
8000 samples of every recording concatenated in file-name order, its index (CSV), the MNIST
t10k files as published, ``ATTRIBUTION.md`` and ``manifest.json`` (sha256 of every file, the
recipe checksums, sources and licenses). Every byte is a function of the raw data (no dates),
so a rebuild reproduces the manifest; the FLAC bytes also depend on the libsndfile version,
which the manifest records beside the sha256 of the decoded samples.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import re
import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import soundfile as sf

from polymodal.data.datasets.avdigits import artifact
from polymodal.data.datasets.avdigits.artifact import (
    ARTIFACT_VERSION,
    AUDIO_FILE,
    BUILD_COMMAND,
    CLIP_SAMPLES,
    INDEX_FILE,
    MANIFEST_FILE,
    MNIST_IMAGES,
    MNIST_LABELS,
    SAMPLE_RATE,
    load_artifact,
    read_idx_gz,
    sha256_file,
)
from polymodal.data.datasets.avdigits.recipe import RECIPE_CHECKSUMS, SEEDS, build_recipe, recipe_checksums
from polymodal.data.io import read_audio
from polymodal.paths import artifacts_dir, resolve_data_root

MNIST_MD5 = {MNIST_IMAGES: "9fb629c4189551a2d022fa330f9573f3", MNIST_LABELS: "ec29112dd5afa0611ce80d1b7f02629c"}
_NAME = re.compile(r"^(\d)_([a-z]+)_(\d+)\.wav$")
INDEX_COLUMNS = ("file", "digit", "speaker", "recording", "offset", "length", "source_samples")
SOURCES = [
    {
        "name": "Free Spoken Digit Dataset (FSDD)",
        "url": "https://github.com/Jakobovski/free-spoken-digit-dataset",
        "license": "CC BY-SA 4.0",
        "license_url": "https://creativecommons.org/licenses/by-sa/4.0/",
        "files": [AUDIO_FILE, INDEX_FILE],
    },
    {
        "name": "MNIST database of handwritten digits, test set (Yann LeCun, Corinna Cortes, Christopher J.C. Burges)",
        "url": "http://yann.lecun.com/exdb/mnist/",
        "license": "CC BY-SA 3.0",
        "license_url": "https://creativecommons.org/licenses/by-sa/3.0/",
        "files": [MNIST_IMAGES, MNIST_LABELS],
    },
]
ATTRIBUTION = f"""# AV-digits artifact ({ARTIFACT_VERSION}): attribution and licenses

This folder redistributes parts of two public datasets, under their licenses.

## Free Spoken Digit Dataset (FSDD)

- Source: https://github.com/Jakobovski/free-spoken-digit-dataset (Zohar Jackson and contributors)
- License: Creative Commons Attribution-ShareAlike 4.0 International (CC BY-SA 4.0),
  https://creativecommons.org/licenses/by-sa/4.0/
- Files here: `{AUDIO_FILE}`, `{INDEX_FILE}`
- Changes: each of the 3,000 recordings (8 kHz mono, 16-bit) is cut to its first 8,000 samples
  (1 s; shorter recordings are kept whole) and all are concatenated in file-name order into one
  lossless FLAC file; `{INDEX_FILE}` gives each recording's file name, digit, speaker,
  recording index, offset and length in that file, and its original length. The sample values are
  unchanged. These adapted files are shared under the same license (CC BY-SA 4.0).

## MNIST (test set, t10k)

- Source: the MNIST database of handwritten digits, Yann LeCun, Corinna Cortes and
  Christopher J.C. Burges, http://yann.lecun.com/exdb/mnist/
- License: Creative Commons Attribution-ShareAlike 3.0 (CC BY-SA 3.0),
  https://creativecommons.org/licenses/by-sa/3.0/
- Files here: `{MNIST_IMAGES}`, `{MNIST_LABELS}`, byte-identical to the published files
  (md5 {MNIST_MD5[MNIST_IMAGES]} and {MNIST_MD5[MNIST_LABELS]}).

## How the AV-digits variants are made from these files

Clips and images are paired by digit with fixed random seeds; noisy variants add noise at load
time. The recipe and its checksums are in the project's benchmark documentation; rebuild this
folder with `{BUILD_COMMAND}`.
"""


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes(), usedforsecurity=False).hexdigest()


def read_recordings(root: Path) -> tuple[list[dict[str, object]], np.ndarray]:
    """Index rows (file-name order) and the concatenated int16 samples of the FSDD recordings."""
    folder = root / "fsdd" / "recordings"
    names = sorted(p.name for p in folder.glob("*.wav")) if folder.is_dir() else []
    if len(names) != 3000:
        raise FileNotFoundError(
            f"expected the 3000 FSDD recordings in {folder}; found {len(names)} .wav files: set --root (or "
            "POLYMODAL_DATA) to the folder holding fsdd/recordings and mnist/"
        )
    rows, chunks, offset = [], [], 0
    for name in names:
        m = _NAME.match(name)
        if m is None:
            raise ValueError(f"FSDD file {folder / name}: expected a name like 3_theo_12.wav (digit_speaker_index)")
        info = sf.info(folder / name)
        if info.subtype != "PCM_16":
            raise ValueError(f"FSDD file {folder / name} is {info.subtype}; expected 16-bit PCM (PCM_16)")
        x, _ = read_audio(folder / name, sample_rate=SAMPLE_RATE)  # validates truncation, emptiness, rate
        pcm = np.round(x[: CLIP_SAMPLES].astype(np.float64) * 32768).astype(np.int16)  # exact for PCM_16
        rows.append(
            {"file": name, "digit": int(m[1]), "speaker": m[2], "recording": int(m[3]), "offset": offset,
             "length": len(pcm), "source_samples": len(x)}
        )  # fmt: skip
        chunks.append(pcm)
        offset += len(pcm)
    return rows, np.concatenate(chunks)


def build_artifact(root: str | Path | None = None, out: str | Path | None = None) -> Path:
    """Build the artifact from ``root`` (raw data folder) into ``out``; return ``out``."""
    raw = resolve_data_root(root)
    dest = Path(out) if out is not None else artifacts_dir() / ARTIFACT_VERSION
    dest.mkdir(parents=True, exist_ok=True)
    rows, pcm = read_recordings(raw)
    for name, md5 in MNIST_MD5.items():
        src = raw / "mnist" / name
        if not src.is_file():
            raise FileNotFoundError(f"MNIST file {src} is missing: set --root (or POLYMODAL_DATA) to the raw data folder")
        if _md5(src) != md5:
            raise ValueError(f"MNIST file {src} has md5 {_md5(src)}; expected {md5} (the published t10k file): re-copy it")
        shutil.copyfile(src, dest / name)

    files = tuple(str(r["file"]) for r in rows)
    digits = np.array([r["digit"] for r in rows], dtype=np.int64)
    recordings = np.array([r["recording"] for r in rows], dtype=np.int64)
    labels = read_idx_gz(dest / MNIST_LABELS, 1).astype(np.int64)
    checksums = recipe_checksums(build_recipe(files, digits, recordings, labels), files)
    if checksums != RECIPE_CHECKSUMS:
        raise ValueError(f"raw data in {raw} give recipe checksums {checksums}; expected {RECIPE_CHECKSUMS}")

    sf.write(dest / AUDIO_FILE, pcm, SAMPLE_RATE, format="FLAC", subtype="PCM_16", compression_level=1.0)
    with (dest / INDEX_FILE).open("w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=INDEX_COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    (dest / "ATTRIBUTION.md").write_text(ATTRIBUTION, encoding="utf-8", newline="\n")

    names = ["ATTRIBUTION.md", AUDIO_FILE, INDEX_FILE, MNIST_IMAGES, MNIST_LABELS]
    manifest = {
        "artifact": ARTIFACT_VERSION,
        "build_command": BUILD_COMMAND,
        "files": {n: {"sha256": sha256_file(dest / n), "bytes": (dest / n).stat().st_size} for n in names},
        "audio": {
            "file": AUDIO_FILE,
            "sample_rate": SAMPLE_RATE,
            "clips": len(rows),
            "samples": len(pcm),
            "max_clip_samples": CLIP_SAMPLES,
            "pcm_sha256": hashlib.sha256(pcm.astype("<i2").tobytes()).hexdigest(),  # decoded samples
            "libsndfile": sf.__libsndfile_version__,
        },
        "mnist_md5": MNIST_MD5,
        "recipe_checksums": checksums,
        "seeds": SEEDS,
        "sources": SOURCES,
        "license": "CC BY-SA 4.0 (FSDD-derived files), CC BY-SA 3.0 (MNIST files); see ATTRIBUTION.md",
    }
    (dest / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    artifact.ARTIFACTS.pop(dest.resolve(), None)  # a rebuilt folder is verified again on next load
    return dest


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m polymodal.data.datasets.avdigits", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    build = sub.add_parser("build", help="build the artifact from the raw FSDD and MNIST files")
    build.add_argument("--root", default=None, help="raw data folder (default: $POLYMODAL_DATA or ../shared/data)")
    build.add_argument("--out", default=None, help=f"output folder (default: the package's artifacts/{ARTIFACT_VERSION})")
    verify = sub.add_parser("verify", help="check an artifact's sha256s and recipe checksums")
    verify.add_argument("--artifact-dir", default=None, help="artifact folder (default: the shipped one)")
    args = parser.parse_args(argv)
    if args.command == "build":
        dest = build_artifact(args.root, args.out)
        size = sum(p.stat().st_size for p in dest.iterdir() if p.is_file())
        print(f"wrote {dest} ({size / 1e6:.1f} MB)")
    else:
        art = load_artifact(args.artifact_dir)
        print(f"{art.path}: {len(art.files)} clips, sha256 and recipe checksums OK {RECIPE_CHECKSUMS}")
    return 0
