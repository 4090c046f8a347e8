"""The corruptions of the hard variants: white noise at a given SNR over each clip, Gaussian pixel noise
and an occluding square over each image; every generator walks all rows in recipe order, so a split's
arrays do not depend on which other rows are kept."""

from __future__ import annotations

import numpy as np

from polymodal.data.datasets.avdigits.artifact import IMAGE_SIZE, Artifact
from polymodal.data.datasets.avdigits.recipe import SEEDS

HARD_DEFAULTS: dict[str, float | int] = {"snr_db": 0.0, "sigma": 0.5, "occlusion": 10}  # calibrated: docs/benchmarks.md


def audio_waveforms(art: Artifact, keep: np.ndarray, snr_db: float | None) -> np.ndarray:
    """float32 (keep.sum(), 8000) waveforms of the kept recipe rows (``keep``: bool (3000,)).

    Clean: int16 / 32768. Noisy (``snr_db`` given): the recipe's white noise at that SNR over the
    clip, then zero padding; the generator walks every row in recipe order (one draw per row).
    """
    clips = art.recipe.clip
    out = art.clips[clips[keep]].astype(np.float32) / 32768.0
    if snr_db is None:
        return out
    rng = np.random.default_rng(SEEDS["audio_noise"])
    pos = np.cumsum(keep) - 1  # row j of the recipe -> row of ``out``
    for j, i in enumerate(clips):
        n = int(art.lengths[i])
        noise = rng.standard_normal(n)
        if keep[j]:
            x = art.clips[i, :n] / 32768.0  # float64
            x = x + noise * np.sqrt(np.mean(x**2) / 10 ** (snr_db / 10))
            out[pos[j], :n] = x
    return out


def image_pixels(art: Artifact, rows: np.ndarray, keep: np.ndarray, noise: tuple[float, int, int] | None) -> np.ndarray:
    """float32 (keep.sum(), 28, 28) in [0, 1] of MNIST ``rows`` (int (3000,), recipe order) kept by ``keep``.

    ``noise`` = (sigma, k, seed): Gaussian noise of std sigma, clipped, then a k x k square of zeros
    at a random position; the generator walks every row in recipe order.
    """
    if noise is None:
        return art.images[rows[keep]].astype(np.float32) / 255.0
    sigma, k, seed = noise
    g = np.random.default_rng(seed)
    out = []
    for j, row in enumerate(rows):
        eps = g.standard_normal((IMAGE_SIZE, IMAGE_SIZE))
        r, c = g.integers(0, IMAGE_SIZE - k + 1, size=2)
        if keep[j]:
            x = np.clip(art.images[row] / 255.0 + sigma * eps, 0.0, 1.0)
            x[r : r + k, c : c + k] = 0.0
            out.append(x.astype(np.float32))
    return np.stack(out)
