"""The ``avdigits-v1`` artifact: the clean signals shipped with the package (built by
``python -m polymodal.data.datasets.avdigits build``, see :mod:`.build`), verified and decoded once per
process."""

from __future__ import annotations

import csv
import gzip
import hashlib
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from polymodal.data.datasets.avdigits.recipe import RECIPE_CHECKSUMS, Recipe, build_recipe, recipe_checksums
from polymodal.data.transforms import LogMelConfig
from polymodal.paths import artifacts_dir

ARTIFACT_VERSION = "avdigits-v1"
BUILD_COMMAND = "python -m polymodal.data.datasets.avdigits build"
SAMPLE_RATE = 8000  # Hz
CLIP_SAMPLES = 8000  # 1 s: only the first 8000 samples of each recording are used
# front end of the bench profile: 32 ms windows, 20 ms hop, 40 mel bands -> (40, 51) per clip;
# the modality carries it in ``extra["logmel"]`` so encoders fed waveforms compute the same features
AVDIGITS_LOGMEL = LogMelConfig(sample_rate=SAMPLE_RATE, n_fft=256, hop_length=160, n_mels=40)
IMAGE_SIZE = 28
AUDIO_FILE, INDEX_FILE, MANIFEST_FILE = "audio.flac", "audio_index.csv", "manifest.json"
MNIST_IMAGES, MNIST_LABELS = "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"


@dataclass(frozen=True)
class Artifact:
    """The verified ``avdigits-v1`` files, decoded. Clips follow FSDD file-name order."""

    path: Path
    manifest: dict[str, Any]
    files: tuple[str, ...]  # FSDD file names, e.g. "0_george_0.wav"
    digits: np.ndarray  # (3000,) int64 spoken digit
    speakers: tuple[str, ...]
    recordings: np.ndarray  # (3000,) int64 recording index
    clips: np.ndarray  # (3000, 8000) int16, zero-padded after ``lengths``
    lengths: np.ndarray  # (3000,) int64 samples kept per clip (<= 8000)
    images: np.ndarray  # (10000, 28, 28) uint8 MNIST t10k
    image_labels: np.ndarray  # (10000,) int64
    recipe: Recipe


ARTIFACTS: dict[Path, Artifact] = {}  # verified once per process (by folder)


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def read_idx_gz(path: Path, ndim: int) -> np.ndarray:
    """A gzipped IDX file of unsigned bytes (MNIST), as uint8 with the shape its header states."""
    data = gzip.decompress(path.read_bytes())
    if len(data) < 4 + 4 * ndim or data[:4] != bytes([0, 0, 8, ndim]):
        raise ValueError(f"{path} is not a {ndim}-d uint8 IDX file (magic {data[:4]!r}); rebuild with `{BUILD_COMMAND}`")
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    body = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if body.size != math.prod(shape):
        raise ValueError(f"{path} holds {body.size} values; its header promises {shape}; rebuild with `{BUILD_COMMAND}`")
    return body.reshape(shape)



def _verify_files(path: Path, manifest: dict[str, Any]) -> None:
    for name, entry in manifest["files"].items():
        file = path / name
        if not file.is_file():
            raise FileNotFoundError(f"artifact file {file} is missing; rebuild with `{BUILD_COMMAND}`")
        digest = sha256_file(file)
        if digest != entry["sha256"]:
            raise ValueError(
                f"artifact file {file} is corrupt: sha256 {digest} but the manifest says {entry['sha256']}; "
                f"rebuild with `{BUILD_COMMAND}` (or reinstall polymodal)"
            )


def load_artifact(artifact_dir: str | os.PathLike | None = None) -> Artifact:
    """Load and verify the artifact (sha256 of every file, recipe checksums); cached per folder."""
    path = Path(artifact_dir).expanduser().resolve() if artifact_dir is not None else artifacts_dir() / ARTIFACT_VERSION
    if path in ARTIFACTS:
        return ARTIFACTS[path]
    manifest_path = path / MANIFEST_FILE
    if not manifest_path.is_file():
        raise FileNotFoundError(
            f"AV-digits artifact not found: {manifest_path} does not exist; build it with `{BUILD_COMMAND}` "
            "(needs the raw FSDD and MNIST data) or pass artifact_dir= pointing at a built copy"
        )
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"artifact manifest {manifest_path} is corrupt ({exc}); rebuild with `{BUILD_COMMAND}`") from None
    if not isinstance(manifest, dict) or manifest.get("artifact") != ARTIFACT_VERSION or "files" not in manifest:
        raise ValueError(
            f"{manifest_path} is not an {ARTIFACT_VERSION} manifest (expected keys 'artifact' = {ARTIFACT_VERSION!r} "
            f"and 'files'); rebuild with `{BUILD_COMMAND}`"
        )
    _verify_files(path, manifest)
    with (path / INDEX_FILE).open(newline="", encoding="utf-8") as f:
        index = list(csv.DictReader(f))
    pcm, sr = sf.read(path / AUDIO_FILE, dtype="int16")
    lengths = np.array([int(r["length"]) for r in index], dtype=np.int64)
    if sr != SAMPLE_RATE or len(pcm) != lengths.sum():
        raise ValueError(f"{path / AUDIO_FILE}: {len(pcm)} samples at {sr} Hz do not match {INDEX_FILE}")
    clips = np.zeros((len(index), CLIP_SAMPLES), dtype=np.int16)
    for i, (start, n) in enumerate(zip(np.cumsum(lengths) - lengths, lengths, strict=True)):
        clips[i, :n] = pcm[start : start + n]
    files = tuple(r["file"] for r in index)
    digits = np.array([int(r["digit"]) for r in index], dtype=np.int64)
    recordings = np.array([int(r["recording"]) for r in index], dtype=np.int64)
    images = read_idx_gz(path / MNIST_IMAGES, 3)
    image_labels = read_idx_gz(path / MNIST_LABELS, 1).astype(np.int64)
    recipe = build_recipe(files, digits, recordings, image_labels)
    got = recipe_checksums(recipe, files)
    if got != RECIPE_CHECKSUMS:
        raise ValueError(f"artifact {path} gives recipe checksums {got}; expected {RECIPE_CHECKSUMS}: rebuild it")
    art = Artifact(
        path, manifest, files, digits, tuple(r["speaker"] for r in index), recordings, clips, lengths,
        images, image_labels, recipe,
    )  # fmt: skip
    ARTIFACTS[path] = art
    return art
