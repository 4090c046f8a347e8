"""docs/colearning.md's worked example runs verbatim."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "colearning.md"


def run_example(heading: str, tmp_path: Path, monkeypatch) -> dict:
    """Run the first Python block after ``heading`` in docs/colearning.md, verbatim, in ``tmp_path``."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    code = re.search(re.escape(heading) + r"\n.*?```python\n(.*?)```", DOC.read_text(), re.S).group(1)
    namespace: dict = {}
    exec(compile(code, "docs/colearning.md", "exec"), namespace)  # noqa: S102 - the documented example, verbatim
    return namespace


@pytest.mark.slow
def test_the_docs_worked_example_runs(tmp_path, monkeypatch):
    namespace = run_example("## Worked example", tmp_path, monkeypatch)
    result, kept = namespace["result"], namespace["kept"]
    assert (tmp_path / "runs" / "cotrain-demo" / "results.json").is_file()
    assert 0.0 <= namespace["audio_alone"] <= 1.0
    assert result.metrics["fused_acc"] == result.metrics["audio_acc"]  # the prediction is the audio head alone
    assert len(kept) == 600 and 20 <= kept.sum() <= 40  # 5 % of each class's ~60 rows
    assert namespace["train_split"].labels[kept].tolist().count(0) >= 1  # every class keeps a label
    assert all(t is not None and 0.0 <= t <= 1.0 for t in namespace["taken"])  # pseudo-labels were considered


@pytest.mark.slow
def test_the_imagination_example_runs(tmp_path, monkeypatch):
    from polymodal.engine.runfolder import predictions_file
    from polymodal.tasks import read_predictions

    namespace = run_example("### Imagination example", tmp_path, monkeypatch)
    assert 0.0 <= namespace["result"].metrics["fused_acc"] <= 1.0
    pred = read_predictions(predictions_file(tmp_path / "runs" / "imagine-demo", "test"))
    for m, other in (("audio", "image"), ("image", "audio")):
        absent = ~pred.present[m].astype(bool)
        assert absent.any()  # half the slots are absent at test
        # exactly the absent slots are imagined (every sample keeps one modality)
        assert (pred.extras[f"imagine.filled.{m}"].astype(bool) == absent).all()
        assert pred.present[other][absent].all()
