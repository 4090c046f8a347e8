import pytest
import torch
import torch.nn.functional as F

from polymodal.data.base import build_dataset
from polymodal.models import build_model
from polymodal.strategies.umt import UME, UMT, encoder_state

from ._baselines import Ctx, full_batch, make_setup, make_teacher_run, plain_grads


def test_encoder_state_strips_any_wrapper_prefix():
    t = torch.zeros(1)
    state = {"encoders.a.w": t, "_forward_module.encoders.a.net.0.bias": t, "encoders.ab.w": t,
             "xencoders.a.w": t, "fusion.heads.a.weight": t}
    assert sorted(encoder_state(state, "a")) == ["net.0.bias", "w"]


def test_teachers_are_loaded_frozen_and_outside_the_model(tmp_path):
    teacher_model, _ = make_setup(None, seed=5)
    run = make_teacher_run(tmp_path / "uni", teacher_model)
    strategy = UMT(teachers={"a": str(run)})
    model, ds = make_setup(strategy)
    teacher = strategy.teachers["a"]
    for (n, p), q in zip(teacher.named_parameters(), teacher_model.encoders["a"].parameters(), strict=True):
        assert torch.equal(p, q) and not p.requires_grad, n
    assert not teacher.training
    assert all(p is not q for p in model.parameters() for q in teacher.parameters())
    assert "b" not in strategy.teachers


def test_loss_is_fused_ce_plus_feature_mse(tmp_path):
    teacher_model, _ = make_setup(None, seed=5)
    run = make_teacher_run(tmp_path / "uni", teacher_model)
    strategy = UMT(teachers={"a": str(run), "b": str(run)}, distill_weight=0.3)
    model, ds = make_setup(strategy)
    model.eval()
    teacher_model.eval()
    batch = full_batch(ds, 16)
    with torch.no_grad():
        out = model(batch)
        want = float(F.cross_entropy(out.logits, batch.label))
        for m in "ab":
            target = teacher_model.encoders[m](batch.inputs[m])
            want += 0.3 * float(F.mse_loss(out.features[m], target))
    logs = strategy.training_step(model, batch, Ctx(model).make())
    assert float(logs["loss"]) == pytest.approx(want, rel=1e-5)
    assert float(logs["distill/a"]) > 0

    same = UMT(teachers={"a": str(make_teacher_run(tmp_path / "self", model))})
    same.setup(model, ds)  # a teacher equal to the student: nothing to distil
    assert float(same.training_step(model, batch, Ctx(model, lr=0.0).make())["distill/a"]) == pytest.approx(0.0)


def test_teacher_errors_say_what_to_do(tmp_path):
    with pytest.raises(ValueError, match="polymodal train strategy.name=unimodal"):
        UMT()
    model, ds = make_setup(None)
    with pytest.raises(FileNotFoundError, match=r"strategy\.args\.teachers\.a.*model\.safetensors"):
        UMT(teachers={"a": str(tmp_path / "missing")}).setup(model, ds)
    joint = make_teacher_run(tmp_path / "joint", model, strategy="joint")
    with pytest.raises(ValueError, match="trained with strategy 'joint'"):
        UMT(teachers={"a": str(joint)}).setup(model, ds)
    wide = build_model(ds.schema, ds.num_outputs, fusion="late", width=12)
    run = make_teacher_run(tmp_path / "wide", wide)
    with pytest.raises(ValueError, match="model.width"):
        UMT(teachers={"a": str(run)}).setup(model, ds)
    with pytest.raises(ValueError, match=r"modalities \['c'\]"):
        UMT(teachers={"c": str(run)}).setup(model, ds)


def test_ume_trains_each_modality_alone_and_averages_logits():
    strategy = UME()
    model, ds = make_setup(strategy)
    model.eval()
    batch = full_batch(ds, 16)
    out = model(batch)
    only_a = plain_grads(model, F.cross_entropy(out.per_modality["a"], batch.label))
    ctx = Ctx(model)
    strategy.training_step(model, batch, ctx.make())
    for n, g in ctx.captured[0].items():  # encoder a and head a see only their own loss
        if n.startswith(("encoders.a.", "fusion.heads.a.")):
            assert torch.allclose(g, only_a[n], atol=1e-6), n
    ds_missing = build_dataset("synthetic", "train", size=16, missing=0.4)
    batch = full_batch(ds_missing)
    pred = strategy.predict(model, batch)
    per, pres = pred.per_modality, batch.present
    both = pres["a"] & pres["b"]
    assert torch.allclose(pred.logits[both], (per["a"][both] + per["b"][both]) / 2, atol=1e-6)
    only = pres["a"] & ~pres["b"]
    assert torch.allclose(pred.logits[only], per["a"][only], atol=1e-6)
    weighted = UME(weights={"a": 3.0, "b": 1.0})
    weighted.setup(model, ds)
    logits = weighted.predict(model, batch).logits
    assert torch.allclose(logits[both], 0.75 * per["a"][both] + 0.25 * per["b"][both], atol=1e-6)
    with pytest.raises(ValueError, match="strategy.args.weights"):
        UME(weights={"a": 1.0}).setup(model, ds)
