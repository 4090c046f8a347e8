"""PID with the CVX estimator: known decompositions, the solver against a brute-force search of the
feasible set (and cvxpy when it is installed), k-means and the discretisation of labels."""

from __future__ import annotations

import numpy as np
import pytest

from polymodal.quantify.pid import (
    conditional_entropy,
    discretize,
    joint_counts,
    kmeans,
    max_entropy_coupling,
    pid,
    pid_from_distribution,
)

TOL = 0.02  # bits: the tolerance of the decompositions estimated from samples


def _samples(rule: str, n: int = 20000, k: int = 2, seed: int = 0):
    rng = np.random.default_rng(seed)
    x1 = rng.integers(0, k, n)
    if rule == "copy":  # y = x1 = x2: pure redundancy
        return x1, x1.copy(), x1.copy()
    x2 = rng.integers(0, k, n)
    if rule == "unique":  # y = x1, x2 independent noise: uniqueness of x1
        return x1, x2, x1.copy()
    if rule == "xor":  # y = x1 XOR x2 (k = 2), (x1 + x2) mod k in general: pure synergy
        return x1, x2, (x1 + x2) % k
    raise ValueError(rule)


@pytest.mark.parametrize("k", [2, 4])
def test_copies_are_pure_redundancy(k):
    r = pid(*_samples("copy", k=k))
    bits = np.log2(k)
    assert r.redundancy == pytest.approx(bits, abs=TOL)
    assert max(r.unique1, r.unique2, r.synergy) < TOL


@pytest.mark.parametrize("k", [2, 4])
def test_one_informative_modality_is_pure_uniqueness(k):
    r = pid(*_samples("unique", k=k))
    assert r.unique1 == pytest.approx(np.log2(k), abs=TOL)
    assert max(r.redundancy, r.unique2, r.synergy) < TOL


@pytest.mark.parametrize("k", [2, 4])
def test_xor_and_sum_modulo_k_are_pure_synergy(k):
    r = pid(*_samples("xor", k=k))
    assert r.synergy == pytest.approx(np.log2(k), abs=TOL)
    assert max(r.redundancy, r.unique1, r.unique2) < TOL


def test_a_mixture_adds_up_to_the_joint_information():
    rng = np.random.default_rng(5)
    n = 30000
    a, b, c = rng.integers(0, 2, n), rng.integers(0, 2, n), rng.integers(0, 2, n)
    # y = (a, b XOR c), x1 = (a, b), x2 = (a, c): 1 bit redundant (a), 1 bit synergistic (b XOR c)
    r = pid(a * 2 + b, a * 2 + c, a * 2 + (b ^ c))
    assert r.redundancy == pytest.approx(1.0, abs=TOL) and r.synergy == pytest.approx(1.0, abs=TOL)
    assert max(r.unique1, r.unique2) < TOL
    total = r.redundancy + r.unique1 + r.unique2 + r.synergy
    assert total == pytest.approx(r.mi_joint, abs=1e-9)


def _brute_force_max_h(p: np.ndarray, grid: int = 401) -> float:
    """Binary x1, x2 and y: for each y the 2x2 table with P(x1, y) and P(x2, y) as margins has one free
    entry; search both on a grid."""
    rows, cols = p.sum(1), p.sum(0)
    options = []
    for y in range(2):
        lo = max(0.0, rows[0, y] - cols[1, y])
        hi = min(rows[0, y], cols[0, y])
        t = np.linspace(lo, hi, grid)
        tables = np.stack([np.stack([t, rows[0, y] - t], -1), np.stack([cols[0, y] - t, rows[1, y] - cols[0, y] + t], -1)], 1)
        options.append(np.clip(tables, 0, None))  # (grid, 2, 2)
    best = -np.inf
    for q0 in options[0]:
        q = np.stack([np.broadcast_to(q0, (grid, 2, 2)), options[1]], -1)  # (grid, 2, 2, 2)
        q12 = q.sum(-1, keepdims=True)
        with np.errstate(divide="ignore", invalid="ignore"):
            h = -np.where(q > 0, q * np.log2(q / q12), 0.0).sum((1, 2, 3))
        best = max(best, float(h.max()))
    return best


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_solver_reaches_the_brute_force_maximum(seed):
    p = np.random.default_rng(seed).dirichlet(np.ones(8)).reshape(2, 2, 2)
    q, _ = max_entropy_coupling(p)
    np.testing.assert_allclose(q.sum(1), p.sum(1), atol=1e-10)
    np.testing.assert_allclose(q.sum(0), p.sum(0), atol=1e-10)
    assert (q >= 0).all()
    ref = _brute_force_max_h(p)
    assert conditional_entropy(q) >= ref - 1e-6
    assert conditional_entropy(q) <= ref + 1e-3  # the grid's resolution


def test_the_solver_agrees_with_cvxpy():
    pytest.importorskip("cvxpy")
    rng = np.random.default_rng(7)
    for shape in [(3, 3, 2), (4, 5, 3)]:
        p = rng.dirichlet(np.ones(int(np.prod(shape))) * 0.5).reshape(shape)
        a = pid_from_distribution(p)
        b = pid_from_distribution(p, solver="cvxpy")
        for key in ("redundancy", "unique1", "unique2", "synergy"):
            assert getattr(a, key) == pytest.approx(getattr(b, key), abs=1e-5)


def test_cvxpy_solver_without_cvxpy_names_the_extra(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "cvxpy", None)
    with pytest.raises(ImportError, match=r"polymodal\[quantify\]"):
        pid_from_distribution(np.full((2, 2, 2), 1 / 8), solver="cvxpy")


def test_bad_distributions_are_refused():
    with pytest.raises(ValueError, match="3-d array"):
        pid_from_distribution(np.ones((2, 2)))
    with pytest.raises(ValueError, match="non-negative"):
        pid_from_distribution(-np.ones((2, 2, 2)))
    with pytest.raises(ValueError, match="solver"):
        max_entropy_coupling(np.ones((2, 2, 2)), solver="bogus")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="different lengths"):
        joint_counts(np.zeros(3), np.zeros(2), np.zeros(3))


def test_kmeans_recovers_separated_clusters_and_discretize_keeps_few_values():
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(4, 5)) * 10
    truth = rng.integers(0, 4, 400)
    x = centres[truth] + rng.normal(size=(400, 5)) * 0.1
    codes = kmeans(x, 4, seed=0)
    # a relabelling of the truth: every cluster maps to one true cluster
    assert all(len(set(truth[codes == c])) == 1 for c in np.unique(codes)) and len(np.unique(codes)) == 4
    y = np.array([3, 1, 3, 7])
    assert list(discretize(y, 20)) == [1, 0, 1, 2]
    binned = discretize(np.linspace(0, 1, 100), 4)
    assert sorted(np.bincount(binned)) == [25, 25, 25, 25]
    multi = discretize((rng.random((50, 6)) > 0.5).astype(float), 3)
    assert multi.max() < 3 and len(multi) == 50


def test_the_synergy_floor_measures_the_bias_of_a_conditionally_independent_pair():
    from polymodal.quantify.pid import synergy_floor

    rng = np.random.default_rng(2)
    n = 300
    y = rng.integers(0, 10, n)
    x1 = np.where(rng.random(n) < 0.7, y, rng.integers(0, 10, n))  # noisy copies, independent given y
    x2 = np.where(rng.random(n) < 0.7, y, rng.integers(0, 10, n))
    r = pid(x1, x2, y)
    floor = synergy_floor(x1, x2, y, r.mi_q)
    assert floor > 0.05  # 300 samples over 1000 cells: the plug-in estimate is biased upwards
    assert abs(r.synergy - floor) < 0.15  # and the pair's synergy is within the bias
    big = _samples("xor", n=300, k=4, seed=3)
    rx = pid(*big)
    assert rx.synergy > synergy_floor(*big, rx.mi_q) + 1.0  # a real interaction stands far above it
