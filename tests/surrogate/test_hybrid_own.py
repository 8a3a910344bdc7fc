"""The hybrid correction's per-domain feature: the law's own log loss at a reference compute.

:class:`~mixopt.surrogate.hybrid.MixtureResidual` takes it as one more linear column and keeps it
for an output only where it lowers that output's exact leave-one-out error; FLP-M passes each
domain's stage-1 log loss at the fitted runs' median compute, saves it with the model and
recomputes it at prediction. Fast: small tables, no bootstrap.
"""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from mixopt import load_surrogate, save_surrogate
from mixopt.data.table import RunTable
from mixopt.errors import SchemaError
from mixopt.surrogate import Targets
from mixopt.surrogate.flpm import FLPM
from mixopt.surrogate.hybrid import MixtureResidual
from mixopt.testing import mixture_world

K = 6


def _index(R):
    """A nonlinear index of the mixture (what a law's log loss is)."""
    return np.log(0.02 + R @ np.linspace(1.0, 0.1, K))


def _design(n=160, seed=0):
    rng = np.random.default_rng(seed)
    R = rng.dirichlet(np.ones(K), size=n)
    return rng, R, _index(R)


def test_an_output_linear_in_its_own_feature_reads_it_and_a_noise_feature_is_left_out():
    rng, R, own = _design()
    noise = rng.standard_normal((R.shape[0], 2))
    y = np.column_stack([0.4 * (own - own.mean()), 0.02 * R[:, 0]]) + 0.001 * rng.standard_normal((R.shape[0], 2))
    feat = np.column_stack([own, noise[:, 1]])  # output 0: its own index; output 1: an unrelated column
    with_own = MixtureResidual().fit(R, y, feat)
    without = MixtureResidual().fit(R, y)
    # output 0: the column's coefficient is recovered and the leave-one-out error drops well below the
    # mixture-only fit's (which reaches the log index only through the ratio features and the kernel)
    assert with_own.own_coef_[0] == pytest.approx(0.4, rel=0.1)
    assert with_own.loo_rmse_[0] < 0.7 * without.loo_rmse_[0], (with_own.loo_rmse_[0], without.loo_rmse_[0])
    # output 1: pure noise does not lower its error by OWN_MIN_GAIN: left out, the same fit as without the feature
    assert with_own.own_coef_[1] == 0.0
    np.testing.assert_allclose(with_own.coef_[1], without.coef_[1])
    assert with_own.uses_own
    # predictions add the linear term; the feature is required once some output reads it
    Rn = rng.dirichlet(np.ones(K), size=7)
    on = np.column_stack([_index(Rn), np.zeros(7)])
    p = with_own.predict(Rn, on)
    truth0 = 0.4 * (on[:, 0] - own.mean())
    assert np.max(np.abs(p[:, 0] - truth0)) < 0.005, np.abs(p[:, 0] - truth0)
    with pytest.raises(SchemaError, match="pass own"):
        with_own.predict(Rn)


def test_the_own_terms_survive_arrays_and_files_written_before_them_load_without():
    rng, R, own = _design(seed=1)
    y = (0.3 * (own - own.mean()))[:, None] + 0.002 * rng.standard_normal((R.shape[0], 1))
    res = MixtureResidual().fit(R, y, own[:, None])
    back = MixtureResidual.from_arrays(res.arrays())
    np.testing.assert_array_equal(back.predict(R[:5], own[:5, None]), res.predict(R[:5], own[:5, None]))
    old = {k: v for k, v in res.arrays().items() if not k.startswith("own_")}
    legacy = MixtureResidual.from_arrays(old)
    assert not legacy.uses_own and legacy.own_coef_.shape == (1,)
    with pytest.raises(SchemaError, match="own"):
        MixtureResidual().fit(R, y, own[:, None][:-1])


def _runs():
    """Losses off a pooled FLP-M law by a curvature in its own loss at one compute, which its few
    parameters cannot carry: ``log L = log law(C, r) + 8·(log law(C0, r) - mean)²``."""
    world = mixture_world(n_domains=3, n_benchmarks=1, seed=0)
    runs = world.sample_runs([5e7, 1e8, 2e8, 5e8], world.random_mixtures(40, seed=3), n_checkpoints=2, loss_noise=0.0, score_noise=0.0, seed=3)

    def law(C, R, j):
        w = np.exp(np.array([0.0, -1.5, -3.0]) if j == 0 else np.array([-3.0, 0.0, -1.5]))
        return (1.5 + 0.3 * j) + (C / 1e18 * (np.exp(-4.0) + R @ w)) ** -(0.12 + 0.02 * j)

    C, R = runs.flops(), runs.mixture()
    rng = np.random.default_rng(4)

    def bend(j):
        own = np.log(law(np.full_like(C, 1e19), R, j))
        return 8.0 * (own - own.mean()) ** 2

    cols = {f"loss:{d}": law(C, R, j) * np.exp(bend(j)) * (1 + 0.001 * rng.standard_normal(C.size)) for j, d in enumerate(("web", "code"))}
    frame = runs.frame.drop([c for c in runs.frame.columns if c.startswith(("score:", "loss:"))] + ["loss"])
    return world, RunTable(frame.with_columns(*(pl.Series(k, v) for k, v in cols.items())), [])


def test_flpm_hybrid_reads_the_laws_own_loss_and_a_saved_model_predicts_the_same(tmp_path):
    world, runs = _runs()
    model = FLPM(stage1="flpm", family="hybrid", n_bootstrap=0, n_starts=3, stage2="logistic", intervals="raw", seed=0).fit(runs)
    assert model.residual_ref_flops_ == pytest.approx(float(np.exp(np.median(np.log(runs.final().flops())))))
    assert model.residual_.uses_own, model.residual_.own_coef_
    mix = world.random_mixtures(9, seed=5)
    t = Targets(flops=np.full(9, 4e18), mixture=mix, domains=world.domains)
    pred = model.predict(t, intervals=False).mean
    back = load_surrogate(save_surrogate(model, tmp_path / "m"))
    np.testing.assert_array_equal(back.predict(t, intervals=False).mean, pred)
    # the correction's own feature is the law at the reference compute, whatever the target's compute
    own = model._residual_own(mix)
    x_ref = model._law_inputs(np.full(9, model.residual_ref_flops_), None, None, mix, None)
    np.testing.assert_allclose(own, np.log(model._stage1_mean(x_ref)))
