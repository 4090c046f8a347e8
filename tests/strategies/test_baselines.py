"""Every balancing baseline: registered, trains on synthetic data, never reads absent slots, checks args."""

import pytest
import torch

from polymodal.strategies.agm import AGM
from polymodal.strategies.base import STRATEGIES
from polymodal.strategies.gblending import GBlending
from polymodal.strategies.mmpareto import MMPareto
from polymodal.strategies.ogm_ge import OGMGE
from polymodal.strategies.pmr import PMR
from polymodal.strategies.qmf import QMF
from polymodal.strategies.umt import UME, UMT

from ._baselines import Ctx, eval_loss, full_batch, make_setup, make_teacher_run, train

NAMES = ["ogm_ge", "gblending", "pmr", "agm", "qmf", "mmpareto", "umt", "ume"]


def _build(name, tmp_path):
    if name == "umt":  # teachers: a short unimodal-style (UME) run saved as a finished run
        ume = UME()
        teacher_model, ds = make_setup(ume, seed=1)
        train(ume, teacher_model, ds, Ctx(teacher_model), epochs=2)
        run = make_teacher_run(tmp_path / "teachers", teacher_model)
        return UMT(teachers={"a": str(run), "b": str(run)})
    entry = STRATEGIES.get(name)
    return entry.factory(**entry.tiny)


def test_every_baseline_is_registered_with_a_summary():
    for name in NAMES:
        entry = STRATEGIES.get(name)
        assert entry.summary, name
        assert entry.factory.default_fusion == "late"


@pytest.mark.parametrize("name", NAMES)
def test_training_reduces_the_loss_and_keeps_parameters_finite(name, tmp_path):
    strategy = _build(name, tmp_path)
    model, ds = make_setup(strategy)
    batch = full_batch(ds)
    before = eval_loss(strategy, model, batch)
    logs = train(strategy, model, ds, Ctx(model), epochs=5)
    after = eval_loss(strategy, model, batch)
    assert after < before - 0.05, (name, before, after)
    assert all(torch.isfinite(p).all() for p in model.parameters())
    for step in logs:
        assert torch.isfinite(torch.as_tensor(step["loss"]))
        assert {"grad_norm/a", "grad_norm/b"} <= set(step), name


@pytest.mark.parametrize("name", NAMES)
def test_absent_slots_are_never_read(name, tmp_path):
    strategy = _build(name, tmp_path)
    model, ds = make_setup(strategy, missing=0.3)
    batch = full_batch(ds, 24)
    assert not bool(batch.present["a"].all()) and not bool(batch.present["b"].all())
    for m in ("a", "b"):
        batch.inputs[m][~batch.present[m]] = float("nan")
    strategy.on_epoch_start(model, 0)
    logs = strategy.training_step(model, batch, Ctx(model).make())
    assert torch.isfinite(torch.as_tensor(logs["loss"]))
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert torch.isfinite(strategy.predict(model, batch).logits).all()


@pytest.mark.parametrize(
    ("cls", "kwargs", "key"),
    [
        (OGMGE, {"alpha": -1}, "alpha"),
        (OGMGE, {"modulation_starts": 5, "modulation_ends": 2}, "modulation_ends"),
        (OGMGE, {"ge_scope": "some"}, "ge_scope"),
        (OGMGE, {"param_filter": "bias"}, "param_filter"),
        (GBlending, {"super_epoch": 0}, "super_epoch"),
        (GBlending, {"holdout": 1.5}, "holdout"),
        (GBlending, {"probe_epochs": 0}, "probe_epochs"),
        (PMR, {"alpha": -0.1}, "alpha"),
        (PMR, {"momentum": 1.0}, "momentum"),
        (PMR, {"distance": "cosine"}, "distance"),
        (PMR, {"proto_fraction": 0}, "proto_fraction"),
        (AGM, {"clip": 0}, "clip"),
        (AGM, {"modulation_ends": -1}, "modulation_ends"),
        (QMF, {"temperature": 0}, "temperature"),
        (QMF, {"margin": "wide"}, "margin"),
        (QMF, {"lam": -1}, "lam"),
        (MMPareto, {"scale": 0}, "scale"),
        (UMT, {"teachers": {"a": "runs/x"}, "distill_weight": -1}, "distill_weight"),
        (UME, {"weights": {"a": -1.0, "b": 1.0}}, "weights"),
    ],
)
def test_bad_hyper_parameters_raise_naming_the_key(cls, kwargs, key):
    with pytest.raises(ValueError, match=rf"strategy\.args\.{key}"):
        cls(**kwargs)


def test_fusions_without_per_modality_logits_are_refused():
    from polymodal.data.base import build_dataset
    from polymodal.models import build_model

    ds = build_dataset("synthetic", "train", size=16)
    concat = build_model(ds.schema, ds.num_outputs, fusion="concat", width=8)
    for strategy in (OGMGE(), GBlending(), QMF(), MMPareto(), UME()):
        with pytest.raises(ValueError, match="model.fusion=late"):
            strategy.setup(concat, ds)


@pytest.mark.parametrize("make", [lambda: OGMGE(ge=False), AGM, MMPareto], ids=["ogm", "agm", "mmpareto"])
def test_gradient_rewriting_composes_with_accumulation(make):
    """Accumulating two micro-batches gives the mean of their separately modulated gradients."""
    model, ds = make_setup(None)
    model.eval()
    b1, b2 = (ds.collate_fn()([ds[i] for i in range(k * 16, (k + 1) * 16)]) for k in (0, 1))
    single, ref = make(), Ctx(model, lr=0.0)  # lr 0: the weights stay put between the calls
    single.setup(model, ds)
    for b in (b1, b2):
        single.training_step(model, b, ref.make())
    accumulated, acc = make(), Ctx(model, lr=0.0, accumulate=2)
    accumulated.setup(model, ds)
    for b in (b1, b2):
        accumulated.training_step(model, b, acc.make())
    assert len(acc.captured) == 1
    for name, g in acc.captured[0].items():
        assert torch.allclose(g, (ref.captured[0][name] + ref.captured[1][name]) / 2, atol=1e-6), name
