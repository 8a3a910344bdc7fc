"""Metric laws fitted to many task metrics at once: recovery, regularisation, errors."""

from __future__ import annotations

import numpy as np
import pytest

from mixopt.errors import ConfigError, FitError
from mixopt.laws.metric import fit_metric_laws
from mixopt.testing.metric_worlds import olmix_like_runs

#: tolerances, named
RTOL_NOISE_FREE = 0.01  # mean held-out relative error on noise-free DML-form metrics
RTOL_NOISY = 0.03  # mean held-out relative error with 1 % noise (the noise floor is ~0.8 %)
MAX_RARE_EFFECT = 0.5  # |coefficient| of a domain seen in one run, in log-metric units per unit ratio


def _split(runs, n_test):
    R, Y = runs.mixture(), runs.scores()
    return R[:-n_test], Y[:-n_test], R[-n_test:], Y[-n_test:]


@pytest.mark.parametrize("form", ["dml", "flpm"])
def test_noise_free_metrics_predicted_at_held_out_mixtures(form):
    runs, _ = olmix_like_runs(6, 120, 12, seed=1, noise=0.0, concentration=1.0)
    Rtr, Ytr, Rte, Yte = _split(runs, 30)
    laws = fit_metric_laws(Rtr, Ytr, form=form, residual=False)
    err = np.mean(np.abs(laws.predict(Rte) - Yte) / Yte)
    assert err < RTOL_NOISE_FREE, err
    assert laws.coef.shape == (12, 6) and laws.floor.shape == (12,)


@pytest.mark.parametrize("form", ["dml", "flpm"])
def test_noisy_metrics_with_residual_are_near_the_noise_floor(form):
    runs, _ = olmix_like_runs(8, 150, 10, seed=2, noise=0.01)
    Rtr, Ytr, Rte, Yte = _split(runs, 40)
    laws = fit_metric_laws(Rtr, Ytr, form=form, residual=True)
    pred = laws.predict(Rte)
    assert np.all(np.isfinite(pred))
    assert np.mean(np.abs(pred - Yte) / Yte) < RTOL_NOISY
    # the reported spread is the leave-one-out error: the right order of magnitude
    assert np.all((laws.loo_log_rmse > 0.002) & (laws.loo_log_rmse < 0.2))


def test_ridge_keeps_a_domain_seen_in_one_run_stable():
    """A domain used by a single run must not get a free coefficient (Olmix-law instability)."""
    runs, _ = olmix_like_runs(10, 80, 8, seed=3, noise=0.01, concentration=1.0)
    R, Y = runs.mixture(), runs.scores()
    R = R.copy()
    R[:, -1] = 0.0
    R[0, -1] = 0.3  # only run 0 uses the last domain
    R /= R.sum(axis=1, keepdims=True)
    laws = fit_metric_laws(R, Y, form="dml", residual=False)
    assert np.all(np.abs(laws.coef[:, -1]) < MAX_RARE_EFFECT), laws.coef[:, -1]
    probe = np.full((1, 10), 0.1)
    assert np.all(np.isfinite(laws.predict(probe)))


def test_all_metrics_fitted_in_one_batch_match_single_metric_fits():
    runs, _ = olmix_like_runs(5, 60, 6, seed=4)
    R, Y = runs.mixture(), runs.scores()
    together = fit_metric_laws(R, Y, form="flpm", residual=False).predict(R[:5])
    alone = np.column_stack([fit_metric_laws(R, Y[:, [j]], form="flpm", residual=False).predict(R[:5])[:, 0] for j in range(6)])
    np.testing.assert_allclose(together, alone, rtol=1e-10)


def test_errors_are_clear():
    R = np.full((3, 2), 0.5)
    with pytest.raises(FitError, match="at least 4 runs"):
        fit_metric_laws(R, np.ones((3, 1)))
    with pytest.raises(ConfigError, match="form must be one of"):
        fit_metric_laws(np.full((6, 2), 0.5), np.ones((6, 1)), form="nope")
    with pytest.raises(FitError, match="must be > 0"):
        fit_metric_laws(np.full((6, 2), 0.5), -np.ones((6, 1)))


def _sqdist_by_differences(a, b):
    d = a[:, None, :] - b[None, :, :]
    return np.einsum("ijk,ijk->ij", d, d)


def test_sqdist_matches_differences_and_is_batch_independent_within_its_tolerance():
    from mixopt.laws.metric import SQDIST_ATOL, sqdist

    rng = np.random.default_rng(0)
    train = rng.standard_normal((60, 12))
    rows = np.vstack([rng.standard_normal((500, 12)), train[:5], train[:5] + 1e-9])  # exact and near-duplicates
    scale = (np.einsum("ij,ij->i", rows, rows)[:, None] + np.einsum("ij,ij->i", train, train)[None, :])
    got = sqdist(rows, train)
    assert got.min() >= 0.0
    assert np.all(np.abs(got - _sqdist_by_differences(rows, train)) <= SQDIST_ATOL * scale)
    for i in (0, 137, 501):  # a row alone vs in the batch
        one = sqdist(rows[i : i + 1], train)[0]
        assert np.all(np.abs(one - got[i]) <= SQDIST_ATOL * scale[i])
    t_sq = np.einsum("ij,ij->i", train, train)
    np.testing.assert_array_equal(sqdist(rows, train, t_sq), got)
