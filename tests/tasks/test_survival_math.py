"""The survival task's arithmetic against scikit-survival on the same real data (its breast-cancer set, 198
patients, 51 events), and against naive loops where scikit-survival has no counterpart."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from polymodal.tasks.survival.cox import breslow_baseline, cox_partial_nll, survival_curves
from polymodal.tasks.survival.metrics import (
    brier_scores,
    censoring_survival,
    concordance_index,
    integrated_brier_score,
    kaplan_meier,
    within_follow_up,
)

sksurv = pytest.importorskip("sksurv", reason="the survival extra (scikit-survival) is not installed")


@pytest.fixture(scope="module")
def data():
    from sksurv.datasets import load_breast_cancer

    x, y = load_breast_cancer()
    x = x.drop(columns=["er", "grade"]).to_numpy(np.float64)
    x = (x - x.mean(0)) / x.std(0)
    time = np.ascontiguousarray(y["t.tdm"], dtype=np.float64)
    event = np.ascontiguousarray(y["e.tdm"], dtype=bool)
    return x, time, event


def _structured(event, time):
    return np.array(list(zip(event, time, strict=True)), dtype=[("event", bool), ("time", float)])


def _fit(x, time, event, ties, alpha):
    """Linear Cox coefficients minimising our loss (as scikit-survival scales it: the sum over events / n, plus
    alpha ||w||^2 / 2n) by L-BFGS."""
    w = torch.zeros(x.shape[1], dtype=torch.float64, requires_grad=True)
    xt, tt, et = torch.from_numpy(x), torch.from_numpy(time), torch.from_numpy(event.astype(np.float64))
    opt = torch.optim.LBFGS([w], max_iter=500, tolerance_grad=1e-12, tolerance_change=1e-14,
                            line_search_fn="strong_wolfe")
    n = len(time)

    def closure():
        opt.zero_grad()
        loss = cox_partial_nll(xt @ w, tt, et, ties=ties, reduction="sum") / n + alpha * (w**2).sum() / (2 * n)
        loss.backward()
        return loss

    for _ in range(4):
        opt.step(closure)
    return w.detach().numpy()


@pytest.mark.parametrize("ties", ["breslow", "efron"])
@pytest.mark.parametrize("tied_times", [False, True])
def test_cox_loss_fits_scikit_survivals_coefficients(data, ties, tied_times):
    from sksurv.linear_model import CoxPHSurvivalAnalysis

    x, time, event = data
    if tied_times:  # times rounded to 200 days: many events share a time, where Breslow and Efron differ
        time = np.round(time / 200) * 200 + 1
        assert len(np.unique(time[event])) < event.sum() / 2
    alpha = 5.0
    ref = CoxPHSurvivalAnalysis(alpha=alpha, ties=ties).fit(x, _structured(event, time))
    w = _fit(x, time, event, ties, alpha)
    np.testing.assert_allclose(w, ref.coef_, atol=2e-5)
    assert np.abs(ref.coef_).max() > 0.3  # the fit is not trivially near zero


def test_efron_differs_from_breslow_only_with_tied_event_times(data):
    x, time, event = data
    r = torch.from_numpy(x[:, :5] @ np.linspace(-1, 1, 5))
    t, e = torch.from_numpy(time), torch.from_numpy(event.astype(np.float64))
    assert len(np.unique(time[event])) == event.sum()  # no tied event times in the raw data
    assert torch.allclose(cox_partial_nll(r, t, e, ties="breslow"), cox_partial_nll(r, t, e, ties="efron"))
    tied = torch.round(t / 500) * 500 + 1
    assert cox_partial_nll(r, tied, e, ties="efron") < cox_partial_nll(r, tied, e, ties="breslow")


def _naive_breslow_nll(r, t, e):
    total = 0.0
    for i in range(len(t)):
        if e[i]:
            total -= r[i] - np.log(np.exp(r[t >= t[i]]).sum())
    return total / e.sum()


def test_cox_loss_masked_rows_match_a_naive_loop_on_the_kept_rows():
    rng = np.random.default_rng(0)
    r, t = rng.standard_normal(40), rng.integers(1, 15, 40).astype(np.float64)  # many ties
    e = (rng.random(40) < 0.6).astype(np.float64)
    rows = rng.random(40) < 0.7
    got = cox_partial_nll(torch.from_numpy(r), torch.from_numpy(t), torch.from_numpy(e), rows=torch.from_numpy(rows))
    assert got.item() == pytest.approx(_naive_breslow_nll(r[rows], t[rows], e[rows]), rel=1e-12)
    # scale-free: a shift of every log-risk changes nothing; (B, 1) outputs are read as (B,)
    shifted = cox_partial_nll(torch.from_numpy(r + 30.0)[:, None], torch.from_numpy(t), torch.from_numpy(e),
                              rows=torch.from_numpy(rows))
    assert shifted.item() == pytest.approx(got.item(), rel=1e-10)


def test_cox_loss_without_events_is_a_connected_zero_and_bad_shapes_are_refused():
    r = torch.randn(6, 1, requires_grad=True)
    zero = cox_partial_nll(r, torch.arange(1.0, 7.0), torch.zeros(6))
    assert zero.item() == 0.0 and zero.requires_grad
    zero.backward()
    assert r.grad is not None
    with pytest.raises(ValueError, match=r"one log-risk per sample.*\(6, 2\)"):
        cox_partial_nll(torch.randn(6, 2), torch.arange(1.0, 7.0), torch.ones(6))
    with pytest.raises(ValueError, match="ties='exact'"):
        cox_partial_nll(torch.randn(6), torch.arange(1.0, 7.0), torch.ones(6), ties="exact")  # type: ignore[arg-type]


def test_concordance_index_matches_scikit_survival(data):
    from sksurv.metrics import concordance_index_censored

    x, time, event = data
    risk = x[:, :10] @ np.linspace(-1, 1, 10)
    for t, r in ((time, risk), (np.round(time / 300) * 300 + 1, np.round(risk, 0))):  # ties in time and in risk
        ref = concordance_index_censored(event, t, r)
        got, pairs = concordance_index(t, event, r, chunk=7)
        assert got == pytest.approx(ref[0], rel=1e-12)
        assert pairs == ref[1] + ref[2] + ref[3]
    assert concordance_index(time, np.zeros_like(event), risk) == (None, 0)


def test_breslow_baseline_and_curves_match_scikit_survival(data):
    from sksurv.linear_model.coxph import BreslowEstimator

    x, time, event = data
    risk = x[:, :10] @ np.linspace(-0.5, 0.5, 10)
    ref = BreslowEstimator().fit(risk, event, time)
    times, cumhaz = breslow_baseline(risk, time, event)
    np.testing.assert_allclose(cumhaz, ref.cum_baseline_hazard_(times), rtol=1e-12)
    grid = np.linspace(time.min(), time.max() - 1, 60)
    want = np.stack([f(grid) for f in ref.get_survival_function(risk)])
    np.testing.assert_allclose(survival_curves(risk, grid, times, cumhaz), want, atol=1e-13)
    before = survival_curves(risk, np.array([0.5 * time.min()]), times, cumhaz)
    assert (before == 1.0).all()  # no event yet: exactly 1, also for very high risks
    assert (survival_curves(risk + 800.0, np.array([0.5 * time.min()]), times, cumhaz) == 1.0).all()


def test_kaplan_meier_and_censoring_distribution_match_scikit_survival(data):
    from sksurv.nonparametric import CensoringDistributionEstimator, kaplan_meier_estimator

    _, time, event = data
    tied = np.round(time / 400) * 400 + 1  # events and censorings at shared times
    for t in (time, tied):
        ref_t, ref_s = kaplan_meier_estimator(event, t)
        got_t, got_s = kaplan_meier(t, event)
        np.testing.assert_allclose(got_t, ref_t)
        np.testing.assert_allclose(got_s, ref_s, rtol=1e-12)
        g_times, g = censoring_survival(t, event)
        points = np.unique(t)[:-1]
        want = CensoringDistributionEstimator().fit(_structured(event, t)).predict_proba(points)
        np.testing.assert_allclose(np.interp(points, g_times, g), want, rtol=1e-12)


def test_integrated_brier_score_matches_scikit_survival_on_a_held_out_split(data):
    from sksurv.linear_model import CoxPHSurvivalAnalysis
    from sksurv.metrics import brier_score
    from sksurv.metrics import integrated_brier_score as ref_ibs

    x, time, event = data
    rng = np.random.default_rng(0)
    train = rng.random(len(time)) < 0.65
    train[np.argmax(time)] = True  # scikit-survival's censoring estimate ends at the last training time
    test = ~train
    model = CoxPHSurvivalAnalysis(alpha=50.0).fit(x[train], _structured(event[train], time[train]))
    risk = x @ model.coef_
    times, cumhaz = breslow_baseline(risk[train], time[train], event[train])
    grid = within_follow_up(np.quantile(time[event], np.linspace(0.1, 0.9, 40)), time[test])
    surv = survival_curves(risk[test], grid, times, cumhaz)
    y_train, y_test = _structured(event[train], time[train]), _structured(event[test], time[test])
    censoring = censoring_survival(time[train], event[train])
    np.testing.assert_allclose(brier_scores(time[test], event[test], surv, grid, censoring),
                               brier_score(y_train, y_test, surv, grid)[1], rtol=1e-12)
    got = integrated_brier_score(time[test], event[test], surv, grid, censoring)
    assert got == pytest.approx(ref_ibs(y_train, y_test, surv, grid), rel=1e-12)
    # the curves of scikit-survival's own model give the same score
    want = np.stack([f(grid) for f in model.predict_survival_function(x[test])])
    np.testing.assert_allclose(surv, want, atol=1e-10)
    assert 0.0 < got < 0.25
