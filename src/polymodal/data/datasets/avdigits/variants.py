"""The AV-digits variants (registered in ``DATASETS``) and :class:`AVDigits`, one split of one variant."""

from __future__ import annotations

import difflib
import hashlib
import inspect
import math
import os
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch

from polymodal.data.base import DATASETS, SPLITS, MultimodalDataset
from polymodal.data.batch import Sample
from polymodal.data.datasets.avdigits.artifact import (
    ARTIFACT_VERSION,
    AVDIGITS_LOGMEL,
    CLIP_SAMPLES,
    IMAGE_SIZE,
    SAMPLE_RATE,
    load_artifact,
)
from polymodal.data.datasets.avdigits.corruptions import HARD_DEFAULTS, audio_waveforms, image_pixels
from polymodal.data.datasets.avdigits.features import cached_logmel, cached_stft
from polymodal.data.datasets.avdigits.recipe import RECIPE_CHECKSUMS, SEEDS
from polymodal.data.missing import missing_mask
from polymodal.data.schema import Modality
from polymodal.data.transforms import STFT_PAD_MODES, LogMelConfig, STFTConfig


@dataclass(frozen=True)
class Variant:
    name: str
    corrupted: bool  # noisy audio, noisy + occluded images
    views: tuple[str, ...]  # image modalities, in order
    sum_label: bool  # images of the sum pairing (any digit); label = (audio digit + image digit) % 10
    summary: str
    # with sum_label: "sum" (mod 10), "compare" (<, =, > as 0, 1, 2) or "set" (the set of the two digits:
    # a multilabel target over the 10 digits, one or two of them)
    relation: str = "sum"


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
        Variant("avdigits-multilabel", False, ("image",), True,
                "AV-digits, labels = the set of digits spoken and written (multilabel: one or two of 10)",
                relation="set"),
    )
}


def _number(name: str, value: Any, low: float, high: float, integer: bool = False) -> float | int:
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or not low <= value <= high or (integer and value != int(value)):
        kind = "an integer" if integer else "a number"
        raise ValueError(f"AV-digits option {name}={value!r}: expected {kind} in [{low}, {high}]")
    return int(value) if integer else float(value)


def _stft_config(stft: STFTConfig | dict[str, Any]) -> STFTConfig:
    if isinstance(stft, STFTConfig):
        cfg = stft
    else:
        try:
            cfg = STFTConfig(**dict(stft))
        except (TypeError, ValueError) as exc:
            raise ValueError(f"AV-digits option stft={stft!r}: {exc}; valid keys: {list(asdict(STFTConfig()))}") from None
    if cfg.n_fft < 2 or cfg.hop_length < 1 or cfg.pad_mode not in STFT_PAD_MODES:
        raise ValueError(f"AV-digits option stft={asdict(cfg)}: need n_fft >= 2, hop_length >= 1 and pad_mode in {STFT_PAD_MODES}")
    return cfg


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
        persist_features: bool = True,  # keep computed features in polymodal.paths.cache_dir()
        stft: STFTConfig | dict[str, Any] | None = None,  # with cache_features: serve the log-STFT instead of the log-mel
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
        stft_cfg = _stft_config(stft) if stft is not None else None
        if stft_cfg is not None and not cache_features:
            raise ValueError("AV-digits option stft= caches the log-STFT spectrogram and needs cache_features=true; "
                             "with cache_features=false the encoder computes its own STFT from the waveforms (drop stft=)")
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
        if v.relation == "set":  # multi-hot over the 10 digits: the spoken one and the written one
            self.labels = np.zeros((len(self.audio_digits), 10), dtype=np.float32)
            self.labels[np.arange(len(self.labels)), self.audio_digits] = 1.0
            self.labels[np.arange(len(self.labels)), self.concept_labels["image"]["digit"]] = 1.0

        snr = None if self.corruption is None else float(self.corruption["snr_db"])
        if cache_features:
            tag = f"{split}|" + ("clean" if snr is None else f"snr{snr!r}") + ("" if pairs is None else f"|pairs{pairs}")
            if stft_cfg is not None:
                audio = torch.from_numpy(cached_stft(art, keep, tag, snr, stft_cfg, persist_features))
                audio_mod = Modality("audio", "audio", tuple(audio.shape[1:]), SAMPLE_RATE, "stft", extra={"stft": asdict(stft_cfg)})
            else:
                audio = torch.from_numpy(cached_logmel(art, keep, tag, snr, cfg, persist_features))
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
        self.task, self.num_outputs = ("multilabel" if v.relation == "set" else "classification"), 10
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
            "logmel": asdict(cfg) if cache_features and stft_cfg is None else None,
            "stft": asdict(stft_cfg) if stft_cfg is not None else None,
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
        label = self.labels[i].tolist() if self.labels.ndim > 1 else int(self.labels[i])
        return {"inputs": inputs, "label": label, "index": i}

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
