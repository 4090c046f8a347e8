"""DTW and soft-DTW against brute force on tiny inputs: every monotonic path enumerated."""

import math

import numpy as np
import pytest
import torch

from polymodal.alignment import (
    band_mask,
    dtw,
    is_monotonic_path,
    pairwise_cost,
    path_cost,
    soft_alignment,
    soft_dtw,
    soft_dtw_batch,
)


def all_paths(n, m):
    """Every monotonic path from (0, 0) to (n - 1, m - 1)."""
    if (n, m) == (1, 1):
        return [[(0, 0)]]
    out = []
    for di, dj in ((1, 0), (0, 1), (1, 1)):
        if n - di >= 1 and m - dj >= 1:
            out += [p + [(n - 1, m - 1)] for p in all_paths(n - di, m - dj)]
    return out


def naive_dtw(c):
    """The textbook O(nm) recursion, cell by cell."""
    n, m = c.shape
    acc = np.full((n + 1, m + 1), np.inf)
    acc[0, 0] = 0
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            acc[i, j] = c[i - 1, j - 1] + min(acc[i - 1, j - 1], acc[i - 1, j], acc[i, j - 1])
    return acc[n, m]


@pytest.mark.parametrize("n,m", [(1, 1), (1, 4), (3, 3), (4, 2), (5, 4)])
def test_dtw_is_the_minimum_over_every_monotonic_path(n, m):
    rng = np.random.default_rng(n * 10 + m)
    c = rng.random((n, m))
    value, path = dtw(c)
    paths = all_paths(n, m)
    costs = [sum(c[i, j] for i, j in p) for p in paths]
    assert value == pytest.approx(min(costs), abs=1e-12)
    assert value == pytest.approx(naive_dtw(c), abs=1e-12)
    assert is_monotonic_path(path, n, m) and path_cost(c, path) == pytest.approx(value, abs=1e-12)


def test_the_band_restricts_the_minimum_to_the_paths_inside_it():
    rng = np.random.default_rng(3)
    c = rng.random((6, 6))
    c[np.eye(6, dtype=bool)] += 10  # the diagonal is expensive: an unconstrained path leaves it
    inside = band_mask(6, 6, 0)
    banded, path = dtw(c, radius=0)
    assert inside[path[:, 0], path[:, 1]].all()
    best = min(sum(c[i, j] for i, j in p) for p in all_paths(6, 6) if all(inside[i, j] for i, j in p))
    assert banded == pytest.approx(best) and banded > dtw(c)[0]
    radius1 = band_mask(6, 6, 1)
    best1 = min(sum(c[i, j] for i, j in p) for p in all_paths(6, 6) if all(radius1[i, j] for i, j in p))
    assert dtw(c, radius=1)[0] == pytest.approx(best1)


def test_soft_dtw_is_the_soft_minimum_over_paths_and_tends_to_dtw():
    rng = np.random.default_rng(0)
    c = rng.random((4, 5))
    costs = np.array([sum(c[i, j] for i, j in p) for p in all_paths(4, 5)])
    for gamma in (1.0, 0.1):
        exact = -gamma * (np.log(np.exp(-(costs - costs.min()) / gamma).sum()) - costs.min() / gamma)
        assert soft_dtw(torch.tensor(c), gamma).item() == pytest.approx(exact, abs=1e-10)
    gaps = [abs(soft_dtw(torch.tensor(c), g).item() - dtw(c)[0]) for g in (1.0, 0.1, 0.01, 0.001)]
    assert gaps == sorted(gaps, reverse=True) and gaps[-1] < 1e-2


def test_soft_dtw_gradient_matches_finite_differences_and_the_path_probabilities():
    torch.manual_seed(0)
    x = torch.randn(5, 3, dtype=torch.float64, requires_grad=True)
    y = torch.randn(4, 3, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda a: soft_dtw(pairwise_cost(a, y), 0.5), (x,), eps=1e-6, atol=1e-6)
    c = torch.rand(3, 4, dtype=torch.float64)
    paths = all_paths(3, 4)
    costs = torch.tensor([sum(c[i, j].item() for i, j in p) for p in paths], dtype=torch.float64)
    prob = torch.softmax(-costs / 0.3, 0)
    expected = torch.zeros(3, 4, dtype=torch.float64)
    for p, w in zip(paths, prob, strict=True):
        for i, j in p:
            expected[i, j] += w
    torch.testing.assert_close(soft_alignment(c, 0.3), expected)


def test_bad_inputs_are_clear_errors():
    with pytest.raises(ValueError, match="cost matrix"):
        dtw(np.zeros((0, 3)))
    with pytest.raises(ValueError, match="NaN"):
        dtw(np.array([[math.nan]]))
    with pytest.raises(ValueError, match="gamma"):
        soft_dtw(torch.zeros(2, 2), 0.0)
    with pytest.raises(ValueError, match="radius"):
        band_mask(3, 3, -1)
    with pytest.raises(ValueError, match="same d"):
        pairwise_cost(torch.zeros(3, 2), torch.zeros(3, 4))


def test_a_batch_of_different_sizes_gives_each_sample_its_own_value_and_gradient():
    torch.manual_seed(1)
    costs = [torch.rand(n, m, dtype=torch.float64, requires_grad=True) for n, m in ((5, 3), (2, 4), (6, 6), (1, 1))]
    batch = soft_dtw_batch(costs, 0.3)
    (batch * torch.tensor([1.0, 2.0, 3.0, 4.0], dtype=torch.float64)).sum().backward()
    for k, (w, c) in enumerate(zip((1.0, 2.0, 3.0, 4.0), costs, strict=True)):
        alone = c.detach().clone().requires_grad_(True)
        value = soft_dtw(alone, 0.3)
        (w * value).backward()
        assert batch[k].item() == pytest.approx(value.item(), abs=1e-12)
        torch.testing.assert_close(c.grad, alone.grad)


def test_pairwise_cost_equals_the_summed_squared_differences_and_the_cosine_distance():
    torch.manual_seed(2)
    x, y = torch.randn(7, 5, dtype=torch.float64), torch.randn(4, 5, dtype=torch.float64)
    direct = ((x[:, None, :] - y[None, :, :]) ** 2).sum(-1)
    torch.testing.assert_close(pairwise_cost(x, y), direct)
    self_cost = pairwise_cost(x, x)
    assert torch.all(self_cost >= 0) and self_cost.diagonal().abs().max() < 1e-12  # clamped: never negative
    cos = 1 - (x / x.norm(dim=1, keepdim=True)) @ (y / y.norm(dim=1, keepdim=True)).T
    torch.testing.assert_close(pairwise_cost(x, y, "cosine"), cos)
