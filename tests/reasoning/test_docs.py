"""docs/reasoning.md's worked example runs verbatim."""

from __future__ import annotations

import re
from pathlib import Path


def test_the_docs_worked_example_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    doc = (Path(__file__).resolve().parents[2] / "docs" / "reasoning.md").read_text()
    code = re.search(r"## Worked example.*?```python\n(.*?)```", doc, re.S).group(1)
    namespace: dict = {}
    exec(compile(code, "docs/reasoning.md", "exec"), namespace)  # noqa: S102 - the documented example, verbatim
    table, curve = namespace["table"], namespace["curve"]
    assert len(table) == 300 and {"audio.digit", "audio.digit_prob", "image.digit", "image.digit_prob"} <= set(table.columns)
    assert set(curve) == {0.0, 0.3} and curve[0.3] >= curve[0.0]
    assert (tmp_path / "runs" / "sum-program" / "results.json").is_file()
