"""benchmarks/results/alignment.md is what its JSON twin renders to; the JSON's rows follow from its runs; the
benchmark's scoring gives a perfect score to the true alignment and its cost lets silence fit anywhere."""

from __future__ import annotations

import json
import statistics

import numpy as np
import pytest
import torch

from polymodal.data.datasets.digitstrings import PAD, DigitStrings

from .._benchmarks import ROOT, load_benchmark


@pytest.fixture(scope="module")
def bench():
    return load_benchmark("alignment")


def test_the_committed_table_is_rendered_from_its_json(bench):
    doc = json.loads((ROOT / "benchmarks" / "results" / "alignment.json").read_text())
    assert bench.render(doc) == (ROOT / "benchmarks" / "results" / "alignment.md").read_text()
    for row in doc["rows"]:
        values = [run["metrics"][row["method"]][row["metric"]] for run in doc["runs"]]
        assert row["values"] == values and row["n"] == len(values) == len(doc["runs"]) >= 3
        assert row["mean"] == pytest.approx(statistics.fmean(values))
        assert row["std"] == pytest.approx(statistics.stdev(values))


def test_the_true_alignment_scores_perfectly_and_the_uniform_one_does_not(bench):
    ds = DigitStrings("val", strings=6, cache_features=False)
    truth = []
    for i in range(len(ds)):  # the truth with each silence given to the digit after it: still monotonic
        t = ds.digit_frames(i).copy()
        for j in range(len(t) - 1, -1, -1):
            if t[j] == PAD:
                t[j] = t[j + 1]
        truth.append(t)
    s = bench.score(ds, truth, True)
    assert s["frame_acc"] == 1.0 and s["boundary_ms"] == 0.0 and 0 < s["onset_ms"] <= 150
    shifted = [np.maximum.accumulate(np.r_[t[5:], np.full(5, t[-1])]) for t in truth]  # onsets 100 ms early
    worse = bench.score(ds, shifted, True)
    assert worse["frame_acc"] < 1.0 and worse["boundary_ms"] > 0.0


def test_the_cost_lets_a_silent_frame_fit_every_position(bench):
    p = torch.tensor([[0.0] * 10 + [1.0], [0.9] + [0.0] * 9 + [0.1]])
    q = torch.eye(10)[[0, 3]]
    c = bench.cost(p, q)
    assert c[0].abs().max() < 1e-5  # silence: no cost anywhere
    assert c[1, 0] < 1e-5 and c[1, 1] > 10  # a spoken 0 fits position 0 (a written 0), not position 1 (a 3)


def test_ctc_boundaries_become_a_monotonic_frame_assignment(bench):
    a = bench.ctc_boundaries_assign(np.array([30.0, 75.0]), 6)  # frames at 0, 20, ..., 100 ms
    assert a.tolist() == [0, 0, 1, 1, 2, 2]
    assert bench.ctc_boundaries_assign(np.array([40.0]), 3).tolist() == [0, 0, 1]  # a boundary on a frame: the next
