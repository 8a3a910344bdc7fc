"""FLP-M: a benchmark barely above chance in the sampling runs is predicted, with a wide, honest interval."""

from __future__ import annotations

import numpy as np
import pytest

from mixopt.data.table import Benchmark
from mixopt.surrogate import Targets
from mixopt.surrogate.emergence import weak_evidence_predictable
from mixopt.surrogate.flpm import FLPM
from mixopt.testing import mixture_world, random_mixtures

FIT_SIZES = [2e7, 5e7, 1e8, 3e8]
TARGET = 1e9


@pytest.fixture(scope="module")
def world_runs():
    # bench_worlds' mixture world, seed 1: in the runs up to 3e8 no benchmark has 10 checkpoints above chance + 0.05
    w = mixture_world(n_domains=3, n_benchmarks=4, seed=1)
    runs = w.sample_runs(FIT_SIZES, random_mixtures(12, 3, seed=1), tokens_per_param=20.0, n_checkpoints=10,
                         loss_noise=0.005, score_noise=0.005, seed=1)
    return w, runs


@pytest.fixture(scope="module")
def model(world_runs):
    return FLPM(seed=0, n_bootstrap=10, n_starts=2, stage2="logistic").fit(world_runs[1])


def test_a_benchmark_just_above_chance_is_predicted_on_weak_evidence(world_runs, model):
    w, runs = world_runs
    q = "score:hellaswag"
    assert 0 < model.emerged_counts_["hellaswag"] < model.min_emerged  # just above chance: the paper would drop it
    assert q in model.weak_ and q not in model.unpredictable_
    assert "weak evidence" in model.weak_[q]
    mix = random_mixtures(8, 3, seed=5)
    t = Targets.from_params_tokens(np.full(8, TARGET), np.full(8, 20 * TARGET), mix, w.domains)
    p = model.predict(t, intervals=True, level=0.9)
    lo, hi = p.interval(q)
    mean = p.get(q)
    assert np.isfinite(mean).all() and np.isfinite(lo).all()
    truth = w.true_scores(t.flops, mix)[:, w.benchmark_names.index("hellaswag")]
    # wide: far wider than the score noise (0.005), and honest: it holds the world's truth at 3x beyond the runs
    assert np.median(hi - lo) > 20 * 0.005, np.median(hi - lo)
    assert np.mean((lo <= truth) & (truth <= hi)) >= 0.75, (lo, truth, hi)


def test_the_paper_preset_still_drops_it(world_runs):
    m = FLPM(seed=0, n_bootstrap=0, n_starts=1, preset="paper", hidden=8, n_members=2, max_epochs=200).fit(world_runs[1])
    assert "score:hellaswag" in m.unpredictable_ and not m.weak_


def test_weak_evidence_needs_a_chance_anchored_stage2_and_enough_points():
    b = Benchmark(name="x", chance=0.25)
    assert weak_evidence_predictable(b, 40, 8, anchored=True, min_points=10, min_runs=2)
    assert not weak_evidence_predictable(b, 40, 8, anchored=False, min_points=10, min_runs=2)
    assert not weak_evidence_predictable(b, 5, 8, anchored=True, min_points=10, min_runs=2)
    assert not weak_evidence_predictable(Benchmark(name="y", chance=None), 40, 8, anchored=True, min_points=10, min_runs=2)
