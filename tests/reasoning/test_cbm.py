"""The cbm strategy: Koh et al.'s three training modes with concept labels."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from polymodal.data.base import build_dataset
from polymodal.models import build_model
from polymodal.reasoning import ConceptBottleneckStrategy, concept_loss
from polymodal.strategies.base import StepContext

N_VALUES = 3


def dataset_with_concepts():
    ds = build_dataset("synthetic", "train", size=48)
    rng = np.random.default_rng(0)
    ds.concept_labels = {m: {"concept": rng.integers(0, N_VALUES, len(ds))} for m in ds.modalities}
    ds.concept_labels[ds.modalities[0]]["concept"][:5] = -1  # unknown for a few rows
    return ds


def make_model(ds, seed: int = 0):
    torch.manual_seed(seed)
    return build_model(ds.schema, ds.num_outputs, fusion="concept_bottleneck", width=8,
                       fusion_args={"concepts": N_VALUES, "head_hidden": 6})


def ctx_for(opt, epoch: int = 0) -> StepContext:
    def step(params=None, set_to_none=True):
        opt.step()
        opt.zero_grad(set_to_none=set_to_none)
        return True

    return StepContext(epoch=epoch, batch_idx=0, batches_per_epoch=3, optimizer=opt, backward=lambda loss: loss.backward(),
                       step=step, zero_grad=lambda s: opt.zero_grad(set_to_none=s), all_reduce_mean=lambda t: t)


def batches(ds):
    collate = ds.collate_fn()
    return [collate([ds[i] for i in range(s, s + 16)]) for s in (0, 16, 32)]


def test_independent_mode_equals_concepts_alone_then_head():
    ds = dataset_with_concepts()
    model = make_model(ds)
    twin = copy.deepcopy(model)
    strategy = ConceptBottleneckStrategy(mode="independent")
    strategy.setup(model, ds)
    opt = torch.optim.AdamW(model.parameters(), lr=0.01)
    torch.manual_seed(1)  # dropout draws the same masks in both runs
    for batch in batches(ds):
        strategy.training_step(model, batch, ctx_for(opt))

    # the same from scratch: concept predictors alone on the concept loss, then the head alone
    fusion = twin.fusion
    labels = {f"{m}.concept": torch.from_numpy(v["concept"]) for m, v in ds.concept_labels.items()}
    modality_of = {c.key: c.modality for c in fusion.concepts}
    predictors = [p for n, p in twin.named_parameters() if not n.startswith("fusion.head.")]
    head = list(fusion.head.parameters())
    opt_c, opt_h = torch.optim.AdamW(predictors, lr=0.01), torch.optim.AdamW(head, lr=0.01)
    torch.manual_seed(1)
    for batch in batches(ds):
        feats = {m: twin.encode(m, batch.inputs[m], batch.present[m]) for m in twin.modalities}
        loss = concept_loss(fusion.concept_logits(feats, batch.present), {k: v[batch.index] for k, v in labels.items()},
                            batch.present, modality_of)
        opt_c.zero_grad()
        loss.backward()
        opt_c.step()
    for batch in batches(ds):  # the head on the true concepts of the fully labelled rows
        ys = {k: v[batch.index] for k, v in labels.items()}
        rows = torch.stack([y >= 0 for y in ys.values()]).all(0)
        probs = {k: F.one_hot(y.clamp_min(0), N_VALUES).float() for k, y in ys.items()}
        loss = F.cross_entropy(fusion.reason(probs, batch.present)[rows], batch.label[rows])
        opt_h.zero_grad()
        loss.backward()
        opt_h.step()

    for (name, a), (_, b) in zip(model.named_parameters(), twin.named_parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=name)
    # the concepts of the independent mode's test-time path are the predicted ones
    assert not torch.equal(model.fusion.head[0].weight, make_model(ds).fusion.head[0].weight)


def test_sequential_mode_freezes_the_concept_predictors_after_concept_epochs():
    ds = dataset_with_concepts()
    model = make_model(ds)
    strategy = ConceptBottleneckStrategy(mode="sequential", concept_epochs=1)
    strategy.setup(model, ds)
    opt = torch.optim.AdamW(model.parameters(), lr=0.01)
    head0 = [p.detach().clone() for p in model.fusion.head.parameters()]
    logs = strategy.training_step(model, batches(ds)[0], ctx_for(opt, epoch=0))
    assert all(torch.equal(a, b) for a, b in zip(head0, model.fusion.head.parameters(), strict=True))
    assert float(logs["loss_concepts"]) > 0
    enc = [p.detach().clone() for p in model.encoders.parameters()]
    strategy.training_step(model, batches(ds)[1], ctx_for(opt, epoch=1))
    assert all(torch.equal(a, b) for a, b in zip(enc, model.encoders.parameters(), strict=True))
    assert not all(torch.equal(a, b) for a, b in zip(head0, model.fusion.head.parameters(), strict=True))


def test_joint_mode_weights_the_concept_loss():
    ds = dataset_with_concepts()
    losses = {}
    for w in (0.0, 1.0):
        model = make_model(ds)
        strategy = ConceptBottleneckStrategy(mode="joint", concept_weight=w)
        strategy.setup(model, ds)
        logs = strategy.training_step(model, batches(ds)[0], ctx_for(torch.optim.SGD(model.parameters(), lr=0.0)))
        losses[w] = (float(logs["loss"]), float(logs["loss_label"]), float(logs["loss_concepts"]))
    assert losses[0.0][0] == pytest.approx(losses[0.0][1])
    assert losses[1.0][0] == pytest.approx(losses[1.0][1] + losses[1.0][2])


def test_bad_setups_are_explained():
    ds = build_dataset("synthetic", "train", size=16)
    model = make_model(ds)
    with pytest.raises(ValueError, match="mode='independent' needs concept labels"):
        ConceptBottleneckStrategy(mode="independent").setup(model, ds)
    with pytest.raises(ValueError, match="strategy.args.mode='indep'"):
        ConceptBottleneckStrategy(mode="indep")
    late = build_model(ds.schema, ds.num_outputs, fusion="late", width=8)
    with pytest.raises(ValueError, match="model.fusion=concept_bottleneck, program or relation"):
        ConceptBottleneckStrategy().setup(late, ds)
    with pytest.raises(ValueError, match="not a manifest table"):
        ConceptBottleneckStrategy(concept_columns={"a.concept": "col"}).setup(model, ds)


def test_balance_loss_is_zero_for_balanced_and_log_v_for_collapsed_concepts():
    from polymodal.reasoning.strategy import balance_loss

    present = {"a": torch.tensor([True, True, True, False])}
    balanced = torch.tensor([[1.0, 0, 0], [0, 1, 0], [0, 0, 1], [1, 0, 0]])  # the absent row is not counted
    collapsed = torch.tensor([[1.0, 0, 0]] * 3 + [[0, 1, 0]])
    assert float(balance_loss({"a.x": balanced}, present, {"a.x": "a"})) == pytest.approx(0.0, abs=1e-6)
    assert float(balance_loss({"a.x": collapsed}, present, {"a.x": "a"})) == pytest.approx(np.log(3), abs=1e-5)
    with pytest.raises(ValueError, match="strategy.args.balance=-1"):
        ConceptBottleneckStrategy(balance=-1)


def test_sequential_head_phase_runs_the_frozen_encoders_in_eval_mode():
    """After concept_epochs the encoders are fixed: BatchNorm keeps its running statistics and dropout is off,
    so the head sees the same concepts for the same batch."""
    ds = dataset_with_concepts()
    model = make_model(ds)
    model.encoders["a"].norm_in = torch.nn.BatchNorm1d(8)  # running statistics to watch (the MLP has dropout)
    strategy = ConceptBottleneckStrategy(mode="sequential", concept_epochs=1)
    strategy.setup(model, ds)
    opt = torch.optim.SGD(model.parameters(), lr=0.0)
    batch = batches(ds)[0]
    model.train()  # what the training loop does at the start of every epoch
    stats = [b.clone() for b in model.encoders["a"].norm_in.buffers()]
    strategy.training_step(model, batch, ctx_for(opt, epoch=0))
    moved = [b.clone() for b in model.encoders["a"].norm_in.buffers()]
    assert not all(torch.equal(a, b) for a, b in zip(stats, moved, strict=True))  # concept phase: statistics update
    losses = []
    for seed in (1, 2):
        model.train()
        torch.manual_seed(seed)  # other dropout masks, if dropout were on
        losses.append(float(strategy.training_step(model, batch, ctx_for(opt, epoch=1))["loss_label"]))
        assert all(torch.equal(a, b) for a, b in zip(moved, model.encoders["a"].norm_in.buffers(), strict=True))
        assert not any(m.training for m in model.encoders.modules()) and model.fusion.head.training
    assert losses[0] == losses[1]
