"""Regression with joint, unimodal and mla (fixed fusion); the other strategies refuse it clearly. Which
strategies train a regression is derived from their declared requirements, never listed by hand."""

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from polymodal.config import load_config
from polymodal.data.datasets.synthetic import SyntheticDataset
from polymodal.engine import train
from polymodal.models import build_model
from polymodal.strategies import STRATEGIES
from polymodal.strategies.base import strategies_for
from polymodal.strategies.joint import masked_cross_entropy, masked_mse, task_loss
from polymodal.strategies.mla import MLA
from polymodal.strategies.ogm_ge import OGMGE
from polymodal.strategies.unimodal import Unimodal
from polymodal.tasks import get_task

REGRESSION = get_task("regression")
# the strategies that train a regression with their default arguments, from what each declares it requires
REGRESSION_STRATEGIES = {n for n in STRATEGIES.names() if STRATEGIES.get(n).factory.requirements({}) <= REGRESSION.capabilities
                         and STRATEGIES.get(n).factory.provides in REGRESSION.capabilities}

RUN = [
    "data.dataset=synthetic", "data.options={task: regression, size: 192}",
    "data.split_options={val: {size: 64}, test: {size: 64}}", "trainer.progress=false", "trainer.num_threads=1",
    "trainer.patience=null", "trainer.max_epochs=6", "model.width=8", "data.batch_size=16",
    "data.eval_batch_size=64", "optim.lr=0.01",
]


# Fused test R^2 after 6 epochs, measured over seeds 0-3: joint 0.87-0.90, unimodal 0.61-0.66, mla 0.64-0.70.
# Each modality carries an independent half of the target's variance, so a mean of unimodal predictors
# (unimodal, mla with the fixed rule) cannot pass 0.75, and either modality alone cannot pass about 0.5.
@pytest.mark.parametrize(("strategy", "extra", "threshold"), [
    ("joint", [], 0.8),
    ("imagine", [], 0.8),  # joint's training plus the translators: the same fused R^2 on complete data
    ("unimodal", [], 0.5),
    ("mla", ["strategy.args={fusion_rule: fixed}"], 0.5),
])
def test_regression_trains_to_a_good_fused_r2(tmp_path, strategy, extra, threshold):
    cfg = load_config(None, [*RUN, f"out_dir={tmp_path}", f"strategy.name={strategy}", *extra])
    result = train(cfg)
    test = result.metrics
    assert test["r2"] > threshold, test
    assert test["r2"] > max(test["a_r2"], test["b_r2"]), test  # fusing beats either modality alone
    assert 0.1 < test["a_r2"] < 0.75 and 0.1 < test["b_r2"] < 0.75, test
    assert test["rmse"] < float(np.std(SyntheticDataset("test", task="regression", size=64).labels))
    results = json.loads((cfg.run_dir / "results.json").read_text())
    assert results["selection"] == "val rmse" and results["test"]["r2"] == pytest.approx(test["r2"])


def test_task_loss_keeps_classification_numerics():
    torch.manual_seed(0)
    logits, label = torch.randn(6, 4), torch.tensor([0, 1, 2, 3, 1, 0])
    rows, weight = torch.tensor([True, False, True, True, False, True]), torch.rand(4)
    assert torch.equal(task_loss(logits, label, rows, weight), masked_cross_entropy(logits, label, rows, weight))
    assert torch.equal(task_loss(logits, label, None, weight), F.cross_entropy(logits, label, weight=weight))
    assert torch.equal(task_loss(logits, label), F.cross_entropy(logits, label))


def test_task_loss_regression_is_masked_mse():
    torch.manual_seed(0)
    pred, target = torch.randn(5, 1, requires_grad=True), torch.randn(5)
    rows = torch.tensor([True, True, False, True, False])
    loss = task_loss(pred, target, rows, task="regression")
    pred = pred.detach()
    assert loss.item() == pytest.approx(float(((pred[rows, 0] - target[rows]) ** 2).mean()))
    assert task_loss(pred, target, None, task="regression").item() == pytest.approx(F.mse_loss(pred[:, 0], target).item())
    multi, targets = torch.randn(5, 3), torch.randn(5, 3)
    assert masked_mse(multi, targets, rows).item() == pytest.approx(F.mse_loss(multi[rows], targets[rows]).item())
    empty = masked_mse(pred.requires_grad_(), target, torch.zeros(5, dtype=torch.bool))
    assert empty.detach().item() == 0.0 and empty.requires_grad
    with pytest.raises(ValueError, match="num_outputs must equal the number of targets"):
        masked_mse(multi, target)
    with pytest.raises(ValueError, match="data.class_weights"):
        task_loss(pred, target, rows, torch.ones(1), task="regression")


def _regression_setup(fusion: str = "late", **options):
    torch.manual_seed(0)
    ds = SyntheticDataset("train", task="regression", size=24, **options)
    return ds, build_model(ds.schema, ds.num_outputs, fusion=fusion, width=8)


def test_unimodal_regression_predicts_the_mean_of_present_modalities():
    ds, model = _regression_setup(missing=0.4)
    strategy = Unimodal()
    strategy.setup(model, ds)
    assert strategy.task == REGRESSION
    batch = ds.collate_fn()([ds[i] for i in range(len(ds))])
    model.eval()
    with torch.no_grad():
        out = strategy.predict(model, batch)
        per = model(batch).per_modality
    a, b = batch.present["a"][:, None], batch.present["b"][:, None]
    expected = (torch.where(a, per["a"], 0.0) + torch.where(b, per["b"], 0.0)) / (a.float() + b.float())
    torch.testing.assert_close(out.logits, expected)
    assert not bool((batch.present["a"] & batch.present["b"]).all())  # some rows average one modality


@pytest.mark.parametrize("rule", ["entropy", "entropy-batch"])
def test_mla_entropy_fusion_is_refused_for_regression(rule):
    ds, model = _regression_setup("shared_head")
    with pytest.raises(ValueError, match=r"strategy 'mla' needs single_label.*mla \(with strategy\.args\.fusion_rule=fixed\)"):
        MLA(fusion_rule=rule).setup(model, ds)
    MLA(fusion_rule="fixed").setup(model, ds)  # accepted


def test_ogm_ge_refuses_regression():
    ds, model = _regression_setup()
    with pytest.raises(ValueError, match=r"strategy 'ogm_ge' needs single_label \(one class per sample.*a regression "
                                         r"task is trained by strategy\.name=imagine or strategy\.name=joint or strategy\.name=joint-concat or "
                                         r"strategy\.name=mla \(with strategy\.args\.fusion_rule=fixed\) or "
                                         r"strategy\.name=unimodal"):
        OGMGE().setup(model, ds)


@pytest.mark.parametrize("name", sorted(set(STRATEGIES.names()) - REGRESSION_STRATEGIES))
def test_every_other_strategy_refuses_regression_in_setup(name):
    entry = STRATEGIES.get(name)
    kwargs = {"teachers": {"a": "no-such-run"}} if name == "umt" else {}  # refused before any teacher is read
    strategy = entry.factory(**entry.tiny, **kwargs)
    ds, model = _regression_setup()
    with pytest.raises(ValueError, match=rf"strategy '{name}' (needs|trains).*regression task is trained by"):
        strategy.setup(model, ds)


def test_the_regression_strategies_are_named_in_messages_from_their_declarations():
    assert REGRESSION_STRATEGIES == {"imagine", "joint", "joint-concat", "unimodal"}
    assert strategies_for(REGRESSION) == ["imagine", "joint", "joint-concat", "mla (with strategy.args.fusion_rule=fixed)",
                                          "unimodal"]
