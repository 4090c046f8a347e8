"""The checks every fusion factory starts with (``check_fusion_args``): errors that name the key to set."""

import pytest

from polymodal.fusion import FUSIONS
from polymodal.fusion.base import check_fusion_args

OWN = [e.name for e in FUSIONS if e.factory.__module__.startswith("polymodal.fusion.")]


@pytest.mark.parametrize("name", OWN)
def test_every_fusion_refuses_an_empty_in_dims(name):
    entry = FUSIONS.get(name)
    with pytest.raises(ValueError, match=r"needs at least one modality in in_dims; got none"):
        entry.factory(in_dims={}, num_outputs=3, **entry.tiny)


@pytest.mark.parametrize(("name", "key"), [("bilinear", "rank"), ("lmf", "rank"), ("mult", "layers")])
def test_counts_below_one_name_their_configuration_key(name, key):
    entry = FUSIONS.get(name)
    args = {**entry.tiny, key: 0}
    with pytest.raises(ValueError, match=rf"{name} fusion {key}=0; expected an integer >= 1 \(set model\.fusion_args\.{key}\)"):
        entry.factory(in_dims={"a": 4, "b": 4}, num_outputs=3, **args)


def test_check_fusion_args():
    check_fusion_args("x", {"a": 2}, rank=1, layers=3)
    with pytest.raises(ValueError, match=r"x fusion rank=1\.5; expected an integer >= 1"):
        check_fusion_args("x", {"a": 2}, rank=1.5)
