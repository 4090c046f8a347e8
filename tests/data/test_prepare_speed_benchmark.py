"""benchmarks/prepare_speed.py: its committed table rebuilt from the committed JSON alone."""

from pathlib import Path

import pytest

from polymodal.bench.results import read_results, render_markdown

from .._benchmarks import load_benchmark

bench = load_benchmark("prepare_speed")
RESULTS = Path(__file__).resolve().parents[2] / "benchmarks" / "results" / "prepare_speed"


def test_committed_prepare_speed_table_is_rebuilt_from_its_json():
    if not RESULTS.with_suffix(".json").is_file():
        pytest.skip("benchmarks/results/prepare_speed.json is not committed")
    protocol, command, rows = read_results(RESULTS.with_suffix(".json"))
    md = render_markdown(rows, protocol=protocol, command=command, title=bench.TITLE, notes=bench.notes(rows),
                         name="prepare_speed")
    assert md == RESULTS.with_suffix(".md").read_text()
    assert {r.variant for r in rows} == {"1-process", "2-processes"} and all(r.metric == "samples_per_sec" for r in rows)
    assert all(v > 0 for r in rows for v in r.values)
