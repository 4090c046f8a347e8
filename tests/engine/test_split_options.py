import numpy as np

from polymodal.engine import train

from ._helpers import tiny_config


def test_split_options_reach_only_their_split(tmp_path):
    cfg = tiny_config(tmp_path, "name=split", "trainer.max_epochs=1", "data.split_options.test.missing_rate=0.5")
    train(cfg)
    with np.load(tmp_path / "split" / "predictions_test.npz") as test, np.load(tmp_path / "split" / "predictions_val.npz") as val:
        test_present = np.stack([test["present_a"], test["present_b"]], axis=1)
        val_present = np.stack([val["present_a"], val["present_b"]], axis=1)
    assert not test_present.all() and test_present.any(axis=1).all()
    assert val_present.all()
