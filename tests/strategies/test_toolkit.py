"""The strategy toolkit: setup checks, this step's gradient under accumulation, scores over present rows."""

import math

import pytest
import torch
import torch.nn.functional as F

from polymodal.data.base import build_dataset
from polymodal.models import build_model
from polymodal.strategies.base import StepContext, Strategy
from polymodal.strategies.toolkit import (
    GradSnapshot,
    check_number,
    check_setup,
    check_window,
    dominance_ratios,
    eval_mode,
    from_prefixed_state,
    mean_over_present,
    per_modality_logits,
    prefixed_state,
    present_sum,
    subset_loader,
    true_class_probability,
    unimodal_losses,
)
from polymodal.tasks import get_task
from tests.strategies._baselines import full_batch, make_setup


def _ctx(world_size: int = 1, all_reduce_mean=lambda t: t) -> StepContext:
    return StepContext(epoch=0, batch_idx=0, batches_per_epoch=1, optimizer=None, backward=None, step=None,
                       zero_grad=None, all_reduce_mean=all_reduce_mean, world_size=world_size)


class _S(Strategy):
    """A strategy that requires what the balancing strategies require (one class per sample)."""

    name = "s"

    def training_step(self, model, batch, ctx):
        raise NotImplementedError


def test_check_setup_names_what_the_strategy_needs_and_returns_the_model():
    model, ds = make_setup(None)
    assert check_setup(_S(), model, ds, per_modality=True, input_level="pooled", dataset_for="x") is model
    concat = build_model(ds.schema, ds.num_outputs, fusion="concat", width=8)
    with pytest.raises(ValueError, match=r"strategy 's' needs >= 2 modalities and a fusion with per-modality "
                                         r"logits \(model\.fusion=late\); got ConcatFusion over \['a', 'b'\]"):
        check_setup(_S(), concat, ds, per_modality=True)
    with pytest.raises(ValueError, match=r"needs >= 3 modalities; got LateFusion"):
        check_setup(_S(), model, ds, min_modalities=3)
    with pytest.raises(ValueError, match=r"a fusion over pooled \(B, D\) encoder features \(model\.fusion=late\)"):
        check_setup(_S(), build_model(ds.schema, ds.num_outputs, fusion="early", width=8), ds, input_level="pooled")
    with pytest.raises(ValueError, match=r"strategy 's' needs the training dataset in setup\(\) to count"):
        check_setup(_S(), model, None, dataset_for="count")
    regression = build_dataset("synthetic", "train", size=16, task="regression")
    with pytest.raises(ValueError, match="strategy 's' needs single_label"):  # the task is checked first
        check_setup(_S(), concat, regression, per_modality=True)


def test_per_modality_logits_guard():
    model, ds = make_setup(None)
    out = model(full_batch(ds, 4))
    assert per_modality_logits(out, "X") is out.per_modality
    out.per_modality = None
    with pytest.raises(ValueError, match="X needs per-modality logits; use model.fusion=late"):
        per_modality_logits(out, "X")


def test_argument_checks_name_the_key():
    assert check_number("alpha", 2) == 2.0 and isinstance(check_number("alpha", 2), float)
    assert check_number("alpha", 0) == 0.0
    with pytest.raises(ValueError, match=r"strategy\.args\.alpha=-1; expected a number >= 0 \(note\)"):
        check_number("alpha", -1, note="note")
    with pytest.raises(ValueError, match=r"strategy\.args\.scale=0; expected a number > 0$"):
        check_number("scale", 0, strict=True)
    with pytest.raises(ValueError, match=r"strategy\.args\.scale='1'"):
        check_number("scale", "1")
    check_window(0, 0)
    with pytest.raises(ValueError, match=r"modulation_starts=-1"):
        check_window(-1, 3)
    with pytest.raises(ValueError, match=r"modulation_ends=2; expected an epoch >= modulation_starts \(3\)"):
        check_window(3, 2)


def test_grad_snapshot_rescales_only_this_steps_gradient():
    w = torch.nn.Parameter(torch.tensor([1.0, -2.0, 3.0]))
    x1, x2 = torch.tensor([0.5, 1.0, -1.0]), torch.tensor([2.0, 0.0, 1.0])
    (w * x1).sum().backward()  # an earlier micro-batch: grad = x1
    fresh = torch.nn.Parameter(torch.zeros(2))  # no gradient before and none after: left alone
    snap = GradSnapshot([w, fresh])
    (w * w * x2).sum().backward()  # this step: 2 w x2
    this_step = 2 * w.detach() * x2
    assert torch.equal(snap.step_grad(w), x1 + this_step - x1)
    assert snap.step_grad(fresh) is None
    snap.scale([w, fresh], 0.25)
    assert torch.allclose(w.grad, x1 + 0.25 * this_step) and fresh.grad is None
    snap.replace(w, torch.ones(3))
    assert torch.allclose(w.grad, x1 + 1)
    # without an earlier gradient the step's gradient is .grad itself and is replaced outright
    v = torch.nn.Parameter(torch.ones(2))
    snap = GradSnapshot([v])
    (3 * v).sum().backward()
    assert snap.step_grad(v) is v.grad
    snap.scale([v], 2.0)
    assert torch.equal(v.grad, torch.full((2,), 6.0))


def test_means_over_present_rows_and_across_ranks():
    label = torch.tensor([0, 1, 1, 0])
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0], [3.0, 0.0], [0.0, 0.0]])
    p = true_class_probability(logits, label)
    naive = [math.exp(float(logits[i, label[i]])) / float(logits[i].exp().sum()) for i in range(4)]
    assert torch.allclose(p, torch.tensor(naive)) and p.shape == (4,)
    rows = torch.tensor([True, False, True, True])
    stats = {"a": present_sum(p[rows], rows), "b": present_sum(p[:0], torch.zeros(4, dtype=torch.bool))}
    assert stats["a"].tolist() == pytest.approx([sum(naive[i] for i in (0, 2, 3)), 3.0])
    means = mean_over_present(stats, _ctx())
    assert means == {"a": pytest.approx(sum(naive[i] for i in (0, 2, 3)) / 3)}  # "b" has no present row
    # under DDP the (sum, count) pairs are averaged over ranks: the mean is over every rank's rows
    other_rank = torch.tensor([[4.0, 2.0], [1.0, 1.0]])
    means = mean_over_present(stats, _ctx(2, lambda t: (t + other_rank) / 2))
    assert means["a"] == pytest.approx((float(stats["a"][0]) + 4.0) / 5) and means["b"] == pytest.approx(1.0)


def test_dominance_ratios():
    assert dominance_ratios({"a": 6.0, "v": 3.0}) == {"a": 2.0, "v": 0.5}
    r = dominance_ratios({"a": 3.0, "b": 1.0, "c": 2.0})
    assert r == pytest.approx({"a": 2.0, "b": 0.4, "c": 1.0})
    assert dominance_ratios({"a": 1.0, "b": 0.0})["a"] == math.inf
    with pytest.raises(ValueError, match=">= 2 modalities"):
        dominance_ratios({"a": 1.0})


def test_unimodal_losses_are_per_modality_means_over_present_rows():
    model, ds = make_setup(None, size=24, missing=0.4)
    batch = full_batch(ds)
    batch.present["b"][:] = False
    out = model(batch)
    w = torch.linspace(0.5, 2.0, ds.num_outputs)
    got = unimodal_losses(get_task("classification"), out.per_modality, batch.present, batch.label, w, names=["b", "a"])
    assert list(got) == ["a"]  # b is present in no row
    rows = [i for i in range(batch.size) if batch.present["a"][i]]
    logp = torch.log_softmax(out.per_modality["a"], dim=1)
    naive = -sum(w[batch.label[i]] * logp[i, batch.label[i]] for i in rows) / sum(w[batch.label[i]] for i in rows)
    assert torch.allclose(got["a"], naive)
    assert torch.equal(got["a"], F.cross_entropy(out.per_modality["a"][batch.present["a"]],
                                                 batch.label[batch.present["a"]], weight=w))


def test_eval_mode_restores_the_mode_and_state_round_trips():
    net = torch.nn.Dropout(0.5)
    with eval_mode(net):
        assert not net.training
    assert net.training
    with pytest.raises(RuntimeError), eval_mode(net):
        raise RuntimeError("boom")
    assert net.training
    net.eval()
    with eval_mode(net):
        pass
    assert not net.training
    t = {"a": torch.arange(3.0, requires_grad=True), "b": torch.ones(2)}
    state = prefixed_state("proto", t)
    assert set(state) == {"proto/a", "proto/b"} and not state["proto/a"].requires_grad
    back = from_prefixed_state({**state, "other/a": torch.zeros(1), "protox/a": torch.zeros(1)}, "proto", torch.float64)
    assert set(back) == {"a", "b"} and back["a"].dtype == torch.float64 and back["a"].tolist() == [0.0, 1.0, 2.0]


def test_subset_loader_serves_the_given_positions_in_order():
    ds = build_dataset("synthetic", "train", size=12)
    import numpy as np

    batches = list(subset_loader(ds, np.array([5, 2, 9]), batch_size=2))
    assert [b.size for b in batches] == [2, 1]
    assert torch.cat([b.index for b in batches]).tolist() == [5, 2, 9]


@pytest.mark.parametrize("name", ["ogm_ge", "agm", "pmr", "mmpareto", "qmf", "gblending", "ume"])
def test_class_weights_of_the_step_context_reach_the_loss(name):
    from polymodal.strategies import STRATEGIES
    from tests.strategies._baselines import Ctx

    def one_step(weights):
        entry = STRATEGIES.get(name)
        strategy = STRATEGIES.create(name, **entry.tiny)
        model, ds = make_setup(strategy, size=32)
        ctx = Ctx(model, opt="sgd", lr=0.5)
        strategy.on_epoch_start(model, 0)
        step = ctx.make()
        step.class_weights = weights
        strategy.training_step(model, full_batch(ds, 16), step)
        return [p.detach().clone() for p in model.parameters()]

    plain = one_step(None)
    assert all(torch.equal(a, b) for a, b in zip(plain, one_step(None), strict=True))  # deterministic
    skewed = one_step(torch.tensor([5.0, 0.1, 0.1, 0.1]))
    assert any(not torch.allclose(a, b) for a, b in zip(plain, skewed, strict=True))
