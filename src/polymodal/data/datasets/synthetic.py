"""A tiny deterministic two-modality dataset for smoke tests and examples.

Each class has a random prototype in each modality; a sample is its class prototype plus noise.
``noise`` sets how hard each modality is; ``missing`` drops each (sample, modality) slot with that
probability (every sample keeps at least one modality); ``missing_rate`` / ``missing_seed`` apply the
benchmark protocol's exact-rate mask (``polymodal.data.missing.missing_mask``).
"""

from __future__ import annotations

import numpy as np
import torch

from polymodal.data.base import DATASETS, MultimodalDataset
from polymodal.data.batch import Sample
from polymodal.data.missing import missing_mask
from polymodal.data.schema import Modality

_SPLIT_OFFSET = {"train": 0, "val": 1, "test": 2}


class SyntheticDataset(MultimodalDataset):
    def __init__(
        self,
        split: str = "train",
        size: int | None = None,
        num_classes: int = 4,
        dims: tuple[int, int] = (8, 6),
        noise: tuple[float, float] = (1.0, 1.5),
        missing: float = 0.0,
        seed: int = 0,
        missing_rate: float = 0.0,
        missing_seed: int = 0,
        **_: object,
    ) -> None:
        self.name, self.split = "synthetic", split
        n = size if size is not None else {"train": 96, "val": 32, "test": 32}[split]
        proto_rng = np.random.default_rng(seed)
        protos = [proto_rng.standard_normal((num_classes, d)) for d in dims]
        rng = np.random.default_rng(seed * 10 + 1 + _SPLIT_OFFSET[split])
        self.labels = np.arange(n) % num_classes
        rng.shuffle(self.labels)
        self.x = [
            (p[self.labels] + s * rng.standard_normal((n, p.shape[1]))).astype(np.float32)
            for p, s in zip(protos, noise, strict=True)
        ]
        self.present = np.ones((n, 2), dtype=bool)
        if missing > 0:
            drop = rng.random((n, 2)) < missing
            drop[drop.all(axis=1), rng.integers(0, 2)] = False
            self.present &= ~drop
        if missing_rate > 0:  # the benchmark protocol's mask (exact rate, every sample keeps one modality)
            mask_rng = np.random.default_rng((missing_seed, _SPLIT_OFFSET[split]))
            self.present &= missing_mask(n, 2, missing_rate, mask_rng)
        self.schema = (
            Modality("a", "tabular", (dims[0],), representation="features"),
            Modality("b", "tabular", (dims[1],), representation="features"),
        )
        self.num_outputs = num_classes
        self.class_names = tuple(str(c) for c in range(num_classes))
        self.task = "classification"
        self.provenance = {
            "dataset": "synthetic", "seed": seed, "size": n, "missing_rate": missing_rate,
            "realised_missing_rate": float(1.0 - self.present.mean()),
        }

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> Sample:
        inputs = {
            m.name: (torch.from_numpy(self.x[j][i]) if self.present[i, j] else None) for j, m in enumerate(self.schema)
        }
        return {"inputs": inputs, "label": int(self.labels[i]), "index": int(i)}


@DATASETS.register("synthetic", tiny={"size": 16})
def synthetic(split: str = "train", **options: object) -> SyntheticDataset:
    """Tiny deterministic two-modality tabular dataset (smoke tests, examples)."""
    return SyntheticDataset(split=split, **options)  # type: ignore[arg-type]
