"""RegMix-style regression comparator."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mixopt.errors import ConfigError, NotPredictableError, SchemaError
from mixopt.surrogate import Targets, load_surrogate, make_surrogate, save_surrogate
from mixopt.surrogate.baselines import RegMixRegression
from mixopt.testing import mixture_world
from tests.conftest import needs_data

#: tolerances, named
RTOL_IN_RANGE = 0.02  # median relative loss error at held-out mixtures, sampled compute range
RTOL_BATCH = 1e-8  # kernel weights can be large: BLAS summation order differs with batch size
ATOL_BATCH = 1e-12

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"


@pytest.fixture(scope="module")
def world():
    return mixture_world(n_domains=3, n_benchmarks=2, seed=1)


@pytest.fixture(scope="module")
def runs(world):
    return world.sample_runs([2e7, 6e7, 2e8], world.random_mixtures(30, seed=1), loss_noise=0.002, score_noise=0.005, seed=2)


@pytest.fixture(scope="module")
def model(runs):
    return RegMixRegression().fit(runs)


def test_registered_and_predicts_losses_at_heldout_mixtures(world, model):
    assert make_surrogate("regmix").kind == "regmix" and model.vary_compute_
    mix = world.random_mixtures(40, seed=8)
    flops = np.full(40, 6 * 20 * 6e7**2)
    pred = model.predict(Targets(flops=flops, mixture=mix, domains=world.domains))
    truth = world.true_losses(flops, mix)
    got = np.column_stack([pred.get(f"loss:{d}") for d in world.loss_domains])
    assert np.median(np.abs(got / truth - 1)) < RTOL_IN_RANGE
    assert pred.names[-2:] == tuple(f"score:{b}" for b in world.benchmark_names)
    assert np.all(pred.lower <= pred.mean) and np.all(pred.mean <= pred.upper)


def test_batch_equals_single_and_round_trip(world, model, tmp_path):
    mix = world.random_mixtures(5, seed=9)
    t = Targets(flops=np.full(5, 1e18), mixture=mix, domains=world.domains)
    batch = model.predict(t)
    for i in range(5):
        one = model.predict(Targets(flops=t.flops[i : i + 1], mixture=mix[i : i + 1], domains=world.domains))
        np.testing.assert_allclose(one.mean[0], batch.mean[i], rtol=RTOL_BATCH, atol=ATOL_BATCH)
        np.testing.assert_allclose(one.upper[0], batch.upper[i], rtol=RTOL_BATCH, atol=ATOL_BATCH)
    loaded = load_surrogate(save_surrogate(model, tmp_path / "m"))
    again = loaded.predict(t)
    np.testing.assert_array_equal(again.mean, batch.mean)
    np.testing.assert_array_equal(again.upper, batch.upper)


def test_errors(world, runs, model):
    with pytest.raises(ConfigError, match="rows"):
        RegMixRegression(rows="some").fit(runs)
    with pytest.raises(SchemaError, match="never saw"):
        model.predict(Targets(flops=np.array([1e18]), mixture=np.array([[0.5, 0.2, 0.2, 0.1]]), domains=(*world.domains, "x")))
    one_scale = world.sample_runs([5e7], world.random_mixtures(20, seed=3), n_checkpoints=1, seed=3)
    m = RegMixRegression().fit(one_scale)
    assert not m.vary_compute_
    c0 = float(one_scale.flops()[0])
    with pytest.raises(NotPredictableError, match="not extrapolable in compute"):
        m.predict(Targets(flops=np.array([100 * c0]), mixture=np.array([[0.2, 0.3, 0.5]]), domains=world.domains))


@needs_data(DATA / "regmix" / "train_mixture_1m.csv")
def test_regmix_heldout_spearman_pile_cc():
    from scipy.stats import spearmanr

    from mixopt.data.public import load_regmix

    train, test = load_regmix(DATA, "train_1m"), load_regmix(DATA, "test_1m")
    model = RegMixRegression().fit(train)
    pred = model.predict(Targets.from_runs(test), intervals=False).get("loss:pile_cc")
    assert spearmanr(pred, test.column("loss:pile_cc"))[0] > 0.95
