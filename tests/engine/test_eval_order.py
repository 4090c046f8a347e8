"""Evaluation order: batch-level test-time rules see a fixed random order; per-sample rules do not care."""

import numpy as np
import pytest

from polymodal.data.base import build_dataset
from polymodal.engine import reevaluate_run, train
from polymodal.engine.data import EVAL_ORDER_SEED, make_eval_loader
from polymodal.report.metrics import load_predictions

from ._helpers import tiny_config


def _order(loader):
    return [int(i) for b in loader for i in b.index]


def test_batch_level_rules_get_a_fixed_random_order_and_others_the_dataset_order():
    ds = build_dataset("synthetic", "test", size=40)
    auto_batch = _order(make_eval_loader(ds, batch_size=8, fusion_rule="entropy-batch"))
    assert sorted(auto_batch) == list(range(40)) and auto_batch != list(range(40))
    assert auto_batch == _order(make_eval_loader(ds, batch_size=8, fusion_rule="entropy-batch"))  # fixed
    assert _order(make_eval_loader(ds, batch_size=8, fusion_rule="entropy")) == list(range(40))
    assert _order(make_eval_loader(ds, batch_size=8, order="shuffled")) == auto_batch
    assert _order(make_eval_loader(ds, batch_size=8, fusion_rule="entropy-batch", order="dataset")) == list(range(40))
    assert EVAL_ORDER_SEED == 0
    with pytest.raises(ValueError, match="data.eval_order='random'"):
        make_eval_loader(ds, batch_size=8, order="random")


@pytest.mark.slow
@pytest.mark.parametrize("rule,same", [("entropy", True), ("fixed", True), ("entropy-batch", False)])
def test_per_sample_rules_give_the_same_predictions_in_any_order(tmp_path, rule, same):
    run = train(tiny_config(tmp_path, f"name=base-{rule}", "strategy.name=mla", "model.fusion=shared_head",
                            f"strategy.args.fusion_rule={rule}", "trainer.max_epochs=2", "data.eval_batch_size=8"))
    probs = {}
    for order in ("dataset", "shuffled"):
        reevaluate_run(run.run_dir, tmp_path / f"{rule}-{order}", [f"data.eval_order={order}"])
        probs[order] = load_predictions(tmp_path / f"{rule}-{order}" / "predictions_test.npz").probs
    if same:
        np.testing.assert_allclose(probs["dataset"], probs["shuffled"], atol=1e-6)
    else:  # the batch-level rule depends on which samples share a batch
        assert not np.allclose(probs["dataset"], probs["shuffled"], atol=1e-6)
