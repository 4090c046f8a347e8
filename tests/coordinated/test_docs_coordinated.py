"""docs/coordinated.md: its worked example runs verbatim and its tables are the results files' tables."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "coordinated.md"


@pytest.mark.slow
def test_the_docs_worked_example_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    (tmp_path / "configs").mkdir()
    shutil.copy(ROOT / "configs" / "avdigits_clip.yaml", tmp_path / "configs")
    code = re.search(r"## Worked example.*?```python\n(.*?)```", DOC.read_text(), re.S).group(1)
    namespace: dict = {}
    exec(compile(code, "docs/coordinated.md", "exec"), namespace)  # noqa: S102 - the documented example, verbatim
    assert (tmp_path / "runs" / "clip-demo" / "results.json").is_file()
    assert {"audio_to_image_R1", "image_to_audio_mAP"} <= set(namespace["retrieval"])
    assert 0.0 <= namespace["zero_shot"] <= 1.0 and 0.0 <= namespace["gap"] <= 2.0
    assert namespace["same"] == pytest.approx(1.0, abs=1e-4)  # a PIL image embeds as its dataset tensor


@pytest.mark.slow
def test_the_own_table_example_runs(tmp_path, monkeypatch):
    import numpy as np
    import pandas as pd

    from tests.data._byod import write_digits

    monkeypatch.chdir(tmp_path)
    rows = write_digits(tmp_path, per_class=5)
    pd.DataFrame(rows)[["sample", "audio", "image", "digit"]].to_csv(tmp_path / "pairs.csv", index=False)
    code = re.search(r"## Your own table.*?```python\n(.*?)```", DOC.read_text(), re.S).group(1)
    namespace: dict = {}
    exec(compile(code, "docs/coordinated.md", "exec"), namespace)  # noqa: S102 - the documented example, verbatim
    vectors = namespace["vectors"]
    assert set(vectors) == {"audio", "image"} and vectors["audio"].shape[0] == 50
    np.testing.assert_allclose(np.linalg.norm(vectors["image"], axis=1), 1.0, rtol=1e-5)
    assert namespace["similarity"].shape == (50, 50)
    assert 0.0 <= namespace["scores"]["audio_to_image_R1"] <= 1.0 and namespace["scores"]["n"] > 0


def test_retrieval_intervals_recompute_from_the_json_alone():
    import json

    from .._benchmarks import load_benchmark

    bench = load_benchmark("coordinated")
    doc = json.loads((ROOT / "benchmarks" / "results" / "retrieval_avdigits.json").read_text())
    again = bench.retrieval_differences(doc["runs"])
    assert [(d["baseline"], d["metric"], d["n_seeds"]) for d in again] == \
        [(d["baseline"], d["metric"], d["n_seeds"]) for d in doc["differences"]]
    for new, old in zip(again, doc["differences"], strict=True):
        assert new["mean"] == pytest.approx(old["mean"], abs=1e-12)
        assert new["ci95"] == pytest.approx(old["ci95"], abs=1e-12)
    # the per-run hits are the table's R@1: their mean over seeds is the published mean
    for row in doc["rows"]:
        if row["metric"] == "audio_to_image_R1":
            hits = [r["hits"]["audio_to_image"] for r in doc["runs"] if r["objective"] == row["variant"]]
            assert [h.count("1") / len(h) for h in hits] == pytest.approx(row["values"], abs=1e-12)
    shown = "\n".join(bench.differences_table(doc["differences"], doc["runs"]))
    assert shown in (ROOT / "benchmarks" / "results" / "retrieval_avdigits.md").read_text()


def _tables(text: str) -> list[str]:
    return ["\n".join(block) for block in re.findall(r"((?:^\|.*\|$\n?)+)", text, re.M) for block in [block.strip().splitlines()]]


@pytest.mark.parametrize("name", ["retrieval_avdigits", "unseen_classes", "video_search"])
def test_docs_tables_are_the_measured_ones(name):
    results = ROOT / "benchmarks" / "results" / f"{name}.md"
    if not results.is_file():
        pytest.skip(f"{results.name} has not been measured yet (run benchmarks/coordinated.py)")
    doc = DOC.read_text()
    for table in _tables(results.read_text()):
        assert table in doc, f"docs/coordinated.md does not hold {name}'s table:\n{table}"
