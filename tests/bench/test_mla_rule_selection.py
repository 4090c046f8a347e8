"""benchmarks/mla_rule_selection.py: MLA's default rule chosen on validation across datasets."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests._benchmarks import load_benchmark

sel = load_benchmark("mla_rule_selection")


def _records(val: dict[str, dict[str, list[float]]]) -> list[dict]:
    out = []
    for dataset, by_rule in val.items():
        for rule, accs in by_rule.items():
            for seed, acc in enumerate(accs):
                out.append({"method": "mla", "dataset": dataset, "variant": None, "seed": seed, "rule": rule,
                            "val_acc": acc, "test_correct": "1" * int(acc * 10) + "0" * (10 - int(acc * 10))})
    return out


def test_the_choice_averages_datasets_equally_and_needs_a_rule_defined_everywhere():
    records = _records({
        "a": {"trained": [0.99, 0.99], "entropy": [0.9, 0.8], "calibrated": [0.8, 0.8], "fixed-ref": [0.99, 0.99]},
        "b": {"trained": [0.99, 0.99], "entropy": [0.5, 0.6], "calibrated": [0.7, 0.7]},
    })
    s = sel.select(records)
    # fixed-ref presets audio / image weights (and is not scored on b); trained repeats a rule
    assert s["candidates"] == ["calibrated", "entropy"]
    only_a = sel.select([r for r in records if r["dataset"] == "a"])
    assert only_a["candidates"] == ["calibrated", "entropy"] and only_a["chosen"] == "entropy"
    assert s["mean_val_acc"] == pytest.approx({"calibrated": 0.75, "entropy": 0.7})
    assert s["chosen"] == "calibrated" and s["per_dataset_val_acc"]["a"]["entropy"] == pytest.approx(0.85)
    tied = _records({"a": {"calibrated": [0.9], "entropy": [0.9], "fixed": [0.9]}})
    assert sel.select(tied)["chosen"] == "entropy"  # a tie keeps the previous default
    with pytest.raises(ValueError, match="nothing to select"):
        sel.select([{"rule": None, "dataset": "a"}])


def test_written_file_recomputes_from_its_json(tmp_path: Path):
    records = _records({"a": {"trained": [0.9, 0.8], "entropy": [0.9, 0.8], "calibrated": [0.95, 0.9]}})
    js, md = sel.write(records, "p", "c", tmp_path)
    doc = json.loads(js.read_text())
    assert doc["selection"]["chosen"] == "calibrated" and "Chosen: `calibrated`" in md.read_text()
    again = tmp_path / "again"
    assert sel.main(["--recompute", str(js), "--out", str(again)]) == 0
    assert (again / js.name).read_text() == js.read_text() and (again / md.name).read_text() == md.read_text()
