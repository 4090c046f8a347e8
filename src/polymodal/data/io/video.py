"""Video clips through PyAV, ``num_frames`` frames sampled uniformly over the clip."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

import av
import numpy as np

from polymodal.data.io import MediaError, check_file

_FORMATS = {"RGB": "rgb24", "L": "gray"}


def sample_indices(total: int, num_frames: int) -> np.ndarray:
    """Centre frame of each of ``num_frames`` equal segments of a ``total``-frame clip (TSN style).

    Frames repeat when the clip has fewer than ``num_frames`` frames. int64 (num_frames,).
    """
    return np.minimum(((np.arange(num_frames) + 0.5) * total / num_frames).astype(np.int64), total - 1)


def _decode(
    p: Path, wanted: np.ndarray | None, fmt: str, size: tuple[int, int] | None
) -> tuple[int, dict[int, np.ndarray]]:
    """Decode the first video stream; return its frame count and the wanted frames as (H, W[, C]) uint8."""
    kwargs = {"format": fmt} if size is None else {"format": fmt, "height": size[0], "width": size[1]}
    keep = set() if wanted is None else {int(i) for i in wanted}
    frames: dict[int, np.ndarray] = {}
    count = 0
    try:
        with av.open(str(p)) as container:
            if not container.streams.video:
                raise MediaError(
                    f"video file {p} has no video stream (streams: {[s.type for s in container.streams]}); "
                    "expected a file with pictures: check the file or read its audio with read_audio"
                )
            stream = container.streams.video[0]
            if wanted is None and stream.frames > 0:
                return int(stream.frames), frames  # the container states the count: no decoding needed
            for frame in container.decode(stream):
                if count in keep:
                    frames[count] = frame.to_ndarray(**kwargs)
                count += 1
    except av.error.FFmpegError as exc:
        raise MediaError(
            f"cannot decode video file {p}: {exc}; the file is damaged or its codec is unsupported by this "
            "PyAV build: re-encode it (e.g. `ffmpeg -i in -c:v libx264 out.mp4`)"
        ) from exc
    return count, frames


def read_video(
    path: str | os.PathLike,
    *,
    num_frames: int,
    size: tuple[int, int] | None = None,
    mode: Literal["RGB", "L"] = "RGB",
) -> np.ndarray:
    """Read ``num_frames`` frames sampled uniformly over a clip (see :func:`sample_indices`).

    Returns uint8 (T, H, W, C) with T = ``num_frames``, C = 3 for "RGB" and 1 for "L" (grey);
    ``size`` = (height, width) in pixels resizes every frame, None keeps the clip's size.

    Raises MediaNotFoundError (missing file) or MediaError (unreadable, no video stream, no frames).
    """
    if mode not in _FORMATS:
        raise ValueError(f"read_video: mode {mode!r} is not one of {tuple(_FORMATS)}")
    if num_frames < 1:
        raise ValueError(f"read_video: num_frames must be >= 1; got {num_frames}")
    p = check_file(path, "video file")
    total, _ = _decode(p, None, _FORMATS[mode], size)
    for _ in range(2):  # a second pass only when the container's frame count was wrong
        if total == 0:
            raise MediaError(
                f"video file {p} has a video stream with 0 frames; expected at least one frame: re-export it "
                "or drop it from the dataset"
            )
        idx = sample_indices(total, num_frames)
        decoded, frames = _decode(p, idx, _FORMATS[mode], size)
        if decoded >= total:
            break
        total = decoded
    clip = np.stack([frames[int(i)] for i in idx])
    return clip[..., None] if clip.ndim == 3 else clip  # (T, H, W, C)
