"""benchmarks/results/reasoning.*: the intervals in the Markdown recompute from the per-run records in the JSON."""

from __future__ import annotations

import json

import pytest

from .._benchmarks import ROOT, load_benchmark


def test_reasoning_intervals_recompute_from_the_json_alone():
    bench = load_benchmark("reasoning")
    doc = json.loads((ROOT / "benchmarks" / "results" / "reasoning.json").read_text())
    again = bench.reasoning_differences(doc["runs"])
    assert [(d["dataset"], d["method"], d["baseline"], d["n_seeds"]) for d in again] == \
        [(d["dataset"], d["method"], d["baseline"], d["n_seeds"]) for d in doc["differences"]]
    for new, old in zip(again, doc["differences"], strict=True):
        assert new["mean"] == pytest.approx(old["mean"], abs=1e-12)
        assert new["ci95"] == pytest.approx(old["ci95"], abs=1e-12)
    # the records are the table's runs: their accuracies are the published fused_acc values
    for row in doc["rows"]:
        if row["metric"] == "fused_acc" and row.get("label_budget") == 2400 and "+" not in row.get("variant", "+"):
            recs = [r for r in doc["runs"] if (r["dataset"], r["method"]) == (row["dataset"], row["variant"])]
            if recs:
                accs = sorted(r["test_correct"].count("1") / len(r["test_correct"]) for r in recs)
                assert accs == pytest.approx(sorted(row["values"]), abs=1e-9), row["variant"]
    text = " ".join(bench.differences_text(doc["differences"]).split())
    assert text in " ".join((ROOT / "benchmarks" / "results" / "reasoning.md").read_text().split())


@pytest.mark.parametrize("name", ["reasoning", "reasoning_logspace_seed0"])
def test_reasoning_tables_rerender_from_their_json(tmp_path, name):
    """``benchmarks/reasoning.py --recompute`` writes each published Markdown table byte for byte from its JSON."""
    bench = load_benchmark("reasoning")
    src = ROOT / "benchmarks" / "results" / f"{name}.json"
    (tmp_path / src.name).write_text(src.read_text())
    md = bench.recompute(tmp_path / src.name)
    assert md.read_text() == (ROOT / "benchmarks" / "results" / f"{name}.md").read_text()
    assert json.loads((tmp_path / src.name).read_text()) == json.loads(src.read_text())
