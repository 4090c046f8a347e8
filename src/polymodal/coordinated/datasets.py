"""AV-digits as a contrastive task: paired speech and handwriting, optionally with the digit's name as text.

Registered datasets (task ``contrastive``; labels are the digit, used only for class-level relevance):

    avdigits-pairs   audio, image         the clean AV-digits pairs (or a ``variant``'s)
    avdigits-named   audio, image, text   the same plus the digit's English name as a third modality,
                                          in one of a few phrasings ("seven", "the digit seven", ...)
                                          tokenised as UTF-8 bytes: a text tower learns to place a
                                          written word in the same space (docs/coordinated.md)

Both take every option of the AV-digits datasets, plus ``classes``: keep only the rows of these digits
(e.g. ``data.split_options.train.classes=[0,1,2,3,4,5,6]`` trains with no example of 7-9 in any
modality, for the unseen-class protocol).
"""

from __future__ import annotations

import inspect
from typing import Any

import numpy as np
import torch

from polymodal.data.base import DATASETS, MultimodalDataset
from polymodal.data.batch import Sample
from polymodal.data.datasets.avdigits import VARIANTS, AVDigits
from polymodal.data.schema import Modality
from polymodal.data.text import ByteTokenizer

DIGIT_NAMES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
PHRASES = ("{}", "the digit {}", "number {}", "digit {}", "the number {}")
TEXT_LENGTH = 24  # bytes + bos/eos: the longest phrase ("the number seven") fits


def digit_phrase(digit: int, row: int) -> str:
    """The phrasing of row ``row``'s digit name (row order cycles through :data:`PHRASES`)."""
    return PHRASES[row % len(PHRASES)].format(DIGIT_NAMES[digit])


class AVDigitsPairs(MultimodalDataset):
    """A contrastive view of an AV-digits split: the same tensors, ``task = "contrastive"``, rows restricted to
    ``classes``; with ``text`` a third modality holds the digit's name (byte tokens, (TEXT_LENGTH,))."""

    def __init__(self, split: str = "train", *, name: str = "avdigits-pairs", variant: str = "avdigits",
                 classes: list[int] | None = None, text: bool = False, **options: Any) -> None:
        if variant not in VARIANTS or VARIANTS[variant].sum_label or len(VARIANTS[variant].views) != 1:
            ok = sorted(v for v, s in VARIANTS.items() if not s.sum_label and len(s.views) == 1)
            raise ValueError(f"{name}: variant {variant!r} does not pair a spoken digit with the same written digit; "
                             f"expected one of {ok}")
        base = AVDigits(variant, split, **options)
        rows = np.arange(len(base))
        if classes is not None:
            wanted = [int(c) for c in classes]
            if not wanted or any(not 0 <= c <= 9 for c in wanted):
                raise ValueError(f"{name}: option classes={classes!r}; expected a non-empty list of digits 0-9")
            rows = np.flatnonzero(np.isin(base.labels, wanted))
        self.base, self.rows = base, rows
        self.name, self.split, self.task = name, split, "contrastive"
        self.labels = base.labels[rows]
        self.num_outputs, self.class_names = 10, base.class_names
        self.files = tuple(base.files[i] for i in rows)
        self.image_rows = {k: v[rows] for k, v in base.image_rows.items()}
        self.present = base.present[rows]
        schema = list(base.schema)
        self.tokenizer = ByteTokenizer(TEXT_LENGTH) if text else None
        if text:
            present_text = np.ones((len(rows), 1), dtype=bool)
            self.present = np.concatenate([self.present, present_text], axis=1)
            schema.append(Modality("text", "text", (TEXT_LENGTH,), representation="tokens",
                                   extra={"vocab_size": ByteTokenizer.vocab_size, "tokenizer": "bytes"}))
            self.phrases = tuple(digit_phrase(int(d), i) for i, d in enumerate(self.labels))
            self._tokens = self.tokenizer.encode_batch(self.phrases)
        self.schema = tuple(schema)
        self.provenance = {**base.provenance, "dataset": name, "variant": variant,
                           "classes": None if classes is None else sorted(int(c) for c in classes),
                           "text": "digit names, UTF-8 byte tokens" if text else None}

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> Sample:
        i = range(len(self))[i]
        sample = self.base[int(self.rows[i])]
        inputs = dict(sample["inputs"])
        if self.tokenizer is not None:
            inputs["text"] = self._tokens[i]
        return {"inputs": inputs, "label": int(self.labels[i]), "index": i}

    def tensor(self, name: str) -> torch.Tensor:
        """Every sample of modality ``name`` stacked, (N, *shape)."""
        if name == "text" and self.tokenizer is not None:
            return self._tokens
        return self.base.tensor(name)[torch.from_numpy(self.rows)]


_BASE_OPTIONS = [p for p in inspect.signature(AVDigits.__init__).parameters.values() if p.name not in ("self", "variant")]
_EXTRA = [inspect.Parameter("variant", inspect.Parameter.KEYWORD_ONLY, default="avdigits"),
          inspect.Parameter("classes", inspect.Parameter.KEYWORD_ONLY, default=None)]


def _register(name: str, text: bool, summary: str) -> None:
    def factory(split: str = "train", **options: Any) -> AVDigitsPairs:
        known = {p.name for p in _BASE_OPTIONS + _EXTRA}
        unknown = sorted(set(options) - known)
        if unknown:
            raise TypeError(f"dataset {name!r}: unknown option(s) {unknown}; valid options: {sorted(known - {'split'})}")
        return AVDigitsPairs(split, name=name, text=text, **options)

    factory.__name__ = factory.__qualname__ = name.replace("-", "_")
    factory.__doc__ = summary
    factory.__signature__ = inspect.Signature(_BASE_OPTIONS + _EXTRA, return_annotation=AVDigitsPairs)  # type: ignore[attr-defined]
    DATASETS.register(name, tiny={"classes": [0, 1, 2]})(factory)


_register("avdigits-pairs", False, "AV-digits as a contrastive task: spoken and written digit pairs (retrieval)")
_register("avdigits-named", True, "AV-digits pairs plus the digit's English name as text (three-way contrastive)")

__all__ = ["DIGIT_NAMES", "PHRASES", "AVDigitsPairs", "digit_phrase"]
