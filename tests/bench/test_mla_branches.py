"""benchmarks/mla_branches.py: MLA's branches against unimodal's, and the fused pairs, from run folders."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from polymodal.bench.tables import encode_correct
from polymodal.report.metrics import Predictions, save_predictions
from tests._benchmarks import load_benchmark

mb = load_benchmark("mla_branches")


def _softmax(x):
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _setup(tmp_path: Path) -> tuple[Path, Path, dict]:
    runs, records, truth = tmp_path / "runs", [], {}
    rng = np.random.default_rng(0)
    n = 50
    y = rng.integers(0, 4, n)
    for method, strength in (("mla", 2.0), ("unimodal", 0.5)):
        for seed in (0, 1):
            run = runs / f"avdigits-hard-{method}-seed{seed}"
            run.mkdir(parents=True)
            pa = _softmax(rng.normal(size=(n, 4)) + strength * np.eye(4)[y])
            pb = _softmax(rng.normal(size=(n, 4)) + 1.0 * np.eye(4)[y])
            fused = _softmax(np.log(pa) + np.log(pb))
            perm = rng.permutation(n)  # the file's rows in another order than the dataset's
            save_predictions(Predictions(y_true=y[perm], probs=fused[perm], index=perm,
                                         per_modality={"audio": pa[perm], "image": pb[perm]}),
                             run / "predictions_test.npz")
            truth[(method, seed, "audio")] = pa.argmax(1) == y
            correct = encode_correct(fused.argmax(1) == y)
            records.append({"method": method, "dataset": "avdigits-hard", "seed": seed, "test_correct": correct})
    for seed in (0, 1):
        records.append({"method": "poe", "dataset": "avdigits-hard", "seed": seed, "test_correct": "1" * n})
    bench = tmp_path / "ceiling.json"
    bench.write_text(json.dumps({"protocol": "p", "command": "c", "rows": [], "runs": records}))
    return bench, runs, truth


def test_branches_are_read_in_dataset_order_and_compared_seed_by_seed(tmp_path: Path) -> None:
    bench, runs, truth = _setup(tmp_path)
    doc = json.loads(bench.read_text())
    branches = mb.branch_records(doc, runs)
    got = {(r["method"], r["seed"], r["modality"]): r["test_correct"] for r in branches}
    for key, want in truth.items():
        assert got[key] == encode_correct(want), key
    rows, diffs, notes = mb.tables(branches, mb.fused_records(doc))
    audio = next(d for d in diffs if d["metric"] == "audio_acc")
    want = np.mean([truth[("mla", s, "audio")].mean() - truth[("unimodal", s, "audio")].mean() for s in (0, 1)])
    assert audio["mean"] == pytest.approx(want) and audio["n_seeds"] == 2
    assert {(d["a"], d["b"]) for d in diffs if d["metric"] == "fused_acc"} == set(mb.PAIRS)
    assert "mla - poe" in notes


def test_recompute_rebuilds_the_same_files(tmp_path: Path) -> None:
    bench, runs, _ = _setup(tmp_path)
    out = tmp_path / "out"
    assert mb.main(["--bench", str(bench), "--runs-dir", str(runs), "--out", str(out)]) == 0
    again = tmp_path / "again"
    assert mb.main(["--recompute", str(out / "mla_branches.json"), "--out", str(again)]) == 0
    for f in ("mla_branches.json", "mla_branches.md"):
        assert (again / f).read_text() == (out / f).read_text()
