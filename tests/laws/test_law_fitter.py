"""LawFitter: recovery, intervals, optimiser checks, bootstrap by run, errors."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mixopt.errors import ConfigError, FitError, NotFittedError, SchemaError
from mixopt.laws import (
    ChinchillaLaw,
    FPPowerLaw,
    GroupResample,
    Law,
    LawFitter,
    Linear,
    Param,
    PowerLawWithOffset,
    PurePowerLaw,
    Sigmoid,
    combine_interval,
    predictive_std,
)

#: noise-free data must give back the generating parameters this closely
RECOVERY_RTOL, RECOVERY_ATOL = 1e-6, 1e-7
#: projected gradient of the (delta-scaled) objective at the optimum
GRAD_ATOL = 1e-5
#: batched bootstrap refits vs one L-BFGS-B fit per draw
BOOT_RTOL, BOOT_ATOL = 1e-4, 1e-5
#: fraction of seeds whose 90% interval must cover the truth (expected ~0.9)
MIN_COVERAGE = 0.7
#: numerical slack when comparing objectives of equivalent fits
OBJ_ATOL = 1e-12

TRUE_OFFSET = np.array([1.8, math.log(1.2), 0.3])  # E, log_a, alpha
COMPUTE = np.logspace(18, 20.5, 12)


def offset_data(noise: float = 0.0, seed: int = 0, compute: np.ndarray = COMPUTE) -> tuple[np.ndarray, np.ndarray]:
    law = PowerLawWithOffset(reference=1e19)
    y = law.predict(compute[:, None], TRUE_OFFSET)
    if noise:
        y = y * np.exp(np.random.default_rng(seed).normal(0.0, noise, y.shape))
    return compute, y


def _recovery_cases() -> list[tuple[str, Law, np.ndarray, np.ndarray, dict]]:
    c = np.logspace(18, 21, 15)
    loss = np.linspace(2.0, 4.5, 40)
    n = np.repeat(np.logspace(7, 9.5, 6), 5)
    nd = np.column_stack([n, n * np.tile([5.0, 10.0, 20.0, 40.0, 80.0], 6)])
    return [
        ("power_offset", PowerLawWithOffset(reference=1e19), c, TRUE_OFFSET, {}),
        ("pure_power", PurePowerLaw(reference=1e19), c, np.array([0.9, -0.05]), {}),
        ("fp_power", FPPowerLaw(reference=1e19), c, np.array([-1.2, 0.15]), {}),
        ("linear", Linear(), loss, np.array([1.7, -0.35]), {}),
        ("sigmoid", Sigmoid(floor=0.25, ceiling_bounds=(0.25, 1.0)), loss, np.array([0.85, 4.0, 3.0]), {}),
        ("chinchilla", ChinchillaLaw(), nd, np.array([1.8, math.log(0.4), 0.34, math.log(0.6), 0.28]),
         {"loss": "squared", "n_starts": 16}),
    ]


@pytest.mark.parametrize(("name", "law", "x", "theta", "kw"), _recovery_cases(), ids=lambda v: v if isinstance(v, str) else "")
def test_noise_free_data_recovers_the_parameters(name: str, law: Law, x: np.ndarray, theta: np.ndarray, kw: dict) -> None:
    y = law.predict(x if x.ndim == 2 else x[:, None], theta)
    fit = LawFitter(law, **kw).fit(x, y)
    np.testing.assert_allclose(fit.params_, theta, rtol=RECOVERY_RTOL, atol=RECOVERY_ATOL)
    np.testing.assert_allclose(fit.predict(x), y, rtol=RECOVERY_RTOL, atol=RECOVERY_ATOL)
    assert fit.residual_scale_ < 1e-6
    assert fit.bootstrap_params_.shape == (0, law.n_params)


def test_starts_table_records_every_start() -> None:
    x, y = offset_data(0.01)
    fit = LawFitter(PowerLawWithOffset(reference=1e19), n_starts=5).fit(x, y)
    t = fit.starts_
    assert isinstance(t, pl.DataFrame) and t.height == 5
    for col in ("start", "method", "init:E", "init:log_a", "init:alpha", "E", "log_a", "alpha", "objective",
                "converged", "message", "n_iter"):
        assert col in t.columns
    assert fit.objective_ == pytest.approx(t["objective"].min(), rel=1e-9, abs=OBJ_ATOL)


def test_closed_form_laws_record_one_closed_form_start() -> None:
    x = np.linspace(2.0, 4.0, 20)
    y = 1.5 - 0.3 * x
    fit = LawFitter(Linear(), loss="squared").fit(x, y)
    assert fit.starts_["method"].to_list() == ["closed_form"]
    fit_h = LawFitter(Linear(), loss="huber").fit(x, y)
    assert fit_h.starts_["method"].to_list() == ["irls"]


def test_huber_closed_form_matches_lbfgsb_on_the_same_objective() -> None:
    rng = np.random.default_rng(3)
    x = np.linspace(2.0, 4.0, 60)
    y = 1.5 - 0.3 * x + rng.standard_t(2, size=60) * 0.02

    class NonlinearLinear(Linear):  # the same law without its design: forces L-BFGS-B
        name = "linear_nl"

        def design(self, x):  # noqa: ANN001, ANN201
            return None

    a = LawFitter(Linear(), loss="huber", huber_delta=0.01).fit(x, y)
    b = LawFitter(NonlinearLinear(), loss="huber", huber_delta=0.01, n_starts=4).fit(x, y)
    assert a.objective_ <= b.objective_ + 1e-10
    np.testing.assert_allclose(a.params_, b.params_, rtol=1e-4, atol=1e-5)


def test_closed_form_outside_the_bounds_falls_back_to_a_bounded_fit() -> None:
    # loss *rising* with compute: the unconstrained pure power law has alpha > 0
    c = np.logspace(18, 20, 10)
    y = 2.0 * (c / 1e19) ** 0.05
    fit = LawFitter(PurePowerLaw(reference=1e19), loss="squared").fit(c, y)
    assert fit.params_[1] == pytest.approx(0.0, abs=1e-12)  # alpha at its upper bound 0
    assert set(fit.starts_["method"].to_list()) & {"lm", "lbfgsb"}  # a bounded iterative fit, not the closed form


def test_bootstrap_intervals_cover_the_true_law_most_of_the_time() -> None:
    law = PowerLawWithOffset(reference=1e19)
    target = np.array([1e21, 1e22])  # 3x and 30x beyond the largest fitted compute
    truth = law.predict(target[:, None], TRUE_OFFSET)
    covered, covered_obs = [], []
    for seed in range(16):
        x, y = offset_data(noise=0.01, seed=seed)
        fit = LawFitter(law, n_bootstrap=60, n_starts=8, seed=seed).fit(x, y)
        lo, hi = fit.predict_interval(target, level=0.9, include_noise=False)
        covered.append((lo <= truth) & (truth <= hi))
        obs = truth * np.exp(np.random.default_rng(1000 + seed).normal(0, 0.01, truth.shape))
        lo, hi = fit.predict_interval(target, level=0.9, include_noise=True)
        covered_obs.append((lo <= obs) & (obs <= hi))
    assert np.mean(covered) >= MIN_COVERAGE
    assert np.mean(covered_obs) >= MIN_COVERAGE


def test_intervals_are_nested_by_level_and_contain_the_point() -> None:
    x, y = offset_data(noise=0.01, seed=1)
    fit = LawFitter(PowerLawWithOffset(reference=1e19), n_bootstrap=50).fit(x, y)
    t = np.array([1e19, 1e21])
    lo5, hi5 = fit.predict_interval(t, level=0.5)
    lo9, hi9 = fit.predict_interval(t, level=0.9)
    assert np.all(lo9 <= lo5) and np.all(hi5 <= hi9)
    p = fit.predict(t)
    assert np.all((lo9 <= p) & (p <= hi9))
    assert fit.predict_samples(t).shape == (50, 2)


def test_fit_is_invariant_to_row_order() -> None:
    """Shuffled rows give the same fit up to the optimiser's own noise: fitted and bootstrap predictions
    (over the data and 10x beyond) agree to 1e-3 of the bootstrap spread, the data's own uncertainty.
    (Comparing raw parameters at rtol 1e-7 measured the optimiser's stopping point, 6.5e-7 seen.)"""
    rng = np.random.default_rng(7)
    x, y = offset_data(noise=0.01, seed=2)
    groups = np.array([f"run{i}" for i in range(x.size)])
    perm = rng.permutation(x.size)
    a = LawFitter(PowerLawWithOffset(reference=1e19), n_bootstrap=20).fit(x, y, groups=groups)
    b = LawFitter(PowerLawWithOffset(reference=1e19), n_bootstrap=20).fit(x[perm], y[perm], groups=groups[perm])
    grid = np.geomspace(x.min(), 10 * x.max(), 25)
    spread = a.predict_samples(grid).std(axis=0)  # bootstrap sd of the prediction at each point
    assert np.all(spread > 0)
    np.testing.assert_array_less(np.abs(a.predict(grid) - b.predict(grid)), 1e-3 * spread)
    np.testing.assert_array_less(np.abs(a.predict_samples(grid) - b.predict_samples(grid)).max(axis=0), 1e-3 * spread)
    assert a.residual_scale_ == pytest.approx(b.residual_scale_, rel=1e-5)


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 10_000))
def test_linear_fit_is_invariant_to_row_order_for_any_permutation(seed: int) -> None:
    rng = np.random.default_rng(seed)
    x = rng.uniform(2.0, 4.0, 30)
    y = 1.2 - 0.25 * x + rng.normal(0, 0.01, 30)
    perm = rng.permutation(30)
    a = LawFitter(Linear(), loss="huber", huber_delta=0.005).fit(x, y)
    b = LawFitter(Linear(), loss="huber", huber_delta=0.005).fit(x[perm], y[perm])
    np.testing.assert_allclose(a.params_, b.params_, rtol=1e-8, atol=1e-10)


def test_more_starts_are_never_worse() -> None:
    law = ChinchillaLaw()
    rng = np.random.default_rng(5)
    n = np.repeat(np.logspace(7, 9.5, 5), 4)
    x = np.column_stack([n, n * np.tile([5.0, 20.0, 80.0, 320.0], 5)])
    y = law.predict(x, np.array([1.7, -1.0, 0.3, -0.4, 0.3])) * np.exp(rng.normal(0, 0.01, n.size))
    objs = [LawFitter(law, loss="squared", n_starts=k).fit(x, y).objective_ for k in (1, 2, 4, 8)]
    assert all(later <= earlier + OBJ_ATOL for earlier, later in zip(objs, objs[1:], strict=False))


def test_gradient_vanishes_at_the_optimum_or_the_parameter_is_on_a_bound() -> None:
    for law, x, y in [
        (PowerLawWithOffset(reference=1e19), *offset_data(noise=0.01, seed=4)),
        (Sigmoid(floor=0.25, ceiling_bounds=(0.25, 1.0)), np.linspace(2, 4.5, 40),
         Sigmoid(floor=0.25, ceiling_bounds=(0.25, 1.0)).predict(np.linspace(2, 4.5, 40)[:, None], np.array([0.99, 4.0, 3.0]))
         + np.random.default_rng(0).normal(0, 0.02, 40)),
    ]:
        fit = LawFitter(law, loss="squared", n_starts=8).fit(x, y)
        _, grad = fit.objective_at(fit.params_, x, y)
        lo, hi = law.bounds
        at_bound = np.isclose(fit.params_, lo, atol=1e-9) | np.isclose(fit.params_, hi, atol=1e-9)
        assert np.all(at_bound | (np.abs(grad) <= GRAD_ATOL)), (law.name, grad, fit.params_)


def test_batched_bootstrap_matches_one_lbfgsb_fit_per_draw() -> None:
    x, y = offset_data(noise=0.01, seed=6, compute=np.logspace(18, 21, 40))
    groups = np.repeat(np.arange(10), 4)
    fit = LawFitter(PowerLawWithOffset(reference=1e19), loss="squared", n_starts=8, n_bootstrap=10, seed=3).fit(
        x, y, groups=groups)
    resample = GroupResample.draw(groups, 10, np.random.default_rng(np.random.SeedSequence(3).spawn(2)[1]))
    counts = resample.row_counts(groups)
    for b in range(10):
        one = LawFitter(PowerLawWithOffset(reference=1e19), loss="squared", n_starts=1)
        fun = one._make_objective(x[:, None], y, counts[b], True)
        res = one._minimize(fun, fit.params_.copy(), True)
        np.testing.assert_allclose(fit.bootstrap_params_[b], res.x, rtol=BOOT_RTOL, atol=BOOT_ATOL)


def test_bootstrap_resamples_whole_groups() -> None:
    groups = np.array(["a", "a", "b", "b", "b", "c"])
    rs = GroupResample.draw(groups, 50, 0)
    assert rs.labels.tolist() == ["a", "b", "c"]
    assert np.all(rs.counts.sum(axis=1) == 3)
    rc = rs.row_counts(groups)
    assert rc.shape == (50, 6)
    np.testing.assert_array_equal(rc[:, 0], rc[:, 1])
    np.testing.assert_array_equal(rc[:, 2], rc[:, 4])
    with pytest.raises(SchemaError, match="does not cover"):
        rs.row_counts(np.array(["a", "zzz"]))


def test_shared_resample_is_used_and_degenerate_draws_are_nan() -> None:
    # two groups only: draws that pick one group twice have a single input value
    x = np.array([1.0, 1.0, 2.0, 2.0])
    y = np.array([0.5, 0.52, 0.8, 0.79])
    groups = np.array(["g1", "g1", "g2", "g2"])
    rs = GroupResample.draw(groups, 40, 1)
    fit = LawFitter(Linear(), loss="squared").fit(x, y, groups=groups, resample=rs)
    assert fit.bootstrap_params_.shape == (40, 2)
    mixed = (rs.counts > 0).all(axis=1)
    assert np.all(np.isfinite(fit.bootstrap_params_[mixed]))
    assert np.all(np.isnan(fit.bootstrap_params_[~mixed]))
    assert fit.bootstrap_failed_ == int((~mixed).sum())
    lo, hi = fit.predict_interval(np.array([1.5]), include_noise=False)
    assert np.isfinite(lo).all() and np.isfinite(hi).all()


def test_seeded_and_never_touches_the_global_rng() -> None:
    x, y = offset_data(noise=0.01, seed=8)
    state = np.random.get_state()[1].copy()
    a = LawFitter(PowerLawWithOffset(reference=1e19), n_bootstrap=10, n_starts=3, seed=11).fit(x, y)
    b = LawFitter(PowerLawWithOffset(reference=1e19), n_bootstrap=10, n_starts=3, seed=11).fit(x, y)
    np.testing.assert_array_equal(a.bootstrap_params_, b.bootstrap_params_)
    assert np.array_equal(np.random.get_state()[1], state)


@pytest.mark.parametrize(
    ("x", "y", "law", "match"),
    [
        (np.array([1e18, 1e19]), np.array([3.0, 2.5]), PowerLawWithOffset(), "3 parameters"),
        (np.full(5, 1e19), np.linspace(2, 3, 5), PowerLawWithOffset(), "constant"),
        (np.logspace(18, 20, 5), np.array([3.0, 2.5, -1.0, 2.2, 2.1]), PowerLawWithOffset(), "must be > 0"),
        (np.logspace(18, 20, 5), np.array([3.0, np.nan, 2.4, 2.2, 2.1]), PowerLawWithOffset(), "NaN"),
        (np.array([1.0, 1.0, 2.0, 2.0]), np.array([1.0, 2.0, 3.0, 4.0]), Sigmoid(floor=0.0), "distinct"),
        (np.array([-1.0, 2.0, 3.0]), np.array([1.0, 2.0, 3.0]), FPPowerLaw(), "must be > 0"),
        (np.column_stack([np.logspace(7, 9, 8), 20 * np.logspace(7, 9, 8)]), np.linspace(4, 2, 8), ChinchillaLaw(),
         "collinear"),
    ],
)
def test_degenerate_data_raise_fit_error_with_a_fix(x: np.ndarray, y: np.ndarray, law: Law, match: str) -> None:
    with pytest.raises(FitError, match=match) as err:
        LawFitter(law).fit(x, y)
    message = str(err.value)
    assert "must" in message and ("got" in message or "only" in message)


def test_every_start_failing_raises_fit_error_with_the_starts_table() -> None:
    class Broken(Law):
        name = "broken"
        inputs = ("x",)
        params = (Param("a", -1.0, 1.0, (0.0, 0.5)),)

        def predict(self, x, theta):  # noqa: ANN001, ANN201
            return np.full(np.shape(self.column(x, 0)), np.nan) + 0.0 * self.unpack(theta)[0]

    with pytest.raises(FitError, match="starts failed") as err:
        LawFitter(Broken()).fit(np.linspace(0, 1, 5), np.linspace(0, 1, 5))
    assert isinstance(err.value.starts, pl.DataFrame) and err.value.starts.height == 2


def test_shape_and_setting_errors() -> None:
    with pytest.raises(SchemaError, match=r"shape \(n, 2\)"):
        LawFitter(ChinchillaLaw()).fit(np.ones(5), np.ones(5))
    with pytest.raises(SchemaError, match="y must have shape"):
        LawFitter(Linear()).fit(np.ones(5), np.ones(4))
    with pytest.raises(ConfigError, match="loss must be"):
        LawFitter(Linear(), loss="l1").fit(np.arange(5.0), np.arange(5.0))  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="n_bootstrap"):
        LawFitter(Linear(), n_bootstrap=-1).fit(np.arange(5.0), np.arange(5.0))


def test_predicting_before_fit_raises_not_fitted() -> None:
    fit = LawFitter(Linear())
    for call in (lambda: fit.predict([1.0]), lambda: fit.predict_samples([1.0]), lambda: fit.predict_interval([1.0])):
        with pytest.raises(NotFittedError, match="call fit"):
            call()


def test_interval_without_bootstrap_or_noise_is_refused() -> None:
    fit = LawFitter(Linear()).fit(np.arange(5.0), np.array([0.1, 0.2, 0.31, 0.39, 0.5]))
    lo, hi = fit.predict_interval([2.5])  # noise only
    assert lo < hi
    with pytest.raises(ConfigError, match="n_bootstrap > 0"):
        fit.predict_interval([2.5], include_noise=False)


def test_combine_interval_reduces_to_each_source_alone() -> None:
    point = np.array([1.0, 2.0])
    lo, hi = combine_interval(point, None, 0.1, 0.9)
    np.testing.assert_allclose(hi - point, 0.1 * 1.6448536269514722, rtol=1e-12)
    np.testing.assert_allclose(point - lo, 0.1 * 1.6448536269514722, rtol=1e-12)
    samples = np.linspace(-1, 1, 101)[:, None] + point
    lo, hi = combine_interval(point, samples, 0.0, 0.9)
    np.testing.assert_allclose(lo, np.quantile(samples, 0.05, axis=0), rtol=1e-12)
    np.testing.assert_allclose(hi, np.quantile(samples, 0.95, axis=0), rtol=1e-12)
    samples[::2] = np.nan  # failed draws are ignored
    lo, hi = combine_interval(point, samples, 0.0, 0.9)
    finite = samples[1::2]
    np.testing.assert_allclose(lo, np.quantile(finite, 0.05, axis=0), rtol=1e-12)


def test_a_new_law_in_a_few_lines_gets_fitting_and_intervals() -> None:
    """The module docstring's example: no Jacobian (finite differences), no design."""

    class Exponential(Law):
        name = "exponential_test"
        inputs = ("x",)
        log_space = True
        params = (Param("a", -20.0, 20.0, (-1.0, 0.0, 1.0)), Param("k", 0.0, 10.0, (0.1, 1.0)))

        def predict(self, x, theta):  # noqa: ANN001, ANN201
            a, k = self.unpack(theta)
            return np.exp(a - k * self.column(x, 0))

    x = np.linspace(0.0, 3.0, 25)
    truth = np.array([0.5, 0.8])
    y = Exponential().predict(x[:, None], truth)
    fit = LawFitter(Exponential(), loss="squared", n_bootstrap=20).fit(x, y)
    np.testing.assert_allclose(fit.params_, truth, rtol=1e-5, atol=1e-6)
    assert fit.starts_["method"].unique().to_list() == ["lbfgsb"]
    lo, hi = fit.predict_interval(np.array([4.0]))
    assert lo <= fit.predict(np.array([4.0])) <= hi


def test_at_iteration_cap_best_keeps_the_best_start_instead_of_raising():
    # a law that cannot converge in 1 iteration: "raise" refuses it, "best" keeps the lowest-objective start
    rng = np.random.default_rng(0)
    c = np.logspace(18, 22, 40)
    y = 1.7 + 30.0 * (c / 1e18) ** -0.3 * np.exp(rng.normal(0, 0.01, c.size))
    with pytest.raises(FitError, match="iteration cap"):
        LawFitter(PowerLawWithOffset(), maxiter=1, n_starts=3).fit(c, y)
    fit = LawFitter(PowerLawWithOffset(), maxiter=1, n_starts=3, at_iteration_cap="best").fit(c, y)
    assert np.all(np.isfinite(fit.params_)) and not fit.starts_["converged"].any()
    with pytest.raises(ConfigError, match="at_iteration_cap"):
        LawFitter(PowerLawWithOffset(), at_iteration_cap="ignore").fit(c, y)


@pytest.mark.parametrize("log_space", [False, True])
@pytest.mark.parametrize("B", [2, 7, 30])
def test_all_finite_draws_give_the_masked_path_bit_for_bit(log_space: bool, B: int) -> None:
    # every draw finite (and positive in log space): sorted before the log, the log of two order
    # statistics per quantile only; one non-finite draw elsewhere sends the block down the masked path
    from scipy.special import ndtri

    from mixopt.laws.uncertainty import _quantiles_axis0

    rng = np.random.default_rng(B)
    samples = np.exp(rng.normal(0.0, 0.3, (B, 40, 3)))
    point = np.median(samples, axis=0)
    t = np.log if log_space else (lambda a: a)
    for level in (0.5, 0.9, 0.99):
        fast = combine_interval(point, samples, 0.05, level, log_space=log_space)
        (lo, m, hi), enough = _quantiles_axis0(t(samples), ((1 - level) / 2, 0.5, (1 + level) / 2))
        assert enough.all()
        z, zs = float(ndtri(0.5 + level / 2)), 0.05
        ref_lo, ref_hi = m - np.sqrt((m - lo) ** 2 + (z * zs) ** 2), m + np.sqrt((hi - m) ** 2 + (z * zs) ** 2)
        inv = np.exp if log_space else (lambda a: a)
        np.testing.assert_array_equal(fast[0], inv(ref_lo))
        np.testing.assert_array_equal(fast[1], inv(ref_hi))
    # a NaN draw in one column: that column ignores it, the others are unchanged
    bad = samples.copy()
    bad[0, 0, 0] = np.nan
    lo_b, hi_b = combine_interval(point, bad, 0.05, 0.9, log_space=log_space)
    lo_f, hi_f = combine_interval(point, samples, 0.05, 0.9, log_space=log_space)
    np.testing.assert_array_equal(lo_b[1:], lo_f[1:])
    np.testing.assert_array_equal(predictive_std(point, bad, 0.1, log_space=log_space)[1:],
                                  predictive_std(point, samples, 0.1, log_space=log_space)[1:])


def test_dirichlet_resample_keeps_every_group_with_mean_weight_one() -> None:
    groups = np.repeat(np.array(["a", "b", "c", "d", "e", "f"]), 4)
    rs = GroupResample.dirichlet(groups, 4000, 5)
    assert rs.counts.shape == (4000, 6) and list(rs.labels) == ["a", "b", "c", "d", "e", "f"]
    assert np.all(rs.counts > 0)
    np.testing.assert_allclose(rs.counts.sum(axis=1), 6.0, rtol=1e-12, atol=0)
    # mean 1 and variance (G - 1)/(G + 1) = 5/7 per group
    np.testing.assert_allclose(rs.counts.mean(axis=0), 1.0, rtol=0, atol=0.05)
    np.testing.assert_allclose(rs.counts.var(axis=0), 5 / 7, rtol=0.1, atol=0)
    np.testing.assert_array_equal(rs.counts, GroupResample.dirichlet(groups, 4000, 5).counts)
    assert rs.row_counts(groups).shape == (4000, 24)
    with pytest.raises(ConfigError, match="n_bootstrap must be >= 0"):
        GroupResample.dirichlet(groups, -1, 0)


def test_a_fit_with_bayesian_bootstrap_weights_refits_every_draw() -> None:
    rng = np.random.default_rng(0)
    x = np.repeat(np.linspace(0.0, 1.0, 6), 3)
    groups = np.repeat(np.arange(6), 3)
    y = 1.0 + 2.0 * x + rng.normal(0, 0.05, x.size)
    rs = GroupResample.dirichlet(groups, 50, 1)
    fit = LawFitter(Linear(), n_bootstrap=0, loss="squared").fit(x, y, groups=groups, resample=rs)
    assert fit.bootstrap_params_.shape == (50, 2) and np.isfinite(fit.bootstrap_params_).all()
    np.testing.assert_allclose(np.median(fit.bootstrap_params_, axis=0), fit.params_, rtol=0, atol=0.1)
