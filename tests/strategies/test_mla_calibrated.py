"""MLA's calibrated test-time rules: temperatures fitted on validation only, once per trained state, kept in the
checkpoint, and the fused output equal to the sum of log softmax(logits / T) over the present modalities."""

import numpy as np
import pytest
import torch

from polymodal.data.base import build_dataset
from polymodal.engine import evaluate_run, train
from polymodal.engine.build import build_datasets, restore_trained
from polymodal.engine.checkpoint import load_checkpoint
from polymodal.engine.data import make_eval_loader
from polymodal.inference.calibration import fit_temperature
from polymodal.models import build_model
from polymodal.report.metrics import load_predictions
from polymodal.runpaths import RunPaths
from polymodal.strategies.mla import MLA

from ..engine._helpers import tiny_config
from .test_mla import _Ctx, _setup


def _batches(split, size=48, batch_size=16, seed=0):
    ds = build_dataset("synthetic", split, size=size, seed=seed)
    return list(make_eval_loader(ds, batch_size=batch_size))


def _never():
    raise AssertionError("the training split was read: the temperatures must come from the validation split")


def _raw_logits(model, batches):
    model.eval()
    with torch.no_grad():
        outs = [(model(b).per_modality, b.present, b.label) for b in batches]
    return outs


def test_predict_is_the_sum_of_tempered_log_softmax_and_absent_modalities_drop_out():
    model, batch, mla = _setup(fusion_rule="calibrated")
    mla.temperatures = {"a": 0.4, "b": 2.5}
    batch.present["b"][:3] = False
    model.eval()
    out = mla.predict(model, batch)
    per = out.per_modality
    want = torch.log_softmax(per["a"] / 0.4, dim=-1) + torch.where(
        batch.present["b"][:, None], torch.log_softmax(per["b"] / 2.5, dim=-1), torch.zeros_like(per["b"]))
    assert torch.allclose(out.logits, want, atol=1e-5)
    assert torch.allclose(out.logits[:3], torch.log_softmax(per["a"][:3] / 0.4, dim=-1), atol=1e-6)


def test_prepare_evaluation_fits_on_validation_once_per_trained_state():
    model, batch, mla = _setup(fusion_rule="calibrated")
    val = _batches("val")
    mla.prepare_evaluation(model, _never, 1, val_batches=lambda: val)
    z = {m: [] for m in ("a", "b")}
    y = []
    for per, present, label in _raw_logits(model, val):
        for m in z:
            z[m].append(per[m][present[m]].numpy())
        y.append(label.numpy())
    labels = np.concatenate(y)
    want = {m: fit_temperature(np.concatenate(v), labels) for m, v in z.items()}
    assert mla.temperatures == pytest.approx(want, rel=1e-9)
    # the test split would give other temperatures: the fit above is the validation split's
    test = _batches("test")
    assert mla.fit_temperatures(model, test) != pytest.approx(want, rel=1e-3)
    # no step since the fit: nothing is read again (a split that raises when read proves it)
    fitted = dict(mla.temperatures)
    mla.prepare_evaluation(model, _never, 1, val_batches=_never)
    assert mla.temperatures == fitted
    # a training step moves the weights: the next evaluation fits again
    mla.training_step(model, batch, _Ctx(model).make())
    mla.prepare_evaluation(model, _never, 1, val_batches=lambda: val)
    assert mla.temperatures != fitted


def test_rules_without_temperatures_read_nothing_and_calibrated_needs_them():
    model, batch, mla = _setup(fusion_rule="entropy")
    mla.prepare_evaluation(model, _never, 1, val_batches=_never)
    assert mla.temperatures is None
    model, batch, mla = _setup(fusion_rule="calibrated-entropy")
    with pytest.raises(ValueError, match="needs the per-modality temperatures fitted on the validation split"):
        mla.predict(model, batch)
    with pytest.raises(ValueError, match="fits its temperatures on the validation split, and none was given"):
        mla.prepare_evaluation(model, _never, 1)


def test_temperatures_survive_the_state_round_trip_and_are_not_refitted():
    model, batch, mla = _setup(fusion_rule="calibrated")
    mla.temperatures, mla._calibrated = {"a": 0.3, "b": 1.7}, True
    state = mla.state_dict()
    fresh = MLA(fusion_rule="calibrated")
    fresh.setup(model, None)
    fresh.load_state_dict(state)
    assert fresh.temperatures == {"a": 0.3, "b": 1.7}
    fresh.prepare_evaluation(model, _never, 1, val_batches=_never)  # a loaded state is never refitted
    model.eval()
    assert torch.equal(fresh.predict(model, batch).logits, mla.predict(model, batch).logits)


@pytest.mark.slow
def test_a_trained_run_keeps_validation_temperatures_in_its_checkpoint_and_eval_reproduces_them(tmp_path):
    cfg = tiny_config(tmp_path, "name=cal", "strategy.name=mla", "model.fusion=shared_head",
                      "strategy.args.fusion_rule=calibrated", "trainer.max_epochs=3")
    run = train(cfg)
    ckpt = load_checkpoint(RunPaths(run.run_dir).checkpoint("best"))
    temps = {k.split("/", 1)[1]: v for k, v in ckpt.strategy.items() if k.startswith("temperature/")}
    assert set(temps) == {"a", "b"} and all(t > 0 for t in temps.values())
    # they are the fit of the best checkpoint's own logits on the validation split, not on the test split
    datasets = build_datasets(cfg)
    model, strategy = restore_trained(cfg, run.run_dir, datasets["train"], "best", ckpt)
    assert strategy.temperatures == temps
    for split, same in (("val", True), ("test", False)):
        loader = make_eval_loader(datasets[split], batch_size=16)
        fit = MLA(fusion_rule="calibrated").fit_temperatures(model, loader)
        assert (fit == pytest.approx(temps, rel=1e-6)) is same, (split, fit, temps)
    # `polymodal eval` rebuilds the strategy from the checkpoint: the same test predictions
    stored = load_predictions(run.run_dir / "predictions_test.npz")
    again = evaluate_run(run.run_dir, split="test")
    np.testing.assert_allclose(again.probs, stored.probs, atol=1e-6)


def test_a_model_without_per_modality_logits_is_refused():
    ds = build_dataset("synthetic", "train", size=16)
    late = build_model(ds.schema, ds.num_outputs, fusion="late", width=8)
    with pytest.raises(ValueError, match="model.fusion=shared_head"):
        MLA(fusion_rule="calibrated").setup(late, ds)
