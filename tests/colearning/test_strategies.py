"""The co-learning strategies: label budgets, pseudo-labels, the target-only prediction, the reduction to
supervised training at a full budget."""

from __future__ import annotations

import copy

import pytest
import torch

from polymodal.colearning.budget import labelled_mask
from polymodal.datasets import build_dataset
from polymodal.models import build_model
from polymodal.strategies.base import STRATEGIES, StepContext

NAMES = ("labelled-only", "co-training", "cross-distill", "contrastive-aux")


def _ctx(opt: torch.optim.Optimizer, epoch: int = 0) -> StepContext:
    def step(params=None, set_to_none=True, now=False):
        opt.step()
        opt.zero_grad(set_to_none=set_to_none)
        return True

    return StepContext(epoch=epoch, batch_idx=0, batches_per_epoch=1, optimizer=opt, backward=lambda loss: loss.backward(),
                       step=step, zero_grad=lambda s: opt.zero_grad(set_to_none=s), all_reduce_mean=lambda t: t)


def _setup(name: str, ds, **args):
    torch.manual_seed(0)
    model = build_model(ds.schema, ds.num_outputs, fusion="late", width=8)
    strategy = STRATEGIES.create(name, **args)
    strategy.setup(model, ds)
    return model, strategy, torch.optim.SGD(model.parameters(), lr=0.1)


def _batch(ds, rows):
    return ds.collate_fn()([ds[int(i)] for i in rows])


@pytest.fixture(scope="module")
def train():
    return build_dataset("synthetic", "train", size=64)


def test_pseudo_labels_come_from_unlabelled_training_rows_above_the_threshold(train):
    model, strategy, opt = _setup("co-training", train, label_fraction=0.25, threshold=0.3, warmup_epochs=0)
    batch = _batch(train, range(64))
    model.eval()  # no dropout: the step's forward pass is the reference's
    reference = copy.deepcopy(model)  # the teachers' view of this batch, before the step changes them
    with torch.no_grad():
        per = reference(batch).per_modality
    strategy.training_step(model, batch, _ctx(opt))
    hidden = ~labelled_mask(train.labels, 0.25, 0)
    assert strategy.last_pseudo, "a threshold of 0.3 on 4 classes takes some pseudo-labels"
    for student, (index, label, confidence) in strategy.last_pseudo.items():
        teacher = "b" if student == "a" else "a"
        assert hidden[index.numpy()].all()  # never a labelled row
        assert (confidence >= 0.3).all()
        probs = torch.softmax(per[teacher], dim=1)
        expected = [i for i in range(64) if hidden[i] and float(probs[i].max()) >= 0.3]
        assert sorted(index.tolist()) == expected  # every row above the threshold, and only those
        torch.testing.assert_close(label, probs[index].argmax(1))


def test_a_high_threshold_takes_no_pseudo_label(train):
    model, strategy, opt = _setup("co-training", train, label_fraction=0.25, threshold=1.01, warmup_epochs=0)
    logs = strategy.training_step(model, _batch(train, range(32)), _ctx(opt))
    assert all(len(v[0]) == 0 for v in strategy.last_pseudo.values())
    assert not any(k.startswith("pseudo/") for k in logs)


def test_no_pseudo_label_before_the_warmup(train):
    model, strategy, opt = _setup("co-training", train, label_fraction=0.25, threshold=0.0, warmup_epochs=1)
    strategy.training_step(model, _batch(train, range(32)), _ctx(opt, epoch=0))
    assert strategy.last_pseudo == {}
    strategy.training_step(model, _batch(train, range(32)), _ctx(opt, epoch=1))
    assert strategy.last_pseudo


def test_nothing_is_taken_from_the_test_split(train):
    test = build_dataset("synthetic", "test", size=64)
    model, strategy, opt = _setup("co-training", test, label_fraction=0.25, threshold=0.0, warmup_epochs=0)
    with pytest.raises(RuntimeError, match="training split only"):
        strategy.training_step(model, _batch(test, range(16)), _ctx(opt))
    model, strategy, opt = _setup("co-training", train, label_fraction=0.25, threshold=0.0, warmup_epochs=0)
    strategy.training_step(model, _batch(train, range(32)), _ctx(opt))
    taken = copy.deepcopy(strategy.last_pseudo)
    with torch.no_grad():
        out = strategy.predict(model.eval(), _batch(test, range(16)))  # evaluation takes nothing
    assert {k: [t.tolist() for t in v] for k, v in strategy.last_pseudo.items()} == \
        {k: [t.tolist() for t in v] for k, v in taken.items()}
    assert {"colearn.source_label", "colearn.source_confidence"} <= set(out.extras)


def test_a_batch_beyond_the_training_split_is_refused(train):
    model, strategy, opt = _setup("labelled-only", train, label_fraction=0.5)
    bigger = build_dataset("synthetic", "train", size=80)
    with pytest.raises(ValueError, match="training split set up has 64 rows"):
        strategy.training_step(model, _batch(bigger, range(60, 80)), _ctx(opt))


@pytest.mark.parametrize("name", NAMES)
def test_hidden_labels_are_never_read(name, train):
    """Permuting the labels of the unlabelled rows changes nothing: the same weights after a few steps."""
    args = {"label_fraction": 0.25}
    if name == "co-training":
        args.update(threshold=0.2, warmup_epochs=0)
    if name == "cross-distill":
        args.update(warmup_epochs=0, feature_weight=0.5)
    weights = []
    for shuffle in (False, True):
        model, strategy, opt = _setup(name, train, **args)
        for step in range(3):
            batch = _batch(train, range(step * 16, step * 16 + 32))
            if shuffle:
                hidden = ~strategy.labelled_rows(batch)
                batch.label[hidden] = (batch.label[hidden] + 1) % train.num_outputs
            strategy.training_step(model, batch, _ctx(opt))
        weights.append([p.detach().clone() for p in model.parameters()])
    for a, b in zip(*weights, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


@pytest.mark.parametrize("name", NAMES)
def test_the_prediction_is_the_target_alone(name, train):
    model, strategy, _ = _setup(name, train, target="b", label_fraction=0.5)
    batch = _batch(train, range(8))
    with torch.no_grad():
        first = strategy.predict(model.eval(), batch)
        batch.inputs["a"] = torch.randn_like(batch.inputs["a"])
        again = strategy.predict(model, batch)
    torch.testing.assert_close(first.logits, again.logits)
    torch.testing.assert_close(first.logits, first.per_modality["b"])
    # without the target, a row gets the source head's logits (the engine's a_acc is the source head's accuracy)
    with torch.no_grad():
        alone = strategy.predict(model, batch.with_absent(["b"]))
        both = model(batch)
    torch.testing.assert_close(alone.logits, both.per_modality["a"])


def test_distillation_and_contrastive_terms_appear(train):
    model, strategy, opt = _setup("cross-distill", train, label_fraction=0.25, warmup_epochs=0, feature_weight=1.0)
    logs = strategy.training_step(model, _batch(train, range(32)), _ctx(opt))
    assert {"distill", "feature_match", "loss/a", "loss/b"} <= set(logs)
    model, strategy, opt = _setup("contrastive-aux", train, label_fraction=0.25, dim=4)
    logs = strategy.training_step(model, _batch(train, range(32)), _ctx(opt))
    assert {"contrastive", "loss/a"} <= set(logs) and "loss/b" not in logs  # the source's head is never trained


def test_bad_arguments_name_the_key(train):
    with pytest.raises(ValueError, match=r"strategy.args.label_fraction=2"):
        STRATEGIES.create("co-training", label_fraction=2)
    with pytest.raises(ValueError, match=r"strategy.args.threshold"):
        STRATEGIES.create("co-training", threshold=-1)
    with pytest.raises(ValueError, match=r"strategy.args.temperature"):
        STRATEGIES.create("cross-distill", temperature=0)
    with pytest.raises(ValueError, match=r"strategy.args.target='c'"):
        _setup("labelled-only", train, target="c")
    with pytest.raises(ValueError, match=r"strategy.args.source='a'"):
        _setup("labelled-only", train, target="a", source="a")


def _train(tmp_path, strategy: str, fraction: float, *extra: str):
    from polymodal.config import load_config
    from polymodal.engine import train

    tag = "-".join(e.rsplit(".", 1)[-1].replace("=", "") for e in extra)
    cfg = load_config(None, [*extra,
        "data.dataset=synthetic", "data.options.size=96", "model.width=8", "model.fusion=late",
        f"strategy.name={strategy}", f"strategy.args.label_fraction={fraction}", "trainer.max_epochs=3",
        "trainer.accelerator=cpu", "data.batch_size=16", "seed=5", f"name={strategy}-{fraction}{tag}",
        f"out_dir={tmp_path}",
    ])
    return train(cfg)


@pytest.mark.slow
def test_co_training_at_full_budget_is_supervised_training(tmp_path):
    """With every label kept there is nothing to pseudo-label: co-training gives labelled-only's result."""
    ours, ref = _train(tmp_path, "co-training", 1.0), _train(tmp_path, "labelled-only", 1.0)
    assert ours.metrics == ref.metrics and ours.val_metrics == ref.val_metrics
    assert [h["train/loss"] for h in ours.history] == [h["train/loss"] for h in ref.history]
    low = _train(tmp_path, "co-training", 0.2)  # and the budget does change the result
    assert [h["train/loss"] for h in low.history] != [h["train/loss"] for h in ref.history]
    # at a full budget the labelled share (default 0.5) changes nothing: the same run as one pass per epoch
    off = _train(tmp_path, "labelled-only", 1.0, "strategy.args.labelled_share=null")
    assert off.metrics == ref.metrics and [h["train/loss"] for h in off.history] == [h["train/loss"] for h in ref.history]
    # below it, the share changes which rows are drawn (and so the run)
    low_off = _train(tmp_path, "co-training", 0.2, "strategy.args.labelled_share=0")
    assert [h["train/loss"] for h in low_off.history] != [h["train/loss"] for h in low.history]


def test_a_bench_of_the_colearning_strategies_is_planned(tmp_path):
    """``polymodal bench`` lays out every co-learning strategy with a shared label budget (config checked)."""
    from polymodal.bench.plan import plan_bench

    plan = plan_bench(list(NAMES), ["avdigits-hard"], [0, 1], tmp_path / "colearn",
                      overrides=["strategy.args.label_fraction=0.05", "strategy.args.target=audio"])
    jobs = plan.to_run()
    assert sorted({j.tags["strategy"] for j in jobs}) == sorted(NAMES) and len(jobs) == 8
    assert all("strategy.args.label_fraction=0.05" in j.overrides for j in jobs)
    with pytest.raises(ValueError, match="label_fraction"):
        plan_bench(["co-training"], ["avdigits-hard"], [0], tmp_path / "bad", overrides=["strategy.args.label_fraction=0"])


def _draws(strategy, ds, seed: int, epochs: range) -> list[int]:
    from polymodal.engine.data import make_loader

    loader = make_loader(ds, batch_size=16, seed=seed, shuffle=True, sample_weights=strategy.train_sample_weights(ds))
    out = []
    for epoch in epochs:
        loader.sampler.select_epoch(epoch)
        out += torch.cat([b.index for b in loader]).tolist()
    return out


@pytest.mark.parametrize("share", [0.5, 0.3])
def test_the_sampler_draws_labelled_rows_at_the_requested_share(train, share):
    _, strategy, _ = _setup("co-training", train, label_fraction=0.1, labelled_share=share)
    labelled = strategy.labelled
    assert 0 < int(labelled.sum()) < 0.2 * len(train)  # about 10 % of the rows keep their label
    drawn = torch.tensor(_draws(strategy, train, 0, range(30)))
    assert len(drawn) == 30 * len(train)  # N draws per epoch: the epoch keeps its number of steps
    got = float(labelled[drawn].float().mean())
    assert abs(got - share) < 0.04  # binomial sd about 0.011 over 1,920 draws; uniform sampling gives about 0.1
    counts = torch.bincount(drawn[labelled[drawn]], minlength=len(train))[labelled].float()
    assert float(counts.min()) > 0.5 * float(counts.mean())  # uniform among the labelled rows
    unl = torch.bincount(drawn[~labelled[drawn]], minlength=len(train))[~labelled].float()
    assert abs(float(unl.mean()) - (1 - share) * len(drawn) / int((~labelled).sum())) < 1e-6 * len(drawn) + 0.5


def test_the_labelled_share_is_deterministic_per_seed_and_epoch(train):
    _, strategy, _ = _setup("labelled-only", train, label_fraction=0.1)
    assert _draws(strategy, train, 3, [4]) == _draws(strategy, train, 3, [4])
    assert _draws(strategy, train, 3, [4]) != _draws(strategy, train, 3, [5])
    assert _draws(strategy, train, 3, [4]) != _draws(strategy, train, 4, [4])


def test_no_share_at_a_full_budget_or_when_turned_off(train):
    for args in ({"label_fraction": 1.0}, {"label_fraction": 0.1, "labelled_share": None},
                 {"label_fraction": 0.1, "labelled_share": 0}):
        _, strategy, _ = _setup("cross-distill", train, **args)
        assert strategy.train_sample_weights(train) is None  # the engine's permutation: one pass over every row


def test_bad_labelled_shares_name_the_key():
    for bad in (1, 1.5, -0.1, float("nan"), True, "half"):
        with pytest.raises(ValueError, match=r"strategy.args.labelled_share=.*expected the share .* \[0, 1\)"):
            STRATEGIES.create("labelled-only", label_fraction=0.1, labelled_share=bad)


def test_the_engine_refuses_a_labelled_share_with_balanced_sampling(tmp_path):
    from polymodal.config import load_config
    from polymodal.engine import train

    cfg = load_config(None, ["data.dataset=synthetic", "data.options.size=48", "model.width=8", "model.fusion=late",
                             "strategy.name=co-training", "strategy.args.label_fraction=0.25", "trainer.max_epochs=1",
                             "data.balanced_sampling=true", f"out_dir={tmp_path}", "name=conflict"])
    with pytest.raises(ValueError, match=r"data.balanced_sampling=true and strategy 'co-training' "
                                         r"\(strategy.args.labelled_share\)"):
        train(cfg)
    cfg = cfg.model_copy(update={"strategy": cfg.strategy.model_copy(update={"args": {
        **cfg.strategy.args, "labelled_share": None}})})
    assert train(cfg).epochs_run == 1  # with the share turned off, balanced sampling is the sampler's rule
