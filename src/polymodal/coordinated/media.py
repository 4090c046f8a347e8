"""Media files for the search index: find them, hash them, read them into embedder items.

- images: ``.jpg .jpeg .png`` read with Pillow (RGB);
- audio: ``.wav .flac`` (and ``.ogg``) read with soundfile, mono float32 (truncated files refused);
- video: ``.mp4 .mov .mkv .webm .avi .m4v`` read with PyAV, frames sampled every ``1 / fps`` seconds
  (the first at 0 s), each frame an image item with its timestamp;
- text: ``.txt`` (UTF-8), its first :data:`TEXT_CHARS` characters.

An item keeps the file's modality (``video`` for frames); :func:`embed_modality` says which embedder
modality reads it (a video frame is an ``image``).
"""

from __future__ import annotations

import errno
import hashlib
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from polymodal.data.io import MediaError

IMAGE_EXTS = frozenset({".jpg", ".jpeg", ".png"})
AUDIO_EXTS = frozenset({".wav", ".flac", ".ogg"})
VIDEO_EXTS = frozenset({".mp4", ".mov", ".mkv", ".webm", ".avi", ".m4v"})
TEXT_EXTS = frozenset({".txt"})
TEXT_CHARS = 4000
MAX_FRAMES = 10_000  # per video: a cap so that a long film at a high rate cannot fill memory


def file_modality(path: str | os.PathLike) -> str | None:
    """``image``, ``audio``, ``video`` or ``text`` from the file's extension; None for anything else."""
    ext = Path(path).suffix.lower()
    for modality, exts in (("image", IMAGE_EXTS), ("audio", AUDIO_EXTS), ("video", VIDEO_EXTS), ("text", TEXT_EXTS)):
        if ext in exts:
            return modality
    return None


def embed_modality(modality: str) -> str:
    """The embedder modality that reads items of a file modality (video frames are images)."""
    return "image" if modality == "video" else modality


@dataclass(frozen=True)
class MediaFile:
    """A file found by :func:`collect`: its resolved path and modality."""

    path: Path
    modality: str


def collect(paths: Iterable[str | os.PathLike]) -> tuple[list[MediaFile], list[Path]]:
    """Media files under ``paths`` (files or folders, walked recursively, sorted): (found, skipped).

    ``skipped`` holds the files given or found that are not read (see :func:`collect_media` for why).
    A path that does not exist is an error naming it. Hidden files and folders (a leading dot) are left
    out of folder walks.
    """
    found, skipped = collect_media(paths)
    return found, [p for p, _ in skipped]


def collect_media(paths: Iterable[str | os.PathLike]) -> tuple[list[MediaFile], list[tuple[Path, str]]]:
    """Like :func:`collect`, with the reason each skipped file is skipped: not a media file, a symbolic link
    loop or a link to nothing, not a regular file, or unreadable (a bad file never stops the walk)."""
    found: dict[Path, MediaFile] = {}
    skipped: dict[Path, str] = {}
    for raw in paths:
        p = Path(raw).expanduser()
        if not p.exists() and not p.is_symlink():
            raise FileNotFoundError(f"{raw}: no such file or folder; give media files or folders that hold them")
        candidates: Iterator[Path] = _walk(p) if p.is_dir() else iter([p])
        for c in candidates:
            try:
                resolved = c.resolve(strict=True)
            except RuntimeError:  # Python 3.11 reports a symlink loop so
                skipped[c.absolute()] = "a symbolic link loop (it leads back to itself): fix or remove the link"
                continue
            except FileNotFoundError:
                skipped[c.absolute()] = f"a symbolic link to nothing ({os.readlink(c) if c.is_symlink() else 'gone'})"
                continue
            except OSError as e:
                loop = e.errno == errno.ELOOP
                skipped[c.absolute()] = ("a symbolic link loop (it leads back to itself): fix or remove the link"
                                         if loop else f"cannot be read: {e.strerror or e}")
                continue
            modality = file_modality(resolved)
            if modality is None:
                skipped[resolved] = "not a media file"
            elif not resolved.is_file():
                skipped[resolved] = "not a regular file"
            else:
                found[resolved] = MediaFile(resolved, modality)
    return sorted(found.values(), key=lambda m: str(m.path)), sorted(skipped.items())


def _walk(folder: Path) -> Iterator[Path]:
    """Files under ``folder``, hidden files and folders left out, in a stable order."""
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        yield from (Path(root) / name for name in sorted(files) if not name.startswith("."))


def content_hash(path: str | os.PathLike) -> str:
    """SHA-256 of the file's bytes (hex): how the index recognises a file it already holds."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def load_image(path: str | os.PathLike) -> Any:
    """An RGB ``PIL.Image`` (decoded and checked: a damaged file raises MediaError naming it)."""
    from PIL import Image

    from polymodal.data.io.image import read_image

    return Image.fromarray(read_image(path, mode="RGB"))


def load_audio(path: str | os.PathLike) -> tuple[Any, int]:
    """``(waveform float32 (samples,), sample_rate)``, channels averaged; truncated or empty files raise."""
    from polymodal.data.io.audio import read_audio

    return read_audio(path, mono=True)


def load_text(path: str | os.PathLike) -> str:
    """The first :data:`TEXT_CHARS` characters of a UTF-8 text file (an empty file raises MediaError)."""
    try:
        text = Path(path).read_text(encoding="utf-8")[:TEXT_CHARS]
    except UnicodeDecodeError as exc:
        raise MediaError(f"text file {path} is not UTF-8 ({exc}); re-save it as UTF-8") from exc
    if not text.strip():
        raise MediaError(f"text file {path} is empty; expected some text")
    return text


def video_frames(path: str | os.PathLike, fps: float = 1.0) -> list[tuple[float, Any]]:
    """Frames sampled every ``1 / fps`` seconds (from 0 s): ``[(timestamp_seconds, PIL.Image RGB), ...]``.

    A frame is taken at the first decoded frame whose presentation time reaches each sampling time, so
    a clip shorter than one period still gives its first frame. At most :data:`MAX_FRAMES` frames.
    """
    import av

    from polymodal.data.io import check_file

    if not fps > 0:
        raise ValueError(f"--fps {fps}: the frame sampling rate must be a positive number of frames per second")
    p = check_file(path, "video file")
    out: list[tuple[float, Any]] = []
    next_t = 0.0
    try:
        with av.open(str(p)) as container:
            if not container.streams.video:
                raise MediaError(f"video file {p} has no video stream; expected a file with pictures")
            stream = container.streams.video[0]
            base = stream.time_base
            for i, frame in enumerate(container.decode(stream)):
                if frame.pts is not None and base is not None:
                    t = float(frame.pts * base)
                else:
                    rate = float(stream.average_rate or 25)
                    t = i / rate
                if t + 1e-6 >= next_t:
                    out.append((round(t, 3), frame.to_image().convert("RGB")))
                    next_t = (int(t * fps + 1e-6) + 1) / fps
                    if len(out) >= MAX_FRAMES:
                        break
    except av.error.FFmpegError as exc:
        raise MediaError(f"cannot decode video file {p}: {exc}; re-encode it (e.g. ffmpeg -i in -c:v libx264 out.mp4)") from exc
    if not out:
        raise MediaError(f"video file {p} has no decodable frames; re-export it or leave it out")
    return out


def video_frame_at(path: str | os.PathLike, t: float) -> Any:
    """The first frame (PIL.Image RGB) whose time reaches ``t`` seconds; the last frame when ``t`` is past the end."""
    import av

    from polymodal.data.io import check_file

    p = check_file(path, "video file")
    last = None
    try:
        with av.open(str(p)) as container:
            if not container.streams.video:
                raise MediaError(f"video file {p} has no video stream")
            stream = container.streams.video[0]
            for i, frame in enumerate(container.decode(stream)):
                ft = float(frame.pts * stream.time_base) if frame.pts is not None else i / float(stream.average_rate or 25)
                last = frame
                if ft + 1e-3 >= t:
                    break
    except av.error.FFmpegError as exc:
        raise MediaError(f"cannot decode video file {p}: {exc}") from exc
    if last is None:
        raise MediaError(f"video file {p} has no decodable frames")
    return last.to_image().convert("RGB")


@dataclass
class MediaItem:
    """One embeddable item of a file: the payload for the embedder and where it came from."""

    path: Path
    modality: str  # the file's modality (image, audio, video, text)
    payload: Any
    timestamp: float | None = None  # seconds into a video; None otherwise


def read_items(media: MediaFile, fps: float = 1.0) -> list[MediaItem]:
    """The embeddable items of one file: one per image / audio / text file, one per sampled video frame."""
    if media.modality == "image":
        return [MediaItem(media.path, "image", load_image(media.path))]
    if media.modality == "audio":
        return [MediaItem(media.path, "audio", load_audio(media.path))]
    if media.modality == "text":
        return [MediaItem(media.path, "text", load_text(media.path))]
    if media.modality == "video":
        return [MediaItem(media.path, "video", img, t) for t, img in video_frames(media.path, fps)]
    raise ValueError(f"{media.path}: unknown modality {media.modality!r}")
