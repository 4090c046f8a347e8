"""docs/align_translate.md's generation example runs verbatim (tiny sizes) and gives what the page says."""

from __future__ import annotations

import re
from pathlib import Path

from PIL import Image


def test_the_generation_worked_example_runs():
    doc = (Path(__file__).resolve().parents[2] / "docs" / "align_translate.md").read_text()
    code = re.search(r"## Worked example: generation.*?```python\n(.*?)```", doc, re.S).group(1)
    namespace: dict = {}
    exec(compile(code, "docs/align_translate.md", "exec"), namespace)  # noqa: S102 - the documented example, verbatim
    out, images = namespace["out"], namespace["images"]
    assert images.shape == (4, 3, 1, 28, 28) and 0.0 <= images.min() and images.max() <= 1.0
    assert (out / "gen" / "generator.json").is_file() and (out / "gen" / "generator.safetensors").is_file()
    assert Image.open(out / "4821.png").size == ((4 * 30 + 2) * 2, (3 * 30 + 2) * 2)
    assert 0.0 <= namespace["recognised"] <= 1.0 and namespace["diversity"] > 0.0
    assert 0.0 <= namespace["scores"].test_acc <= 1.0 and namespace["scores"].val_acc >= 0.0
