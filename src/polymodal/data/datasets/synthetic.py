"""A tiny deterministic two-modality dataset for smoke tests and examples.

Classification (default, and any task with classes, ``Task.uses_classes``): each class has a random prototype in each modality; a sample is its class
prototype plus noise. ``noise`` sets how hard each modality is.

Any other task whose targets are not classes (``task="regression"``; :mod:`polymodal.tasks`): each modality's features are standard normal and carry one part of
the target, read out along a fixed random unit direction per modality and target (drawn from ``seed``):
``y_k = sum_m x_m . w_mk + target_noise * eps``. Each part has unit variance, so no modality alone
explains more than about half of the target's variance; ``num_targets`` sets K (labels (N,) for one
target, (N, K) otherwise). ``noise`` is not used.

``missing`` drops each (sample, modality) slot with that probability (every sample keeps at least one
modality); ``missing_rate`` / ``missing_seed`` apply the benchmark protocol's exact-rate mask
(``polymodal.data.missing.missing_mask``).
"""

from __future__ import annotations

import inspect

import numpy as np
import torch

from polymodal.data.base import DATASETS, MultimodalDataset
from polymodal.data.batch import Sample
from polymodal.data.missing import missing_mask
from polymodal.data.schema import Modality
from polymodal.tasks import DEFAULT_TASK, TASKS, get_task

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
        task: str = DEFAULT_TASK,
        num_targets: int = 1,
        target_noise: float = 0.1,
        root: str | None = None,  # the engine passes data.root and data.cache_features to every dataset:
        cache_features: bool = True,  # this one is generated in memory and needs neither
    ) -> None:
        if task not in TASKS:
            raise ValueError(f"synthetic dataset: task={task!r}; expected one of {', '.join(TASKS.names())}")
        task_obj = get_task(task)
        self._classes = task_obj.uses_classes  # class ids as labels; else float targets
        self.name, self.split = "synthetic", split
        n = size if size is not None else {"train": 96, "val": 32, "test": 32}[split]
        rng = np.random.default_rng(seed * 10 + 1 + _SPLIT_OFFSET[split])
        if not self._classes:
            self.labels, self.x = _regression_data(rng, n, dims, seed, num_targets, target_noise)
        else:
            proto_rng = np.random.default_rng(seed)
            protos = [proto_rng.standard_normal((num_classes, d)) for d in dims]
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
        self.task = task_obj.name
        if not self._classes:
            self.num_outputs = num_targets
            self.class_names = ()
        else:
            self.num_outputs = num_classes
            self.class_names = tuple(str(c) for c in range(num_classes))
        self.provenance = {
            "dataset": "synthetic", "seed": seed, "size": n, "missing_rate": missing_rate,
            "realised_missing_rate": float(1.0 - self.present.mean()),
        }
        if task_obj.name != DEFAULT_TASK:
            self.provenance["task"] = task_obj.name
        if not self._classes:
            self.provenance.update(num_targets=num_targets, target_noise=target_noise)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> Sample:
        inputs = {
            m.name: (torch.from_numpy(self.x[j][i]) if self.present[i, j] else None) for j, m in enumerate(self.schema)
        }
        if not self._classes:
            y = self.labels[i]
            label: float | list[float] = float(y) if self.labels.ndim == 1 else [float(v) for v in y]
            return {"inputs": inputs, "label": label, "index": int(i)}
        return {"inputs": inputs, "label": int(self.labels[i]), "index": int(i)}


def _regression_data(
    rng: np.random.Generator, n: int, dims: tuple[int, int], seed: int, num_targets: int, target_noise: float
) -> tuple[np.ndarray, list[np.ndarray]]:
    """(labels (N,) or (N, K) float32, features per modality) of the regression variant."""
    if num_targets < 1:
        raise ValueError(f"synthetic dataset: num_targets={num_targets}; expected >= 1")
    if target_noise < 0:
        raise ValueError(f"synthetic dataset: target_noise={target_noise}; expected >= 0")
    dir_rng = np.random.default_rng((seed, 7))  # the same read-out directions in every split
    directions = []
    for d in dims:
        w = dir_rng.standard_normal((d, num_targets))
        directions.append(w / np.linalg.norm(w, axis=0, keepdims=True))
    x = [rng.standard_normal((n, d)).astype(np.float32) for d in dims]
    y = sum(xm.astype(np.float64) @ w for xm, w in zip(x, directions, strict=True))
    y = y + target_noise * rng.standard_normal((n, num_targets))
    labels = (y[:, 0] if num_targets == 1 else y).astype(np.float32)
    return labels, x


@DATASETS.register("synthetic", tiny={"size": 16})
def synthetic(split: str = "train", **options: object) -> SyntheticDataset:
    """Tiny deterministic two-modality tabular dataset (smoke tests, examples)."""
    return SyntheticDataset(split=split, **options)  # type: ignore[arg-type]


# the options are SyntheticDataset's own: the config check binds data.options to them
synthetic.__signature__ = inspect.signature(SyntheticDataset)  # type: ignore[attr-defined]
