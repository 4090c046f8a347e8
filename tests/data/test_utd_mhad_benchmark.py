"""benchmarks/utd_mhad.py: the conditional-independence check on known error patterns, and its committed table
rebuilt from the committed JSON alone."""

from pathlib import Path

import numpy as np
import pytest

from polymodal.tasks.classification import Predictions

from .._benchmarks import load_benchmark

bench = load_benchmark("utd_mhad")


def _unimodal(errors: dict[str, np.ndarray], y: np.ndarray, classes: int = 3) -> Predictions:
    """Predictions whose modality m is wrong exactly where errors[m] is True."""
    per = {}
    for m, wrong in errors.items():
        guess = np.where(wrong, (y + 1) % classes, y)
        per[m] = np.eye(classes)[guess] * 0.9 + 0.1 / classes
    return Predictions(y_true=y, probs=per["depth"], per_modality=per, index=np.arange(len(y)))


@pytest.fixture
def fake_runs(monkeypatch):
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(3), 4000)
    shared = rng.random(len(y)) < 0.3  # one cause of errors that depth and skeleton share
    errors = {"depth": shared, "skeleton": shared.copy(), "inertial": rng.random(len(y)) < 0.3}
    monkeypatch.setattr(bench, "_predictions", lambda run, split: _unimodal(errors, y))
    return y


def test_independence_ratio_is_one_for_independent_errors_and_above_for_shared_ones(fake_runs):
    rows = {r["pair"]: r for r in bench.independence(Path("unused"), [0])}
    # depth and skeleton fail on the same samples: observed 0.3, expected 0.3 * 0.3 under independence
    assert rows["depth+skeleton"]["observed"][0] == pytest.approx(0.3, abs=0.02)
    assert rows["depth+skeleton"]["ratio"][0] == pytest.approx(1 / 0.3, rel=0.1)
    # inertial errors are drawn independently: the ratio is 1 up to sampling noise
    assert rows["depth+inertial"]["ratio"][0] == pytest.approx(1.0, abs=0.1)
    assert rows["skeleton+inertial"]["ratio"][0] == pytest.approx(1.0, abs=0.1)


def test_committed_analysis_table_is_rebuilt_from_its_json():
    out = bench.OUT
    if not out.with_suffix(".json").is_file():
        pytest.skip("benchmarks/results/utd_mhad_analysis.json is not committed")
    import json

    result = json.loads(out.with_suffix(".json").read_text())
    assert bench.render(result) == out.with_suffix(".md").read_text()
    assert {r["modalities"] for r in result["rows"]} >= {"depth+skeleton+inertial", "skeleton+inertial"}
