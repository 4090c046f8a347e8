"""Missing-modality imagination: the translators, the fill at evaluation, the training losses, the config path."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from polymodal.colearning.imagine import MODULE, imagine_features, pair_key
from polymodal.datasets import build_dataset
from polymodal.models import build_model
from polymodal.strategies.base import STRATEGIES

from .test_strategies import _ctx


@pytest.fixture(scope="module")
def train():
    return build_dataset("synthetic", "train", size=64)


def _setup(ds, fusion="late", **args):
    torch.manual_seed(0)
    model = build_model(ds.schema, ds.num_outputs, fusion=fusion, width=8)
    strategy = STRATEGIES.create("imagine", hidden=8, **args)
    strategy.setup(model, ds)
    return model, strategy


def _batch(ds, rows):
    return ds.collate_fn()([ds[int(i)] for i in rows])


def test_imagination_is_the_mean_of_the_present_sources_translations():
    translators = torch.nn.ModuleDict({pair_key("a", "c"): torch.nn.Linear(2, 3), pair_key("b", "c"): torch.nn.Linear(2, 3)})
    feats = {"a": torch.randn(4, 2), "b": torch.randn(4, 2), "c": torch.randn(4, 3)}
    present = {"a": torch.tensor([True, True, False, False]), "b": torch.tensor([True, False, True, False]),
               "c": torch.zeros(4, dtype=torch.bool)}
    guess, ok = imagine_features(translators, feats, present, "c")
    ta, tb = translators[pair_key("a", "c")](feats["a"]), translators[pair_key("b", "c")](feats["b"])
    torch.testing.assert_close(guess[0], (ta[0] + tb[0]) / 2)
    torch.testing.assert_close(guess[1], ta[1])
    torch.testing.assert_close(guess[2], tb[2])
    assert ok.tolist() == [True, True, True, False] and guess[3].abs().sum() == 0


def test_absent_modalities_are_filled_and_present_ones_untouched(train):
    model, strategy = _setup(train)
    model.eval()
    batch = _batch(train, range(8))
    full = strategy.predict(model, batch)
    assert int(full.extras["imagine.filled.a"].sum()) == 0  # nothing absent: the plain forward
    torch.testing.assert_close(full.logits, model(batch).logits)
    half = batch.with_absent(["a"])
    out = strategy.predict(model, half)
    assert out.extras["imagine.filled.a"].tolist() == [1] * 8 and out.extras["imagine.filled.b"].tolist() == [0] * 8
    with torch.no_grad():
        fb = model.encoders["b"](half.inputs["b"])
        imagined = getattr(model, MODULE)[pair_key("b", "a")](fb)
        expected = model.fusion({"a": imagined, "b": fb}, {"a": torch.ones(8, dtype=torch.bool), "b": half.present["b"]})
    torch.testing.assert_close(out.logits, expected.logits)
    # the presence-mask path (no imagination) gives another prediction
    assert not torch.allclose(out.logits, model(half).logits)


def test_training_step_regresses_detached_features_and_trains_the_fusion_on_imaginations(train):
    model, strategy = _setup(train, imagine_weight=1.0, fill_weight=1.0)
    model.eval()  # no dropout: the step's losses can be recomputed
    batch = _batch(train, range(32))
    with torch.no_grad():
        feats = model(batch).features
        t = getattr(model, MODULE)
        mse = (F.mse_loss(t[pair_key("b", "a")](feats["b"]), feats["a"])
               + F.mse_loss(t[pair_key("a", "b")](feats["a"]), feats["b"])) / 2
    opt = torch.optim.SGD(model.parameters(), lr=0.0)
    logs = strategy.training_step(model, batch, _ctx(opt))
    torch.testing.assert_close(logs["loss/imagine"], mse)
    assert set(logs) >= {"loss", "loss/task", "loss/imagine", "loss/fill"}
    # the regression target is detached: its gradient reaches the translators and the source encoder only
    model.zero_grad()
    a = model.encoders["a"](batch.inputs["a"])
    F.mse_loss(getattr(model, MODULE)[pair_key("a", "b")](a), model.encoders["b"](batch.inputs["b"]).detach()).backward()
    assert all(p.grad is None or p.grad.abs().sum() == 0 for p in model.encoders["b"].parameters())


def test_imagination_learns_to_stand_in_for_an_absent_modality(train):
    """On the synthetic data, after training, the fused prediction with a imagined is closer to the full
    prediction than the presence-mask path's."""
    model, strategy = _setup(train)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    batch = _batch(train, range(64))
    model.train()
    for _ in range(120):
        strategy.training_step(model, batch, _ctx(opt))
    model.eval()
    with torch.no_grad():
        feats = model(batch).features
        guess = getattr(model, MODULE)[pair_key("b", "a")](feats["b"])
        # the imagination explains a good part of a's feature variance (R^2 > 0.4; at initialisation the
        # error is many times the variance), though a and b are independent given the class
        assert F.mse_loss(guess, feats["a"]) < 0.6 * feats["a"].var(0, unbiased=False).mean()
        full = torch.softmax(model(batch).logits, 1)
        masked = torch.softmax(model(batch.with_absent(["a"])).logits, 1)
        imagined = torch.softmax(strategy.predict(model, batch.with_absent(["a"])).logits, 1)
    assert (imagined - full).abs().sum(1).mean() < (masked - full).abs().sum(1).mean()


@pytest.mark.parametrize("args, key", [({"hidden": 0}, "hidden"), ({"imagine_weight": -1.0}, "imagine_weight"),
                                       ({"fill_weight": float("nan")}, "fill_weight")])
def test_bad_arguments_name_their_key(args, key):
    with pytest.raises(ValueError, match=key):
        STRATEGIES.create("imagine", **args)


def test_needs_pooled_features(train):
    model = build_model(train.schema, train.num_outputs, fusion="early", width=8)
    with pytest.raises(ValueError, match="imagine.*pooled"):
        STRATEGIES.create("imagine").setup(model, train)
