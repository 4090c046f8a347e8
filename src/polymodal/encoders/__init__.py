"""Encoders, one module per modality kind; importing this package fills ``ENCODERS``.

The pretrained towers (``pretrained.py``) are always registered but can be built only with
``pip install 'polymodal[pretrained]'``; :func:`pretrained_available` tells whether an encoder can be.
"""

from polymodal.encoders import audio, image, pretrained, tabular, text, timeseries, video  # noqa: F401
from polymodal.encoders.base import DEFAULT_ENCODER, ENCODERS, Encoder, build_encoder


def pretrained_available(name: str) -> bool:
    """False only for a pretrained tower (e.g. ``text_minilm``) whose optional packages are not installed."""
    return pretrained.is_available(name) if name in pretrained.TOWERS else True


__all__ = ["DEFAULT_ENCODER", "ENCODERS", "Encoder", "build_encoder", "pretrained_available"]
