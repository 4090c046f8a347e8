"""docs/reasoning.md's worked example runs verbatim."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np


def test_the_docs_worked_example_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    doc = (Path(__file__).resolve().parents[2] / "docs" / "reasoning.md").read_text()
    code = re.search(r"## Worked example.*?```python\n(.*?)```", doc, re.S).group(1)
    namespace: dict = {}
    exec(compile(code, "docs/reasoning.md", "exec"), namespace)  # noqa: S102 - the documented example, verbatim
    table, curve, random_curve = namespace["table"], namespace["curve"], namespace["random_curve"]
    assert len(table) == 300 and {"audio.digit", "audio.digit_prob", "image.digit", "image.digit_prob"} <= set(table.columns)
    assert set(curve) == set(random_curve) == {0.0, 0.3} and curve[0.3] >= curve[0.0] == random_curve[0.0]
    # the true digits enter the interventions in the model's coordinates: shifted by the alignment found on val
    shift, test = namespace["shift"], namespace["test"]
    assert 0 <= shift < 10
    for key, sign in (("audio.digit", 1), ("image.digit", -1)):
        digits = test.concept_labels[key.split(".")[0]]["digit"]
        assert np.array_equal(namespace["truth"][key], (digits + sign * shift) % 10)
    assert (tmp_path / "runs" / "sum-program" / "results.json").is_file()
