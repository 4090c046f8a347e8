"""benchmarks/results/survival.md is what its JSON twin renders to, and the JSON's summaries follow from its
per-seed values (the paired differences, the reference's alpha on the grid, the same test events everywhere)."""

from __future__ import annotations

import json
import statistics

import pytest

from .._benchmarks import ROOT, load_benchmark


def test_the_survival_table_is_rendered_from_its_json():
    bench = load_benchmark("survival")
    doc = json.loads((ROOT / "benchmarks" / "results" / "survival.json").read_text())
    md = (ROOT / "benchmarks" / "results" / "survival.md").read_text()
    assert bench.render(doc["protocol"], doc["command"], doc["rows"], doc["test_events"]) + "\n" == md
    rows = {r["method"]: r for r in doc["rows"]}
    ref = rows[bench.REFERENCE]
    assert set(rows) == {bench.REFERENCE, *bench.METHODS} and len(doc["seeds"]) == 5
    assert all(a in bench.ALPHAS for a in ref["alpha"])
    for name in bench.METHODS:
        row = rows[name]
        assert row["diff_vs_reference"] == pytest.approx([a - b for a, b in zip(row["test_cindex"], ref["test_cindex"], strict=True)])
        lo, hi = row["diff_interval"]
        assert lo < statistics.fmean(row["diff_vs_reference"]) < hi
        assert all(0.0 < c < 1.0 for c in row["test_cindex"]) and all(0.0 < b < 0.25 for b in row["test_ibs"])
