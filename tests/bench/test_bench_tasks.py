"""`polymodal bench` on a task without classes: its tables show the task's own metrics (a survival model's
C-index and IBS), and say why there are no paired differences."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from polymodal.cli import main

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_bench_tabulates_a_survival_task(tmp_path):
    pytest.importorskip("sksurv", reason="the survival extra (scikit-survival) is not installed")
    out = tmp_path / "survival"
    code = main(["bench", "--strategies", "joint,unimodal", "--dataset", "breast-cancer", "--seeds", "0",
                 "--config", str(ROOT / "configs" / "breast_cancer_survival.yaml"), "--out", str(out),
                 "--runs-dir", str(tmp_path / "runs"), "--processes", "1", "--no-poe",
                 "trainer.max_epochs=2", "model.width=8"])
    assert code == 0
    doc = json.loads(out.with_suffix(".json").read_text())
    metrics = {(r["method"], r["metric"]) for r in doc["rows"]}
    assert {("joint", "cindex"), ("joint", "genes_cindex"), ("joint", "ibs"), ("unimodal", "cindex")} <= metrics
    assert all(r["task"] == "survival" and "test_correct" not in r for r in doc["runs"])
    md = out.with_suffix(".md").read_text()
    header = next(line for line in md.splitlines() if line.startswith("| method"))
    assert [c.strip() for c in header.split("|")[3:7]] == ["cindex", "clinical_cindex", "genes_cindex", "ibs"]
    assert "No paired differences to `joint`" in md and md.count("No paired differences") == 1
    # the tables rebuild from the JSON alone, without repeating the note
    assert main(["bench", "--recompute", str(out.with_suffix(".json"))]) == 0
    assert out.with_suffix(".md").read_text() == md
