import os

import pytest
import torch

torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Feature caches go to a per-session temp folder unless CI points them elsewhere."""
    if "POLYMODAL_CACHE" not in os.environ:
        monkeypatch.setenv("POLYMODAL_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))
