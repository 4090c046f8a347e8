"""Tokenizers that need no download: UTF-8 bytes, and hashed words.

Both map a string to a fixed-length LongTensor ``(max_length,)``: ``[bos, tokens..., eos, pad...]``,
truncated so that ``eos`` is always kept. Ids 0-3 are reserved for every tokenizer:

    pad = 0, bos = 1, eos = 2, unk = 3

so ``ids != pad_id`` is the attention mask. ``encode_batch`` stacks to (B, max_length).
"""

from __future__ import annotations

import re
import zlib
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence

import torch
from torch import Tensor

PAD_ID, BOS_ID, EOS_ID, UNK_ID = 0, 1, 2, 3
NUM_SPECIAL = 4


class _FixedLength(ABC):
    """Shared framing: bos + ids + eos, truncated and padded to ``max_length``."""

    pad_id, bos_id, eos_id, unk_id = PAD_ID, BOS_ID, EOS_ID, UNK_ID
    vocab_size: int

    def __init__(self, max_length: int) -> None:
        if max_length < 3:
            raise ValueError(f"{type(self).__name__}: max_length must be >= 3 (bos, one token, eos); got {max_length}")
        self.max_length = max_length

    @abstractmethod
    def ids(self, text: str) -> list[int]:
        """Token ids of ``text`` without bos/eos/padding or truncation."""

    def encode(self, text: str) -> Tensor:
        """int64 (max_length,): bos, the first ``max_length - 2`` token ids, eos, then pad."""
        if not isinstance(text, str):
            raise TypeError(f"{type(self).__name__}.encode expects a str; got {type(text).__name__}")
        body = self.ids(text)[: self.max_length - 2]
        out = torch.full((self.max_length,), PAD_ID, dtype=torch.long)
        out[: len(body) + 2] = torch.tensor([BOS_ID, *body, EOS_ID], dtype=torch.long)
        return out

    def encode_batch(self, texts: Iterable[str]) -> Tensor:
        """int64 (B, max_length)."""
        rows = [self.encode(t) for t in texts]
        return torch.stack(rows) if rows else torch.zeros((0, self.max_length), dtype=torch.long)


class ByteTokenizer(_FixedLength):
    """UTF-8 bytes; byte ``b`` has id ``b + 4``; ``vocab_size`` = 260.

    Lossless up to truncation: ``decode(encode(s)) == s`` when ``s`` has at most
    ``max_length - 2`` bytes (a multi-byte character cut by truncation decodes as U+FFFD).
    """

    vocab_size = 256 + NUM_SPECIAL

    def ids(self, text: str) -> list[int]:
        return [b + NUM_SPECIAL for b in text.encode("utf-8")]

    def decode(self, ids: Tensor | Sequence[int]) -> str:
        """Inverse of :meth:`encode`: special ids are skipped; stops at the first eos."""
        out = bytearray()
        for i in torch.as_tensor(ids).tolist():
            if i == EOS_ID:
                break
            if NUM_SPECIAL <= i < self.vocab_size:
                out.append(i - NUM_SPECIAL)
        return out.decode("utf-8", errors="replace")


_WORD = re.compile(r"\w+|[^\w\s]")


class HashingWordTokenizer(_FixedLength):
    """Words and punctuation marks hashed into ``vocab_size - 4`` buckets with CRC-32.

    id = 4 + crc32(utf-8 of the word) mod (vocab_size - 4). CRC-32 is the same in every process and
    on every platform (Python's ``hash`` of a str is salted per process). Collisions are expected
    for large vocabularies; there is no decode, :meth:`tokens` shows what was hashed.
    """

    def __init__(self, vocab_size: int, max_length: int, lowercase: bool = True) -> None:
        super().__init__(max_length)
        if vocab_size <= NUM_SPECIAL:
            raise ValueError(
                f"HashingWordTokenizer: vocab_size must be > {NUM_SPECIAL} (ids 0-3 are pad, bos, eos, unk); "
                f"got {vocab_size}"
            )
        self.vocab_size = vocab_size
        self.lowercase = lowercase

    def tokens(self, text: str) -> list[str]:
        """The words and punctuation marks of ``text``, lower-cased if ``lowercase``."""
        return _WORD.findall(text.lower() if self.lowercase else text)

    def token_id(self, token: str) -> int:
        return NUM_SPECIAL + zlib.crc32(token.encode("utf-8")) % (self.vocab_size - NUM_SPECIAL)

    def ids(self, text: str) -> list[int]:
        return [self.token_id(t) for t in self.tokens(text)]
