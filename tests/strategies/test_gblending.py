import pytest
import torch
import torch.nn.functional as F

from polymodal.strategies.gblending import FUSED, GBlending, blending_weights

from ._baselines import Ctx, full_batch, make_setup


def test_weights_match_the_overfitting_to_generalisation_formula():
    before = {"a": (1.0, 1.2), "b": (1.1, 1.3), FUSED: (0.9, 1.25)}
    after = {"a": (0.6, 1.0), "b": (0.5, 1.1), FUSED: (0.3, 1.05)}
    raw = {}
    for k in before:  # w_k = dG / dO^2 with dG = V_n - V_n+N, dO = O_n+N - O_n, O = V - T
        (t0, v0), (t1, v1) = before[k], after[k]
        raw[k] = (v0 - v1) / ((v1 - t1) - (v0 - t0)) ** 2
    total = sum(raw.values())
    got = blending_weights(before, after)
    assert got == pytest.approx({k: v / total for k, v in raw.items()})
    assert sum(got.values()) == pytest.approx(1.0)


def test_a_branch_that_generalises_worse_gets_zero_and_all_zero_falls_back_to_uniform():
    before = {"a": (1.0, 1.0), "b": (1.0, 1.0)}
    got = blending_weights(before, {"a": (0.5, 1.2), "b": (0.5, 0.9)})
    assert got == pytest.approx({"a": 0.0, "b": 1.0})
    assert blending_weights(before, {"a": (0.5, 1.2), "b": (0.5, 1.3)}) == {"a": 0.5, "b": 0.5}


def test_holdout_is_deterministic_disjoint_and_never_trained_on():
    g1, g2 = GBlending(holdout=0.25, seed=1), GBlending(holdout=0.25, seed=1)
    model, ds = make_setup(g1)
    g2.setup(model, ds)
    assert list(g1._holdout_idx) == list(g2._holdout_idx) and len(g1._holdout_idx) == 12
    assert not set(g1._holdout_idx) & set(g1._train_idx)
    g1.weights = {"a": 0.2, "b": 0.3, FUSED: 0.5}
    g1.estimated_at = 0
    held = ds.collate_fn()([ds[int(i)] for i in g1._holdout_idx])
    before = [p.detach().clone() for p in model.parameters()]
    ctx = Ctx(model)
    g1.training_step(model, held, ctx.make())
    assert ctx.steps == 0 and all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))

    model.eval()
    batch = full_batch(ds, 24)
    keep = ~torch.isin(batch.index, torch.as_tensor(g1._holdout_idx))
    sub = batch.select(keep)
    out = model(sub)
    expected = 0.5 * F.cross_entropy(out.logits, sub.label) + sum(
        w * F.cross_entropy(out.per_modality[m], sub.label) for m, w in (("a", 0.2), ("b", 0.3))
    )
    logs = g1.training_step(model, batch, Ctx(model).make())
    assert float(logs["loss"]) == pytest.approx(float(expected.detach()), rel=1e-5)


def test_estimation_runs_once_per_super_epoch_leaves_model_and_rng_alone_and_round_trips():
    strategy = GBlending(super_epoch=2, probe_epochs=1, holdout=0.25)
    model, ds = make_setup(strategy)
    batch = full_batch(ds, 16)
    params = [p.detach().clone() for p in model.parameters()]
    ctx = Ctx(model, lr=1e-2)
    strategy.on_epoch_start(model, 0)
    rng = torch.get_rng_state()
    weights = strategy.estimate(model, ctx.opt, 16, epoch=0)
    assert torch.equal(rng, torch.get_rng_state())
    assert all(torch.equal(a, b) for a, b in zip(params, model.parameters(), strict=True))
    assert set(weights) == {"a", "b", FUSED} and sum(weights.values()) == pytest.approx(1.0)
    assert max(weights.values()) > 0.34  # the probes learned: not the uniform fallback
    assert weights == strategy.estimate(model, ctx.opt, 16, epoch=0)  # deterministic
    logs = strategy.training_step(model, batch, ctx.make(epoch=0))
    assert strategy.weights == pytest.approx(weights) and logs[f"weight/{FUSED}"] == pytest.approx(weights[FUSED])
    for epoch in (1, 2, 3, 4):
        strategy.on_epoch_start(model, epoch)
        strategy.training_step(model, batch, ctx.make(epoch=epoch))
    assert [strategy.estimated_at, len(strategy.history)] == [4, 3]  # epochs 0, 2, 4

    fresh = GBlending(super_epoch=2, probe_epochs=1, holdout=0.25)
    fresh.setup(model, ds)
    fresh.load_state_dict(strategy.state_dict())
    assert fresh.weights == strategy.weights and fresh.estimated_at == 4 and fresh.history == strategy.history
    fresh.on_epoch_start(model, 5)  # resumed mid super-epoch: no new estimate
    fresh.training_step(model, batch, ctx.make(epoch=5))
    assert len(fresh.history) == 3


def test_setup_needs_the_training_dataset():
    model, _ = make_setup(None)
    with pytest.raises(ValueError, match="training dataset"):
        GBlending().setup(model, None)


@pytest.mark.parametrize("opt_cls", [torch.optim.SGD, torch.optim.Adam, torch.optim.AdamW])
def test_probe_optimiser_is_rebuilt_from_the_runs_optimiser(opt_cls):
    strategy = GBlending(probe_epochs=1, holdout=0.25)
    model, _ = make_setup(strategy)
    opt = opt_cls(model.parameters(), lr=1e-2, weight_decay=1e-4)
    weights = strategy.estimate(model, opt, batch_size=16, epoch=0)
    assert sum(weights.values()) == pytest.approx(1.0)
