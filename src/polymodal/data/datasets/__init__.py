"""Dataset families, one module each; importing this package fills ``DATASETS``."""

import polymodal.data.datasets.digitstrings  # noqa: F401
from polymodal.data.base import DATASETS, MultimodalDataset, build_dataset
from polymodal.data.datasets import (  # noqa: F401
    avdigits,
    ave,
    avmnist,
    breast_cancer,
    cmu_sentiment,
    cremad,
    folder,
    food101,
    iemocap,
    kinetics_sounds,
    manifest,
    mvsa,
    synthetic,
    utd_mhad,
    vggsound,
)

__all__ = ["DATASETS", "MultimodalDataset", "build_dataset"]
