"""Audio files (wav flac ogg mp3): resampled to one rate, cropped or padded to one clip length, and
served as log-mel features computed once (or as waveforms without ``cache_features``)."""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from pydantic import Field

from polymodal.data.datasets.manifest.codecs.base import CODECS, Codec, CodecOptions, ColumnContext
from polymodal.data.datasets.manifest.errors import ManifestError
from polymodal.data.io import read_audio
from polymodal.data.schema import Modality
from polymodal.data.transforms import LogMel, LogMelConfig


class AudioOptions(CodecOptions):
    sample_rate: int | None = Field(None, gt=0)  # Hz; default: the most common rate of the training files
    # clip length; default: the 95th percentile of the training clips' lengths, at most 30 s
    seconds: float | None = Field(None, gt=0)
    n_mels: int = Field(40, ge=8)


def _secs(v: float) -> str:
    return f"{round(float(v), 2):g}"


@CODECS.register("audio", tiny={"n_mels": 8, "seconds": 0.25})
class AudioCodec(Codec):
    """Audio files: one rate and clip length fitted on the train split, log-mel features."""

    extensions = (".wav", ".flac", ".ogg", ".mp3")
    Options = AudioOptions

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._logmel = False  # inputs are cached log-mels (set by finish), else waveforms

    def probe(self, source: Path) -> tuple[int, int]:
        import soundfile as sf

        i = sf.info(str(source))
        return int(i.samplerate), int(i.frames)

    def setup(self, probes: list[tuple[int, int]]) -> None:
        opt = self.options
        rates = Counter(sr for sr, _ in probes)
        if not rates:
            raise ManifestError(f"audio column {self.column!r}: no readable file in the train split")
        sr = opt.sample_rate or rates.most_common(1)[0][0]
        lengths = np.array([n / rate for rate, n in probes])
        seconds = opt.seconds or min(30.0, float(np.percentile(lengths, 95, method="lower")))
        samples = max(1, int(round(seconds * sr)))
        hop = max(1, int(round(0.02 * sr)))
        n_fft = 1 << max(6, int(math.ceil(math.log2(0.032 * sr))))
        self.state = {"sample_rate": sr, "samples": samples,
                      "logmel": asdict(LogMelConfig(sample_rate=sr, n_fft=n_fft, hop_length=hop, n_mels=opt.n_mels))}

    def describe(self, probes: dict[int, tuple[int, int]], ctx: ColumnContext) -> None:
        st = self.state
        sr = st["sample_rate"]
        other = Counter(rate for rate, _ in probes.values() if rate != sr)
        if other:
            ctx.info("resampled", f"files at {', '.join(f'{k} Hz' for k in sorted(other))} resampled to {sr} Hz "
                     "(audio.sample_rate)", count=sum(other.values()))
        clip = st["samples"] / sr
        over = np.array([n / rate - clip for rate, n in probes.values() if n * sr / rate > st["samples"] + 1])
        if len(over):
            by = (f"by {_secs(over[0])} s" if len(over) == 1 else
                  f"by {_secs(over.min())} to {_secs(over.max())} s, median {_secs(float(np.median(over)))} s")
            why = ("audio.seconds" if self.options.seconds else
                   "the 95th percentile of the training clips' lengths, at most 30 s; set audio.seconds to choose")
            ctx.info("cropped", f"{len(over)} of {len(probes)} clips longer than {clip:g} s cropped to it ({by}); "
                     f"the clip length is {why}", count=len(over))

    def read(self, source: Path) -> np.ndarray:
        st = self.state
        sr = st["sample_rate"]
        # decode only what the clip needs (plus a margin for the resampling filter)
        x, _ = read_audio(source, sample_rate=sr, resample=True, max_seconds=st["samples"] / sr + 0.05)
        out = np.zeros(st["samples"], dtype=np.float32)
        out[: min(len(x), len(out))] = x[: len(out)]
        return out

    def finish(self, got: dict[int, Any], ctx: ColumnContext) -> dict[int, Any]:
        self._logmel = bool(self.cache and got)
        if self._logmel:
            front = LogMel(LogMelConfig(**self.state["logmel"]))
            rows = sorted(got)
            with torch.no_grad():
                for i in range(0, len(rows), 256):
                    chunk = rows[i:i + 256]
                    mel = front(torch.from_numpy(np.stack([got[r] for r in chunk])))
                    for r, m in zip(chunk, mel, strict=True):
                        got[r] = m.numpy()
        return got

    def modality(self) -> Modality:
        st = self.state
        sr = st["sample_rate"]
        if self._logmel:
            cfg = LogMelConfig(**st["logmel"])
            shape = (cfg.n_mels, cfg.frames(st["samples"]))
            return Modality(self.name, "audio", shape, sr, "logmel", extra={"logmel": st["logmel"]})
        return Modality(self.name, "audio", (st["samples"],), sr, "waveform", extra={"logmel": st["logmel"]})
