"""Encoders, one module per modality kind; importing this package fills ``ENCODERS``."""

from polymodal.encoders import tabular  # noqa: F401
from polymodal.encoders.base import DEFAULT_ENCODER, ENCODERS, Encoder, build_encoder

__all__ = ["DEFAULT_ENCODER", "ENCODERS", "Encoder", "build_encoder"]
