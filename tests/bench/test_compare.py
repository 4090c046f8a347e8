import numpy as np
import pytest

from polymodal.bench.compare import paired_bootstrap


def test_identical_methods_give_zero_difference():
    g = np.random.default_rng(0)
    runs = [g.random(50) < 0.7 for _ in range(3)]
    d = paired_bootstrap(runs, runs)
    assert d.mean == 0 and d.low == 0 and d.high == 0 and d.n_seeds == 3 and d.n_samples == 50


def test_mean_and_interval_match_a_naive_bootstrap():
    g = np.random.default_rng(1)
    a = [g.random(40) < 0.8 for _ in range(3)]
    b = [g.random(40) < 0.6 for _ in range(3)]
    d = paired_bootstrap(a, b, resamples=500, seed=7)
    assert d.mean == pytest.approx(np.mean([x.mean() - y.mean() for x, y in zip(a, b, strict=True)]))
    rng = np.random.default_rng(7)  # the same draws, one resample at a time
    seeds = rng.integers(0, 3, size=(500, 3))
    rows = rng.integers(0, 40, size=(500, 3, 40))
    stats = []
    for r in range(500):
        diffs = [float(a[s][i]) - float(b[s][i]) for k, s in enumerate(seeds[r]) for i in rows[r, k]]
        stats.append(sum(diffs) / len(diffs))
    low, high = np.quantile(stats, [0.025, 0.975])
    assert d.low == pytest.approx(low) and d.high == pytest.approx(high)
    assert 0 < d.low < d.mean < d.high


def test_errors():
    with pytest.raises(ValueError, match="same non-zero number of seeds"):
        paired_bootstrap([np.ones(3)], [])
    with pytest.raises(ValueError, match="same samples"):
        paired_bootstrap([np.ones(3)], [np.ones(4)])
