"""The AV-digits artifact builder under its older module path: it lives in
:mod:`polymodal.data.datasets.avdigits.build` (``python -m polymodal.data.datasets.avdigits build``)."""

from polymodal.data.datasets.avdigits.build import (  # noqa: F401
    ATTRIBUTION,
    INDEX_COLUMNS,
    MNIST_MD5,
    SOURCES,
    build_artifact,
    main,
    read_recordings,
)
