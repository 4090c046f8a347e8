"""benchmarks/fusion_rules.py: MLA's test-time rules re-applied to stored per-modality probabilities."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from scipy.special import log_softmax

from polymodal.engine.checkpoint import Checkpoint, save_checkpoint
from polymodal.inference.calibration import fit_temperature
from polymodal.report.metrics import Predictions, save_predictions
from polymodal.runpaths import RunPaths
from tests._benchmarks import ROOT, load_benchmark

fr = load_benchmark("fusion_rules")


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _entropy_fused(pa: np.ndarray, pb: np.ndarray) -> np.ndarray:
    """The per-sample entropy rule written out for two modalities (MLA's definition)."""
    ea, eb = (-(p * np.log(p)).sum(axis=1) for p in (pa, pb))
    wa = np.exp(-ea) / (np.exp(-ea) + np.exp(-eb))
    return _softmax(wa[:, None] * np.log(pa) + (1 - wa)[:, None] * np.log(pb))


def _fake_run(root: Path, name: str, seed: int, rule: str = "entropy", corrupt: bool = False,
              temps: dict[str, float] | None = None) -> Path:
    """A run folder with val / test predictions; ``temps``: a calibrated run's temperatures (its stored
    per-modality probabilities are then the calibrated ones, as MLA writes them, and its checkpoint holds them)."""
    run = root / name
    run.mkdir(parents=True)
    (run / "config.yaml").write_text(yaml.safe_dump({"strategy": {"name": "mla", "args": {"fusion_rule": rule}}}))
    if temps is not None:
        state = {f"temperature/{m}": t for m, t in temps.items()}
        save_checkpoint(RunPaths(run).checkpoint("best"), Checkpoint(model={"w": torch.zeros(1)}, strategy=state))
    rng = np.random.default_rng(seed)
    for split, n in (("val", 40), ("test", 60)):
        y = rng.integers(0, 4, n)
        pa = _softmax(rng.normal(size=(n, 4)) * 2 + 1.5 * np.eye(4)[y])
        pb = _softmax(rng.normal(size=(n, 4)) * 2 + 1.0 * np.eye(4)[y])
        if temps is not None:
            pa, pb = _softmax(np.log(pa) / temps["audio"]), _softmax(np.log(pb) / temps["image"])
        fused = _entropy_fused(pa, pb) if rule == "entropy" else _softmax(np.log(pa) + np.log(pb))
        if corrupt:
            fused = fused[:, ::-1].copy()
        save_predictions(Predictions(y_true=y, probs=fused, per_modality={"audio": pa, "image": pb},
                                     index=np.arange(n), present={"audio": np.ones(n, bool), "image": np.ones(n, bool)}),
                         run / f"predictions_{split}.npz")
    return run


def _bench_json(path: Path, variants: list[str], seeds: list[int]) -> Path:
    runs = [{"method": "mla", "dataset": "avdigits-hard", "variant": v, "seed": s} for v in variants for s in seeds]
    path.write_text(json.dumps({"protocol": "p", "command": "c", "rows": [], "runs": runs}))
    return path


def test_rules_rescored_against_hand_computation(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    for s in (0, 1):
        _fake_run(runs, f"avdigits-hard-mla-v-hgm-seed{s}", s)
    bench = _bench_json(tmp_path / "bench.json", ["hgm"], [0, 1])
    records = fr.collect(bench, runs)
    names = ("trained", "entropy", "fixed", "fixed-ref", "calibrated", "calibrated-entropy")
    assert {(r["rule"], r["seed"]) for r in records} == {(k, s) for k in names for s in (0, 1)}
    for s in (0, 1):
        val = np.load(runs / f"avdigits-hard-mla-v-hgm-seed{s}" / "predictions_val.npz")
        # temperatures from the validation file only
        t = {m: fit_temperature(np.log(val[f"probs_{m}"]), val["y_true"]) for m in ("audio", "image")}
        pred = np.load(runs / f"avdigits-hard-mla-v-hgm-seed{s}" / "predictions_test.npz")
        la, lb, y = np.log(pred["probs_audio"]), np.log(pred["probs_image"]), pred["y_true"]
        ca, cb = log_softmax(la / t["audio"], axis=1), log_softmax(lb / t["image"], axis=1)
        entropy = _entropy_fused(pred["probs_audio"], pred["probs_image"]).argmax(1) == y
        want = {"trained": entropy, "entropy": entropy,
                "fixed": (la + lb).argmax(1) == y, "fixed-ref": (0.55 * la + 0.45 * lb).argmax(1) == y,
                "calibrated": (ca + cb).argmax(1) == y,
                "calibrated-entropy": _entropy_fused(np.exp(ca), np.exp(cb)).argmax(1) == y}
        for r in records:
            if r["seed"] == s:
                assert r["test_correct"] == "".join("1" if c else "0" for c in want[r["rule"]]), r["rule"]
    rows, differences, notes = fr.tables(records)
    assert {d["rule"] for d in differences} == set(names) - {"trained"} and all(d["n_seeds"] == 2 for d in differences)
    assert "Rule with the highest mean validation accuracy" in notes


def test_a_calibrated_run_is_uncalibrated_with_its_checkpoint_temperatures_first(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    _fake_run(runs, "avdigits-hard-mla-v-hgm-seed0", 0)
    _fake_run(runs, "avdigits-hard-mla-v-cal-seed0", 0, rule="calibrated", temps={"audio": 0.3, "image": 4.0})
    records = fr.collect(_bench_json(tmp_path / "bench.json", ["hgm", "cal"], [0]), runs)
    by = {(r["variant"], r["rule"]): r["test_correct"] for r in records}
    # the same uncalibrated probabilities underneath: every rule but the trained one scores the same
    for rule in ("entropy", "fixed", "fixed-ref", "calibrated", "calibrated-entropy"):
        assert by[("cal", rule)] == by[("hgm", rule)], rule
    shutil.rmtree(runs / "avdigits-hard-mla-v-cal-seed0" / "checkpoints")
    with pytest.raises((ValueError, FileNotFoundError), match="checkpoint"):
        fr.collect(_bench_json(tmp_path / "bench.json", ["cal"], [0]), runs)


def test_a_run_whose_file_disagrees_with_its_rule_stops(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    _fake_run(runs, "avdigits-hard-mla-v-hgm-seed0", 0, corrupt=True)
    with pytest.raises(ValueError, match=r"predictions_val\.npz: re-applying the run's own rule 'entropy'"):
        fr.collect(_bench_json(tmp_path / "bench.json", ["hgm"], [0]), runs)


def test_batch_level_runs_are_listed_not_rescored(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    _fake_run(runs, "avdigits-hard-mla-v-hgm-seed0", 0)
    _fake_run(runs, "avdigits-hard-mla-v-batch-seed0", 0, rule="entropy-batch")
    records = fr.collect(_bench_json(tmp_path / "bench.json", ["hgm", "batch"], [0]), runs)
    _, _, notes = fr.tables(records)
    assert "Not re-scored" in notes and "batch" in notes.split("Not re-scored")[1]


@pytest.mark.parametrize("name", ["mla_ablation_fusion", "resnet18_fusion"])
def test_committed_tables_recompute_from_their_json(tmp_path: Path, name: str) -> None:
    src = ROOT / "benchmarks" / "results" / f"{name}.json"
    shutil.copy(src, tmp_path / src.name)
    assert fr.main(["--recompute", str(tmp_path / src.name), "--out", str(tmp_path)]) == 0
    assert (tmp_path / f"{name}.md").read_text() == src.with_suffix(".md").read_text()
    assert json.loads((tmp_path / src.name).read_text()) == json.loads(src.read_text())
