"""Images through Pillow, checked (``verify`` then ``load``) so a damaged file fails with its name.

Pixels are returned as 8-bit levels. A grey image of more than 8 bits per pixel (a 16-bit PNG, which
Pillow opens in mode ``I;16``, or ``I`` in older versions) is scaled from its bit depth's full range to
0..255 (a 16-bit value ``v`` becomes ``round(v / 257)``), not clipped at 255 as Pillow's own conversion
does."""

from __future__ import annotations

import os
from typing import Literal

import numpy as np
from PIL import Image, UnidentifiedImageError

from polymodal.data.io import MediaError, check_file

IMAGE_MODES = ("L", "RGB")
WIDE_GREY_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")  # grey modes of more than 8 bits per pixel


def bit_depth(img: Image.Image) -> int:
    """Bits per grey level of a decoded image in one of :data:`WIDE_GREY_MODES`: 16 for the ``I;16``
    modes, and for mode ``I`` (32-bit integers) 16 when every value fits in 16 bits (how Pillow opened
    16-bit PNG files before ``I;16``), else 32."""
    if img.mode.startswith("I;16"):
        return 16
    low, high = img.getextrema()
    return 16 if high <= 0xFFFF else 32


def to_8bit_grey(img: Image.Image) -> Image.Image:
    """A grey image of more than 8 bits per pixel as an ``L`` image, its levels scaled by its bit depth
    (the full range of that depth maps to 0..255, rounded; negative values are 0)."""
    levels = np.asarray(img, dtype=np.float64)
    scale = 255.0 / float(2 ** bit_depth(img) - 1)
    return Image.fromarray(np.clip(np.rint(levels * scale), 0, 255).astype(np.uint8))


def read_image(
    path: str | os.PathLike,
    *,
    mode: Literal["L", "RGB"] = "L",
    size: tuple[int, int] | None = None,
    resize: bool = False,
) -> np.ndarray:
    """Read an image as uint8 pixels (a grey image of more than 8 bits scaled by its bit depth).

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
            img = to_8bit_grey(im) if im.mode in WIDE_GREY_MODES else im
            img = img.convert(mode)
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
