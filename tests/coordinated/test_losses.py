"""The coordinated objectives against naive per-pair transcriptions of their formulas."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from polymodal.coordinated.losses import (
    CLIPLoss,
    DCCALoss,
    SigLIPLoss,
    build_objective,
    cca_correlation,
    clip_loss,
    dcca_loss,
    modality_pairs,
    pairwise_objective,
    siglip_loss,
)


def _pair(n: int = 7, d: int = 5, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    a = F.normalize(torch.randn(n, d, generator=g, dtype=torch.float64), dim=1)
    b = F.normalize(torch.randn(n, d, generator=g, dtype=torch.float64), dim=1)
    return a, b


def naive_clip(a, b, scale):
    n = len(a)
    s = [[scale * sum(float(a[i, k] * b[j, k]) for k in range(a.shape[1])) for j in range(n)] for i in range(n)]
    rows = [-(s[i][i] - math.log(sum(math.exp(s[i][j]) for j in range(n)))) for i in range(n)]
    cols = [-(s[j][j] - math.log(sum(math.exp(s[i][j]) for i in range(n)))) for j in range(n)]
    return (sum(rows) / n + sum(cols) / n) / 2


def naive_siglip(a, b, t, bias):
    n, total = len(a), 0.0
    for i in range(n):
        for j in range(n):
            logit = math.exp(t) * sum(float(a[i, k] * b[j, k]) for k in range(a.shape[1])) + bias
            z = 1.0 if i == j else -1.0
            total += -math.log(1 / (1 + math.exp(-z * logit)))
    return total / n


@pytest.mark.parametrize("log_scale", [0.0, math.log(1 / 0.07), 2.5])
def test_clip_loss_equals_naive_loop(log_scale):
    a, b = _pair()
    got = clip_loss(a, b, torch.tensor(log_scale, dtype=torch.float64))
    assert float(got) == pytest.approx(naive_clip(a, b, math.exp(log_scale)), rel=1e-10)


def test_clip_scale_is_clamped_at_100():
    a, b = _pair()
    got = clip_loss(a, b, torch.tensor(10.0, dtype=torch.float64))  # exp(10) > 100: clamped
    assert float(got) == pytest.approx(naive_clip(a, b, 100.0), rel=1e-10)
    module = CLIPLoss()
    assert float(module.log_scale.detach()) == pytest.approx(math.log(1 / 0.07))
    with torch.no_grad():
        module.log_scale.fill_(7.0)
    assert module.scale == pytest.approx(100.0)
    module.clamp_()
    assert float(module.log_scale.detach()) == pytest.approx(math.log(100.0))
    # no gradient flows into a clamped scale, as in CLIP
    with torch.no_grad():
        module.log_scale.fill_(7.0)
    module(a.float(), b.float()).backward()
    assert float(module.log_scale.grad) == 0.0


@pytest.mark.parametrize(("t", "bias"), [(math.log(10.0), -10.0), (0.3, 1.5)])
def test_siglip_loss_equals_naive_loop(t, bias):
    a, b = _pair(seed=1)
    got = siglip_loss(a, b, torch.tensor(t, dtype=torch.float64), bias)
    assert float(got) == pytest.approx(naive_siglip(a, b, t, bias), rel=1e-10)


def test_siglip_module_init_and_learns_both_parameters():
    m = SigLIPLoss()
    assert float(m.log_scale.detach()) == pytest.approx(math.log(10.0)) and float(m.bias.detach()) == -10.0
    a, b = _pair(seed=2)
    m(a.float(), b.float()).backward()
    assert m.log_scale.grad is not None and float(m.log_scale.grad) != 0.0
    assert m.bias.grad is not None and float(m.bias.grad) != 0.0


def _known_correlation(n: int, rho: float, seed: int = 0):
    """Two 3-d views whose first coordinates have correlation rho; everything else independent."""
    rng = np.random.default_rng(seed)
    z = rng.standard_normal(n)
    sigma2 = 1 / rho - 1  # corr(z + e1, z + e2) = 1 / (1 + sigma^2)
    x = rng.standard_normal((n, 3))
    y = rng.standard_normal((n, 3))
    x[:, 0] = z + math.sqrt(sigma2) * rng.standard_normal(n)
    y[:, 0] = z + math.sqrt(sigma2) * rng.standard_normal(n)
    mix1, mix2 = rng.standard_normal((3, 3)), rng.standard_normal((3, 3))  # invertible mixing: CCA is invariant
    return x @ mix1, y @ mix2


def numpy_cca(x, y, r1=0.0, r2=0.0):
    """Canonical correlations by the textbook route: eigenvalues of S11^-1 S12 S22^-1 S21."""
    n = len(x)
    xc, yc = x - x.mean(0), y - y.mean(0)
    s11 = xc.T @ xc / (n - 1) + r1 * np.eye(x.shape[1])
    s22 = yc.T @ yc / (n - 1) + r2 * np.eye(y.shape[1])
    s12 = xc.T @ yc / (n - 1)
    m = np.linalg.solve(s11, s12) @ np.linalg.solve(s22, s12.T)
    return np.sqrt(np.sort(np.clip(np.linalg.eigvals(m).real, 0, None))[::-1])


def test_dcca_correlation_matches_numpy_cca_on_known_correlation():
    x, y = _known_correlation(20000, rho=0.6)
    reference = numpy_cca(x, y, 1e-3, 1e-3)
    got1 = float(cca_correlation(torch.from_numpy(x), torch.from_numpy(y), k=1))
    assert got1 == pytest.approx(reference[0], rel=1e-6)
    assert got1 == pytest.approx(0.6, abs=0.02)  # the correlation built into the data
    got_all = float(cca_correlation(torch.from_numpy(x), torch.from_numpy(y)))
    assert got_all == pytest.approx(reference.sum(), rel=1e-6)
    assert float(dcca_loss(torch.from_numpy(x), torch.from_numpy(y), k=2)) == pytest.approx(-reference[:2].sum(), rel=1e-6)


def test_dcca_ridge_lowers_correlations_and_gradient_flows():
    x, y = _known_correlation(500, rho=0.8, seed=1)
    hx = torch.from_numpy(x).requires_grad_(True)
    c0 = cca_correlation(hx, torch.from_numpy(y), k=1, r1=0.0, r2=0.0)
    c1 = cca_correlation(hx, torch.from_numpy(y), k=1, r1=1.0, r2=1.0)
    assert float(c1) < float(c0)
    assert float(c1) == pytest.approx(numpy_cca(x, y, 1.0, 1.0)[0], rel=1e-6)
    c0.backward()
    assert torch.isfinite(hx.grad).all() and hx.grad.abs().sum() > 0


def test_dcca_projection_aligns_paired_views():
    x, y = _known_correlation(4000, rho=0.9, seed=2)
    m = DCCALoss(dim=3, k=1)
    m.train()
    for chunk in range(4):
        sl = slice(chunk * 1000, (chunk + 1) * 1000)
        m(torch.from_numpy(x[sl]).float(), torch.from_numpy(y[sl]).float())
    u = m.project(0, torch.from_numpy(x).float())[:, 0].double().numpy()
    v = m.project(1, torch.from_numpy(y).float())[:, 0].double().numpy()
    assert abs(np.corrcoef(u, v)[0, 1]) == pytest.approx(0.9, abs=0.03)
    assert np.corrcoef(u, v)[0, 1] > 0  # both projections share one sign: a dot product compares them


def test_pairings_and_pairwise_mean():
    assert modality_pairs(["a", "b", "c"], "anchor") == [("a", "b"), ("a", "c")]
    assert modality_pairs(["a", "b", "c"], "anchor", anchor="c") == [("c", "a"), ("c", "b")]
    assert modality_pairs(["a", "b", "c"], "all_pairs") == [("a", "b"), ("a", "c"), ("b", "c")]
    with pytest.raises(ValueError, match="anchor modality 'z'"):
        modality_pairs(["a", "b"], anchor="z")
    with pytest.raises(ValueError, match="pairing 'ring'"):
        modality_pairs(["a", "b"], "ring")
    g = torch.Generator().manual_seed(3)
    emb = {m: F.normalize(torch.randn(6, 4, generator=g), dim=1) for m in "abc"}
    present = {m: torch.ones(6, dtype=torch.bool) for m in "abc"}
    present["c"][[1, 4]] = False
    fn = CLIPLoss()
    total, logs = pairwise_objective(emb, modality_pairs("abc", "all_pairs"), fn, present)
    rows = present["c"]
    expected = (fn(emb["a"], emb["b"]) + fn(emb["a"][rows], emb["c"][rows]) + fn(emb["b"][rows], emb["c"][rows])) / 3
    assert float(total) == pytest.approx(float(expected), rel=1e-6)
    assert set(logs) == {"a-b", "a-c", "b-c"}


def test_build_objective_and_bad_input():
    assert isinstance(build_objective("clip", 8), CLIPLoss)
    assert isinstance(build_objective("siglip", 8), SigLIPLoss)
    assert isinstance(build_objective("dcca", 8, k=4), DCCALoss)
    with pytest.raises(ValueError, match="unknown contrastive loss 'info'"):
        build_objective("info", 8)
    with pytest.raises(ValueError, match=r"\(5, 3\) and \(4, 3\)"):
        clip_loss(torch.zeros(5, 3), torch.zeros(4, 3), 1.0)


def test_dcca_gradient_is_finite_with_coinciding_eigenvalues():
    """Unit embeddings that use only a few of their directions: the symmetric square root's gradient would be
    NaN (equal eigenvalues), the Cholesky route's is finite."""
    g = torch.Generator().manual_seed(4)
    z = torch.randn(128, 3, generator=g, dtype=torch.float64)
    h1 = F.normalize(torch.cat([z, torch.zeros(128, 13, dtype=torch.float64)], 1), dim=1).requires_grad_(True)
    h2 = F.normalize(torch.cat([z + 0.3 * torch.randn(128, 3, generator=g, dtype=torch.float64),
                                torch.zeros(128, 13, dtype=torch.float64)], 1), dim=1).requires_grad_(True)
    loss = dcca_loss(h1, h2, k=10)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(h1.grad).all() and torch.isfinite(h2.grad).all()
    assert h1.grad.abs().sum() > 0
