"""Shapley values over modality subsets: known answers, efficiency, Monte-Carlo convergence, per sample."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from polymodal.quantify.shapley import (
    all_subsets,
    deciding_shares,
    exact_shapley,
    monte_carlo_shapley,
    shapley,
)

WEIGHTS = {"a": 0.30, "b": 0.10, "c": -0.05, "d": 0.20}
PAIR = 0.12  # an interaction of a and b: shared equally between them


def game(s: frozenset[str]) -> float:
    return 0.1 + sum(WEIGHTS[m] for m in s) + (PAIR if {"a", "b"} <= s else 0.0)


def naive_shapley(players, value):
    """The definition over all orders (M! of them): the average marginal contribution."""
    out = dict.fromkeys(players, 0.0)
    orders = list(itertools.permutations(players))
    for order in orders:
        before = frozenset()
        for p in order:
            out[p] += (value(before | {p}) - value(before)) / len(orders)
            before = before | {p}
    return out


def test_exact_values_of_a_known_game_and_efficiency():
    sv = exact_shapley(list(WEIGHTS), game)
    expected = {m: w + (PAIR / 2 if m in "ab" else 0.0) for m, w in WEIGHTS.items()}
    assert sv.method == "exact"
    for m in WEIGHTS:
        assert sv.phi[m] == pytest.approx(expected[m], abs=1e-12)
    assert sv.total() == pytest.approx(game(frozenset(WEIGHTS)) - game(frozenset()), abs=1e-12)


def test_exact_values_match_the_definition_over_all_orders_on_a_random_game():
    rng = np.random.default_rng(3)
    players = ["p0", "p1", "p2", "p3", "p4"]
    table = {s: float(rng.normal()) for s in all_subsets(players)}
    sv = exact_shapley(players, table.__getitem__)
    ref = naive_shapley(players, table.__getitem__)
    for p in players:
        assert sv.phi[p] == pytest.approx(ref[p], abs=1e-12)


def test_monte_carlo_converges_to_the_exact_values_with_shrinking_error():
    rng = np.random.default_rng(0)
    players = [f"m{i}" for i in range(6)]
    table = {s: float(rng.normal()) + len(s) for s in all_subsets(players)}
    exact = exact_shapley(players, table.__getitem__)
    few = monte_carlo_shapley(players, table.__getitem__, permutations=50, seed=1)
    many = monte_carlo_shapley(players, table.__getitem__, permutations=3000, seed=1)
    for p in players:
        assert abs(many.phi[p] - exact.phi[p]) < 4 * many.stderr[p] + 1e-9
        assert many.stderr[p] < few.stderr[p]
    # every permutation's marginal contributions sum to v(all) - v(empty): so does the estimate
    assert many.total() == pytest.approx(table[frozenset(players)] - table[frozenset()], abs=1e-9)


def test_beyond_eight_modalities_the_estimate_is_monte_carlo_with_standard_errors():
    players = [f"m{i}" for i in range(9)]
    sv = shapley(players, lambda s: float(len(s) ** 2), permutations=64)
    assert sv.method == "monte-carlo" and sv.permutations == 64
    # a symmetric game: every modality gets (9^2 - 0) / 9 = 9
    for p in players:
        assert sv.phi[p] == pytest.approx(9.0, abs=4 * sv.stderr[p] + 1e-9)
    assert shapley(players[:8], lambda s: float(len(s))).method == "exact"


def test_per_sample_values_are_arrays_with_efficiency_per_sample():
    rng = np.random.default_rng(1)
    players = ["audio", "image", "text"]
    table = {s: rng.normal(size=7) for s in all_subsets(players)}
    sv = exact_shapley(players, table.__getitem__)
    total = sum(sv.phi.values())
    np.testing.assert_allclose(total, table[frozenset(players)] - table[frozenset()], atol=1e-12)
    for i in range(7):
        ref = naive_shapley(players, lambda s, i=i: table[s][i])
        for p in players:
            assert sv.phi[p][i] == pytest.approx(ref[p], abs=1e-12)


def test_deciding_shares():
    shares = deciding_shares({"a": np.array([1.0, 0.0, 2.0, 1.0]), "b": np.array([0.5, 3.0, 2.0, -1.0])})
    assert shares == {"a": 0.5, "b": 0.25, "none": 0.25}
    assert math.isclose(sum(shares.values()), 1.0)


def test_bad_players_are_refused():
    with pytest.raises(ValueError, match="at least one modality"):
        exact_shapley([], game)
    with pytest.raises(ValueError, match="distinct"):
        exact_shapley(["a", "a"], game)
    with pytest.raises(ValueError, match="at least 2"):
        monte_carlo_shapley(["a", "b"], game, permutations=1)
