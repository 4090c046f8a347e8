"""The audio features of a split (log-mel, or the log-magnitude STFT of ResNet-18 configurations), computed
once from the artifact's clips and kept in ``polymodal.paths.cache_dir()`` (keyed by the artifact, the
split, the corruption, the front end's settings and a fingerprint of its output)."""

from __future__ import annotations

import contextlib
import hashlib
import math
import os
import warnings

import numpy as np
import torch

from polymodal.data.datasets.avdigits.artifact import ARTIFACT_VERSION, CLIP_SAMPLES, SAMPLE_RATE, Artifact
from polymodal.data.datasets.avdigits.corruptions import audio_waveforms
from polymodal.data.transforms import LogMel, LogMelConfig, LogSTFT, STFTConfig
from polymodal.paths import cache_dir


def _logmel_fingerprint(front: LogMel | LogSTFT) -> str:
    """Digest of the front end's output on a fixed chirp: a cache written by another LogMel is not reused."""
    t = torch.arange(CLIP_SAMPLES, dtype=torch.float64) / SAMPLE_RATE
    chirp = torch.sin(2 * math.pi * (100 + 1500 * t) * t).float()[None]
    with torch.no_grad():
        out = front(chirp).double().numpy().round(3)
    return hashlib.sha256(out.tobytes()).hexdigest()[:16]


def cached_logmel(art: Artifact, keep: np.ndarray, tag: str, snr_db: float | None, cfg: LogMelConfig, persist: bool) -> np.ndarray:
    """float32 (n, n_mels, frames) log-mel of the kept rows, computed once, optionally kept on disk."""
    return _cached(art, keep, tag, snr_db, LogMel(cfg), "logmel", cfg.key(), (cfg.n_mels, cfg.frames(CLIP_SAMPLES)), persist)


def cached_stft(art: Artifact, keep: np.ndarray, tag: str, snr_db: float | None, cfg: STFTConfig, persist: bool) -> np.ndarray:
    """float32 (n, n_fft // 2 + 1, frames) log-magnitude STFT of the kept rows, computed once, optionally kept on disk."""
    key = "-".join(f"{k}{v}" for k, v in sorted(vars(cfg).items()))
    return _cached(art, keep, tag, snr_db, LogSTFT(cfg), "stft", key, (cfg.n_freqs, cfg.frames(CLIP_SAMPLES)), persist)


def _cached(art: Artifact, keep: np.ndarray, tag: str, snr_db: float | None, front: LogMel | LogSTFT, kind: str,
            settings: str, bins_frames: tuple[int, int], persist: bool) -> np.ndarray:
    shape = (int(keep.sum()), *bins_frames)
    path = None
    if persist:
        key = "|".join([ARTIFACT_VERSION, art.manifest["audio"]["pcm_sha256"], tag, settings, _logmel_fingerprint(front)])
        if kind != "logmel":  # log-mel files keep the names they always had
            key = f"{kind}|{key}"
        path = cache_dir() / "avdigits" / f"{kind}-{hashlib.sha256(key.encode()).hexdigest()[:24]}.npy"
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
            warnings.warn(f"could not write the feature cache {path}: {exc}; features are recomputed next time", stacklevel=4)
    return feats
