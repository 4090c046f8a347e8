"""Text: inline strings, or .txt files, as token ids of a tokenizer that needs no download."""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import torch
from pydantic import Field

from polymodal.data.datasets.manifest.codecs.base import CODECS, Codec, CodecOptions
from polymodal.data.io import read_text
from polymodal.data.schema import Modality
from polymodal.data.text import ByteTokenizer, HashingWordTokenizer


class TextOptions(CodecOptions):
    tokenizer: Literal["hashing", "bytes"] = "hashing"
    max_length: int = Field(64, ge=1)
    vocab_size: int = Field(8192, ge=16)  # hashing tokenizer only


@CODECS.register("text", tiny={"max_length": 8, "vocab_size": 64})
class TextCodec(Codec):
    """Text cells or .txt files: token ids (hashed words or bytes)."""

    extensions = (".txt",)
    inline = True
    Options = TextOptions

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._tok: ByteTokenizer | HashingWordTokenizer | None = None  # made from the state when first used

    def setup(self, probes: list) -> None:
        opt = self.options
        self.state = {"tokenizer": opt.tokenizer, "max_length": opt.max_length, "vocab_size": opt.vocab_size}
        self._tok = None

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self._tok = None

    @property
    def tokenizer(self) -> ByteTokenizer | HashingWordTokenizer:
        """The tokenizer the state names."""
        if self._tok is None:
            st = self.state
            self._tok = (ByteTokenizer(st["max_length"]) if st["tokenizer"] == "bytes"
                         else HashingWordTokenizer(st["vocab_size"], st["max_length"]))
        return self._tok

    def read(self, source: Any) -> np.ndarray:
        s = str(source)
        if s.lower().endswith(self.extensions):
            s = read_text(self.resolve(s))
        return self.tokenizer.encode(s).numpy()

    def to_tensor(self, x: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.asarray(x, dtype=np.int64))

    def modality(self) -> Modality:
        st = self.state
        return Modality(self.name, "text", (st["max_length"],), representation="tokens",
                        extra={"vocab_size": self.tokenizer.vocab_size, "tokenizer": st["tokenizer"]})
