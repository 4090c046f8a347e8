"""Tokenizers: round trip, padding/truncation, and the same ids in every process."""

from __future__ import annotations

import os
import subprocess
import sys
import zlib

import pytest
import torch

from polymodal.data.text import BOS_ID, EOS_ID, PAD_ID, ByteTokenizer, HashingWordTokenizer

TEXTS = ["Hello, world!", "héllo wörld ✓ 数字", "", "the THE The"]


def test_byte_round_trip_and_layout():
    tok = ByteTokenizer(max_length=32)
    assert tok.vocab_size == 260
    for text in TEXTS:
        ids = tok.encode(text)
        assert ids.dtype == torch.long and ids.shape == (32,)
        assert tok.decode(ids) == text
    ids = tok.encode("ab")
    assert ids.tolist() == [BOS_ID, ord("a") + 4, ord("b") + 4, EOS_ID] + [PAD_ID] * 28
    assert int((ids != tok.pad_id).sum()) == 4  # attention mask = ids != pad


def test_byte_truncation_keeps_eos():
    tok = ByteTokenizer(max_length=6)
    ids = tok.encode("abcdefgh")
    assert ids.tolist() == [BOS_ID, *(ord(c) + 4 for c in "abcd"), EOS_ID]
    assert tok.decode(ids) == "abcd"
    assert tok.decode(ByteTokenizer(max_length=4).encode("é!")) == "é"  # 2 bytes fit exactly
    assert tok.decode(ByteTokenizer(max_length=3).encode("é")) == "\ufffd"  # a cut character decodes as U+FFFD


def test_batch_and_errors():
    tok = ByteTokenizer(max_length=8)
    batch = tok.encode_batch(["a", "bb"])
    assert batch.shape == (2, 8)
    assert torch.equal(batch[1], tok.encode("bb"))
    with pytest.raises(ValueError, match="max_length must be >= 3"):
        ByteTokenizer(max_length=2)
    with pytest.raises(TypeError, match="expects a str"):
        tok.encode(b"bytes")
    with pytest.raises(ValueError, match="vocab_size must be > 4"):
        HashingWordTokenizer(vocab_size=4, max_length=8)


def test_hashing_words():
    tok = HashingWordTokenizer(vocab_size=1000, max_length=10)
    assert tok.tokens("The cat, the HAT!") == ["the", "cat", ",", "the", "hat", "!"]
    ids = tok.encode("The cat, the HAT!")
    assert ids.shape == (10,) and ids[0] == BOS_ID and ids[7] == EOS_ID and (ids[8:] == PAD_ID).all()
    assert ids[1] == ids[4]  # "The" and "the" share an id when lower-casing
    assert ids[1] == 4 + zlib.crc32(b"the") % 996  # the documented hash
    assert ((ids[1:7] >= 4) & (ids[1:7] < 1000)).all()
    cased = HashingWordTokenizer(vocab_size=1000, max_length=10, lowercase=False).encode("The the")
    assert cased[1] != cased[2]


@pytest.mark.slow
def test_same_ids_in_other_processes():
    code = (
        "from polymodal.data.text import HashingWordTokenizer as H, ByteTokenizer as B;"
        f"texts = {TEXTS!r};"
        "print([H(5000, 16).encode(t).tolist() + B(16).encode(t).tolist() for t in texts])"
    )
    here = str([HashingWordTokenizer(5000, 16).encode(t).tolist() + ByteTokenizer(16).encode(t).tolist() for t in TEXTS])
    env = {**os.environ, "PYTHONHASHSEED": "12345"}  # another str-hash salt than this process's
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == here
