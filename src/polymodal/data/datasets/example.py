"""A small example dataset in the two bring-your-own-data layouts, written on first use.

100 samples (10 per digit 0-9) built from the AV-digits artifact shipped with polymodal: a spoken digit
(FSDD recording, 8 kHz WAV), a handwritten digit (MNIST, PNG), a short caption, a categorical column
and two numbers measured on the files. One row has no image (a missing modality) and one row no
numbers. The files are derived from FSDD (CC BY-SA 4.0) and MNIST (CC BY-SA 3.0); see the
artifact's ATTRIBUTION file.

    example_manifest()  -> .../manifest.csv   columns id, audio, image, caption, pen, loudness_db, ink, digit
    example_folder()    -> .../               <digit>/<id>/audio.wav, image.png
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np

from polymodal.paths import cache_dir

EXAMPLE_VERSION = "digits-example-v2"
PER_CLASS = 10
PENS = ("blue", "black", "red")


def _target(root: str | os.PathLike | None) -> Path:
    return Path(root) if root is not None else cache_dir() / "examples" / EXAMPLE_VERSION


def write_example(root: str | os.PathLike | None = None) -> Path:
    """Write the example (manifest.csv, audio/, image/, folder/) under ``root`` and return ``root``."""
    import soundfile as sf
    from PIL import Image

    from polymodal.data.datasets.avdigits import AVDigits

    out = _target(root)
    if (out / "manifest.csv").is_file():
        return out
    tmp = out.with_name(out.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "audio").mkdir(parents=True)
    (tmp / "image").mkdir()
    ds = AVDigits("avdigits", "train", cache_features=False)
    audio, image = ds.tensor("audio").numpy(), ds.tensor("image").numpy()
    rng = np.random.default_rng(0)
    lines = ["id,audio,image,caption,pen,loudness_db,ink,digit"]
    n = 0
    for digit in range(10):
        rows = np.flatnonzero(ds.labels == digit)[:PER_CLASS]
        for k, r in enumerate(rows):
            sid = f"s{n:03d}"
            wav = audio[r]
            sf.write(tmp / "audio" / f"{sid}.wav", wav, 8000, subtype="PCM_16")
            img = (np.clip(image[r, 0], 0, 1) * 255).round().astype(np.uint8)
            Image.fromarray(img, mode="L").save(tmp / "image" / f"{sid}.png")
            pen = PENS[int(rng.integers(len(PENS)))]
            odd = "an odd" if digit % 2 else "an even"
            caption = f"{odd} number written with a {pen} pen" if rng.random() < 0.8 else f"a number written with a {pen} pen"
            loud = f"{20 * np.log10(np.sqrt(np.mean(wav ** 2)) + 1e-8):.2f}"
            ink = f"{img.mean() / 255:.4f}"
            image_cell = "" if (digit, k) == (3, 0) else f"image/{sid}.png"
            if (digit, k) == (5, 1):
                loud, ink = "", ""
            lines.append(f"{sid},audio/{sid}.wav,{image_cell},{caption},{pen},{loud},{ink},{digit}")
            folder = tmp / "folder" / str(digit) / sid
            folder.mkdir(parents=True)
            shutil.copy(tmp / "audio" / f"{sid}.wav", folder / "audio.wav")
            if image_cell:
                shutil.copy(tmp / "image" / f"{sid}.png", folder / "image.png")
            n += 1
    (tmp / "manifest.csv").write_text("\n".join(lines) + "\n")
    (tmp / "ATTRIBUTION.md").write_text(
        "Derived from the Free Spoken Digit Dataset (CC BY-SA 4.0) and MNIST (CC BY-SA 3.0), as shipped in\n"
        "polymodal's AV-digits artifact (see its ATTRIBUTION file). Captions, pens and numbers are generated.\n")
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        tmp.rename(out)
    except OSError:  # another process wrote it first
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def example_manifest(root: str | os.PathLike | None = None) -> Path:
    """Path of the example's manifest.csv (written on first use)."""
    return write_example(root) / "manifest.csv"


def example_folder(root: str | os.PathLike | None = None) -> Path:
    """Path of the example in the folder layout ``<digit>/<id>/<modality>.<ext>`` (written on first use)."""
    return write_example(root) / "folder"
