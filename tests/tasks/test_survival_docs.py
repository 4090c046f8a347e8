"""docs/survival.md's worked example runs verbatim (it needs the survival extra for the table)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest


@pytest.mark.slow
def test_the_docs_worked_example_runs(tmp_path, monkeypatch):
    pytest.importorskip("sksurv", reason="the survival extra (scikit-survival) is not installed")
    monkeypatch.chdir(tmp_path)
    doc = (Path(__file__).resolve().parents[2] / "docs" / "survival.md").read_text()
    code = re.search(r"## Worked example.*?```python\n(.*?)```", doc, re.S).group(1)
    namespace: dict = {}
    exec(compile(code, "docs/survival.md", "exec"), namespace)  # noqa: S102 - the documented example, verbatim
    metrics, out, curve = namespace["metrics"], namespace["out"], namespace["curve"]
    assert {"cindex", "ibs", "genes_cindex", "clinical_cindex", "events", "n"} <= set(metrics)
    assert metrics["n"] == 40 and metrics["events"] == 10 and 0.0 < metrics["ibs"] < 0.25
    assert {"id", "risk", "present_genes", "present_clinical"} <= set(out.columns) and len(out) == 3
    assert len(curve) == 50 and np.all(np.diff(curve.to_numpy()) <= 0) and 0 < curve.iloc[-1] < curve.iloc[0] <= 1
    report = (tmp_path / "runs" / "breast-cancer-table" / "report.md").read_text()
    assert "95 % bootstrap interval" in report and "figures/survival_test.png" in report
