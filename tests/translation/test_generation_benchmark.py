"""benchmarks/generation.py: the table comes from the per-seed records alone, and the committed table is what its
JSON twin recomputes to."""

from __future__ import annotations

import json
import shutil
import statistics

import pytest

from .._benchmarks import ROOT, load_benchmark

RESULTS = ROOT / "benchmarks" / "results" / "generation.json"


def _record(seed: int) -> dict:
    methods = {}
    for t in ("1", "0.7"):
        for method in ("cvae-audio", "cvae-text"):
            methods[f"{method}|{t}"] = {"recognition_acc": 0.9 + 0.01 * seed, "pixel_diversity": 5.0 + seed,
                                        "diversity_ratio": 0.5, "nearest_train_dist": 6.0, "images_per_sec": 1e4,
                                        "samples_per_sec": 1e3, "conditions": 300, "images": 3000}
        methods[f"cvae-audio|{t}"]["audio_acc"] = 0.97
    return {"seed": seed, "judge": {"val_acc": 0.98, "test_acc": 0.975}, "audio_encoder": {"val_acc": 0.96, "test_acc": 0.97},
            "real-images": {"recognition_acc": 0.975, "pixel_diversity": 9.0, "nearest_train_dist": 5.5},
            "methods": methods}


def test_rows_follow_from_the_records_and_the_table_recomputes(tmp_path):
    bench = load_benchmark("generation")
    records = [_record(s) for s in (0, 1, 2)]
    rows = {(r.method, r.variant, r.metric): r for r in bench.rows_of(records)}
    acc = rows[("cvae-audio", "temperature 1", "recognition_acc")]
    assert acc.values == pytest.approx([0.90, 0.91, 0.92]) and acc.n == 3
    assert ("cvae-text", "temperature 0.7", "audio_acc") not in rows  # the speech encoder's accuracy: audio rows only
    assert rows[("real-images", "real", "pixel_diversity")].values == [9.0, 9.0, 9.0]
    js, md = bench.write(records, protocol="test protocol", command="python x", out_dir=tmp_path)
    first = md.read_text()
    assert "91.00 +- 1.00" in first and "reached" in first and "not copies" in first
    md.unlink()
    bench.recompute(js)
    assert md.read_text() == first


@pytest.mark.skipif(not RESULTS.is_file(), reason="benchmarks/results/generation.json is not committed yet")
def test_the_committed_table_recomputes_from_its_json(tmp_path):
    bench = load_benchmark("generation")
    shutil.copy(RESULTS, tmp_path / "generation.json")
    bench.recompute(tmp_path / "generation.json")
    assert (tmp_path / "generation.md").read_text() == RESULTS.with_suffix(".md").read_text()
    doc = json.loads(RESULTS.read_text())
    assert len(doc["runs"]) >= 3
    for row in doc["rows"]:
        assert row["n"] == len(doc["runs"]) and row["mean"] == pytest.approx(statistics.fmean(row["values"]))
