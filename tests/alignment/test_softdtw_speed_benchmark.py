"""benchmarks/results/softdtw_speed.md is what its JSON twin renders to (also through --render), the JSON holds
the medians of its repeats for every length and operation, and one measurement runs on small sequences."""

from __future__ import annotations

import json
import shutil
import statistics

import pytest

from .._benchmarks import ROOT, load_benchmark


@pytest.fixture(scope="module")
def bench():
    return load_benchmark("softdtw_speed")


def test_the_committed_table_is_rendered_from_its_json(bench, tmp_path):
    results = ROOT / "benchmarks" / "results"
    doc = json.loads((results / "softdtw_speed.json").read_text())
    assert bench.render(doc) == (results / "softdtw_speed.md").read_text()
    assert {(r["length"], r["operation"]) for r in doc["rows"]} == {
        (n, op) for n in (100, 300, 1000) for op in bench.OPERATIONS}
    for r in doc["rows"]:
        assert r["median_s"] == pytest.approx(statistics.median(r["times_s"])) and len(r["times_s"]) >= 3
    shutil.copy(results / "softdtw_speed.json", tmp_path / "softdtw_speed.json")
    assert bench.main(["--render", "--out", str(tmp_path)]) == 0
    assert (tmp_path / "softdtw_speed.md").read_text() == (results / "softdtw_speed.md").read_text()


@pytest.mark.parametrize("operation", ["softdtw-forward", "softdtw-forward-backward", "dtw"])
def test_a_measurement_on_small_sequences(bench, operation):
    r = bench.measure(12, operation, 2)
    assert r["length"] == 12 and r["operation"] == operation and len(r["times_s"]) == 2
    assert r["median_s"] > 0 and r["peak_rss_mb"] >= 0 and r["peak_traced_mb"] >= 0
