"""``regmix``'s shifted-log transform (``transform="auto"``) against its log recipe (``"log"``)."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from mixopt.data import Benchmark, RunTable
from mixopt.errors import ConfigError
from mixopt.surrogate import Targets, load_surrogate, make_surrogate, save_surrogate
from mixopt.surrogate.baselines import CLIP_SPAN, SHIFTS, RegMixRegression, _soft_clip
from mixopt.testing import mixture_world

DOMAINS = ("a", "b", "c", "d", "e", "f")
#: the shifted log must cut the held-out error of the log recipe by at least this factor
GAIN = 0.7


def _truth(R: np.ndarray) -> dict[str, np.ndarray]:
    """A swarm's outputs with a floor far above zero: ``floor + exp(linear in the mixture)``
    (Olmix's law form), and a score that takes zero (no shifted log is possible)."""
    t = np.array([-3.0, 1.5, -1.0, 0.5, 2.0, -2.5])
    return {
        "loss:x": 2.0 + 0.3 * np.exp(R @ t),
        "score:bpb": 0.8 + 0.1 * np.exp(R @ -t),
        "score:acc": np.clip(R[:, 0] - 0.15, 0.0, None),
    }


def _table(R: np.ndarray, noise: float, seed: int) -> RunTable:
    rng = np.random.default_rng(seed)
    out = {q: v * (1 + noise * rng.standard_normal(v.shape)) if q != "score:acc" else v for q, v in _truth(R).items()}
    return RunTable(
        pl.DataFrame({"run": [f"r{i}" for i in range(len(R))], "params": np.full(len(R), 3e7), "tokens": np.full(len(R), 3e9), **{f"mix:{d}": R[:, i] for i, d in enumerate(DOMAINS)}, **out}),
        [Benchmark(name="bpb", chance=None, higher_is_better=False), Benchmark(name="acc", chance=None)],
    )


@pytest.fixture(scope="module")
def swarm():
    rng = np.random.default_rng(0)
    return _table(rng.dirichlet(np.full(len(DOMAINS), 0.5), 60), 0.002, seed=1)


@pytest.fixture(scope="module")
def heldout():
    return np.random.default_rng(7).dirichlet(np.full(len(DOMAINS), 0.5), 300)


def _targets(R: np.ndarray) -> Targets:
    return Targets(flops=np.full(len(R), 6 * 3e7 * 3e9), mixture=R, domains=DOMAINS)


def _error(model, R: np.ndarray, q: str) -> float:
    pred = model.predict(_targets(R), intervals=False).get(q)
    truth = _truth(R)[q]
    return float(np.mean(np.abs(pred - truth) / truth))


def test_shifted_log_fits_a_floored_swarm_better_than_the_log_recipe(swarm, heldout):
    auto = make_surrogate("regmix").fit(swarm)
    log = make_surrogate("regmix", transform="log").fit(swarm)
    for q in ("loss:x", "score:bpb"):
        assert auto.fits_[q]["shift"] > 0, q  # a floor was found
        assert _error(auto, heldout, q) < GAIN * _error(log, heldout, q), q
    assert log.fits_["loss:x"]["shift"] == 0.0 and log.fits_["score:bpb"]["shift"] is None
    assert auto.fits_["score:acc"]["shift"] is None  # zeros: only the linear fit is possible


def test_shift_is_a_share_of_the_minimum_and_extrapolation_is_tamed(swarm):
    model = make_surrogate("regmix").fit(swarm)
    v = swarm.column("loss:x")
    fit = model.fits_["loss:x"]
    assert any(np.isclose(fit["shift"], c * v.min()) for c in SHIFTS)
    z = np.log(v - fit["shift"])
    span = z.max() - z.min()
    lo, hi = fit["zclip"]
    assert np.isclose(lo, z.min() - CLIP_SPAN * span) and np.isclose(hi, z.max() + CLIP_SPAN * span)
    # the soft clip: identity inside, strictly increasing and continuous, logarithmic growth outside
    grid = np.linspace(lo - 50 * span, hi + 50 * span, 20001)
    out = _soft_clip(grid, fit["zclip"])
    inside = (grid >= lo) & (grid <= hi)
    np.testing.assert_array_equal(out[inside], grid[inside])
    assert np.all(np.diff(out) > 0)
    assert np.max(np.abs(np.diff(out))) <= np.max(np.diff(grid)) * (1 + 1e-9)
    assert out[-1] - hi < 2 * span and lo - out[0] < 2 * span  # 50 spans out: under 2 spans
    corners = np.eye(len(DOMAINS))  # far outside the Dirichlet swarm
    pred = model.predict(_targets(corners)).get("loss:x")
    assert np.all(np.isfinite(pred)) and np.all(pred > fit["shift"])
    assert np.all(pred < np.exp(hi + 2 * span) + fit["shift"])


def test_deterministic_and_round_trip(swarm, heldout, tmp_path):
    a = make_surrogate("regmix", seed=3).fit(swarm)
    b = make_surrogate("regmix", seed=3).fit(swarm)
    t = _targets(heldout[:20])
    pa, pb = a.predict(t), b.predict(t)
    np.testing.assert_array_equal(pa.mean, pb.mean)
    np.testing.assert_array_equal(pa.upper, pb.upper)
    loaded = load_surrogate(save_surrogate(a, tmp_path / "m"))
    assert loaded.get_params()["transform"] == "auto"
    again = loaded.predict(t)
    np.testing.assert_array_equal(again.mean, pa.mean)
    np.testing.assert_array_equal(again.lower, pa.lower)
    for q in a.fits_:
        assert loaded.fits_[q]["shift"] == a.fits_[q]["shift"]
    d1 = a.predict_posterior_draws(t, n_draws=8, seed=2)
    d2 = loaded.predict_posterior_draws(t, n_draws=8, seed=2)
    np.testing.assert_array_equal(d1["loss:x"], d2["loss:x"])


def test_compute_varying_keeps_the_log_recipe():
    """Across compute scales a floor from the runs' minimum would stop the loss falling: ``auto`` is ``log`` there."""
    w = mixture_world(n_domains=3, n_benchmarks=1, seed=2)
    runs = w.sample_runs([2e7, 6e7, 2e8], w.random_mixtures(16, seed=1), loss_noise=0.002, score_noise=0.005, seed=2)
    auto = make_surrogate("regmix").fit(runs)
    log = make_surrogate("regmix", transform="log").fit(runs)
    t = Targets(flops=np.full(4, 1e19), mixture=w.random_mixtures(4, seed=5), domains=w.domains)
    np.testing.assert_array_equal(auto.predict(t).mean, log.predict(t).mean)
    assert all(f["zclip"] is None for f in auto.fits_.values())


def test_bad_transform_is_refused(swarm):
    with pytest.raises(ConfigError, match=r"transform must be one of \['auto', 'log'\], got 'shifted'"):
        RegMixRegression(transform="shifted").fit(swarm)
