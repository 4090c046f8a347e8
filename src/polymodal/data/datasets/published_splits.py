"""The published split lists that balanced-multimodal-learning results were measured on, shipped with polymodal
(``polymodal/artifacts/splits``, gzip-compressed copies of the lists of the OGM-GE and MLA code; docs/datasets.md
names each source). Each list is read with its SHA-256, which every prepared dataset's manifest records."""

from __future__ import annotations

import gzip
import hashlib
from pathlib import Path

SPLITS_DIR = Path(__file__).resolve().parents[2] / "artifacts" / "splits"


def read_list(relative: str) -> tuple[list[str], str]:
    """The lines (stripped, non-empty, byte-order mark removed) of a shipped list and the SHA-256 of its text."""
    path = SPLITS_DIR / f"{relative}.gz"
    if not path.is_file():
        raise FileNotFoundError(f"published split list {path} is missing from the installation; reinstall polymodal")
    data = gzip.decompress(path.read_bytes())
    text = data.decode("utf-8-sig")
    return [line.strip() for line in text.splitlines() if line.strip()], hashlib.sha256(data).hexdigest()


__all__ = ["SPLITS_DIR", "read_list"]
