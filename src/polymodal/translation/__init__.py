"""Translation between modalities (docs/alignment.md, "Example-based translation"): a sample of one modality
is translated by retrieving the nearest examples of another through a shared (coordinated) embedding space
and fusing what the retrieved examples carry."""

from polymodal.translation.examples import FUSIONS_TOP_K, Translation, retrieve, translate

__all__ = ["FUSIONS_TOP_K", "Translation", "retrieve", "translate"]
