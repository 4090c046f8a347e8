"""The AV-digits recipe: which FSDD recordings and MNIST rows make each split, how clips and images are
paired (fixed seeds), and the published checksums that pin it (the project's benchmark protocols)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import numpy as np

from polymodal.data.base import SPLITS

RECORDINGS = {"train": range(10, 50), "val": range(5, 10), "test": range(0, 5)}  # FSDD index in file name
IMAGE_POOLS = {"train": (0, 6000), "val": (6000, 8000), "test": (8000, 10000)}  # MNIST t10k rows [lo, hi)
SEEDS = {  # numpy default_rng seeds of the recipe
    "pairing": 20231117,
    "pairing_image2": 20231118,
    "pairing_sum": 20231119,
    "audio_noise": 1,
    "image_noise": 2,
    "image2_noise": 3,
}
RECIPE_CHECKSUMS = {  # first 16 hex digits of sha256 over the recipe's lines
    "all_rows": "cf76718d3cbcdfba",
    "test_rows": "35122b1d4a4e0eb9",
    "image2": "159dce8114ad5ba6",
    "sum": "dfff13ee1d26de8c",
}


@dataclass(frozen=True)
class Recipe:
    """The paired rows of all splits in recipe order (split, digit, FSDD file name). Arrays are (3000,)."""

    split: np.ndarray  # int64 position in SPLITS
    clip: np.ndarray  # int64 row of the artifact's audio index
    image_row: np.ndarray  # int64 MNIST t10k row paired with the clip
    image2_row: np.ndarray  # int64 second MNIST row (3-view)
    sum_row: np.ndarray  # int64 MNIST row of the sum variant
    sum_label: np.ndarray  # int64 (audio digit + image digit) % 10



def build_recipe(files: tuple[str, ...], digits: np.ndarray, recordings: np.ndarray, image_labels: np.ndarray) -> Recipe:
    """Pair clips with MNIST rows exactly as the benchmark recipe says (``files`` sorted by name)."""
    rng, rng2, rng3 = (np.random.default_rng(SEEDS[k]) for k in ("pairing", "pairing_image2", "pairing_sum"))
    cols: dict[str, list[np.ndarray]] = {k: [] for k in ("split", "clip", "image_row", "image2_row", "sum_row")}
    for s, name in enumerate(SPLITS):
        lo, hi = IMAGE_POOLS[name]
        in_split = np.isin(recordings, np.asarray(RECORDINGS[name]))
        for d in range(10):
            clips = np.flatnonzero(in_split & (digits == d))  # ascending = file-name order
            pool = lo + np.flatnonzero(image_labels[lo:hi] == d)
            first = rng.choice(pool, size=len(clips), replace=False)
            second = rng2.choice(np.setdiff1d(pool, first), size=len(clips), replace=False)
            cols["split"].append(np.full(len(clips), s))
            cols["clip"].append(clips)
            cols["image_row"].append(first)
            cols["image2_row"].append(second)
        n = sum(len(c) for c in cols["clip"][-10:])
        cols["sum_row"].append(rng3.choice(np.arange(lo, hi), size=n, replace=False))
    arrays = {k: np.concatenate(v).astype(np.int64) for k, v in cols.items()}
    sum_label = (digits[arrays["clip"]] + image_labels[arrays["sum_row"]]) % 10
    return Recipe(**arrays, sum_label=sum_label.astype(np.int64))


def recipe_checksums(recipe: Recipe, files: tuple[str, ...]) -> dict[str, str]:
    """The four published checksums of a recipe (see ``RECIPE_CHECKSUMS``)."""

    def digest(lines: Any) -> str:
        return hashlib.sha256("".join(lines).encode()).hexdigest()[:16]

    names = [files[c] for c in recipe.clip]
    test = SPLITS.index("test")
    return {
        "all_rows": digest(f"{f},{r}\n" for f, r in zip(names, recipe.image_row, strict=True)),
        "test_rows": digest(
            f"{f},{r}\n" for f, r, s in zip(names, recipe.image_row, recipe.split, strict=True) if s == test
        ),
        "image2": digest(f"{f},{r}\n" for f, r in zip(names, recipe.image2_row, strict=True)),
        "sum": digest(f"{f},{r},{y}\n" for f, r, y in zip(names, recipe.sum_row, recipe.sum_label, strict=True)),
    }
