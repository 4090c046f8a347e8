"""Digit strings: spoken and handwritten strings of 3 to 7 digits, built from the real FSDD recordings and
MNIST t10k images of the AV-digits artifact, for sequence tasks (alignment, transcription, translation).

The recipe (fixed seeds; docs/align_translate.md "The digitstrings dataset"):

- **Splits.** A string of split ``s`` uses only the recordings and images of AV-digits split ``s``: FSDD
  recordings whose index (the number in the file name) is in ``RECORDINGS[s]`` (train 10-49, val 5-9,
  test 0-4) and MNIST t10k rows in ``IMAGE_POOLS[s]`` (train 0-5999, val 6000-7999, test 8000-9999). A
  recording or image of the test split therefore never appears in a training string.
- **Strings.** ``numpy.random.default_rng([SEED, split index, strings])`` draws, for each string in turn, its
  length (uniform in 3..7), its digits (uniform in 0..9), one recording per digit (uniform among the split's
  recordings of that digit), one image per digit (uniform among the split's MNIST rows of that digit) and
  one silence per gap between two digits (uniform in ``GAP_MS``, whole samples).
- **Audio.** The recordings (the artifact's clips: the first second of each FSDD file, 8 kHz) concatenated
  with the silences between them, zero-padded to ``MAX_SAMPLES``; served as the AV-digits log-mel (40 mel
  bands, 20 ms hop: frame ``t`` is centred on sample ``160 t``) unless ``cache_features=False``.
- **Image.** The row of one MNIST image per digit, (1, 28, 28 * 7), zero-padded on the right: digit ``k``
  occupies columns ``28 k .. 28 k + 27``.
- **Text.** The digit string (``texts``); the labels are the digits, (N, 7) int64 padded with ``PAD`` (-1),
  the targets of the ``sequence`` task.
- **Lengths.** Option ``digits`` ([shortest, longest], default [3, 7]) draws other lengths (the seed then
  also holds them, so the default strings never change); ``[1, 7]`` mixes single digits into a training
  split.
- **Modalities.** Both by default; option ``modalities`` serves a subset (``[audio]``: speech to text alone,
  ``[image]``: handwriting to text alone; ``tensor`` still gives either side).

Ground truth kept per string: ``boundaries`` (N, 7, 2) int64, the first and one-past-last audio sample of
each digit's recording (``PAD`` after the string's length), ``lengths`` (N,) digits per string,
``audio_samples`` (N,) the string's audio length, ``files`` (the FSDD file of each digit) and
``image_rows`` (the MNIST row of each digit).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

import numpy as np
import torch

from polymodal.data.base import DATASETS, SPLITS, MultimodalDataset
from polymodal.data.batch import Sample
from polymodal.data.datasets.avdigits import (
    ARTIFACT_VERSION,
    AVDIGITS_LOGMEL,
    IMAGE_POOLS,
    IMAGE_SIZE,
    RECIPE_CHECKSUMS,
    RECORDINGS,
    SAMPLE_RATE,
    Artifact,
    load_artifact,
)
from polymodal.data.schema import Modality
from polymodal.data.transforms import LogMel

SEED = 20261207  # numpy default_rng seed of the recipe (with the split's index and the number of strings)
MIN_DIGITS, MAX_DIGITS = 3, 7
GAP_MS = (50.0, 150.0)  # silence between two digits, uniform (ms)
PAD = -1  # label and boundary padding after a string's last digit
STRINGS = {"train": 2000, "val": 300, "test": 300}  # default strings per split
MODALITIES = ("audio", "image")  # what a string is served as (option ``modalities``: a subset, in this order)
CLIP_MAX = 8000  # samples of the longest artifact clip (1 s)
MAX_SAMPLES = MAX_DIGITS * CLIP_MAX + (MAX_DIGITS - 1) * int(GAP_MS[1] * SAMPLE_RATE / 1000)
HOP = AVDIGITS_LOGMEL.hop_length  # 160 samples = 20 ms
FRAME_MS = 1000.0 * HOP / SAMPLE_RATE


def read_string_audio(path: str | os.PathLike, sample_rate: int, what: str) -> tuple[np.ndarray, int]:
    """A recording of a spoken digit string as the dataset serves its waveforms: resampled to ``sample_rate``,
    mono, zero-padded to ``MAX_SAMPLES``; and its length in samples. ``what`` names the caller's task in the
    errors ("transcribe", "align"). Refuses an empty, silent or over-long file, naming it."""
    from polymodal.data.io.audio import read_audio

    wave, _ = read_audio(path, sample_rate=sample_rate, resample=True)
    if len(wave) == 0:
        raise ValueError(f"audio file {path} is empty (no samples); give a recording of a spoken digit string")
    if len(wave) > MAX_SAMPLES:
        raise ValueError(f"audio file {path} is {len(wave) / sample_rate:.2f} s long; digit strings to {what} last at "
                         f"most {MAX_SAMPLES / sample_rate:.2f} s (7 digits): cut the file into shorter strings")
    if not np.any(np.abs(wave) > 1e-4):
        raise ValueError(f"audio file {path} is silent (every sample below 1e-4); nothing to {what}")
    x = np.zeros(MAX_SAMPLES, dtype=np.float32)
    x[: len(wave)] = wave
    return x, len(wave)


def split_pools(art: Artifact, split: str) -> tuple[dict[int, np.ndarray], dict[int, np.ndarray]]:
    """The artifact clips and MNIST t10k rows a string of ``split`` may use, per digit (ascending)."""
    recs = np.isin(art.recordings, np.asarray(RECORDINGS[split]))
    lo, hi = IMAGE_POOLS[split]
    clips = {d: np.flatnonzero(recs & (art.digits == d)) for d in range(10)}
    rows = {d: lo + np.flatnonzero(art.image_labels[lo:hi] == d) for d in range(10)}
    return clips, rows


def _strings_option(value: Any, split: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 100_000:
        raise ValueError(f"digitstrings option strings={value!r}: expected an integer in [1, 100000] "
                         f"(strings in the {split} split; default {STRINGS[split]})")
    return value


class DigitStrings(MultimodalDataset):
    """One split of ``digitstrings``, precomputed in memory (see the module docstring for the recipe).

    Beside the dataset interface: ``texts``, ``lengths``, ``boundaries``, ``audio_samples``, ``files``
    (tuple of tuples), ``clips`` and ``image_rows`` (N, 7) int64 (``PAD`` after the length),
    ``digit_frames(i)`` (the frame-level ground truth) and ``frame_ms``.
    """

    def __init__(self, split: str = "train", *, strings: int | None = None, cache_features: bool = True,
                 root: str | os.PathLike | None = None, artifact_dir: str | os.PathLike | None = None,
                 modalities: Sequence[str] = MODALITIES, digits: Sequence[int] = (MIN_DIGITS, MAX_DIGITS)) -> None:
        if split not in SPLITS:
            raise ValueError(f"digitstrings: split {split!r} is not one of {SPLITS}")
        served = _modalities_option(modalities)
        shortest, longest = _digits_option(digits)
        n = STRINGS[split] if strings is None else _strings_option(strings, split)
        art = load_artifact(artifact_dir)
        clips_of, rows_of = split_pools(art, split)
        key = [SEED, SPLITS.index(split), n] + ([] if (shortest, longest) == (MIN_DIGITS, MAX_DIGITS) else [shortest, longest])
        rng = np.random.default_rng(key)
        lengths = rng.integers(shortest, longest + 1, size=n)
        labels = np.full((n, MAX_DIGITS), PAD, dtype=np.int64)
        clips = np.full((n, MAX_DIGITS), PAD, dtype=np.int64)
        rows = np.full((n, MAX_DIGITS), PAD, dtype=np.int64)
        bounds = np.full((n, MAX_DIGITS, 2), PAD, dtype=np.int64)
        wave = np.zeros((n, MAX_SAMPLES), dtype=np.float32)
        samples = np.zeros(n, dtype=np.int64)
        lo, hi = (round(g * SAMPLE_RATE / 1000) for g in GAP_MS)
        for i, length in enumerate(lengths):
            digits = rng.integers(0, 10, size=length)
            labels[i, :length] = digits
            clips[i, :length] = [rng.choice(clips_of[d]) for d in digits]
            rows[i, :length] = [rng.choice(rows_of[d]) for d in digits]
            gaps = rng.integers(lo, hi + 1, size=length - 1)
            at = 0
            for k in range(length):
                c = clips[i, k]
                m = int(art.lengths[c])
                wave[i, at : at + m] = art.clips[c, :m].astype(np.float32) / 32768.0
                bounds[i, k] = (at, at + m)
                at += m + (int(gaps[k]) if k < length - 1 else 0)
            samples[i] = at
        self.name, self.split = "digitstrings", split
        self.labels, self.lengths, self.boundaries, self.audio_samples = labels, lengths.astype(np.int64), bounds, samples
        self.clips, self.image_rows = clips, rows
        self.files = tuple(tuple(art.files[c] for c in r[r != PAD]) for r in clips)
        self.texts = tuple("".join(str(d) for d in r[r != PAD]) for r in labels)
        self.frame_ms = FRAME_MS
        images = np.zeros((n, 1, IMAGE_SIZE, IMAGE_SIZE * MAX_DIGITS), dtype=np.float32)
        for i, r in enumerate(rows):
            for k, row in enumerate(r[r != PAD]):
                images[i, 0, :, IMAGE_SIZE * k : IMAGE_SIZE * (k + 1)] = art.images[row] / 255.0
        cfg = AVDIGITS_LOGMEL
        if cache_features:
            front = LogMel(cfg)
            with torch.no_grad():
                audio = torch.cat([front(chunk) for chunk in torch.from_numpy(wave).split(256)])
            audio_mod = Modality("audio", "audio", tuple(audio.shape[1:]), SAMPLE_RATE, "logmel",
                                 extra={"logmel": asdict(cfg)})
        else:
            audio = torch.from_numpy(wave)
            audio_mod = Modality("audio", "audio", (MAX_SAMPLES,), SAMPLE_RATE, "waveform", extra={"logmel": asdict(cfg)})
        self._inputs = {"audio": audio, "image": torch.from_numpy(images)}
        every = (audio_mod, Modality("image", "image", tuple(images.shape[1:]), representation="pixels"))
        self.schema = tuple(m for m in every if m.name in served)
        self.task, self.num_outputs = "sequence", 10
        self.class_names = tuple(str(d) for d in range(10))
        self.provenance = {
            "dataset": "digitstrings",
            "split": split,
            "strings": n,
            "artifact": ARTIFACT_VERSION,
            "artifact_sha256": {f: e["sha256"] for f, e in art.manifest["files"].items()},
            "recipe_checksums": dict(RECIPE_CHECKSUMS),
            "seed": SEED,
            "digits": [shortest, longest],
            "gap_ms": list(GAP_MS),
            "audio_representation": audio_mod.representation,
            "logmel": asdict(cfg) if cache_features else None,
            "root": None if root is None else str(root),
            "modalities": list(served),
        }

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> Sample:
        i = range(len(self))[i]
        return {"inputs": {m.name: self._inputs[m.name][i] for m in self.schema}, "label": self.labels[i].tolist(),
                "index": i}

    def tensor(self, name: str) -> torch.Tensor:
        """Every sample of modality ``name`` stacked, (N, *shape) (also a modality the dataset does not serve:
        the ground truth of the other side of a string)."""
        return self._inputs[name]

    def frames(self, i: int) -> int:
        """Log-mel frames centred inside string ``i``'s audio (sample ``160 t`` < its length; the rest is
        padding)."""
        return -(-int(self.audio_samples[i]) // HOP)

    def digit_frames(self, i: int) -> np.ndarray:
        """(frames(i),) int64: the position (0-based) of the digit whose recording holds each frame's centre
        (sample ``160 t``), ``PAD`` for a frame centred in a silence between two digits."""
        centre = np.arange(self.frames(i)) * HOP
        out = np.full(len(centre), PAD, dtype=np.int64)
        for k in range(int(self.lengths[i])):
            start, end = self.boundaries[i, k]
            out[(centre >= start) & (centre < end)] = k
        return out


def _modalities_option(value: Any) -> tuple[str, ...]:
    names = (value,) if isinstance(value, str) else value
    ok = isinstance(names, list | tuple) and names and all(isinstance(m, str) for m in names)
    if not ok or len(set(names)) != len(names) or set(names) - set(MODALITIES):
        raise ValueError(f"digitstrings option modalities={value!r}: expected a non-empty list of distinct names among "
                         f"{list(MODALITIES)} (e.g. [audio] to transcribe speech alone)")
    return tuple(m for m in MODALITIES if m in names)


def _digits_option(value: Any) -> tuple[int, int]:
    ok = (isinstance(value, list | tuple) and len(value) == 2 and all(isinstance(d, int) and not isinstance(d, bool)
                                                                     for d in value))
    if not ok or not 1 <= value[0] <= value[1] <= MAX_DIGITS:
        raise ValueError(f"digitstrings option digits={value!r}: expected [shortest, longest] with "
                         f"1 <= shortest <= longest <= {MAX_DIGITS} (default [{MIN_DIGITS}, {MAX_DIGITS}])")
    return int(value[0]), int(value[1])


def _digitstrings(split: str = "train", **options: Any) -> DigitStrings:
    """Spoken + handwritten digit strings (3-7 digits) from FSDD and MNIST under the AV-digits splits."""
    known = ("strings", "cache_features", "root", "artifact_dir", "modalities", "digits")
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise TypeError(f"dataset 'digitstrings': unknown option(s) {unknown}; valid options: {', '.join(known)}")
    return DigitStrings(split, **options)


DATASETS.register("digitstrings", tiny={"strings": 6})(_digitstrings)

__all__ = ["FRAME_MS", "GAP_MS", "HOP", "MAX_DIGITS", "MAX_SAMPLES", "MIN_DIGITS", "MODALITIES", "PAD", "SEED", "STRINGS",
           "DigitStrings", "split_pools"]
