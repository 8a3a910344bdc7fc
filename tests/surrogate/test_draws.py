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
from mixopt.testing import mixture_world, single_domain_world

#: Monte Carlo tolerance of a draw quantile against the interval end, in interval widths
#: (the 5 % quantile of 4000 draws has sd ~ 0.3 % of the 90 % width for a normal)
QUANTILE_ATOL_WIDTHS = 0.03
N_DRAWS = 4000
RTOL_BATCH = 1e-8  # a row's draws alone vs in a batch (BLAS order; regmix's shifted-log intervals amplify it to ~3e-9)
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


SINGLE_SIZES = [2e7, 5e7, 1e8, 2e8, 4e8, 7e8]


@pytest.fixture(scope="module")
def single_runs():
    world = single_domain_world(seed=3)
    return world.sample_runs(SINGLE_SIZES, None, seed=3, loss_noise=0.003, score_noise=0.004)


@pytest.fixture(scope="module")
def models(runs, single_runs):
    return {
        "flpm": FLPM(**FAST_FLPM).fit(runs),
        # calibrated intervals (the default): the stage-1 form fixed, the rest chosen by the internal backtest
        "flpm_cal": FLPM(n_bootstrap=8, n_starts=3, stage1="flpm", family="law", stage2="logistic",
                         stage2_inputs="fitted", seed=0).fit(runs),
        "dml": DML(**FAST_FLPM).fit(runs),
        "regmix": RegMixRegression().fit(runs),
        "flp": FLP(n_bootstrap=40).fit(single_runs),
        "fp": FP(n_bootstrap=40).fit(single_runs),
    }


def _targets_for(kind, targets):
    if kind in ("flp", "fp"):  # compute only: one per size, up to 30x beyond the largest run
        return Targets.from_params_tokens(np.array([3e8, 1e9, 2e9, 4e9]), 20 * np.array([3e8, 1e9, 2e9, 4e9]))
    return targets


def _check_quantiles(draws: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> None:
    a = (1 - DRAW_LEVEL) / 2
    q_lo, q_hi = np.quantile(draws, (a, 1 - a), axis=0)
    width = np.maximum(upper - lower, 1e-12)
    ok = np.isfinite(lower)
    np.testing.assert_allclose(q_lo[ok], lower[ok], rtol=0, atol=float(QUANTILE_ATOL_WIDTHS * width[ok].max()))
    np.testing.assert_allclose(q_hi[ok], upper[ok], rtol=0, atol=float(QUANTILE_ATOL_WIDTHS * width[ok].max()))


@pytest.mark.parametrize("kind", ["flpm", "flpm_cal", "dml", "regmix", "flp", "fp"])
def test_draws_are_shaped_seeded_and_calibrated(models, targets, kind):
    model = models[kind]
    targets = _targets_for(kind, targets)
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


@pytest.mark.parametrize("kind", ["flpm", "regmix", "flp"])
def test_draws_do_not_depend_on_the_batch(models, targets, kind):
    model = models[kind]
    targets = _targets_for(kind, targets)
    batch = model.predict_draws(targets, n_draws=64, seed=1)
    for i in (0, 3):
        mix = None if targets.mixture is None else targets.mixture[i : i + 1]
        one = model.predict_draws(Targets(flops=targets.flops[i : i + 1], mixture=mix, domains=targets.domains),
                                  n_draws=64, seed=1)
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


@pytest.mark.parametrize("kind", ["flpm", "flp"])
def test_draws_are_joint_across_rows(models, targets, kind):
    """One parameter draw for every row: nearby targets move together, but not in lockstep
    (the comonotone default would give rank correlation 1 everywhere)."""
    model = models[kind]
    targets = _targets_for(kind, targets)
    draws = model.predict_draws(targets, n_draws=2000, seed=2)
    q = model.outputs_[0]
    d = draws[q]
    ranks = np.argsort(np.argsort(d, axis=0), axis=0).astype(float)
    rho = np.corrcoef(ranks.T)
    off = rho[~np.eye(rho.shape[0], dtype=bool)]
    assert off.mean() > 0.3  # joint: shared parameters
    assert off.min() < 0.999  # not the comonotone stand-in
    # P(A beats B) from the draws is a probability, and consistent: P(a<b) + P(b<a) = 1 (no ties)
    p = np.mean(d[:, 0] < d[:, 1])
    assert 0.0 <= p <= 1.0 and p + np.mean(d[:, 1] < d[:, 0]) == pytest.approx(1.0)


def test_intervals_widen_with_the_targets_distance_beyond_the_calibration(models):
    """Through ``predict``: beyond the fitted compute the interval is the model's own one times
    the calibrated factor, and the factor keeps growing past what the internal folds reached."""
    from mixopt.surrogate.calibrate import extrapolation_distance

    model = models["flp"]
    cal = model.calibrator_
    assert cal is not None and not cal.is_identity
    sizes = np.array([1e9, 3e9, 1e10, 3e10, 1e11])
    tg = Targets.from_params_tokens(sizes, 20 * sizes)
    pred = model.predict(tg, level=cal.level)
    raw = model._predict_raw(tg, intervals=True, level=cal.level)
    calib = model._predict_calibrated(tg, intervals=True, level=cal.level)  # before the cut to the metric's range
    d = extrapolation_distance(tg.flops, model.fit_flops_max_)
    for q, group in (("loss", "loss"), (model.outputs_[1], "score")):
        j = pred.index(q)
        if not np.isfinite(pred.mean[:, j]).all():
            continue
        if group == "loss":  # the log-space loss interval is scaled in log loss (it stays positive)
            widen = np.log(calib.upper[:, j] / calib.mean[:, j]) / np.log(raw.upper[:, j] / raw.mean[:, j])
        else:
            widen = (calib.upper[:, j] - calib.mean[:, j]) / (raw.upper[:, j] - raw.mean[:, j])
            lo, hi = model.score_range_[q]
            assert np.all(pred.lower[:, j] >= lo) and np.all(pred.upper[:, j] <= hi)
        np.testing.assert_allclose(widen, cal.factor(d, group), rtol=1e-9)
        beyond = d > cal.reach(group)
        assert beyond[-2:].all()
        assert np.all(np.diff(widen[beyond]) > 0)  # grows with distance past the calibrated reach
    # the prediction says how far it extrapolates and that it is beyond the calibration
    np.testing.assert_allclose(pred.compute_ratio, tg.flops / model.fit_flops_max_)
    assert pred.calibrated_ratio == pytest.approx(cal.calibrated_ratio)
    assert pred.beyond_calibration[-1] and pred.extrapolation["beyond_calibration"]
    assert pred.extrapolation["compute_ratio_max"] == pytest.approx(float(pred.compute_ratio.max()))


def test_flpm_calibrated_intervals_equal_the_per_column_rule(models, world):
    """The vectorised calibrated path: each side of the model's own reference-level interval
    times the group's factor, never narrower than the model's own interval at the level."""
    from mixopt.surrogate.base import normal_quantile
    from mixopt.surrogate.calibrate import extrapolation_distance

    model = models["flpm_cal"]
    cal = model.calibrator_
    assert cal is not None
    mix = world.random_mixtures(5, seed=12)
    tg = Targets(flops=model.train_max_flops_ * np.array([0.5, 1.0, 3.0, 30.0, 300.0]), mixture=mix, domains=world.domains)
    for level in (0.9, 0.8):
        pred = model.predict(tg, level=level)
        raw = model._predict_raw(tg, intervals=True, level=cal.level)
        d = extrapolation_distance(tg.flops, model.train_max_flops_)
        k = normal_quantile(0.5 + level / 2) / normal_quantile(0.5 + cal.level / 2)
        for j, q in enumerate(pred.names):
            mu, lo, hi = raw.mean[:, j], raw.lower[:, j], raw.upper[:, j]
            f = cal.factor(d, q.split(":")[0], level)
            np.testing.assert_allclose(pred.lower[:, j], np.minimum(mu - f * (mu - lo), mu - k * (mu - lo)), rtol=1e-12)
            np.testing.assert_allclose(pred.upper[:, j], np.maximum(mu + f * (hi - mu), mu + k * (hi - mu)), rtol=1e-12)
    assert pred.calibrated_ratio == pytest.approx(cal.calibrated_ratio)
    assert pred.beyond_calibration[-1] and not pred.beyond_calibration[0]


def test_regmix_draws_agree_whichever_way_the_product_is_associated(models, targets):
    """Fewer draws than rows takes ``(delta @ kinv) @ K^T``, a single row ``delta @ (K @ kinv)^T``."""
    model = models["regmix"]
    batch = model.predict_draws(targets, n_draws=3, seed=4)
    for i in (0, 5):
        one = model.predict_draws(Targets(flops=targets.flops[i : i + 1], mixture=targets.mixture[i : i + 1],
                                          domains=targets.domains), n_draws=3, seed=4)
        for q, d in one.items():
            np.testing.assert_allclose(d[:, 0], batch[q][:, i], rtol=RTOL_BATCH, atol=ATOL_BATCH)


def test_flpm_calibration_factors_kept_per_distances_equal_the_calibrators(models, world):
    # the small-batch cache of calibration factors (one (rows, columns) matrix per level) returns the
    # calibrator's own numbers, and a different calibrator object (a refit) is never served another's factors
    import copy

    from mixopt.surrogate.calibrate import extrapolation_distance

    model = models["flpm_cal"]
    cal = model.calibrator_
    tg = Targets(flops=model.train_max_flops_ * np.array([0.5, 3.0, 30.0]), mixture=world.random_mixtures(3, seed=13),
                 domains=world.domains)
    d = extrapolation_distance(tg.flops, model.train_max_flops_)
    names = tuple(model.outputs_)
    weak_group = "weak" if "weak" in cal.params_ else "score"
    weak = getattr(model, "weak_", {})

    def group(q):
        return weak_group if q in weak else q.split(":")[0]

    for level in (0.9, 0.8):
        for _ in range(2):  # computed, then kept
            f, f_std = model._cal_matrices(cal, d, names, weak_group, weak, level)
            for j, q in enumerate(names):
                np.testing.assert_array_equal(f[:, j], cal.factor(d, groups=group(q), level=level))
                np.testing.assert_array_equal(f_std[:, j], np.maximum(cal.factor(d, groups=group(q), level=None), 1.0))
    first = model.predict(tg, level=0.8)
    again = model.predict(tg, level=0.8)
    np.testing.assert_array_equal(first.lower, again.lower)
    other = copy.deepcopy(cal)
    other.max_factor = other.min_factor = 7.0  # every factor 7
    assert np.all(model._cal_matrices(other, d, names, weak_group, weak, 0.9)[0] == 7.0)
    f = model._cal_matrices(cal, d, names, weak_group, weak, 0.9)[0]
    np.testing.assert_array_equal(f[:, 0], cal.factor(d, groups=group(names[0]), level=0.9))
