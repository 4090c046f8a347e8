"""Text files as UTF-8 strings."""

from __future__ import annotations

import os

from polymodal.data.io import MediaError, check_file


def read_text(path: str | os.PathLike) -> str:
    """Read a UTF-8 text file (a leading byte-order mark is dropped; line endings are kept as is).

    Raises MediaNotFoundError (missing file) or MediaError (bytes that are not UTF-8).
    """
    p = check_file(path, "text file")
    data = p.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise MediaError(
            f"text file {p} is not valid UTF-8: byte {exc.start} (line {line}) is {data[exc.start:exc.start + 1]!r}; "
            "re-save the file as UTF-8 (e.g. `iconv -f latin1 -t utf-8`)"
        ) from exc
