"""A 16-bit grey PNG is read as 8-bit levels scaled by its bit depth (value / 257), not clipped at 255, on
every path that reads images: ``read_image``, the manifest's image codec (training), the index's image
loading (``polymodal.coordinated.media``) and the search page's thumbnails (``polymodal.coordinated.serve``)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from polymodal.data.datasets.manifest import from_manifest
from polymodal.data.io import read_image

SIDE = 16  # 256 pixels: one per level of the 16-bit ramp below


def ramp(offset: int = 0) -> np.ndarray:
    """(16, 16) uint16 levels spanning 0..65535 (a ramp, rolled by ``offset`` pixels)."""
    levels = np.rint(np.linspace(0, 65535, SIDE * SIDE)).astype(np.uint16)
    return np.roll(levels, offset).reshape(SIDE, SIDE)


def write_png16(path: Path, levels: np.ndarray) -> Path:
    """A real 16-bit grey PNG written by Pillow (mode I;16), checked to read back as 16-bit."""
    Image.frombytes("I;16", (levels.shape[1], levels.shape[0]), levels.astype("<u2").tobytes()).save(path)
    with Image.open(path) as im:
        assert im.mode in ("I;16", "I") and np.array_equal(np.asarray(im), levels)
    return path


def expected_8bit(levels: np.ndarray) -> np.ndarray:
    return np.rint(levels / 257.0)


def test_read_image_scales_a_16_bit_png_by_its_bit_depth(tmp_path):
    levels = ramp()
    path = write_png16(tmp_path / "ramp16.png", levels)
    grey = read_image(path)
    assert grey.dtype == np.uint8 and grey.shape == (SIDE, SIDE)
    assert np.abs(grey.astype(int) - expected_8bit(levels)).max() <= 1
    assert len(np.unique(grey)) > 200  # Pillow's own conversion leaves 2 levels: 0 and 255
    rgb = read_image(path, mode="RGB")
    assert rgb.shape == (SIDE, SIDE, 3) and all(np.array_equal(rgb[..., c], grey) for c in range(3))
    resized = read_image(path, size=(8, 8), resize=True)
    assert resized.min() < 32 and resized.max() > 223 and 100 < resized.mean() < 156


def test_read_image_leaves_8_bit_images_as_they_are(tmp_path):
    grey = np.random.default_rng(0).integers(0, 256, (SIDE, SIDE), dtype=np.uint8)
    Image.fromarray(grey).save(tmp_path / "g8.png")
    assert np.array_equal(read_image(tmp_path / "g8.png"), grey)


def test_manifest_image_codec_trains_on_the_scaled_levels(tmp_path):
    rows = []
    for i in range(12):
        write_png16(tmp_path / f"s{i}.png", ramp(offset=i))
        rows.append({"image": f"s{i}.png", "label": "a" if i % 2 else "b"})
    table = pd.DataFrame(rows)
    table.to_csv(tmp_path / "table.csv", index=False)
    m = from_manifest(tmp_path / "table.csv", label="label", image={"normalize": False},
                      splits={"val": 0.25, "test": 0.25})
    assert m.stats["image"]["mode"] == "L" and m.stats["image"]["size"] == [SIDE, SIDE]
    for r in range(len(rows)):
        x = m.item("image", r).numpy()[0] * 255.0  # pixels in [0, 1] without normalisation
        assert np.abs(x - expected_8bit(ramp(offset=r))).max() <= 1.0 + 1e-3
    normalised = from_manifest(tmp_path / "table.csv", label="label", splits={"val": 0.25, "test": 0.25})
    mean = normalised.stats["image"]["mean"][0]
    assert mean == pytest.approx(expected_8bit(ramp()).mean() / 255.0, abs=1e-3)  # about 0.5, not near 1


def test_index_image_loading_scales_a_16_bit_png(tmp_path):
    from polymodal.coordinated.media import load_image

    levels = ramp()
    img = load_image(write_png16(tmp_path / "ramp16.png", levels))
    x = np.asarray(img)
    assert img.mode == "RGB" and x.shape == (SIDE, SIDE, 3)
    assert np.abs(x[..., 0].astype(int) - expected_8bit(levels)).max() <= 1


def test_search_page_thumbnail_of_a_16_bit_png_keeps_its_grey_levels(tmp_path):
    from polymodal.coordinated.serve import SearchApp

    levels = ramp()
    path = write_png16(tmp_path / "ramp16.png", levels)
    app = SearchApp.__new__(SearchApp)  # thumbnail() reads the file only: no index is needed
    jpeg = app.thumbnail(path, None)
    with Image.open(io.BytesIO(jpeg)) as im:
        x = np.asarray(im.convert("L")).astype(int)
    assert x.shape == (SIDE, SIDE)
    assert np.abs(x - expected_8bit(levels)).mean() < 4  # JPEG rounding; a clipped ramp is ~127 levels off
