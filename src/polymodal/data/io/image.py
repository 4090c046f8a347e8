"""Images through Pillow, checked (``verify`` then ``load``) so a damaged file fails with its name."""

from __future__ import annotations

import os
from typing import Literal

import numpy as np
from PIL import Image, UnidentifiedImageError

from polymodal.data.io import MediaError, check_file

IMAGE_MODES = ("L", "RGB")


def read_image(
    path: str | os.PathLike,
    *,
    mode: Literal["L", "RGB"] = "L",
    size: tuple[int, int] | None = None,
    resize: bool = False,
) -> np.ndarray:
    """Read an image as uint8 pixels.

    Returns (H, W) for ``mode="L"`` (grey) or (H, W, 3) for ``mode="RGB"``. ``size`` is
    (height, width) in pixels: an image of another size raises unless ``resize`` is True, in which
    case it is resized with bilinear interpolation.

    Raises MediaNotFoundError (missing file) or MediaError (unreadable or damaged file, wrong size).
    """
    if mode not in IMAGE_MODES:
        raise ValueError(f"read_image: mode {mode!r} is not one of {IMAGE_MODES}")
    p = check_file(path, "image")
    try:
        with Image.open(p) as im:
            im.verify()  # structure and checksums; the object is unusable afterwards
        with Image.open(p) as im:
            im.load()  # decodes the pixels: catches truncated data that verify() lets through
            img = im.convert(mode)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise MediaError(
            f"cannot read image {p}: {exc}; the file is damaged or not an image Pillow reads "
            "(PNG, JPEG, BMP, ...): re-export it"
        ) from exc
    if size is not None:
        height, width = size
        if img.size != (width, height):
            if not resize:
                raise MediaError(
                    f"image {p} is {img.height}x{img.width} (height x width); expected {height}x{width}: resize "
                    "the file or pass resize=True"
                )
            img = img.resize((width, height), Image.Resampling.BILINEAR)
    return np.array(img, dtype=np.uint8)
