"""docs/quantify.md's worked example runs verbatim."""

from __future__ import annotations

import re
from pathlib import Path

import pytest


def test_the_docs_worked_example_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    doc = (Path(__file__).resolve().parents[2] / "docs" / "quantify.md").read_text()
    code = re.search(r"## Worked example.*?```python\n(.*?)```", doc, re.S).group(1)
    namespace: dict = {}
    exec(compile(code, "docs/quantify.md", "exec"), namespace)  # noqa: S102 - the documented example, verbatim
    q = namespace["q"]
    assert set(q.subset_scores) == {"", "audio", "image", "audio+image"}
    assert q.shapley["sum"] == pytest.approx(q.subset_scores["audio+image"] - q.subset_scores[""], abs=1e-9)
    assert q.emap.gap == pytest.approx(0.0, abs=1e-9)
    assert q.noise["audio"].levels == [0.0, 0.5, 1.0]
    assert Path(namespace["report"]).resolve() == (tmp_path / "runs" / "av-joint" / "quantify.md").resolve()
    assert (tmp_path / "runs" / "av-joint" / "quantify.html").is_file()
