"""One codec per column kind of a manifest; importing this package fills ``CODECS``.

``BUILT_IN`` is the registration order, which matters: file extensions are matched, kinds are listed in
messages, and the features of tabular kinds are laid out (numeric before categorical) in that order.
"""

from importlib import import_module

from polymodal.data.datasets.manifest.codecs.base import (
    CODECS,
    Codec,
    CodecOptions,
    CodecRegistry,
    ColumnContext,
)

BUILT_IN = ("audio", "image", "video", "timeseries", "text", "numeric", "categorical")
for _kind in BUILT_IN:
    import_module(f"{__name__}.{_kind}")  # each module registers its kind

__all__ = ["BUILT_IN", "CODECS", "Codec", "CodecOptions", "CodecRegistry", "ColumnContext"]
