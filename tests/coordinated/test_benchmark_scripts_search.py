"""The search benchmarks run end to end at a tiny size: serve_load (loopback load on a real `polymodal serve`)
and index_scaling (exact, IVF and HNSW rows, the automatic choice, --render from the JSON)."""

import json

import pytest

from .._benchmarks import load_benchmark

pytest.importorskip("faiss")


def test_serve_load_runs_bounded_on_loopback(tmp_path, raw_data, monkeypatch):
    monkeypatch.setenv("POLYMODAL_DATA", str(raw_data))
    bench = load_benchmark("serve_load")
    assert bench.main(["--levels", "1,8", "--repeats", "1", "--files", "12", "--per-client", "2",
                       "--min-requests", "8", "--out", str(tmp_path)]) == 0
    doc = json.loads((tmp_path / "serve_load.json").read_text())
    rows = {r["clients"]: r for r in doc["rows"]}
    assert set(rows) == {1, 8} and all(r["ok"] == r["requests"] >= 8 and not r["errors"] for r in rows.values())
    assert "| after | 8 | 1 |" in (tmp_path / "serve_load.md").read_text()


def test_index_scaling_measures_hnsw_and_renders(tmp_path):
    bench = load_benchmark("index_scaling")
    assert bench.main(["--sizes", "2000", "--kinds", "uniform", "--out", str(tmp_path)]) == 0
    doc = json.loads((tmp_path / "index_scaling.json").read_text())
    methods = [r["method"] for r in doc["rows"]]
    assert methods.count("flat") == 1 and methods.count("ivf") == 4 and methods.count("hnsw") == 6
    assert all(r["exact_qps"] > 0 for r in doc["rows"] if r["method"] != "flat")
    md = (tmp_path / "index_scaling.md").read_text()
    assert "| uniform | 2,000 | hnsw | M 32, efC 64, efSearch 16 |" in md and "| uniform | 2,000 |" in md.split("choice")[-1]
    (tmp_path / "index_scaling.md").unlink()
    bench.main(["--render", str(tmp_path / "index_scaling.json"), "--out", str(tmp_path)])
    assert (tmp_path / "index_scaling.md").read_text() == md
