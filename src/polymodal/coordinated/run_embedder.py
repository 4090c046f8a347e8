"""A trained coordinated run as an :class:`~polymodal.coordinated.embedders.Embedder` (docs/coordinated.md).

``load_run_embedder(run_dir)`` rebuilds the run's model from its ``config.yaml``, loads the best
checkpoint and embeds raw media exactly as the run's dataset served them during training:

- image items (``PIL.Image``): converted to grey (``L``) or RGB as the modality's channels say, resized
  (bilinear) to the modality's height and width when they differ, scaled to [0, 1] (the AV-digits
  pipeline: MNIST bytes / 255);
- audio items (``(waveform, sample_rate)``): mono float32, resampled by linear interpolation to the
  modality's rate when it differs, the first second kept and zero-padded (AV-digits' 8,000 samples), then
  the run's log-mel front end (its ``logmel`` settings) when the run trained on cached log-mel;
- text items (``str``): the run's tokenizer (UTF-8 bytes or hashed words, as the modality declares).

Each item is embedded with every other modality absent, through the strategy's prediction rule (for
deep CCA: the canonical projection), so one item's embedding does not depend on the others.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from polymodal.coordinated.embedders import check_embeddings, check_modality
from polymodal.data.batch import Batch
from polymodal.data.schema import Modality

SEARCH_MODALITIES = ("image", "audio", "text")


def _resample(wave: np.ndarray, sr: int, target: int) -> np.ndarray:
    if sr == target:
        return wave
    n = int(round(len(wave) * target / sr))
    t_new = np.arange(n) / target
    return np.interp(t_new, np.arange(len(wave)) / sr, wave).astype(np.float32)


class RunEmbedder:
    """Embeds images, audio and text with the towers of a trained ``contrastive`` run."""

    batch_size = 64

    def __init__(self, run_dir: str | os.PathLike, checkpoint: str = "best") -> None:
        from polymodal.engine.runfolder import load_run
        from polymodal.runpaths import RunPaths

        run = Path(run_dir)
        paths = RunPaths(run)
        if not paths.config.is_file():
            raise FileNotFoundError(f"{paths.config} does not exist; is {run} a run folder written by `polymodal train`?")
        weights = paths.model(checkpoint)
        if not weights.is_file():
            raise FileNotFoundError(f"{weights} does not exist; the run {run} has no {checkpoint!r} checkpoint (did it finish?)")
        loaded = load_run(run)
        self.model, self.strategy, train = loaded.trained(checkpoint)
        if not hasattr(self.model.fusion, "heads"):
            raise ValueError(f"run {run} was not trained with the coordinated fusion (model.fusion="
                             f"{loaded.config.get('model', {}).get('fusion')!r}); train it with strategy.name=contrastive")
        self.schema: dict[str, Modality] = {}
        for m in train.schema:  # the first modality of each searchable kind embeds that kind
            if m.kind in SEARCH_MODALITIES and m.kind not in self.schema:
                self.schema[m.kind] = m
        self.all_modalities = tuple(train.schema)
        self.modalities: tuple[str, ...] = tuple(k for k in SEARCH_MODALITIES if k in self.schema)
        digest = hashlib.sha256(weights.read_bytes()).hexdigest()[:12]
        self.model_id = f"polymodal-run:{run.resolve().name}@{digest}"
        with torch.no_grad():  # the width of what predict gives (DCCA: k canonical coordinates)
            probe = next(iter(self.modalities))
            self.dim = int(self._embed_tensor(self.schema[probe], self._prepare(probe, [self._probe_item(probe)])).shape[1])
        self._front = None

    # -- inputs as the dataset served them ------------------------------------------------------------
    def _probe_item(self, kind: str) -> Any:
        from PIL import Image

        m = self.schema[kind]
        if kind == "image":
            return Image.new("L", (m.shape[-1], m.shape[-2]))
        if kind == "audio":
            return (np.zeros(int(m.sample_rate or 8000), np.float32), int(m.sample_rate or 8000))
        return "zero"

    def _image(self, m: Modality, item: Any) -> torch.Tensor:
        from PIL import Image

        if not isinstance(item, Image.Image):
            raise TypeError(f"embedder {self.model_id!r}: image items must be PIL.Image.Image; got {type(item).__name__}")
        c, h, w = m.shape
        img = item.convert("L" if c == 1 else "RGB")
        if img.size != (w, h):
            img = img.resize((w, h), Image.Resampling.BILINEAR)
        x = torch.from_numpy(np.asarray(img, dtype=np.float32) / 255.0)
        return x[None] if c == 1 else x.permute(2, 0, 1)

    def _audio(self, m: Modality, item: Any) -> torch.Tensor:
        from polymodal.data.transforms import LogMel, LogMelConfig, LogSTFT, STFTConfig

        if not (isinstance(item, tuple) and len(item) == 2):
            raise TypeError(f"embedder {self.model_id!r}: audio items must be (waveform, sample_rate); got {type(item).__name__}")
        wave, sr = np.asarray(item[0], dtype=np.float32), int(item[1])
        if wave.ndim == 2:  # (frames, channels) as soundfile reads it: mix down
            wave = wave.mean(axis=1)
        if wave.ndim != 1 or sr <= 0:
            raise ValueError(f"embedder {self.model_id!r}: expected a 1-D waveform and a positive rate; got shape {wave.shape}, rate {sr}")
        rate = int(m.sample_rate or sr)
        wave = _resample(wave, sr, rate)
        logmel = m.extra.get("logmel") or {}
        samples = m.shape[0] if m.representation == "waveform" else rate  # AV-digits keeps one second
        clip = np.zeros(samples, np.float32)
        clip[: min(samples, len(wave))] = wave[:samples]
        x = torch.from_numpy(clip)
        if m.representation == "logmel":
            if self._front is None:
                self._front = LogMel(LogMelConfig(**logmel))
            with torch.no_grad():
                x = self._front(x[None])[0]
            if tuple(x.shape) != tuple(m.shape):
                raise ValueError(f"embedder {self.model_id!r}: the log-mel of one clip is {tuple(x.shape)}, the run trained on {m.shape}")
        elif m.representation == "stft":  # the dataset's cached log-STFT (AV-digits with stft options)
            if self._front is None:
                self._front = LogSTFT(STFTConfig(**(m.extra.get("stft") or {})))
            with torch.no_grad():
                x = self._front(x[None])[0]
            if tuple(x.shape) != tuple(m.shape):
                raise ValueError(f"embedder {self.model_id!r}: the log-STFT of one clip is {tuple(x.shape)}, the run trained on {m.shape}")
        return x

    def _text(self, m: Modality, item: Any) -> torch.Tensor:
        from polymodal.data.text import ByteTokenizer, HashingWordTokenizer

        if not isinstance(item, str):
            raise TypeError(f"embedder {self.model_id!r}: text items must be str; got {type(item).__name__}")
        if m.extra.get("tokenizer") == "bytes":
            tok: Any = ByteTokenizer(m.shape[0])
        else:
            tok = HashingWordTokenizer(int(m.extra["vocab_size"]), m.shape[0])
        return tok.encode(item)

    def _prepare(self, kind: str, items: Sequence[Any]) -> torch.Tensor:
        m = self.schema[kind]
        fn = {"image": self._image, "audio": self._audio, "text": self._text}[kind]
        return torch.stack([fn(m, it) for it in items])

    @torch.no_grad()
    def _embed_tensor(self, m: Modality, x: torch.Tensor) -> torch.Tensor:
        b = x.shape[0]
        inputs, present = {}, {}
        for other in self.all_modalities:
            if other.name == m.name:
                inputs[other.name], present[other.name] = x, torch.ones(b, dtype=torch.bool)
            else:
                dtype = torch.long if other.kind == "text" else torch.float32
                inputs[other.name] = torch.zeros((b, *other.shape), dtype=dtype)
                present[other.name] = torch.zeros(b, dtype=torch.bool)
        batch = Batch(inputs, present, torch.zeros(b, dtype=torch.long), torch.arange(b))
        return self.strategy.predict(self.model, batch).per_modality[m.name]

    def embed_tensor(self, name: str, x: torch.Tensor) -> np.ndarray:
        """(B, dim) float32 unit rows of modality ``name`` given as the dataset serves it (e.g. a split's
        ``tensor(name)`` rows), in batches of :attr:`batch_size`."""
        m = next((s for s in self.all_modalities if s.name == name), None)
        if m is None:
            raise ValueError(f"embedder {self.model_id!r} has no modality {name!r}; its modalities are "
                             f"{[s.name for s in self.all_modalities]}")
        rows = [self._embed_tensor(m, x[i : i + self.batch_size]).numpy() for i in range(0, len(x), self.batch_size)]
        return check_embeddings(np.concatenate(rows) if rows else np.zeros((0, self.dim)), len(x), self.dim, self.model_id)

    def embed(self, modality: str, items: Sequence[Any]) -> np.ndarray:
        """(len(items), dim) float32 unit rows of ``items`` of one modality ("image", "audio", "text")."""
        check_modality(self, modality)
        items = list(items)
        rows = [self._embed_tensor(self.schema[modality], self._prepare(modality, items[i : i + self.batch_size])).numpy()
                for i in range(0, len(items), self.batch_size)]
        out = np.concatenate(rows) if rows else np.zeros((0, self.dim), np.float32)
        return check_embeddings(out, len(items), self.dim, self.model_id)


def load_run_embedder(run_dir: str | os.PathLike, checkpoint: str = "best") -> RunEmbedder:
    """The :class:`RunEmbedder` of a finished ``contrastive`` run folder (its best checkpoint by default)."""
    return RunEmbedder(run_dir, checkpoint)


__all__ = ["RunEmbedder", "load_run_embedder"]
