"""A tiny deterministic two-modality dataset for smoke tests and examples.

Its features and labels come from the task it is built for (``task``, classification by default): the task's
:meth:`~polymodal.tasks.Task.synthetic_data` (classification: each class has a random prototype in each
modality, a sample is its class prototype plus noise, ``noise`` sets how hard each modality is; regression:
standard normal features whose read-outs along fixed directions sum to the ``num_targets`` targets;
multilabel: the sum of the prototypes of a sample's labels). A task that defines no synthetic variant
cannot be served (a clear error, never another task's targets).

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
from polymodal.tasks import DEFAULT_TASK, TASKS, SyntheticSpec, get_task

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
        self.name, self.split = "synthetic", split
        n = size if size is not None else {"train": 96, "val": 32, "test": 32}[split]
        rng = np.random.default_rng(seed * 10 + 1 + _SPLIT_OFFSET[split])
        data = task_obj.synthetic_data(SyntheticSpec(n=n, dims=tuple(dims), rng=rng, seed=seed, num_classes=num_classes,
                                                     num_targets=num_targets, noise=tuple(noise),
                                                     target_noise=target_noise))
        self.labels, self.x = data.labels, data.x
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
        self.num_outputs, self.class_names = data.num_outputs, data.class_names
        self.provenance = {
            "dataset": "synthetic", "seed": seed, "size": n, "missing_rate": missing_rate,
            "realised_missing_rate": float(1.0 - self.present.mean()),
        }
        if task_obj.name != DEFAULT_TASK:
            self.provenance["task"] = task_obj.name
        self.provenance.update(data.provenance or {})

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> Sample:
        inputs = {
            m.name: (torch.from_numpy(self.x[j][i]) if self.present[i, j] else None) for j, m in enumerate(self.schema)
        }
        y = self.labels[i]
        label: int | float | list[float] = y.tolist() if np.ndim(y) else y.item()
        return {"inputs": inputs, "label": label, "index": int(i)}


@DATASETS.register("synthetic", tiny={"size": 16})
def synthetic(split: str = "train", **options: object) -> SyntheticDataset:
    """Tiny deterministic two-modality tabular dataset (smoke tests, examples)."""
    return SyntheticDataset(split=split, **options)  # type: ignore[arg-type]


# the options are SyntheticDataset's own: the config check binds data.options to them
synthetic.__signature__ = inspect.signature(SyntheticDataset)  # type: ignore[attr-defined]
