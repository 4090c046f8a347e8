"""Dataset families, one module each; importing this package fills ``DATASETS``."""

import polymodal.data.datasets.digitstrings  # noqa: F401
from polymodal.data.base import DATASETS, MultimodalDataset, build_dataset
from polymodal.data.datasets import avdigits, breast_cancer, folder, manifest, synthetic, utd_mhad  # noqa: F401

__all__ = ["DATASETS", "MultimodalDataset", "build_dataset"]
