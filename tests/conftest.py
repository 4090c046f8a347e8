import os
from pathlib import Path

import pytest
import torch

torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Feature caches go to a per-session temp folder unless CI points them elsewhere."""
    if "POLYMODAL_CACHE" not in os.environ:
        monkeypatch.setenv("POLYMODAL_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))


@pytest.fixture(scope="session", autouse=True)
def _raw_data_folder(tmp_path_factory):
    """Lets ``tests/_rawdata.py`` write the raw FSDD / MNIST files into this session's temp folder (lazily)."""
    from . import _rawdata

    _rawdata._factory = tmp_path_factory
    yield
    _rawdata._factory = None
    _rawdata._written = None


@pytest.fixture(scope="session")
def raw_data(_raw_data_folder) -> Path:
    """The raw data folder (fsdd/recordings, mnist/): the real one when complete, else written from the
    AV-digits artifact that ships with the package (see tests/_rawdata.py)."""
    from ._rawdata import raw_data_root

    return raw_data_root()
