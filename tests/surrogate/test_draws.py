"""Joint predictive draws (``Surrogate.predict_draws``): shapes, seeds, calibration, jointness."""

from __future__ import annotations

import numpy as np
import pytest

from mixopt.errors import NotFittedError, SchemaError
from mixopt.surrogate import Targets
from mixopt.surrogate.baselines import RegMixRegression
from mixopt.surrogate.draws import DRAW_LEVEL, calibrated_draws, comonotone_draws, match_marginals
from mixopt.surrogate.flp import FLP, FP
from mixopt.surrogate.flpm import DML, FLPM
from mixopt.testing import mixture_world

#: Monte Carlo tolerance of a draw quantile against the interval end, in interval widths
#: (the 5 % quantile of 4000 draws has sd ~ 0.3 % of the 90 % width for a normal)
QUANTILE_ATOL_WIDTHS = 0.03
N_DRAWS = 4000
RTOL_BATCH = 1e-9  # a row's draws alone vs in a batch (BLAS order)
ATOL_BATCH = 1e-12

FAST_FLPM = dict(n_bootstrap=8, n_starts=3, hidden=8, n_members=2, max_epochs=300, patience=50, seed=0,
                 family="law", stage2="logistic", stage2_inputs="observed", intervals="raw")


@pytest.fixture(scope="module")
def world():
    return mixture_world(n_domains=3, n_benchmarks=2, seed=3)


@pytest.fixture(scope="module")
def runs(world):
    return world.sample_runs([2e7, 6e7, 2e8, 4e8], world.random_mixtures(14, seed=1), loss_noise=0.003,
                             score_noise=0.005, seed=2)


@pytest.fixture(scope="module")
def targets(world):
    mix = world.random_mixtures(6, seed=11)
    return Targets(flops=np.full(6, 4e19), mixture=mix, domains=world.domains)


@pytest.fixture(scope="module")
def models(runs):
    return {
        "flpm": FLPM(**FAST_FLPM).fit(runs),
        "dml": DML(**FAST_FLPM).fit(runs),
        "regmix": RegMixRegression().fit(runs),
    }


def _check_quantiles(draws: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> None:
    a = (1 - DRAW_LEVEL) / 2
    q_lo, q_hi = np.quantile(draws, (a, 1 - a), axis=0)
    width = np.maximum(upper - lower, 1e-12)
    ok = np.isfinite(lower)
    np.testing.assert_allclose(q_lo[ok], lower[ok], rtol=0, atol=float(QUANTILE_ATOL_WIDTHS * width[ok].max()))
    np.testing.assert_allclose(q_hi[ok], upper[ok], rtol=0, atol=float(QUANTILE_ATOL_WIDTHS * width[ok].max()))


@pytest.mark.parametrize("kind", ["flpm", "dml", "regmix"])
def test_draws_are_shaped_seeded_and_calibrated(models, targets, kind):
    model = models[kind]
    draws = model.predict_draws(targets, n_draws=N_DRAWS, seed=5)
    pred = model.predict(targets, level=DRAW_LEVEL)
    assert tuple(draws) == pred.names
    for j, q in enumerate(pred.names):
        d = draws[q]
        assert d.shape == (N_DRAWS, len(targets))
        if q in pred.unpredictable:
            assert np.isnan(d).all()
            continue
        assert np.isfinite(d).all(), q
        _check_quantiles(d, pred.lower[:, j], pred.upper[:, j])
    again = model.predict_draws(targets, n_draws=N_DRAWS, seed=5)
    other = model.predict_draws(targets, n_draws=N_DRAWS, seed=6)
    q = pred.names[0]
    np.testing.assert_array_equal(again[q], draws[q])
    assert not np.array_equal(other[q], draws[q])


@pytest.mark.parametrize("kind", ["flpm", "regmix"])
def test_draws_do_not_depend_on_the_batch(models, targets, kind):
    model = models[kind]
    batch = model.predict_draws(targets, n_draws=64, seed=1)
    for i in (0, 4):
        one = model.predict_draws(Targets(flops=targets.flops[i : i + 1], mixture=targets.mixture[i : i + 1],
                                          domains=targets.domains), n_draws=64, seed=1)
        for q, d in one.items():
            np.testing.assert_allclose(d[:, 0], batch[q][:, i], rtol=RTOL_BATCH, atol=ATOL_BATCH)


def test_draws_reject_bad_arguments(models, targets):
    model = models["regmix"]
    for bad in (dict(n_draws=0, seed=1), dict(n_draws=2.5, seed=1), dict(n_draws=10, seed=-1), dict(n_draws=True, seed=0)):
        with pytest.raises(SchemaError, match="n_draws|seed"):
            model.predict_draws(targets, **bad)
    with pytest.raises(SchemaError, match="Targets"):
        model.predict_draws(np.zeros(3), n_draws=3, seed=0)
    with pytest.raises(NotFittedError):
        FLP().predict_draws(targets, n_draws=3, seed=0)
    with pytest.raises(NotFittedError):
        FP().predict_draws(targets, n_draws=3, seed=0)


def test_comonotone_default_moves_rows_together():
    mean = np.array([[1.0, 10.0], [2.0, 20.0], [3.0, 30.0]])
    lower = mean - np.array([[0.1, 1.0], [0.2, 3.0], [0.3, 1.0]])
    upper = mean + np.array([[0.3, 2.0], [0.2, 1.0], [0.1, 2.0]])
    d = comonotone_draws(mean, lower, upper, ("a", "b"), n_draws=N_DRAWS, seed=0)
    for j, q in enumerate(("a", "b")):
        _check_quantiles(d[q], lower[:, j], upper[:, j])
        ranks = np.argsort(np.argsort(d[q], axis=0), axis=0)
        assert np.all(ranks == ranks[:, :1])  # one shared normal per draw: same rank in every row
    # the two quantities get independent normals
    assert abs(np.corrcoef(d["a"][:, 0], d["b"][:, 0])[0, 1]) < 0.1


def test_match_marginals_keeps_the_joint_ranks_and_hits_the_interval():
    rng = np.random.default_rng(0)
    shared = rng.standard_normal((N_DRAWS, 1))
    raw = 5.0 + 0.01 * (0.8 * shared + 0.6 * rng.standard_normal((N_DRAWS, 3)))  # correlated rows, narrow
    mean, lower, upper = np.full(3, 5.0), np.array([4.5, 4.0, 4.9]), np.array([5.5, 5.2, 5.6])
    out = match_marginals(raw, mean, lower, upper, level=DRAW_LEVEL, z=rng.standard_normal(N_DRAWS))
    _check_quantiles(out, lower, upper)
    for i in range(3):  # a monotone map per row: the ranks (hence the copula) are unchanged
        np.testing.assert_array_equal(np.argsort(out[:, i]), np.argsort(raw[:, i]))
    # a degenerate raw row (no spread) falls back to the shared normal
    raw[:, 1] = 5.0
    out = match_marginals(raw, mean, lower, upper, level=DRAW_LEVEL, z=rng.standard_normal(N_DRAWS))
    _check_quantiles(out, lower, upper)
    d = calibrated_draws({"a": raw}, mean[:, None], lower[:, None], upper[:, None], ("a",), n_draws=N_DRAWS, seed=0)
    _check_quantiles(d["a"], lower, upper)


def test_prediction_states_the_extrapolation(models, targets, runs):
    pred = models["regmix"].predict(targets)
    top = float(runs.final().flops().max())
    np.testing.assert_allclose(pred.compute_ratio, targets.flops / top)
    info = pred.extrapolation
    assert info["compute_ratio_max"] == pytest.approx(float(targets.flops.max() / top))
    assert info["calibrated_ratio"] is None
    assert info["beyond_calibration"] == bool(targets.flops.max() > top)
