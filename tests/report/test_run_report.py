"""write_report on a fake run folder laid out as the training engine writes it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from polymodal.report import write_report
from polymodal.report.metrics import Predictions, confusion_matrix, per_class_report, save_predictions

NAMES = tuple(f"d{i}" for i in range(10))


def _make_run(run_dir: Path, grad_norms: bool = True) -> Predictions:
    run_dir.mkdir(parents=True)
    cfg = {"name": "avd-mla-s0", "seed": 0, "data": {"dataset": "avdigits-hard"}, "strategy": {"name": "mla"},
           "model": {"fusion": "shared_head", "width": 8}}
    (run_dir / "config.yaml").write_text(yaml.safe_dump(cfg))
    lines = []
    for epoch in range(5):
        rec = {"epoch": epoch, "train/loss": 2.0 - 0.3 * epoch, "val/loss": 2.1 - 0.25 * epoch,
               "val/fused_acc": 0.3 + 0.1 * epoch, "val/audio_acc": 0.2 + 0.08 * epoch, "val/image_acc": None,
               "lr": 1e-3, "sec_per_epoch": 12.5, "samples_per_sec": 192.0, "mla/entropy_weight": 0.4,
               "unknown/thing": "text"}
        if grad_norms:
            rec |= {"grad_norm/audio": 1.0 / (epoch + 1), "grad_norm/image": 3.0 + epoch}
        lines.append(json.dumps(rec))
        if epoch == 2:
            lines.append(json.dumps({"event": "nan_loss", "epoch": 2, "step": 17}))
    lines.append('{"epoch": 5, "train/lo')  # a run killed while writing
    (run_dir / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    results = {
        "best_epoch": 4, "epochs_run": 5, "stopped_reason": "max_epochs", "sec_per_epoch": 12.5,
        "val": {"fused_acc": 0.7, "audio_acc": 0.55, "image_acc": None, "macro_f1": 0.6912, "ece": 0.05},
        "test": {"fused_acc": 0.8733, "audio_acc": 0.6133, "image_acc": None, "macro_f1": 0.8655, "ece": 0.0412,
                 "fused_acc@entropy": 0.88},
    }
    (run_dir / "results.json").write_text(json.dumps(results))
    rng = np.random.default_rng(0)
    y = np.arange(60) % 10
    logits = 2.0 * rng.standard_normal((60, 10))
    logits[np.arange(60), y] += 2.5
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    pred = Predictions(y, probs, {"audio": probs[::-1].copy()}, np.arange(60), NAMES)
    save_predictions(pred, run_dir / "predictions_test.npz")
    (run_dir / "provenance.json").write_text(json.dumps({"git_commit": "abc1234", "packages": {"torch": "2.13.0"}}))
    return pred


def _assert_png(path: Path) -> None:
    assert path.is_file(), path
    with Image.open(path) as im:
        assert im.format == "PNG"
        assert im.size[0] > 100 and im.size[1] > 100
        im.verify()


def test_report_contents_and_figures(tmp_path: Path) -> None:
    run_dir = tmp_path / "avd-mla-s0"
    pred = _make_run(run_dir)
    path = write_report(run_dir)
    assert path == run_dir / "report.md"
    text = path.read_text()
    assert text.startswith("# Run report: avd-mla-s0")
    for part in ("`avdigits-hard`", "`mla`", "`shared_head`", "seed 0"):
        assert part in text
    assert "| fused accuracy (%) | 70.00 | 87.33 |" in text
    assert "| fused accuracy, entropy rule (%) | n/a | 88.00 |" in text
    assert "| audio accuracy (%) | 55.00 | 61.33 |" in text
    assert "| image accuracy (%) | n/a | n/a |" in text
    assert "| macro F1 (%) | 69.12 | 86.55 |" in text
    assert "| ECE | 0.0500 | 0.0412 |" in text
    assert "Best epoch (selected on validation): 4 of 5 run." in text
    assert "Training stopped: max_epochs." in text
    assert "Seconds per epoch: 12.50 s." in text
    assert "- epoch 2: nan_loss (step=17)" in text
    assert "1 unreadable line(s) in `metrics.jsonl` were skipped." in text
    assert "| mla/entropy_weight | 0.4 |" in text  # strategy scalars of the last epoch
    assert "unknown/thing" not in text  # non-numeric unknown keys are ignored
    # confusion matrix and per-class report of the fused test prediction
    y_pred = pred.probs.argmax(axis=1)
    cm = confusion_matrix(pred.y_true, y_pred, 10)
    assert "| true \\ pred | " + " | ".join(NAMES) + " |" in text
    assert "| d3 | " + " | ".join(map(str, cm[3])) + " |" in text
    rep = per_class_report(pred.y_true, y_pred, 10)
    assert f"| d7 | {rep['precision'][7]:.3f} | {rep['recall'][7]:.3f} | {rep['f1'][7]:.3f} | 6 |" in text
    assert "- git_commit: `abc1234`" in text and "- packages.torch: `2.13.0`" in text
    for name in ("learning_curves.png", "grad_norms.png", "reliability_test.png"):
        assert f"](figures/{name})" in text  # relative links
        _assert_png(run_dir / "figures" / name)


def test_no_grad_norm_keys_means_no_grad_figure(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    _make_run(run_dir, grad_norms=False)
    (run_dir / "figures").mkdir()
    (run_dir / "figures" / "grad_norms.png").write_bytes(b"stale figure of an earlier report")
    text = write_report(run_dir).read_text()
    assert not (run_dir / "figures" / "grad_norms.png").exists()
    assert "grad_norms.png" not in text
    _assert_png(run_dir / "figures" / "learning_curves.png")


def test_partial_run_and_errors(tmp_path: Path) -> None:
    run_dir = tmp_path / "crashed"
    run_dir.mkdir()
    (run_dir / "metrics.jsonl").write_text(json.dumps({"epoch": 0, "train/loss": 2.3}) + "\n")
    text = write_report(run_dir).read_text()
    assert text.startswith("# Run report: crashed")
    assert "`results.json` is missing." in text and "`predictions_test.npz` is missing." in text
    assert not (run_dir / "figures" / "reliability_test.png").exists()
    _assert_png(run_dir / "figures" / "learning_curves.png")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        write_report(tmp_path / "absent")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="holds none of config.yaml"):
        write_report(tmp_path / "empty")
    (run_dir / "results.json").write_text("{not json")
    with pytest.raises(ValueError, match="results.json is not valid JSON"):
        write_report(run_dir)


def test_engine_style_records(tmp_path: Path) -> None:
    """``"type"``-tagged records, ``train/grad_norm/<m>`` keys, "nan" strings, no results.json."""
    run_dir = tmp_path / "engine"
    run_dir.mkdir()
    recs = [
        {"type": "epoch", "epoch": e, "train/grad_norm/a": 0.5 / e, "train/grad_norm/b": 0.2, "train/loss": 1.0 / e,
         "val/loss": "nan" if e == 2 else 1.2 / e, "val/fused_acc": 0.2 * e, "val/a_acc": 0.1 * e, "best": True}
        for e in (1, 2, 3)
    ]
    recs += [
        {"type": "nan_loss", "stopped_reason": "nan_loss", "epoch": 4, "batch": 3, "message": "lower optim.lr"},
        {"type": "end", "stopped_reason": "nan_loss", "best_epoch": 3, "epochs_run": 3},
    ]
    (run_dir / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    y = np.array([0, 1, 2, 0, 1, 2])
    probs = np.full((6, 3), 0.1)
    probs[np.arange(6), [0, 1, 2, 0, 2, 1]] = 0.8
    save_predictions(Predictions(y, probs), run_dir / "predictions_val.npz")
    text = write_report(run_dir).read_text()
    assert "Best epoch (selected on validation): 3 of 3 run." in text and "Training stopped: nan_loss." in text
    assert "- epoch 4: nan_loss (stopped_reason=nan_loss, batch=3): lower optim.lr" in text
    assert "- epoch 3: end" not in text
    assert "| fused accuracy (%) | 66.67 | n/a |" in text  # val filled from predictions_val.npz
    assert "val fused_acc, macro_f1, ece computed from `predictions_val.npz`." in text
    _assert_png(run_dir / "figures" / "grad_norms.png")
    _assert_png(run_dir / "figures" / "learning_curves.png")


def test_many_classes_confusion_goes_to_csv(tmp_path: Path) -> None:
    run_dir = tmp_path / "food"
    rng = np.random.default_rng(0)
    y = np.arange(80) % 40
    probs = rng.dirichlet(np.ones(40), size=80)
    save_predictions(Predictions(y, probs), run_dir / "predictions_test.npz")
    text = write_report(run_dir).read_text()
    assert "[confusion_test.csv](confusion_test.csv)" in text and "| true \\ pred |" not in text
    cm = np.loadtxt(run_dir / "confusion_test.csv", delimiter=",", skiprows=1, dtype=int)
    np.testing.assert_array_equal(cm, confusion_matrix(y, probs.argmax(axis=1), 40))
    assert "| 39 | " in text  # the per-class report still lists every class
