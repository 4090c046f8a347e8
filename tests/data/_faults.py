"""Small tables of real files written by the tests themselves (WAV through soundfile, PNG through Pillow,
.npy through numpy), for the fault and bad-input tests of the bring-your-own-data reader."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf
from PIL import Image

CLASSES = ("low", "mid", "high")
SR = 8000


def write_wav(path: Path, seconds: float, freq: float, seed: int = 0, sr: int = SR) -> Path:
    t = np.arange(int(round(seconds * sr))) / sr
    rng = np.random.default_rng(seed)
    x = 0.5 * np.sin(2 * np.pi * freq * t) + 0.05 * rng.standard_normal(len(t))
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, x.astype(np.float32), sr, subtype="PCM_16")
    return path


def write_png(path: Path, level: int, seed: int = 0, size: int = 8) -> Path:
    rng = np.random.default_rng(seed)
    img = np.clip(level + rng.integers(-20, 20, (size, size)), 0, 255).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(img).save(path)
    return path


def write_table(folder: Path, per_class: int = 8, seconds: float = 0.25) -> pd.DataFrame:
    """``id, audio, image, size, label``: a tone and a grey level per class, relative paths under ``folder``."""
    rows = []
    for c, name in enumerate(CLASSES):
        for k in range(per_class):
            i = len(rows)
            write_wav(folder / "wav" / f"s{i:03d}.wav", seconds, 300 + 500 * c, seed=i)
            write_png(folder / "img" / f"s{i:03d}.png", 40 + 80 * c, seed=i)
            rows.append({"id": f"s{i:03d}", "audio": f"wav/s{i:03d}.wav", "image": f"img/s{i:03d}.png",
                         "size": f"{c + 0.1 * k:.2f}", "label": name})
    return pd.DataFrame(rows)


def write_csv(df: pd.DataFrame, path: Path, **kw) -> Path:
    df.to_csv(path, index=False, **kw)
    return path
