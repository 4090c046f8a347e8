"""The contrastive strategy, task and datasets trained by the engine on real AV-digits pairs."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
import yaml

from polymodal.config import load_config
from polymodal.coordinated.datasets import PHRASES, AVDigitsPairs
from polymodal.coordinated.losses import CLIPLoss, DCCALoss, SigLIPLoss
from polymodal.coordinated.metrics import cross_modal_metrics
from polymodal.coordinated.strategy import ContrastiveStrategy
from polymodal.data.base import build_dataset
from polymodal.data.datasets.synthetic import SyntheticDataset
from polymodal.engine import train
from polymodal.models import build_model
from polymodal.registries import DATASETS, FUSIONS, STRATEGIES
from polymodal.strategies.base import StepContext
from polymodal.tasks import get_task, read_predictions

ENCODERS = {"audio": {"name": "audio_cnn", "channels": [4, 8]}, "image": {"name": "image_cnn", "channels": [4, 8]},
            "text": {"name": "text_transformer", "depth": 1, "heads": 2}}


def run_config(tmp_path, name="run", dataset="avdigits-pairs", **strategy_args):
    cfg = {
        "name": name, "out_dir": str(tmp_path), "seed": 0,
        "data": {"dataset": dataset, "batch_size": 32, "eval_batch_size": 64,
                 "options": {"persist_features": False},
                 "split_options": {"train": {"pairs": 128}, "val": {"pairs": 60}, "test": {"pairs": 60}}},
        "model": {"width": 8, "fusion": "coordinated", "fusion_args": {"dim": 8},
                  "encoders": {m: dict(v) for m, v in ENCODERS.items() if dataset == "avdigits-named" or m != "text"}},
        "strategy": {"name": "contrastive", "args": strategy_args},
        "optim": {"lr": 0.005},
        "trainer": {"max_epochs": 2, "patience": None, "progress": False, "num_threads": 1},
    }
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return load_config(path)


def _ctx(opt):
    def step(params=None, set_to_none=True, now=False):
        opt.step()
        opt.zero_grad(set_to_none=set_to_none)
        return True

    return StepContext(epoch=0, batch_idx=0, batches_per_epoch=1, optimizer=opt, backward=lambda loss: loss.backward(),
                       step=step, zero_grad=lambda s: opt.zero_grad(set_to_none=s), all_reduce_mean=lambda t: t)


def _setup(loss="clip", dataset="avdigits-pairs", n=48, step=1, **kw):
    torch.manual_seed(0)
    ds = build_dataset(dataset, "val", persist_features=False)
    model = build_model(ds.schema, ds.num_outputs, fusion="coordinated", fusion_args={"dim": 8},
                        encoders={m: dict(v) for m, v in ENCODERS.items() if m in ds.modalities}, width=8)
    strategy = ContrastiveStrategy(loss=loss, **kw)
    strategy.setup(model, ds)
    batch = ds.collate_fn()([ds[i] for i in range(0, n * step, step)])
    return ds, model, strategy, batch


def test_registered_components_are_found():
    assert "contrastive" in STRATEGIES.names() and "coordinated" in FUSIONS.names()
    assert {"avdigits-pairs", "avdigits-named"} <= set(DATASETS.names())
    assert get_task("contrastive").monitor == "mean_R1"


@pytest.mark.parametrize(("loss", "kind"), [("clip", CLIPLoss), ("siglip", SigLIPLoss), ("dcca", DCCALoss)])
def test_each_objective_lowers_its_loss_on_real_pairs(loss, kind):
    _, model, strategy, batch = _setup(loss, k=4) if loss == "dcca" else _setup(loss)
    assert isinstance(model.objective, kind)
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    first = float(strategy.training_step(model, batch, _ctx(opt))["loss"])
    for _ in range(15):
        last = float(strategy.training_step(model, batch, _ctx(opt))["loss"])
    assert last < first - 0.05, (loss, first, last)
    model.eval()
    out = strategy.predict(model, batch)
    width = 4 if loss == "dcca" else 8
    assert {m: tuple(e.shape) for m, e in out.per_modality.items()} == {"audio": (48, width), "image": (48, width)}
    torch.testing.assert_close(out.per_modality["audio"].norm(dim=1), torch.ones(48))


def test_clip_scale_is_clamped_during_training():
    _, model, strategy, batch = _setup("clip", max_scale=20.0)
    with torch.no_grad():
        model.objective.log_scale.fill_(5.0)
    logs = strategy.training_step(model, batch, _ctx(torch.optim.SGD(model.parameters(), lr=0.1)))
    assert float(model.objective.log_scale.detach()) == pytest.approx(math.log(20.0)) and logs["scale"] == pytest.approx(20.0)


def test_three_modalities_all_pairs_and_anchor():
    _, model, strategy, batch = _setup("siglip", "avdigits-named", pairing="all_pairs")
    assert strategy.pairs == [("audio", "image"), ("audio", "text"), ("image", "text")]
    logs = strategy.training_step(model, batch, _ctx(torch.optim.SGD(model.parameters(), lr=0.01)))
    assert {"loss/audio-image", "loss/audio-text", "loss/image-text"} <= set(logs)
    anchored = ContrastiveStrategy(pairing="anchor", anchor="text")
    anchored.setup(model, None)
    assert anchored.pairs == [("text", "audio"), ("text", "image")]


def test_locked_tower_and_train_classes():
    _, model, strategy, batch = _setup("clip", n=50, step=6, freeze=["image"], train_classes=[0, 1, 2])
    frozen = {k: v.clone() for k, v in model.encoders["image"].state_dict().items()}
    head = model.fusion.heads["image"].net.weight.detach().clone()
    model.train()
    seen = []
    forward = model.forward
    model.forward = lambda b, *a, **k: (seen.append(b.size), forward(b, *a, **k))[1]
    strategy.training_step(model, batch, _ctx(torch.optim.SGD(model.parameters(), lr=0.1)))
    assert all(torch.equal(frozen[k], v) for k, v in model.encoders["image"].state_dict().items())
    assert not torch.equal(head, model.fusion.heads["image"].net.weight)  # the locked tower's head trains
    assert seen == [int(np.isin(batch.label.numpy(), [0, 1, 2]).sum())] and 0 < seen[0] < 50
    # a batch with fewer than two rows of the training classes gives a zero loss, and no error
    only = ContrastiveStrategy(train_classes=[9])
    only.setup(model, None)
    logs = only.training_step(model, batch.select(torch.arange(4)), _ctx(torch.optim.SGD(model.parameters(), lr=0.1)))
    assert float(logs["loss"]) == 0.0


def test_bad_settings_are_refused():
    ds = SyntheticDataset(split="train", size=16, task="regression")
    model = build_model(ds.schema, ds.num_outputs, fusion="coordinated", width=8)
    with pytest.raises(ValueError, match="strategy 'contrastive' trains embeddings .* is a regression task"):
        ContrastiveStrategy().setup(model, ds)
    classes = SyntheticDataset(split="train", size=16)  # classification: scored on logits, not embeddings
    with pytest.raises(ValueError, match="strategy 'contrastive' trains embeddings .* is a classification task.*"
                                         "trained by strategy.name=agm"):
        ContrastiveStrategy().setup(model, classes)
    named = build_dataset("avdigits-named", "val", classes=[0, 1])
    model = build_model(named.schema, 10, fusion="coordinated", width=8,
                        encoders={m: dict(v) for m, v in ENCODERS.items()})
    with pytest.raises(ValueError, match="loss=dcca works on two modalities"):
        ContrastiveStrategy(loss="dcca").setup(model, named)
    with pytest.raises(ValueError, match="freeze names \\['video'\\]"):
        ContrastiveStrategy(freeze=["video"]).setup(model, named)
    late = build_model(named.schema, 10, fusion="late", width=8, encoders={m: dict(v) for m, v in ENCODERS.items()})
    with pytest.raises(ValueError, match="needs model.fusion=coordinated"):
        ContrastiveStrategy().setup(late, named)
    with pytest.raises(ValueError, match="loss='infonce'"):
        ContrastiveStrategy(loss="infonce")
    with pytest.raises(ValueError, match="classes=\\[12\\]"):
        AVDigitsPairs("val", classes=[12])


LOGIT_STRATEGIES = sorted(n for n in STRATEGIES.names() if STRATEGIES.get(n).factory.provides == "logits")


def test_strategies_declare_what_they_output():
    assert "joint" in LOGIT_STRATEGIES and "mla" in LOGIT_STRATEGIES and "contrastive" not in LOGIT_STRATEGIES
    assert ContrastiveStrategy.provides == "embeddings"


@pytest.mark.parametrize("name", LOGIT_STRATEGIES)
def test_logit_strategies_are_refused_on_a_contrastive_dataset(tmp_path, name):
    from types import SimpleNamespace

    from polymodal.engine.build import check_task

    cfg = run_config(tmp_path)
    cfg.strategy.name = name
    entry = STRATEGIES.get(name)
    kwargs = {"teachers": {"audio": "no-such-run"}} if name == "umt" else {}  # no teacher is read here
    strategy = entry.factory(**entry.tiny, **kwargs)
    pairs = SimpleNamespace(task="contrastive", name="avdigits-pairs")
    with pytest.raises(ValueError, match=rf"strategy '{name}' trains a prediction per row.*'avdigits-pairs' is a "
                                         r"contrastive task.*strategy\.name=contrastive"):
        check_task(cfg, pairs, strategy)
    check_task(cfg, SimpleNamespace(task="classification", name="avdigits"), strategy)  # accepted


def test_engine_refuses_joint_on_pairs_before_training(tmp_path):
    cfg = run_config(tmp_path, "joint-on-pairs")
    cfg.strategy.name, cfg.model.fusion = "joint", "late"
    with pytest.raises(ValueError, match="strategy 'joint' trains a prediction per row"):
        train(cfg)
    assert not (tmp_path / "joint-on-pairs" / "results.json").exists()


def test_datasets_restrict_classes_and_name_digits():
    ds = build_dataset("avdigits-named", "val", classes=[7, 8, 9])
    assert set(ds.labels.tolist()) == {7, 8, 9} and ds.task == "contrastive"
    assert ds.modalities == ["audio", "image", "text"]
    assert ds.phrases[0] == PHRASES[0].format("seven")
    tok = ds.tokenizer
    assert tok.decode(ds[1]["inputs"]["text"]) == ds.phrases[1]
    full = build_dataset("avdigits", "val")
    i = int(ds.rows[5])
    torch.testing.assert_close(ds[5]["inputs"]["image"], full[i]["inputs"]["image"])  # the same pixels


@pytest.mark.slow
def test_engine_trains_and_selects_on_val_mean_recall(tmp_path):
    result = train(run_config(tmp_path, "clip"))
    run = tmp_path / "clip"
    results = json.loads((run / "results.json").read_text())
    assert results["task"] == "contrastive" and results["selection"] == "val mean_R1"
    logged = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    val = {d["epoch"]: d["val/mean_R1"] for d in logged if "val/mean_R1" in d}
    assert results["best_epoch"] == max(val, key=lambda e: (val[e], -e))
    pred = read_predictions(run / "predictions_test.npz")
    assert set(pred.embeddings) == {"audio", "image"} and len(pred.y_true) == 60
    np.testing.assert_allclose(np.linalg.norm(pred.embeddings["audio"], axis=1), 1.0, rtol=1e-5)
    direct = cross_modal_metrics(pred.embeddings, pred.y_true, pred.present)
    for key in ("audio_to_image_R1", "image_to_audio_mAP"):
        assert results["test"][key] == pytest.approx(direct[key])
    assert 0.0 <= results["test"]["zeroshot_image_from_audio"] <= 1.0 and result is not None
