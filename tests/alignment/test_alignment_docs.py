"""docs/align_translate.md's worked example runs verbatim and gives what the page says."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np


def test_the_docs_worked_example_runs():
    doc = (Path(__file__).resolve().parents[2] / "docs" / "align_translate.md").read_text()
    code = re.search(r"## Worked example.*?```python\n(.*?)```", doc, re.S).group(1)
    namespace: dict = {}
    exec(compile(code, "docs/align_translate.md", "exec"), namespace)  # noqa: S102 - the documented example, verbatim
    ds, path, n = namespace["ds"], namespace["path"], namespace["n"]
    assert path[0].tolist() == [0, 0] and path[-1].tolist() == [len(namespace["truth"]) - 1, n - 1]
    assert namespace["value"] == 0.0 and abs(namespace["smooth"]) < 0.2  # a zero-cost path exists
    labels = ds.labels[0, :n]
    if (np.diff(labels) != 0).all():  # no two equal neighbours: the alignment is exact up to the silences
        assert namespace["accuracy"] > 0.9 and namespace["errors"]["to_gap"].mean() < 40
