import json

import numpy as np
import pytest

from polymodal.engine import load_predictions, train

from ._helpers import tiny_config

# 97 samples per split: val/test are not divisible by 2, so the distributed sampler pads one
# duplicate; max_steps_per_epoch=6 keeps training to the same 96 samples in both set-ups
# (6 global batches of 16). SGD and no dropout: the two runs must follow the same path.
COMMON = ["data.options={size: 97}", "trainer.max_epochs=2", "trainer.max_steps_per_epoch=6",
          "optim.name=sgd", "optim.lr=0.05", "model.encoders.a.dropout=0", "model.encoders.b.dropout=0"]


@pytest.mark.slow
def test_ddp_spawn_two_processes_matches_one_process(tmp_path):
    single = train(tiny_config(tmp_path / "single", *COMMON, "data.batch_size=16"))
    ddp = train(tiny_config(tmp_path / "ddp", *COMMON, "data.batch_size=8", "trainer.devices=2",
                            "trainer.strategy=ddp_spawn", "data.eval_batch_size=8"))
    for a, b in zip(single.history, ddp.history, strict=True):
        assert b["train/loss"] == pytest.approx(a["train/loss"], rel=1e-4)
        assert b["val/fused_acc"] == pytest.approx(a["val/fused_acc"])
    assert ddp.metrics["fused_acc"] == pytest.approx(single.metrics["fused_acc"])
    assert ddp.metrics["loss"] == pytest.approx(single.metrics["loss"], rel=1e-4)

    # every sample is counted exactly once despite the sampler's padding
    assert ddp.metrics["n"] == 97 and ddp.val_metrics["n"] == 97
    preds = load_predictions(ddp.run_dir / "predictions_test.npz")
    assert preds.probs.shape == (97, 4)
    np.testing.assert_array_equal(preds.index, np.arange(97))
    assert json.loads((ddp.run_dir / "provenance.json").read_text())["world_size"] == 2
