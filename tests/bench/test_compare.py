import numpy as np
import pytest
import scipy.stats

from polymodal.bench.compare import crossed_bootstrap_stats, paired_bootstrap


def _runs(g: np.random.Generator, p: float, seeds: int, n: int) -> list[np.ndarray]:
    return [g.random(n) < p for _ in range(seeds)]


def test_identical_methods_give_zero_difference():
    runs = _runs(np.random.default_rng(0), 0.7, 3, 50)
    d = paired_bootstrap(runs, runs)
    assert d.mean == 0 and d.low == 0 and d.high == 0 and d.n_seeds == 3 and d.n_samples == 50


def test_replicates_match_a_naive_transcription_of_the_crossed_design():
    g = np.random.default_rng(1)
    a, b = _runs(g, 0.8, 3, 40), _runs(g, 0.6, 3, 40)
    stats = crossed_bootstrap_stats(a, b, resamples=300, seed=7)
    rng = np.random.default_rng(7)  # the same draws: seeds (R, S), then one set of rows (R, N)
    seeds = rng.integers(0, 3, size=(300, 3))
    rows = rng.integers(0, 40, size=(300, 40))
    naive = []
    for r in range(300):
        diffs = [float(a[s][i]) - float(b[s][i]) for s in seeds[r] for i in rows[r]]  # same rows for every seed
        naive.append(sum(diffs) / len(diffs))
    np.testing.assert_allclose(stats, naive, rtol=0, atol=1e-12)
    d = paired_bootstrap(a, b, resamples=300, seed=7)
    assert d.mean == pytest.approx(np.mean([x.mean() - y.mean() for x, y in zip(a, b, strict=True)]))
    assert (d.low, d.high) == pytest.approx(tuple(np.quantile(naive, [0.025, 0.975])))


def test_three_identical_seeds_give_the_single_seed_interval():
    # the bug this guards against: resampling samples independently per seed shrank this interval by ~sqrt(3)
    g = np.random.default_rng(2)
    a, b = g.random(300) < 0.86, g.random(300) < 0.82
    one = paired_bootstrap([a], [b], resamples=20000, seed=1)
    three = paired_bootstrap([a] * 3, [b] * 3, resamples=20000, seed=2)
    assert three.mean == pytest.approx(one.mean)
    assert three.low == pytest.approx(one.low, abs=0.004) and three.high == pytest.approx(one.high, abs=0.004)
    assert three.half_width == pytest.approx(one.half_width, rel=0.05)


def test_single_seed_agrees_with_scipy_paired_percentile_bootstrap():
    g = np.random.default_rng(3)
    a, b = g.random(200) < 0.75, g.random(200) < 0.65
    ours = paired_bootstrap([a], [b], resamples=20000, seed=0)
    ref = scipy.stats.bootstrap(
        (a.astype(float), b.astype(float)), lambda x, y, axis=-1: np.mean(x - y, axis=axis), paired=True,
        method="percentile", n_resamples=20000, confidence_level=0.95, random_state=0, vectorized=True,
    ).confidence_interval
    assert ours.low == pytest.approx(ref.low, abs=0.006) and ours.high == pytest.approx(ref.high, abs=0.006)


def test_disagreeing_seeds_widen_the_interval():
    g = np.random.default_rng(4)
    n = 300
    b = [g.random(n) < 0.7 for _ in range(3)]
    same = [b[0] | (g.random(n) < 0.15)] * 3  # A's three seeds identical
    a0 = same[0]
    # A's seeds now disagree: same mean gain, but one seed far above and one far below
    spread = [a0, a0 | (g.random(n) < 0.25), a0 & (g.random(n) < 0.8)]
    narrow = paired_bootstrap(same, [b[0]] * 3, resamples=8000)
    wide = paired_bootstrap(spread, [b[0]] * 3, resamples=8000)
    assert wide.half_width > 1.3 * narrow.half_width


def test_errors():
    with pytest.raises(ValueError, match="same non-zero number of seeds"):
        paired_bootstrap([np.ones(3)], [])
    with pytest.raises(ValueError, match="same samples"):
        paired_bootstrap([np.ones(3)], [np.ones(4)])
    with pytest.raises(ValueError, match="same number of test samples"):
        paired_bootstrap([np.ones(3), np.ones(4)], [np.ones(3), np.ones(4)])
