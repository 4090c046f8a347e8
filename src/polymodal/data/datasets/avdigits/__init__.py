"""AV-digits: real spoken digits (FSDD) paired with real handwritten digits (MNIST t10k).

Follows the normative recipe of the project's benchmark protocols ("AV-digits"): row order,
pairing seeds, corruption formulas and checksums. The clean signals ship with the package as the
``avdigits-v1`` artifact (built by ``python -m polymodal.data.datasets.avdigits build``); every
variant is derived from it deterministically, so no raw data is needed to train.

Variants (registered in ``DATASETS``; modalities in this order):

    avdigits        audio, image            clean, label = digit
    avdigits-hard   audio, image            noisy audio (snr_db), noisy + occluded image
    avdigits-3view  audio, image, image2    as hard, two different images of the digit
    avdigits-sum    audio, image            clean, label = (audio digit + image digit) % 10
    avdigits-sum-hard    audio, image       as sum, with the avdigits-hard corruptions
    avdigits-compare     audio, image       clean sum pairing, label = audio digit <, =, > image digit (0, 1, 2)
    avdigits-multilabel  audio, image       clean sum pairing, labels = {audio digit, image digit} (multilabel)

Every split carries ``concept_labels`` (modality -> {"digit": (N,) int64}): the digit each modality
shows, for concept-level training and evaluation (``polymodal.reasoning``).

Tensors per sample: audio (8000,) float32 waveform at 8 kHz, or (n_mels, frames) log-mel when
``cache_features`` (the default), or (n_fft // 2 + 1, frames) log-magnitude STFT when ``cache_features``
and ``stft={...}`` (representation "stft", for ``front: stft`` encoders); image (1, 28, 28) float32 in [0, 1].

The package:

    recipe.py       the splits, the pairing seeds and the published checksums
    artifact.py     the shipped artifact: verified, decoded, cached per process
    build.py        building the artifact from the raw data (``python -m polymodal.data.datasets.avdigits``)
    corruptions.py  the noise and occlusion of the hard variants
    features.py     log-mel / log-STFT features computed once per split and kept on disk
    variants.py     the registered variants and the dataset class
"""

from polymodal.data.datasets.avdigits.artifact import (
    ARTIFACT_VERSION,
    ARTIFACTS,
    AUDIO_FILE,
    AVDIGITS_LOGMEL,
    BUILD_COMMAND,
    CLIP_SAMPLES,
    IMAGE_SIZE,
    INDEX_FILE,
    MANIFEST_FILE,
    MNIST_IMAGES,
    MNIST_LABELS,
    SAMPLE_RATE,
    Artifact,
    load_artifact,
    read_idx_gz,
    sha256_file,
)
from polymodal.data.datasets.avdigits.corruptions import HARD_DEFAULTS, audio_waveforms, image_pixels
from polymodal.data.datasets.avdigits.features import cached_logmel
from polymodal.data.datasets.avdigits.recipe import (
    IMAGE_POOLS,
    RECIPE_CHECKSUMS,
    RECORDINGS,
    SEEDS,
    Recipe,
    build_recipe,
    recipe_checksums,
)
from polymodal.data.datasets.avdigits.variants import VARIANTS, AVDigits, Variant, corrupted_test_sha256

_ARTIFACTS = ARTIFACTS  # the older name of the per-process cache

__all__ = [
    "ARTIFACTS",
    "ARTIFACT_VERSION",
    "AUDIO_FILE",
    "AVDIGITS_LOGMEL",
    "BUILD_COMMAND",
    "CLIP_SAMPLES",
    "HARD_DEFAULTS",
    "IMAGE_POOLS",
    "IMAGE_SIZE",
    "INDEX_FILE",
    "MANIFEST_FILE",
    "MNIST_IMAGES",
    "MNIST_LABELS",
    "RECIPE_CHECKSUMS",
    "RECORDINGS",
    "SAMPLE_RATE",
    "SEEDS",
    "VARIANTS",
    "AVDigits",
    "Artifact",
    "Recipe",
    "Variant",
    "audio_waveforms",
    "build_recipe",
    "cached_logmel",
    "corrupted_test_sha256",
    "image_pixels",
    "load_artifact",
    "read_idx_gz",
    "recipe_checksums",
    "sha256_file",
]
