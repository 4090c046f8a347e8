"""AV-digits: real spoken digits (FSDD) paired with real handwritten digits (MNIST t10k).

Follows the normative recipe of the project's benchmark protocols ("AV-digits"): row order,
pairing seeds, corruption formulas and checksums. The clean signals ship with the package as the
``avdigits-v1`` artifact (built by ``python -m polymodal.data.datasets.avdigits build``); every
variant is derived from it deterministically, so no raw data is needed to train.

Variants (registered in ``DATASETS``; modalities in this order):

    avdigits        audio, image            clean, label = digit
    avdigits-hard   audio, image            noisy audio (snr_db), noisy + occluded image
    avdigits-3view  audio, image, image2    as hard, two different images of the digit
    avdigits-sum    audio, image            clean, label = (audio digit + image digit) % 10
    avdigits-sum-hard    audio, image       as sum, with the avdigits-hard corruptions
    avdigits-compare     audio, image       clean sum pairing, label = audio digit <, =, > image digit (0, 1, 2)

Every split carries ``concept_labels`` (modality -> {"digit": (N,) int64}): the digit each modality
shows, for concept-level training and evaluation (``polymodal.reasoning``).

Tensors per sample: audio (8000,) float32 waveform at 8 kHz, or (n_mels, frames) log-mel when
``cache_features`` (the default); image (1, 28, 28) float32 in [0, 1].
"""

from __future__ import annotations

import contextlib
import csv
import difflib
import gzip
import hashlib
import inspect
import json
import math
import os
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import torch

from polymodal.data.base import DATASETS, SPLITS, MultimodalDataset
from polymodal.data.batch import Sample
from polymodal.data.missing import missing_mask
from polymodal.data.schema import Modality
from polymodal.data.transforms import LogMel, LogMelConfig
from polymodal.paths import artifacts_dir, cache_dir

# `python -m polymodal.data.datasets.avdigits build|verify` runs this file as __main__ after the
# package has imported it (and registered its datasets) as a module: hand over to the builder's
# command line before the datasets would be registered a second time.
if __name__ == "__main__":
    from polymodal.data.datasets._avdigits_build import main

    raise SystemExit(main())

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
RECORDINGS = {"train": range(10, 50), "val": range(5, 10), "test": range(0, 5)}  # FSDD index in file name
IMAGE_POOLS = {"train": (0, 6000), "val": (6000, 8000), "test": (8000, 10000)}  # MNIST t10k rows [lo, hi)
SEEDS = {  # numpy default_rng seeds of the recipe
    "pairing": 20231117,
    "pairing_image2": 20231118,
    "pairing_sum": 20231119,
    "audio_noise": 1,
    "image_noise": 2,
    "image2_noise": 3,
}
RECIPE_CHECKSUMS = {  # first 16 hex digits of sha256 over the recipe's lines
    "all_rows": "cf76718d3cbcdfba",
    "test_rows": "35122b1d4a4e0eb9",
    "image2": "159dce8114ad5ba6",
    "sum": "dfff13ee1d26de8c",
}
HARD_DEFAULTS: dict[str, float | int] = {"snr_db": 0.0, "sigma": 0.5, "occlusion": 10}  # calibrated: docs/benchmarks.md


# ------------------------------------------------------------------------------------- artifact
@dataclass(frozen=True)
class Recipe:
    """The paired rows of all splits in recipe order (split, digit, FSDD file name). Arrays are (3000,)."""

    split: np.ndarray  # int64 position in SPLITS
    clip: np.ndarray  # int64 row of the artifact's audio index
    image_row: np.ndarray  # int64 MNIST t10k row paired with the clip
    image2_row: np.ndarray  # int64 second MNIST row (3-view)
    sum_row: np.ndarray  # int64 MNIST row of the sum variant
    sum_label: np.ndarray  # int64 (audio digit + image digit) % 10


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


_ARTIFACTS: dict[Path, Artifact] = {}  # verified once per process


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


def build_recipe(files: tuple[str, ...], digits: np.ndarray, recordings: np.ndarray, image_labels: np.ndarray) -> Recipe:
    """Pair clips with MNIST rows exactly as the benchmark recipe says (``files`` sorted by name)."""
    rng, rng2, rng3 = (np.random.default_rng(SEEDS[k]) for k in ("pairing", "pairing_image2", "pairing_sum"))
    cols: dict[str, list[np.ndarray]] = {k: [] for k in ("split", "clip", "image_row", "image2_row", "sum_row")}
    for s, name in enumerate(SPLITS):
        lo, hi = IMAGE_POOLS[name]
        in_split = np.isin(recordings, np.asarray(RECORDINGS[name]))
        for d in range(10):
            clips = np.flatnonzero(in_split & (digits == d))  # ascending = file-name order
            pool = lo + np.flatnonzero(image_labels[lo:hi] == d)
            first = rng.choice(pool, size=len(clips), replace=False)
            second = rng2.choice(np.setdiff1d(pool, first), size=len(clips), replace=False)
            cols["split"].append(np.full(len(clips), s))
            cols["clip"].append(clips)
            cols["image_row"].append(first)
            cols["image2_row"].append(second)
        n = sum(len(c) for c in cols["clip"][-10:])
        cols["sum_row"].append(rng3.choice(np.arange(lo, hi), size=n, replace=False))
    arrays = {k: np.concatenate(v).astype(np.int64) for k, v in cols.items()}
    sum_label = (digits[arrays["clip"]] + image_labels[arrays["sum_row"]]) % 10
    return Recipe(**arrays, sum_label=sum_label.astype(np.int64))


def recipe_checksums(recipe: Recipe, files: tuple[str, ...]) -> dict[str, str]:
    """The four published checksums of a recipe (see ``RECIPE_CHECKSUMS``)."""

    def digest(lines: Any) -> str:
        return hashlib.sha256("".join(lines).encode()).hexdigest()[:16]

    names = [files[c] for c in recipe.clip]
    test = SPLITS.index("test")
    return {
        "all_rows": digest(f"{f},{r}\n" for f, r in zip(names, recipe.image_row, strict=True)),
        "test_rows": digest(
            f"{f},{r}\n" for f, r, s in zip(names, recipe.image_row, recipe.split, strict=True) if s == test
        ),
        "image2": digest(f"{f},{r}\n" for f, r in zip(names, recipe.image2_row, strict=True)),
        "sum": digest(f"{f},{r},{y}\n" for f, r, y in zip(names, recipe.sum_row, recipe.sum_label, strict=True)),
    }


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
    if path in _ARTIFACTS:
        return _ARTIFACTS[path]
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
    _ARTIFACTS[path] = art
    return art


# ----------------------------------------------------------------------------------- variants
def audio_waveforms(art: Artifact, keep: np.ndarray, snr_db: float | None) -> np.ndarray:
    """float32 (keep.sum(), 8000) waveforms of the kept recipe rows (``keep``: bool (3000,)).

    Clean: int16 / 32768. Noisy (``snr_db`` given): the recipe's white noise at that SNR over the
    clip, then zero padding; the generator walks every row in recipe order (one draw per row).
    """
    clips = art.recipe.clip
    out = art.clips[clips[keep]].astype(np.float32) / 32768.0
    if snr_db is None:
        return out
    rng = np.random.default_rng(SEEDS["audio_noise"])
    pos = np.cumsum(keep) - 1  # row j of the recipe -> row of ``out``
    for j, i in enumerate(clips):
        n = int(art.lengths[i])
        noise = rng.standard_normal(n)
        if keep[j]:
            x = art.clips[i, :n] / 32768.0  # float64
            x = x + noise * np.sqrt(np.mean(x**2) / 10 ** (snr_db / 10))
            out[pos[j], :n] = x
    return out


def image_pixels(art: Artifact, rows: np.ndarray, keep: np.ndarray, noise: tuple[float, int, int] | None) -> np.ndarray:
    """float32 (keep.sum(), 28, 28) in [0, 1] of MNIST ``rows`` (int (3000,), recipe order) kept by ``keep``.

    ``noise`` = (sigma, k, seed): Gaussian noise of std sigma, clipped, then a k x k square of zeros
    at a random position; the generator walks every row in recipe order.
    """
    if noise is None:
        return art.images[rows[keep]].astype(np.float32) / 255.0
    sigma, k, seed = noise
    g = np.random.default_rng(seed)
    out = []
    for j, row in enumerate(rows):
        eps = g.standard_normal((IMAGE_SIZE, IMAGE_SIZE))
        r, c = g.integers(0, IMAGE_SIZE - k + 1, size=2)
        if keep[j]:
            x = np.clip(art.images[row] / 255.0 + sigma * eps, 0.0, 1.0)
            x[r : r + k, c : c + k] = 0.0
            out.append(x.astype(np.float32))
    return np.stack(out)


def _logmel_fingerprint(front: LogMel) -> str:
    """Digest of the front end's output on a fixed chirp: a cache written by another LogMel is not reused."""
    t = torch.arange(CLIP_SAMPLES, dtype=torch.float64) / SAMPLE_RATE
    chirp = torch.sin(2 * math.pi * (100 + 1500 * t) * t).float()[None]
    with torch.no_grad():
        out = front(chirp).double().numpy().round(3)
    return hashlib.sha256(out.tobytes()).hexdigest()[:16]


def _cached_logmel(art: Artifact, keep: np.ndarray, tag: str, snr_db: float | None, cfg: LogMelConfig, persist: bool) -> np.ndarray:
    """float32 (n, n_mels, frames) log-mel of the kept rows, computed once, optionally kept on disk."""
    front = LogMel(cfg)
    shape = (int(keep.sum()), cfg.n_mels, cfg.frames(CLIP_SAMPLES))
    path = None
    if persist:
        key = "|".join([ARTIFACT_VERSION, art.manifest["audio"]["pcm_sha256"], tag, cfg.key(), _logmel_fingerprint(front)])
        path = cache_dir() / "avdigits" / f"logmel-{hashlib.sha256(key.encode()).hexdigest()[:24]}.npy"
        if path.is_file():
            with contextlib.suppress(OSError, ValueError):  # an unreadable cache file is recomputed and overwritten
                feats = np.load(path, allow_pickle=False)
                if feats.shape == shape and feats.dtype == np.float32:
                    return feats
    wav = torch.from_numpy(audio_waveforms(art, keep, snr_db))
    with torch.no_grad():
        feats = torch.cat([front(chunk) for chunk in wav.split(512)]).numpy()
    if path is not None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            with tmp.open("wb") as f:
                np.save(f, feats)
            os.replace(tmp, path)  # atomic: readers never see a half-written file
        except OSError as exc:
            warnings.warn(f"could not write the feature cache {path}: {exc}; features are recomputed next time", stacklevel=3)
    return feats


@dataclass(frozen=True)
class Variant:
    name: str
    corrupted: bool  # noisy audio, noisy + occluded images
    views: tuple[str, ...]  # image modalities, in order
    sum_label: bool  # images of the sum pairing (any digit); label = (audio digit + image digit) % 10
    summary: str
    relation: str = "sum"  # with sum_label: "sum" (mod 10) or "compare" (<, =, > as 0, 1, 2)


VARIANTS = {
    v.name: v
    for v in (
        Variant("avdigits", False, ("image",), False, "AV-digits, clean speech + handwriting of the same digit"),
        Variant("avdigits-hard", True, ("image",), False, "AV-digits with noisy speech and noisy, occluded digits"),
        Variant("avdigits-3view", True, ("image", "image2"), False, "AV-digits hard with two images per clip"),
        Variant("avdigits-sum", False, ("image",), True, "AV-digits, label = (spoken + written digit) mod 10"),
        Variant("avdigits-sum-hard", True, ("image",), True, "AV-digits sum with the avdigits-hard corruptions"),
        Variant("avdigits-compare", False, ("image",), True, "AV-digits, label = spoken <, =, > written digit",
                relation="compare"),
    )
}


def _number(name: str, value: Any, low: float, high: float, integer: bool = False) -> float | int:
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or not low <= value <= high or (integer and value != int(value)):
        kind = "an integer" if integer else "a number"
        raise ValueError(f"AV-digits option {name}={value!r}: expected {kind} in [{low}, {high}]")
    return int(value) if integer else float(value)


class AVDigits(MultimodalDataset):
    """One split of an AV-digits variant, fully precomputed in memory (``__getitem__`` only indexes).

    Attributes beside the dataset interface: ``files``, ``speakers`` (FSDD file and speaker per
    row), ``audio_digits`` (N,), ``image_rows`` (name -> MNIST t10k rows (N,)), ``present`` bool
    (N, M) in schema order, ``realised_missing_rate``, ``corruption`` (dict or None).
    """

    def __init__(
        self,
        variant: str = "avdigits",
        split: str = "train",
        *,
        snr_db: float | None = None,  # audio SNR in dB (hard, 3-view)
        sigma: float | None = None,  # std of the pixel noise, pixels in [0, 1] (hard, 3-view)
        occlusion: int | None = None,  # side k of the zeroed square, pixels (hard, 3-view)
        cache_features: bool = True,  # serve audio as log-mel computed once for the split
        logmel: LogMelConfig | dict[str, Any] | None = None,  # log-mel settings (default AVDIGITS_LOGMEL)
        persist_features: bool = True,  # keep computed log-mels in polymodal.paths.cache_dir()
        missing_rate: float = 0.0,  # fraction of (sample, modality) slots marked absent
        missing_seed: int = 0,
        pairs: int | None = None,  # keep a seeded random subset of this many rows of the split (data efficiency)
        root: str | os.PathLike | None = None,  # raw data folder: recorded only (data come from the artifact)
        artifact_dir: str | os.PathLike | None = None,  # default: the artifact shipped with the package
    ) -> None:
        if variant not in VARIANTS:
            raise ValueError(f"unknown AV-digits variant {variant!r}; expected one of {sorted(VARIANTS)}")
        if split not in SPLITS:
            raise ValueError(f"{variant}: split {split!r} is not one of {SPLITS}")
        v = VARIANTS[variant]
        given = {"snr_db": snr_db, "sigma": sigma, "occlusion": occlusion}
        if not v.corrupted and any(x is not None for x in given.values()):
            raise ValueError(
                f"{variant} is not corrupted: options snr_db/sigma/occlusion apply to "
                f"{', '.join(n for n, w in VARIANTS.items() if w.corrupted)} only; remove {[k for k, x in given.items() if x is not None]}"
            )
        self.corruption: dict[str, float | int] | None = None
        if v.corrupted:
            c = {k: HARD_DEFAULTS[k] if x is None else x for k, x in given.items()}
            self.corruption = {
                "snr_db": _number("snr_db", c["snr_db"], -60.0, 120.0),
                "sigma": _number("sigma", c["sigma"], 0.0, 10.0),
                "occlusion": _number("occlusion", c["occlusion"], 0, IMAGE_SIZE, integer=True),
            }
        if isinstance(logmel, dict):
            try:
                logmel = LogMelConfig(**logmel)
            except TypeError as exc:
                raise ValueError(f"AV-digits option logmel={logmel!r}: {exc}; valid keys: {list(asdict(LogMelConfig()))}") from None
        cfg = logmel or AVDIGITS_LOGMEL
        if cfg.sample_rate != SAMPLE_RATE:
            raise ValueError(f"AV-digits audio is {SAMPLE_RATE} Hz; logmel.sample_rate is {cfg.sample_rate}: set it to {SAMPLE_RATE}")

        art = load_artifact(artifact_dir)
        rec = art.recipe
        keep = rec.split == SPLITS.index(split)
        if pairs is not None:
            n = _number("pairs", pairs, 1, int(keep.sum()), integer=True)
            chosen = np.random.default_rng([int(n), SPLITS.index(split)]).choice(np.flatnonzero(keep), n, replace=False)
            keep = np.zeros_like(keep)
            keep[chosen] = True
        clip = rec.clip[keep]
        self.name, self.split, self.variant = variant, split, v
        self.files = tuple(art.files[i] for i in clip)
        self.speakers = tuple(art.speakers[i] for i in clip)
        self.audio_digits = art.digits[clip]
        all_rows = {"image": rec.sum_row if v.sum_label else rec.image_row, "image2": rec.image2_row}
        self.image_rows = {name: all_rows[name][keep] for name in v.views}
        self.labels = rec.sum_label[keep] if v.sum_label else self.audio_digits.copy()
        self.concept_labels = {"audio": {"digit": self.audio_digits.copy()}}
        self.concept_labels.update({name: {"digit": art.image_labels[rows]} for name, rows in self.image_rows.items()})
        if v.relation == "compare":
            digit = self.concept_labels["image"]["digit"]
            self.labels = np.sign(self.audio_digits - digit).astype(np.int64) + 1

        snr = None if self.corruption is None else float(self.corruption["snr_db"])
        if cache_features:
            tag = f"{split}|" + ("clean" if snr is None else f"snr{snr!r}") + ("" if pairs is None else f"|pairs{pairs}")
            audio = torch.from_numpy(_cached_logmel(art, keep, tag, snr, cfg, persist_features))
            audio_mod = Modality("audio", "audio", tuple(audio.shape[1:]), SAMPLE_RATE, "logmel", extra={"logmel": asdict(cfg)})
        else:
            audio = torch.from_numpy(audio_waveforms(art, keep, snr))
            audio_mod = Modality("audio", "audio", (CLIP_SAMPLES,), SAMPLE_RATE, "waveform", extra={"logmel": asdict(cfg)})
        self._inputs: dict[str, torch.Tensor] = {"audio": audio}
        schema = [audio_mod]
        for name in v.views:
            noise = None
            if self.corruption is not None:
                seed = SEEDS["image_noise"] if name == "image" else SEEDS["image2_noise"]
                noise = (float(self.corruption["sigma"]), int(self.corruption["occlusion"]), seed)
            self._inputs[name] = torch.from_numpy(image_pixels(art, all_rows[name], keep, noise))[:, None]
            schema.append(Modality(name, "image", (1, IMAGE_SIZE, IMAGE_SIZE), representation="pixels"))
        self.schema = tuple(schema)

        rate = _number("missing_rate", missing_rate, 0.0, 1.0)
        rng = np.random.default_rng([int(missing_seed), SPLITS.index(split)])
        self.present = missing_mask(len(clip), len(schema), rate, rng)
        self.realised_missing_rate = float(1.0 - self.present.mean())
        self.task, self.num_outputs = "classification", 10
        self.class_names = tuple(str(d) for d in range(10))
        if v.relation == "compare":
            self.num_outputs, self.class_names = 3, ("less", "equal", "greater")
        self.provenance = {
            "dataset": variant,
            "split": split,
            "artifact": ARTIFACT_VERSION,
            "artifact_sha256": {f: e["sha256"] for f, e in art.manifest["files"].items()},
            "recipe_checksums": dict(RECIPE_CHECKSUMS),
            "seeds": dict(SEEDS),
            "corruption": None if self.corruption is None else dict(self.corruption),
            "audio_representation": audio_mod.representation,
            "logmel": asdict(cfg) if cache_features else None,
            "missing_rate": rate,
            "realised_missing_rate": self.realised_missing_rate,
            "missing_seed": int(missing_seed),
            "pairs": None if pairs is None else int(pairs),
            "root": None if root is None else str(root),
        }

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> Sample:
        i = range(len(self))[i]  # IndexError out of range; negative indices normalised
        inputs = {m.name: self._inputs[m.name][i] if self.present[i, j] else None for j, m in enumerate(self.schema)}
        return {"inputs": inputs, "label": int(self.labels[i]), "index": i}

    def tensor(self, name: str) -> torch.Tensor:
        """Every sample of modality ``name`` stacked, (N, *shape), absent slots included as data."""
        return self._inputs[name]


def corrupted_test_sha256(
    variant: str | AVDigits = "avdigits-hard", artifact_dir: str | os.PathLike | None = None, **corruption: Any
) -> dict[str, str]:
    """sha256 of the test split's arrays as served: audio waveforms float32 (300, 8000), images
    float32 (300, 1, 28, 28), C order, little-endian. ``variant`` may be a dataset, whose
    variant and corruption parameters are then used."""
    if isinstance(variant, AVDigits):
        corruption = dict(variant.corruption or {})
        variant = variant.name
    ds = AVDigits(variant, "test", cache_features=False, artifact_dir=artifact_dir, **corruption)
    return {name: hashlib.sha256(x.numpy().astype("<f4").tobytes()).hexdigest() for name, x in ds._inputs.items()}


_OPTIONS = [p for p in inspect.signature(AVDigits.__init__).parameters.values() if p.name not in ("self", "variant")]


def _register(v: Variant) -> None:
    def factory(split: str = "train", **options: Any) -> AVDigits:
        unknown = sorted(set(options) - {p.name for p in _OPTIONS})
        if unknown:
            known = [p.name for p in _OPTIONS if p.name != "split"]
            close = {u: difflib.get_close_matches(u, known, n=1) for u in unknown}
            hints = "; ".join(f"{u!r} (did you mean {c[0]!r}?)" if c else repr(u) for u, c in close.items())
            raise TypeError(f"dataset {v.name!r}: unknown option(s) {hints}; valid options: {', '.join(known)}")
        return AVDigits(v.name, split, **options)

    factory.__name__ = factory.__qualname__ = v.name.replace("-", "_")
    factory.__doc__ = v.summary
    factory.__signature__ = inspect.Signature(_OPTIONS, return_annotation=AVDigits)  # type: ignore[attr-defined]
    DATASETS.register(v.name, tiny={})(factory)


for _variant in VARIANTS.values():
    _register(_variant)
