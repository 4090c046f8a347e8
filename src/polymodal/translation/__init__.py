"""Translation between modalities (docs/align_translate.md): a sample of one modality turned into another.

- Example-based (``examples``): retrieve the nearest examples of the target modality through a shared
  (coordinated) embedding space and fuse what they carry.
- Generative (``generate``): a conditional VAE draws handwritten digits from a spoken digit or from text
  (``GENERATORS``, :func:`fit_generator`, :func:`load_generator`; ``polymodal generate``), judged by a
  separately trained digit classifier (``judge``).
- Speech to text (``speech``): a CTC run of the ``sequence`` task (``model.fusion=ctc``) read back to
  transcribe an audio file (``polymodal translate``).
"""

from polymodal.translation.examples import FUSIONS_TOP_K, Translation, retrieve, translate
from polymodal.translation.generate import (
    GENERATORS,
    GeneratorConfig,
    GeneratorRun,
    fit_generator,
    load_generator,
    save_grid,
)
from polymodal.translation.judge import (
    nearest_distance,
    pairwise_distance,
    real_diversity,
    recognition_accuracy,
    train_judge,
)

__all__ = ["FUSIONS_TOP_K", "GENERATORS", "GeneratorConfig", "GeneratorRun", "Translation", "fit_generator",
           "load_generator", "nearest_distance", "pairwise_distance", "real_diversity", "recognition_accuracy",
           "retrieve", "save_grid", "train_judge", "translate"]
