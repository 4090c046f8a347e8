"""benchmarks/translation.py: the table comes from the per-seed records alone, the committed table is what its
JSON twin recomputes to, and the two-stage CTC training runs on a tiny split."""

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


def test_the_two_stage_ctc_training_runs_and_scores_a_split():
    from polymodal.data.datasets.digitstrings import DigitStrings

    bench = load_benchmark("translation")
    train = DigitStrings("train", strings=8, modalities=["image"])
    val = DigitStrings("val", strings=4, modalities=["image"])
    model, history = bench.train_ctc(0, "image", train, val, clip_epochs=0, epochs=1)
    err, acc = bench.error_rate(model, "image", val)
    assert len(history["val_error_rate"]) == 1 and history["val_error_rate"][0] == err
    assert 0.0 <= acc <= 1.0 and err >= 0.0 and history["samples_per_sec"] > 0


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
