"""benchmarks/translation.py: the table comes from the per-seed records alone, the committed table is what its
JSON twin recomputes to, and a CTC method is a run of the shipped config (trained once, then read back)."""

from __future__ import annotations

import json
import shutil
import statistics

import pytest

from .._benchmarks import ROOT, load_benchmark

RESULTS = ROOT / "benchmarks" / "results" / "translation.json"


def _record(seed: int) -> dict:
    return {"seed": seed,
            "ctc-speech": {"audio_error_rate": 0.05 + 0.01 * seed, "string_acc": 0.8, "samples_per_sec": 50.0},
            "ctc-handwriting": {"image_error_rate": 0.02, "string_acc": 0.9, "samples_per_sec": 80.0},
            "example-vote": {"k1": 0.8, "k5": 0.85, "k20": 0.9}}


def test_rows_follow_from_the_records_and_the_table_recomputes(tmp_path):
    bench = load_benchmark("translation")
    records = [_record(s) for s in (0, 1, 2)]
    rows = {(r.method, r.variant, r.metric): r for r in bench.rows_of(records)}
    assert rows[("ctc-speech", None, "audio_error_rate")].values == pytest.approx([0.05, 0.06, 0.07])
    assert rows[("example-vote", "k=20", "translation_acc")].values == [0.9, 0.9, 0.9]
    js, md = bench.write(records, protocol="test protocol", command="python x", out_dir=tmp_path)
    first = md.read_text()
    assert "0.060 +- 0.010" in first and "WER below 10 % on the test strings: 6.0 % (reached)" in first
    assert "the best k here is 20" in first
    md.unlink()
    bench.recompute(js)
    assert md.read_text() == first


def test_a_method_is_a_run_of_the_shipped_config_read_back_from_its_folder(tmp_path):
    bench = load_benchmark("translation")
    tiny = ("data.options.strings=6", "model.fusion_args.hidden=8", "model.width=8", "model.encoders.image.channels=[4,8]")
    record = bench.train_method("ctc-handwriting", 0, 6, 1, runs=tmp_path, extra=tiny)
    assert set(record) >= {"image_error_rate", "string_acc", "samples_per_sec", "sec_per_epoch"}
    assert record["image_error_rate"] >= 0.0 and 0.0 <= record["string_acc"] <= 1.0 and record["best_epoch"] == 1
    assert (tmp_path / "ctc-handwriting-seed0-train6-epochs1" / "config.yaml").is_file()
    again = bench.train_method("ctc-handwriting", 0, 6, 1, runs=tmp_path, extra=tiny)  # reused, not retrained
    assert again == record


@pytest.mark.skipif(not RESULTS.is_file(), reason="benchmarks/results/translation.json is not committed yet")
def test_the_committed_table_recomputes_from_its_json(tmp_path):
    bench = load_benchmark("translation")
    shutil.copy(RESULTS, tmp_path / "translation.json")
    bench.recompute(tmp_path / "translation.json")
    assert (tmp_path / "translation.md").read_text() == RESULTS.with_suffix(".md").read_text()
    doc = json.loads(RESULTS.read_text())
    assert len(doc["runs"]) >= 3
    for row in doc["rows"]:
        assert row["n"] == len(doc["runs"]) and row["mean"] == pytest.approx(statistics.fmean(row["values"]))
