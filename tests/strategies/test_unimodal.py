import pytest
import torch
import torch.nn.functional as F

from polymodal.data.datasets.synthetic import SyntheticDataset
from polymodal.engine.data import make_loader
from polymodal.models import build_model
from polymodal.strategies.base import STRATEGIES
from polymodal.strategies.unimodal import Unimodal

from .test_joint import Recorder


def _model_and_batch(missing=0.0):
    torch.manual_seed(0)
    ds = SyntheticDataset("train", size=24, missing=missing)
    model = build_model(ds.schema, 4, fusion="late", width=8)
    model.eval()
    (batch,) = list(make_loader(ds, batch_size=24, seed=0, shuffle=False))
    return ds, model, batch


def test_loss_is_the_sum_of_per_modality_losses_on_present_rows():
    ds, model, batch = _model_and_batch(missing=0.3)
    strategy = STRATEGIES.create("unimodal")
    strategy.setup(model, ds)
    rec = Recorder()
    out = strategy.training_step(model, batch, rec.ctx)
    expected = {}
    with torch.no_grad():
        for m in model.modalities:
            rows = batch.present[m]
            logits = model.fusion.heads[m](model.encoders[m](batch.inputs[m][rows]))
            expected[m] = F.cross_entropy(logits, batch.label[rows])
    for m in model.modalities:
        torch.testing.assert_close(out[f"loss/{m}"], expected[m])
    torch.testing.assert_close(rec.losses[0], expected["a"] + expected["b"])
    assert out["grad_norm/a"] > 0 and out["grad_norm/b"] > 0 and rec.steps == 1


def test_encoders_are_trained_independently():
    ds, model, batch = _model_and_batch()
    rec = Recorder()
    strategy = Unimodal()
    strategy.setup(model, ds)
    # the gradient of encoder a does not depend on modality b's input
    strategy.training_step(model, batch, rec.ctx)
    grad_a = [p.grad.clone() for p in model.encoders["a"].parameters()]
    model.zero_grad()
    batch.inputs["b"] = batch.inputs["b"] + 5.0
    strategy.training_step(model, batch, rec.ctx)
    for g, p in zip(grad_a, model.encoders["a"].parameters(), strict=True):
        torch.testing.assert_close(g, p.grad)


def test_needs_per_modality_logits():
    ds, model, _ = _model_and_batch()
    model.fusion.yields_per_modality = False
    with pytest.raises(ValueError, match="needs a fusion with per-modality logits"):
        Unimodal().setup(model, ds)
