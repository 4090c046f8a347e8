"""benchmarks/colearning.py: the differences and the table come from the per-run records alone."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from polymodal.bench.tables import encode_correct

from .._benchmarks import load_benchmark

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "benchmarks" / "results" / "colearning.json"


def _records(rng: np.random.Generator) -> list[dict]:
    out = []
    for seed in (0, 1, 2):
        base = rng.random(300) < 0.5
        better = base | (rng.random(300) < 0.6)  # clearly better: every right answer kept, many more added
        for method, correct in (("labelled-only", base), ("co-training", better), ("cross-distill", base.copy())):
            out.append({"method": method, "budget": 0.05, "seed": seed, "target": "audio",
                        "fused_acc": float(correct.mean()), "source_acc": 0.8, "sec_per_epoch": 10.0,
                        "test_correct": encode_correct(correct)})
    return out


def test_differences_are_against_labelled_only_at_the_same_budget():
    bench = load_benchmark("colearning")
    diffs = bench.differences(_records(np.random.default_rng(0)))
    assert [(d["method"], d["baseline"], d["budget"]) for d in diffs] == \
        [("co-training", "labelled-only", 0.05), ("cross-distill", "labelled-only", 0.05)]
    better, same = diffs
    assert better["ci95"][0] > 0 and better["n_seeds"] == 3 and better["n_samples"] == 300
    assert same["mean"] == 0.0 and same["ci95"] == [0.0, 0.0]
    text = bench.differences_text(diffs)
    assert "co-training at 5 %" in text.split("excludes zero:")[1].split(".")[0]


def test_the_table_is_rewritten_from_its_json(tmp_path):
    bench = load_benchmark("colearning")
    records = _records(np.random.default_rng(1))
    js, md = bench.write_table("colearning", records, protocol="test protocol", command="python x", out_dir=tmp_path)
    first = md.read_text()
    md.unlink()
    bench.recompute(js)
    assert md.read_text() == first and "audio_acc" in first


@pytest.mark.skipif(not RESULTS.is_file(), reason="benchmarks/results/colearning.json is not committed yet")
def test_the_committed_table_recomputes_from_its_json(tmp_path):
    bench = load_benchmark("colearning")
    shutil.copy(RESULTS, tmp_path / "colearning.json")
    bench.recompute(tmp_path / "colearning.json")
    assert (tmp_path / "colearning.md").read_text() == RESULTS.with_suffix(".md").read_text()
    doc = json.loads(RESULTS.read_text())
    again = bench.differences(doc["runs"])
    assert [(d["method"], d["budget"], d["n_seeds"]) for d in again] == \
        [(d["method"], d["budget"], d["n_seeds"]) for d in doc["differences"]]
    for new, old in zip(again, doc["differences"], strict=True):
        assert new["mean"] == pytest.approx(old["mean"]) and new["ci95"] == pytest.approx(old["ci95"])
