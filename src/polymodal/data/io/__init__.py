"""Reading media files with errors that name the file, what was expected and how to fix it.

Every reader raises :class:`MediaError` (a ``ValueError``) for a file that exists but cannot be
used, and :class:`MediaNotFoundError` (also a ``FileNotFoundError``) for a path that does not exist.

    from polymodal.data.io import read_audio, read_image, read_text, read_video
"""

from __future__ import annotations

import errno
import os
from pathlib import Path


class MediaError(ValueError):
    """A media file exists but is unreadable, corrupt, truncated, empty or not what was asked for."""


class MediaNotFoundError(MediaError, FileNotFoundError):
    """A media file does not exist (or the path is a folder)."""


def check_file(path: str | os.PathLike, what: str) -> Path:
    """Return ``path`` as a Path; raise MediaNotFoundError if it is missing or a folder.

    ``what`` names the kind of file in the message ("audio file", "image", ...).
    """
    p = Path(path).expanduser()
    if p.is_symlink():
        try:
            p.stat()
        except OSError as e:
            if e.errno == errno.ELOOP:
                raise MediaError(f"{what} {p} is a symbolic link loop (it points back to itself through other links); "
                                 "replace the link by the file it should point to") from None
            if e.errno == errno.ENOENT:
                raise MediaNotFoundError(f"{what} {p} is a symbolic link to {os.readlink(p)}, which does not exist; "
                                         "fix the link or the path") from None
            raise MediaError(f"{what} {p} cannot be opened: {e.strerror}") from None
    if p.is_dir():
        raise MediaNotFoundError(f"{what} {p} is a folder, not a file; pass the path of a file inside it")
    if not p.is_file():
        raise MediaNotFoundError(f"{what} {p} does not exist; check the path (and the data root setting)")
    return p


# The readers import MediaError from this module, so they are imported after it is defined.
from polymodal.data.io.audio import read_audio  # noqa: E402
from polymodal.data.io.image import read_image  # noqa: E402
from polymodal.data.io.text import read_text  # noqa: E402
from polymodal.data.io.video import read_video  # noqa: E402

__all__ = [
    "MediaError",
    "MediaNotFoundError",
    "check_file",
    "read_audio",
    "read_image",
    "read_text",
    "read_video",
]
