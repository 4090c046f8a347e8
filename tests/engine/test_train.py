import json

import numpy as np
import pytest
import torch
import yaml

from polymodal.engine import TrainingDiverged, evaluate_run, load_checkpoint, load_predictions, train
from polymodal.engine.build import build_datasets, build_run_model, build_strategy

from ._helpers import NanAt, RecordExtra, tiny_config


def _timeless(history):
    return [{k: v for k, v in r.items() if k not in ("sec_per_epoch", "samples_per_sec")} for r in history]


def test_end_to_end_files_accuracy_and_history(tmp_path):
    cfg = tiny_config(tmp_path, "trainer.max_epochs=6", "trainer.loggers=[csv,tensorboard]")
    result = train(cfg)
    run = cfg.run_dir
    assert result.run_dir == run
    for name in ("metrics.jsonl", "results.json", "config.yaml", "provenance.json",
                 "predictions_test.npz", "predictions_val.npz"):
        assert (run / name).is_file(), name
    for ckpt in ("best", "last"):
        for name in ("model.safetensors", "optimizer.safetensors", "state.json"):
            assert (run / "checkpoints" / ckpt / name).is_file()
    assert list((run / "logs").glob("version_*/metrics.csv"))
    assert list((run / "logs").glob("version_*/events.out.tfevents.*"))

    assert result.stopped_reason == "max_epochs" and result.epochs_run == 6
    assert result.metrics["fused_acc"] > 0.5  # 4 classes: chance is 0.25
    assert result.metrics["n"] == 32
    assert len(result.history) == 6
    for record in result.history:
        assert {"train/loss", "val/loss", "val/fused_acc", "val/a_acc", "val/b_acc", "lr",
                "sec_per_epoch", "samples_per_sec", "train/grad_norm/a", "train/grad_norm/b"} <= set(record)
        assert 0.0 <= record["val/a_acc"] <= 1.0
    # best epoch = the highest validation accuracy, ties -> earliest
    accs = [r["val/fused_acc"] for r in result.history]
    assert result.best_epoch == int(np.argmax(accs)) + 1

    results = json.loads((run / "results.json").read_text())
    assert results["test"]["fused_acc"] == pytest.approx(result.metrics["fused_acc"])
    assert results["val"]["fused_acc"] == pytest.approx(max(accs))
    assert results["best_epoch"] == result.best_epoch and results["stopped_reason"] == "max_epochs"
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [x["type"] for x in lines] == ["epoch"] * 6 + ["end"]
    assert yaml.safe_load((run / "config.yaml").read_text())["trainer"]["max_epochs"] == 6
    prov = json.loads((run / "provenance.json").read_text())
    assert prov["versions"]["torch"] == torch.__version__ and prov["datasets"]["test"]["size"] == 32

    # evaluate_run reloads the best checkpoint and reproduces the saved predictions
    preds = evaluate_run(run, "test")
    saved = load_predictions(run / "predictions_test.npz")
    np.testing.assert_allclose(preds.probs, saved.probs, atol=1e-6)
    np.testing.assert_array_equal(preds.index, np.arange(32))
    assert set(preds.per_modality) == {"a", "b"}
    assert float((preds.probs.argmax(1) == preds.y_true).mean()) == pytest.approx(result.metrics["fused_acc"])


def test_same_seed_same_run(tmp_path):
    overrides = ["trainer.max_epochs=3", "optim.name=sgd", "model.encoders.a.dropout=0.3"]
    r1 = train(tiny_config(tmp_path / "one", *overrides))
    r2 = train(tiny_config(tmp_path / "two", *overrides))
    assert r1.metrics == r2.metrics and r1.val_metrics == r2.val_metrics
    assert _timeless(r1.history) == _timeless(r2.history)
    r3 = train(tiny_config(tmp_path / "three", *overrides, "seed=1"))
    assert _timeless(r3.history) != _timeless(r1.history)


def test_existing_run_needs_resume(tmp_path):
    cfg = tiny_config(tmp_path, "trainer.max_epochs=1")
    train(cfg)
    with pytest.raises(FileExistsError, match=r"use --resume or choose another name \(name=\.\.\.\)"):
        train(cfg)


def test_nan_input_names_the_modality(tmp_path, test_components):
    cfg = tiny_config(tmp_path, "data.dataset=test-nan-input", "trainer.max_epochs=1")
    with pytest.raises(ValueError, match=r"input 'a' has NaN/inf in present slot.*dataset indices \[5\]"):
        train(cfg)


def test_nan_loss_stops_and_keeps_checkpoints(tmp_path, test_components):
    best_file = tmp_path / "run" / "checkpoints" / "best" / "model.safetensors"
    cfg = tiny_config(tmp_path, "trainer.max_epochs=5", "strategy.name=test-nan-at",
                      f"strategy.args={{epoch: 2, batch: 1, best_file: '{best_file}'}}")
    with pytest.raises(TrainingDiverged, match=r"epoch 3 .*batch 1.*optim\.lr.*optim\.grad_clip") as info:
        train(cfg)
    result = info.value.result
    assert result.stopped_reason == "nan_loss" and result.epochs_run == 2
    assert NanAt.seen_best is not None and best_file.read_bytes() == NanAt.seen_best
    records = [json.loads(x) for x in (cfg.run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["type"] for r in records] == ["epoch", "epoch", "nan_loss", "end"]
    assert records[2]["stopped_reason"] == "nan_loss" and records[2]["epoch"] == 3
    assert json.loads((cfg.run_dir / "results.json").read_text())["stopped_reason"] == "nan_loss"
    last = load_checkpoint(cfg.run_dir / "checkpoints" / "last")
    assert last.state["epoch"] == 2
    # the best checkpoint loads into a freshly built model
    ds = build_datasets(cfg, ["train"])["train"]
    model = build_run_model(cfg, ds, build_strategy(cfg))
    model.load_state_dict(load_checkpoint(cfg.run_dir / "checkpoints" / "best").model)
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_class_weights_reach_the_strategy(tmp_path, test_components):
    cfg = tiny_config(tmp_path, "trainer.max_epochs=1", "strategy.name=test-record-extra", "data.class_weights=true")
    train(cfg)
    # synthetic classes are balanced: inverse-frequency weights are all 1
    torch.testing.assert_close(RecordExtra.class_weights, torch.ones(4))


def test_unimodal_and_balanced_sampling_train(tmp_path):
    cfg = tiny_config(tmp_path, "strategy.name=unimodal", "trainer.max_epochs=4", "data.balanced_sampling=true",
                      "optim.scheduler=step", "optim.step_size=2", "optim.gamma=0.5", "optim.grad_clip=1.0")
    result = train(cfg)
    assert {"train/loss/a", "train/loss/b", "train/grad_norm/a"} <= set(result.history[0])
    assert [r["lr"] for r in result.history] == pytest.approx([0.01, 0.01, 0.005, 0.005])
    assert result.metrics["b_acc"] is not None and result.metrics["fused_acc"] > 0.4


def test_early_stopping_on_a_flat_validation_accuracy(tmp_path):
    cfg = tiny_config(tmp_path, "trainer.max_epochs=6", "trainer.patience=2", "optim.lr=1e-9")
    result = train(cfg)
    assert result.stopped_reason == "early_stopping"
    assert result.epochs_run == 3 and result.best_epoch == 1  # ties keep the earlier epoch
    again = train(cfg, resume=True)  # an early-stopped run does not train further
    assert again.epochs_run == 3 and again.metrics == result.metrics


def test_provenance_records_the_strategy_settings_with_their_defaults(tmp_path):
    """A run names the settings it was trained with even where its config leaves them to a default that may
    change later (MLA's test-time rule did)."""
    from polymodal.strategies.mla import DEFAULT_FUSION_RULE

    cfg = tiny_config(tmp_path, "trainer.max_epochs=1", "strategy.name=mla", "model.fusion=shared_head",
                      "strategy.args.hgm=false")
    train(cfg)
    args = json.loads((cfg.run_dir / "provenance.json").read_text())["strategy_args"]
    assert args["hgm"] is False  # what the config gave
    assert args["fusion_rule"] == DEFAULT_FUSION_RULE and args["grad_mode"] == "clear"  # the defaults filled in
    assert "fusion_rule" not in (yaml.safe_load((cfg.run_dir / "config.yaml").read_text())["strategy"]["args"] or {})
