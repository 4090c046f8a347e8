"""Dataset families, one module each; importing this package fills ``DATASETS``."""

from polymodal.data.base import DATASETS, MultimodalDataset, build_dataset
from polymodal.data.datasets import (  # noqa: F401
    avdigits,
    breast_cancer,
    digitstrings,  # noqa: F401
    folder,
    manifest,
    synthetic,
    utd_mhad,
)

__all__ = ["DATASETS", "MultimodalDataset", "build_dataset"]
