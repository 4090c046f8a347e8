"""Dataset base class and the dataset registry.

A registered dataset is a builder ``build(split: str, **options) -> MultimodalDataset``.
Options common to all builders: ``root`` (raw data folder, see ``polymodal.paths``),
``cache_features`` (precompute deterministic front-end features such as log-mel once).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

import numpy as np
from torch.utils.data import Dataset

from polymodal.data.batch import Collate, Sample
from polymodal.data.schema import Modality
from polymodal.registry import Registry
from polymodal.tasks import DEFAULT_TASK

SPLITS = ("train", "val", "test")


class MultimodalDataset(Dataset, ABC):
    """Base for every polymodal dataset.

    Subclasses set the attributes below in ``__init__`` and implement ``__len__``
    and ``__getitem__`` returning a :class:`~polymodal.data.batch.Sample`.
    """

    name: str  # registry name, e.g. "avdigits-hard"
    split: str
    schema: tuple[Modality, ...]
    task: str = DEFAULT_TASK  # a registered task's name (polymodal.tasks): classification, regression, ...
    num_outputs: int  # classes, or regression targets
    class_names: tuple[str, ...] = ()
    labels: np.ndarray  # (N,) labels of every sample, for class weights / balanced sampling
    provenance: dict[str, Any]  # checksums, versions, sources: written into a run's provenance

    @abstractmethod
    def __len__(self) -> int:
        """Number of samples."""

    @abstractmethod
    def __getitem__(self, i: int) -> Sample:
        """The i-th sample; ``inputs[m]`` is None where modality m is missing."""

    @property
    def modalities(self) -> list[str]:
        return [m.name for m in self.schema]

    def collate_fn(self) -> Collate:
        return Collate(self.schema)


DATASETS: Registry[MultimodalDataset] = Registry("dataset")


def build_dataset(name: str, split: str, **options: Any) -> MultimodalDataset:
    import polymodal.data.datasets  # noqa: F401  (fills the registry)

    if split not in SPLITS:
        raise ValueError(f"split {split!r} is not one of {SPLITS}")
    return DATASETS.create(name, split=split, **options)


def modality_names(schema: Sequence[Modality]) -> list[str]:
    return [m.name for m in schema]
