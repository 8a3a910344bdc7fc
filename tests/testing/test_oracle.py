"""WorldOracle: the world's own forms fitted to the fitted runs (mixopt.testing.oracle)."""

from __future__ import annotations

import numpy as np
import pytest

from mixopt.backtest import make_split
from mixopt.errors import SchemaError
from mixopt.testing import WorldOracle, mixture_world, random_mixtures, single_domain_world

SIZES = [2e7, 5e7, 1e8, 2e8, 4e8, 7e8, 1e9, 3e9]


def _single(noise: float, seed: int = 1):
    w = single_domain_world(seed=seed)
    runs = w.sample_runs(SIZES, None, n_checkpoints=10, loss_noise=noise, score_noise=noise, seed=seed)
    return w, make_split(runs, holdout_min_params=1e9)


def _mixture(noise: float, seed: int = 2):
    w = mixture_world(n_domains=2, n_benchmarks=2, seed=seed)
    runs = w.sample_runs([2e7, 1e8, 5e8, 2e9, 5e9], random_mixtures(6, 2, seed=seed), n_checkpoints=5,
                         loss_noise=noise, score_noise=noise, seed=seed)
    return w, make_split(runs, holdout_min_params=5e9)


def _truth(w, split):
    final = split.test.final()
    mix = np.column_stack([final.column("mix:" + d) for d in w.domains]) if w.k else None
    return w.true_scores(final.flops(), mix), w.true_losses(final.flops(), mix), final.flops(), mix


@pytest.mark.parametrize("make", [_single, _mixture])
def test_true_params_reproduce_the_truth_exactly(make):
    w, split = make(0.0)
    oracle = WorldOracle(w, params="true").fit(split.train)
    scores, _, _, _ = _truth(w, split)
    np.testing.assert_allclose(oracle.predict_runs(split.test), scores, rtol=1e-12, atol=1e-12)


def test_fitted_params_recover_held_out_scores_on_a_noise_free_single_world():
    w, split = _single(0.0)
    scores, losses, flops, _ = _truth(w, split)
    oracle = WorldOracle(w, ceiling="true", seed=0).fit(split.train)
    np.testing.assert_allclose(oracle.predict_losses(flops), losses, rtol=1e-4)
    np.testing.assert_allclose(oracle.predict_runs(split.test), scores, rtol=0.01, atol=2e-3)
    free = WorldOracle(w, ceiling="free", seed=0).fit(split.train)
    assert free.loss_params_.alpha == pytest.approx(w.alpha, rel=1e-3)
    assert np.median(np.abs(free.predict_runs(split.test) - scores) / scores) < 0.05


def test_fitted_params_recover_held_out_losses_and_scores_on_a_noise_free_mixture_world():
    w, split = _mixture(0.0)
    scores, losses, flops, mix = _truth(w, split)
    oracle = WorldOracle(w, ceiling="true", seed=0, n_starts=4).fit(split.train)
    np.testing.assert_allclose(oracle.predict_losses(flops, mix), losses, rtol=1e-3)
    np.testing.assert_allclose(oracle.predict_runs(split.test), scores, rtol=0.02, atol=2e-3)


def test_seeded_fit_is_deterministic_and_the_seed_matters_only_through_the_starts():
    w, split = _single(0.005)
    a = WorldOracle(w, seed=3).fit(split.train)
    b = WorldOracle(w, seed=3).fit(split.train)
    np.testing.assert_array_equal(a.predict_runs(split.test), b.predict_runs(split.test))
    np.testing.assert_array_equal(a.score_params_.ceiling, b.score_params_.ceiling)


def test_true_ceiling_is_the_worlds_and_noise_makes_fitted_error_nonzero():
    w, split = _single(0.005)
    oracle = WorldOracle(w, ceiling="true", seed=0).fit(split.train)
    np.testing.assert_array_equal(oracle.score_params_.ceiling, w.bench_ceiling)
    scores, _, _, _ = _truth(w, split)
    assert np.abs(oracle.predict_runs(split.test) - scores).max() > 0


def test_bad_input_is_refused_with_what_was_expected():
    w, split = _single(0.0)
    with pytest.raises(SchemaError, match="ceiling must be one of"):
        WorldOracle(w, ceiling="fixed")
    with pytest.raises(SchemaError, match="params must be one of"):
        WorldOracle(w, params="oracle")
    with pytest.raises(SchemaError, match="not fitted"):
        WorldOracle(w).predict_scores(1e20)
    mw, msplit = _mixture(0.0)
    with pytest.raises(SchemaError, match="mixture columns"):
        WorldOracle(mw).fit(split.train)
