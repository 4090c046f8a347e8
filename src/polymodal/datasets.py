"""Datasets for users: registered benchmark datasets and your own data from a table or a folder.

    from polymodal.datasets import from_manifest, from_folder, build_dataset
    data = from_manifest("patients.csv", label="diagnosis", root="/data/patients")
    train = data.dataset("train")
"""

from __future__ import annotations

import os
from typing import Any

from polymodal.data.base import DATASETS, MultimodalDataset, build_dataset
from polymodal.data.datasets.example import example_folder, example_manifest
from polymodal.data.datasets.folder import folder_table
from polymodal.data.datasets.manifest import (
    Manifest,
    ManifestDataset,
    ManifestError,
    ManifestOptions,
    from_manifest,
)
from polymodal.data.validation import DatasetValidationError, ValidationReport


def from_folder(root: str | os.PathLike, **options: Any) -> Manifest:
    """A dataset folder ``root/[<split>/]<label>/<sample_id>/<modality>.<ext>`` read as a manifest."""
    return from_manifest(root, **options)


__all__ = [
    "DATASETS",
    "DatasetValidationError",
    "Manifest",
    "ManifestDataset",
    "ManifestError",
    "ManifestOptions",
    "MultimodalDataset",
    "ValidationReport",
    "build_dataset",
    "example_folder",
    "example_manifest",
    "folder_table",
    "from_folder",
    "from_manifest",
]
