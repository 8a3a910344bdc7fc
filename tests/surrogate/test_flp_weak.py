"""FLP: a benchmark barely above chance in the sampling runs is predicted on weak evidence, with an
honest wide interval; loss intervals stay positive; score intervals stay in the metric's range."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from mixopt.backtest import make_split
from mixopt.surrogate import Targets
from mixopt.surrogate.base import load_surrogate, save_surrogate
from mixopt.surrogate.flp import FLP
from mixopt.testing import single_domain_world

SIZES = [2e7, 5e7, 1e8, 2e8, 4e8, 7e8, 1e9, 3e9]


@pytest.fixture(scope="module")
def world_split():
    # bench_worlds' single world, seed 4: in the runs up to 7e8 hellaswag has fewer than 3 checkpoints
    # above chance + 0.05, so the paper's rule drops it
    w = single_domain_world(seed=4)
    runs = w.sample_runs(SIZES, None, tokens_per_param=20.0, n_checkpoints=10, loss_noise=0.005, score_noise=0.005, seed=4)
    return w, make_split(runs, holdout_min_params=1e9)


@pytest.fixture(scope="module")
def model(world_split):
    return FLP(seed=0, n_bootstrap=50).fit(world_split[1].train)


def test_a_benchmark_just_above_chance_is_predicted_on_weak_evidence(world_split, model):
    w, split = world_split
    q = "score:hellaswag"
    assert q in model.weak_ and q not in model.unpredictable_
    assert "weak evidence" in model.weak_[q]
    sel = model.selection_.filter((pl.col("quantity") == q) & (pl.col("status") == "weak"))
    assert sel.height == 1 and "emerged checkpoint" in sel["reason"][0]
    test = split.test.final()
    t = Targets.from_params_tokens(test.params(), test.tokens())
    p = model.predict(t, intervals=True, level=0.9)
    lo, hi = p.interval(q)
    mean = p.get(q)
    assert np.isfinite(mean).all() and np.isfinite(lo).all() and np.isfinite(hi).all()
    truth = w.true_scores(t.flops, None)[:, w.benchmark_names.index("hellaswag")]
    # wide (far beyond the 0.005 score noise) and honest: it holds the world's truth at the held-out sizes
    assert np.all(hi - lo > 20 * 0.005), hi - lo
    assert np.all((lo <= truth) & (truth <= hi)), (lo, truth, hi)
    assert np.all(lo >= 0.0) and np.all(hi <= 1.0)  # a 0-1 accuracy's interval stays in [0, 1]


def test_loss_intervals_stay_positive_far_out(model):
    t = Targets(flops=np.array([1e20, 1e22, 1e24, 1e26]))
    p = model.predict(t, intervals=True, level=0.99)
    lo, hi = p.interval(model.loss_name_)
    mean = p.get(model.loss_name_)
    assert np.all(lo > 0) and np.all(lo < mean) and np.all(mean < hi), (lo, mean, hi)


def test_the_paper_preset_and_a_fixed_linear_link_still_drop_it(world_split):
    train = world_split[1].train
    for m in (FLP(seed=0, n_bootstrap=0, preset="paper").fit(train), FLP(seed=0, n_bootstrap=0, stage2="linear").fit(train)):
        assert "score:hellaswag" in m.unpredictable_ and not m.weak_


def test_weak_state_round_trips(tmp_path, model):
    back = load_surrogate(save_surrogate(model, tmp_path / "m.mixopt"))
    assert back.weak_ == model.weak_ and back.score_range_ == model.score_range_
    t = Targets(flops=np.array([3e19, 3e20]))
    a, b = model.predict(t, intervals=True), back.predict(t, intervals=True)
    np.testing.assert_allclose(a.lower, b.lower)
    np.testing.assert_allclose(a.upper, b.upper)


def test_denoised_loss_removes_noise_and_keeps_a_real_curve():
    from mixopt.surrogate.flp import denoise_run_losses, loss_noise_sd

    rng = np.random.default_rng(0)
    tokens = np.tile(np.geomspace(1e8, 1e10, 12), 6)
    runs = np.repeat([f"r{i}" for i in range(6)], 12)
    offset = np.repeat(np.linspace(-0.05, 0.05, 6), 12)
    truth = np.exp(1.0 + offset - 0.1 * np.log(tokens / 1e8))
    noisy = truth * np.exp(0.01 * rng.standard_normal(truth.size))
    assert 0.006 < loss_noise_sd(runs, tokens, noisy) < 0.015
    den, summary = denoise_run_losses(runs, tokens, noisy)
    assert np.std(np.log(den / truth)) < 0.75 * np.std(np.log(noisy / truth))
    assert summary.keep_median < 0.3
    # noise-free curves: the observed loss is kept
    same, _ = denoise_run_losses(runs, tokens, truth)
    np.testing.assert_allclose(same, truth, rtol=1e-9)
    # real run offsets far beyond the noise stay; noise-level offsets move onto the law
    anchor = {f"r{i}": (1e10, float(np.exp(1.0 - 0.1 * np.log(100.0)))) for i in range(6)}
    _, s2 = denoise_run_losses(runs, tokens, noisy, anchor=anchor)
    assert s2.law_share_median < 0.1 and s2.between_sd > 0.02
    flat = truth / np.exp(offset) * np.exp(0.01 * rng.standard_normal(truth.size))
    _, s3 = denoise_run_losses(runs, tokens, flat, anchor=anchor)
    assert s3.law_share_median > 0.5
    from mixopt.errors import ConfigError

    with pytest.raises(ConfigError, match="stage2_loss_x"):
        FLP(stage2_loss_x="nope").fit(make_split(single_domain_world(seed=1).sample_runs([2e7, 5e7, 1e8], seed=1), holdout_min_params=1e8).train)


def test_default_regresses_on_the_pooled_loss_and_the_paper_preset_on_the_observed_one(world_split):
    train = world_split[1].train
    default = FLP(n_bootstrap=0, calibrate=False).fit(train)
    x_rows = default.selection_.filter(pl.col("stage") == "stage2_x")
    assert x_rows["candidate"].to_list() == ["pooled"] and "noise sd" in x_rows["reason"][0]
    observed = FLP(n_bootstrap=0, calibrate=False, stage2_loss_x="observed").fit(train)
    assert observed.selection_.filter(pl.col("stage") == "stage2_x").height == 0
    q = next(iter(default.stage2_))
    assert not np.allclose(default.laws_[q].params, observed.laws_[q].params)  # the x differs, so does the link
    # preset="paper" is the paper whatever stage2_loss_x says: the same laws as with the observed loss
    paper = FLP(preset="paper", n_bootstrap=0).fit(train)
    paper_obs = FLP(preset="paper", n_bootstrap=0, stage2_loss_x="observed").fit(train)
    assert paper.selection_.filter(pl.col("stage") == "stage2_x").height == 0
    assert set(paper.laws_) == set(paper_obs.laws_)
    for name, law in paper.laws_.items():
        np.testing.assert_array_equal(law.params, paper_obs.laws_[name].params)
