"""FLP and FP surrogates on small seeded synthetic data with known truth."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mixopt.data.table import Benchmark, RunTable
from mixopt.errors import ConfigError, FitError, NotFittedError, NotPredictableError, SchemaError
from mixopt.surrogate.base import Targets, load_surrogate, make_surrogate, save_surrogate, surrogate_kinds
from mixopt.surrogate.flp import FLP, FP, emerged_mask

# ground truth: L(C) = E + A·(C/1e19)^-alpha ; lin = max(chance, W0 + W1·L) ; bpb = B0 + B1·L
E_TRUE, A_TRUE, ALPHA_TRUE = 1.8, 0.8, 0.3
W0, W1 = 1.45, -0.4
B0, B1 = 0.3, 0.25
SIZES = np.array([2e7, 4e7, 8e7, 1.6e8, 3.2e8, 6.4e8, 1e9])
TARGET_PARAMS = np.array([3e9, 6e9])
VARIED_RATIOS = np.array([10.0, 40.0, 20.0, 80.0, 15.0, 30.0, 20.0])  # tokens per parameter, one per run

#: loss prediction at 3-6x beyond the largest sampling run, relative
LOSS_RTOL = 0.02
#: score prediction there, absolute (score units)
SCORE_ATOL = 0.03
#: the shared world has 1% loss noise and a slow exponent (~0.12): 7 runs pin the loss 3x
#: beyond the largest run to a few percent
WORLD_LOSS_RTOL = 0.05
#: noise-free stage parameters
PARAM_RTOL, PARAM_ATOL = 1e-5, 1e-6


def true_loss(c: np.ndarray) -> np.ndarray:
    return E_TRUE + A_TRUE * (np.asarray(c) / 1e19) ** (-ALPHA_TRUE)


def emergent_runs(
    seed: int = 0, noise_loss: float = 0.005, noise_score: float = 0.01, n_ckpt: int = 8, sizes: np.ndarray = SIZES, with_loss: str | None = "loss", tokens_per_param: float | np.ndarray = 20.0
) -> RunTable:
    """Runs at ``tokens_per_param`` (one value or one per run); checkpoints follow the
    law at the compute seen so far."""
    rng = np.random.default_rng(seed)
    ratio = np.broadcast_to(np.asarray(tokens_per_param, dtype=float), sizes.shape)
    rows = []
    for i, n in enumerate(sizes):
        for k in range(1, n_ckpt + 1):
            d = ratio[i] * n * k / n_ckpt
            loss = true_loss(6 * n * d) * math.exp(rng.normal(0, noise_loss))
            row = {
                "run": f"run{i:02d}",
                "params": n,
                "tokens": d,
                "score:lin": max(0.25, W0 + W1 * loss) + rng.normal(0, noise_score),
                "score:never": 0.25 + rng.normal(0, noise_score / 5),
                "score:one_run": 0.25 + (0.3 if (i == len(sizes) - 1 and k >= n_ckpt - 2) else 0.0) + rng.normal(0, 1e-3),
                "score:bpb": B0 + B1 * loss + rng.normal(0, noise_score),
            }
            if with_loss:
                row[with_loss] = loss
            rows.append(row)
    benches = [Benchmark(name="lin", chance=0.25), Benchmark(name="never", chance=0.25), Benchmark(name="one_run", chance=0.25), Benchmark(name="bpb", chance=None, higher_is_better=False)]
    return RunTable(pl.DataFrame(rows), benches)


def targets() -> Targets:
    return Targets.from_params_tokens(TARGET_PARAMS, 20 * TARGET_PARAMS)


@pytest.fixture(scope="module")
def runs() -> RunTable:
    return emergent_runs()


@pytest.fixture(scope="module")
def flp(runs: RunTable) -> FLP:
    return FLP(n_bootstrap=60).fit(runs)


def test_flp_predicts_loss_and_scores_beyond_the_sampling_runs(flp: FLP) -> None:
    tg = targets()
    pred = flp.predict(tg)
    assert pred.names == ("loss", "score:lin", "score:never", "score:one_run", "score:bpb")
    loss = true_loss(tg.flops)
    np.testing.assert_allclose(pred.get("loss"), loss, rtol=LOSS_RTOL)
    np.testing.assert_allclose(pred.get("score:lin"), W0 + W1 * loss, atol=SCORE_ATOL)
    np.testing.assert_allclose(pred.get("score:bpb"), B0 + B1 * loss, atol=SCORE_ATOL)
    for name in ("loss", "score:lin", "score:bpb"):
        lo, hi = pred.interval(name)
        m = pred.get(name)
        assert np.all((lo < m) & (m < hi)), name
    assert np.all(np.isfinite(pred.std[:, [0, 1, 4]])) and np.all(pred.std[:, [0, 1, 4]] > 0)
    assert flp.outputs == pred.names


def test_noise_free_data_recover_both_stages() -> None:
    runs = emergent_runs(noise_loss=0.0, noise_score=0.0)
    # the paper's x (observed loss): exact recovery; the default pooled x reads the curves' curvature as a
    # little noise and moves the losses by ~1e-4 relative, so its stage-2 parameters agree to 1e-3 only
    model = FLP(n_bootstrap=0, flops_reference=1e19, stage2_loss_x="observed").fit(runs)
    s1 = model.laws_["loss"].params
    np.testing.assert_allclose(s1, [E_TRUE, math.log(A_TRUE), ALPHA_TRUE], rtol=PARAM_RTOL, atol=PARAM_ATOL)
    np.testing.assert_allclose(model.laws_["score:lin"].params, [W0, W1], rtol=PARAM_RTOL, atol=PARAM_ATOL)
    np.testing.assert_allclose(model.laws_["score:bpb"].params, [B0, B1], rtol=PARAM_RTOL, atol=PARAM_ATOL)
    den = FLP(n_bootstrap=0, flops_reference=1e19).fit(runs)
    assert den.stage2_loss_x == "pooled"
    np.testing.assert_allclose(den.laws_["loss"].params, s1, rtol=PARAM_RTOL, atol=PARAM_ATOL)
    np.testing.assert_allclose(den.laws_["score:lin"].params, [W0, W1], rtol=1e-3)
    np.testing.assert_allclose(den.laws_["score:bpb"].params, [B0, B1], rtol=1e-3)
    # no bootstrap: noise-only intervals. Zero residuals, so the loss interval is only the measurement-noise floor
    # the checkpoints show (here their curvature between coarse checkpoints, read as 0.06 % noise): ±1.645 sd in log loss
    pred = model.predict(targets())
    assert 0 < model.loss_noise_sd_ < 1e-3
    width = np.log(pred.upper[:, 0] / pred.lower[:, 0])
    np.testing.assert_allclose(width[0], 2 * 1.6448536269514722 * model.loss_noise_sd_, rtol=1e-6)
    assert width[1] >= width[0]  # the farther target: the calibration widens beyond the folds' reach
    assert math.isnan(FLP(n_bootstrap=0, flops_reference=1e19, preset="paper").fit(runs).loss_noise_sd_)  # the paper: no floor


def test_unpredictable_benchmarks_carry_a_reason_and_predict_nan(flp: FLP) -> None:
    assert set(flp.unpredictable_) == {"score:never", "score:one_run"}
    assert "0 emerged checkpoint(s)" in flp.unpredictable_["score:never"]
    assert "from 1 run(s)" in flp.unpredictable_["score:one_run"]
    assert "need >= 3 from >= 2 runs" in flp.unpredictable_["score:one_run"]
    pred = flp.predict(targets())
    assert dict(pred.unpredictable) == flp.unpredictable_
    for name in flp.unpredictable_:
        assert np.all(np.isnan(pred.get(name)))
        lo, hi = pred.interval(name)
        assert np.all(np.isnan(lo)) and np.all(np.isnan(hi))
    report = flp.fit_report_
    assert report.filter(pl.col("status") == "unpredictable")["quantity"].sort().to_list() == ["score:never", "score:one_run"]


def test_min_runs_and_min_emerged_are_settings(runs: RunTable) -> None:
    model = FLP(n_bootstrap=0, min_runs=1).fit(runs)
    assert "score:one_run" not in model.unpredictable_
    model = FLP(n_bootstrap=0, min_emerged=10_000).fit(runs)
    assert {"score:lin", "score:bpb"} <= set(model.unpredictable_)


def test_emerged_mask_rules() -> None:
    s = np.array([0.2, 0.3, 0.31, np.nan, 0.5])
    up = Benchmark(name="acc", chance=0.25)
    np.testing.assert_array_equal(emerged_mask(s, up, 0.05), [False, True, True, False, True])
    down = Benchmark(name="err", chance=0.5, higher_is_better=False)
    np.testing.assert_array_equal(emerged_mask(s, down, 0.05), [True, True, True, False, False])
    free = Benchmark(name="bpb", chance=None, higher_is_better=False)
    np.testing.assert_array_equal(emerged_mask(s, free, 0.05), [True, True, True, False, True])
    runs = np.array(["a", "a", "a", "b", "b"])
    s2 = np.array([0.4, 0.26, 0.27, 0.2, 0.1])
    crossing = emerged_mask(s2, up, 0.05, run_ids=runs, mode="first_crossing")
    np.testing.assert_array_equal(crossing, [True, True, True, False, False])
    with pytest.raises(ConfigError, match="emergence must be one of"):
        emerged_mask(s2, up, 0.05, mode="sometimes")


def test_first_crossing_mode_fits(runs: RunTable) -> None:
    model = FLP(n_bootstrap=0, emergence="first_crossing").fit(runs)
    assert "score:lin" in model.laws_


def test_joint_bootstrap_is_seeded_and_intervals_nest(runs: RunTable, flp: FLP) -> None:
    tg = targets()
    again = FLP(n_bootstrap=60).fit(runs).predict(tg)
    base = flp.predict(tg)
    np.testing.assert_array_equal(again.lower, base.lower)
    narrow = flp.predict(tg, level=0.5)
    ok = ~np.isnan(base.mean)
    assert np.all(base.lower[ok] <= narrow.lower[ok]) and np.all(narrow.upper[ok] <= base.upper[ok])
    # raw (uncalibrated) intervals nest: parameter-only inside parameter + noise
    raw = FLP(n_bootstrap=60, calibrate=False).fit(runs).predict(tg)
    param_only = FLP(n_bootstrap=60, include_noise=False, calibrate=False).fit(runs).predict(tg)
    assert np.all(param_only.upper[ok] - param_only.lower[ok] <= raw.upper[ok] - raw.lower[ok] + 1e-12)
    means_only = flp.predict(tg, intervals=False)
    assert means_only.lower is None
    np.testing.assert_array_equal(means_only.mean, base.mean)


@settings(max_examples=25, deadline=None)
@given(logc=st.lists(st.floats(17.0, 24.0, allow_nan=False), min_size=2, max_size=12))
def test_predicted_loss_falls_with_compute(flp: FLP, logc: list[float]) -> None:
    c = np.sort(10.0 ** np.asarray(logc))
    loss = flp.predict(Targets(flops=c), intervals=False).get("loss")
    assert np.all(np.diff(loss) <= 1e-12)


@pytest.mark.parametrize(
    "settings_",
    [
        {"n_bootstrap": 20},
        {"n_bootstrap": 20, "stage1": "pure_power", "stage2": "sigmoid"},
        {"n_bootstrap": 10, "stage1": "chinchilla", "n_starts": 4},
    ],
    ids=["default", "pure_power+sigmoid", "chinchilla"],
)
def test_save_load_round_trip_gives_identical_predictions(tmp_path, settings_: dict) -> None:  # noqa: ANN001
    model = FLP(**settings_).fit(emergent_runs(tokens_per_param=VARIED_RATIOS))
    tg = targets()
    before = model.predict(tg)
    loaded = load_surrogate(save_surrogate(model, tmp_path / "m"))
    after = loaded.predict(tg)
    assert isinstance(loaded, FLP) and loaded.get_params() == model.get_params()
    assert after.names == before.names and dict(after.unpredictable) == dict(before.unpredictable)
    for a, b in ((after.mean, before.mean), (after.lower, before.lower), (after.upper, before.upper), (after.std, before.std)):
        np.testing.assert_array_equal(a, b)
    assert loaded.fit_report_.equals(model.fit_report_)


def test_fp_baseline_fits_emerged_checkpoints_and_round_trips(runs: RunTable, tmp_path) -> None:  # noqa: ANN001
    fp = FP(n_bootstrap=30).fit(runs)
    assert set(fp.unpredictable_) == {"score:never", "score:one_run"}
    assert fp.outputs == ("score:lin", "score:never", "score:one_run", "score:bpb")
    pred = fp.predict(targets())
    assert np.all(np.isfinite(pred.get("score:lin"))) and np.all(np.isnan(pred.get("score:never")))
    lo, hi = pred.interval("score:lin")
    assert np.all(lo < hi)
    after = load_surrogate(save_surrogate(fp, tmp_path / "fp")).predict(targets())
    np.testing.assert_array_equal(after.mean, pred.mean)
    np.testing.assert_array_equal(after.upper, pred.upper)


def test_fp_with_nothing_predictable_raises(runs: RunTable) -> None:
    frame = runs.frame.select("run", "params", "tokens", "score:never")
    table = RunTable(frame, [Benchmark(name="never", chance=0.25)])
    with pytest.raises(NotPredictableError, match="score:never"):
        FP().fit(table)


def test_loss_column_choice() -> None:
    domain_only = emergent_runs(with_loss="loss:web")
    with pytest.raises(SchemaError, match=r"loss_column= one of them.*loss:web"):
        FLP(n_bootstrap=0).fit(domain_only)
    model = FLP(n_bootstrap=0, loss_column="loss:web").fit(domain_only)
    assert model.outputs[0] == "loss:web"
    with pytest.raises(SchemaError, match="not a loss column"):
        FLP(loss_column="loss:code").fit(domain_only)
    no_loss = emergent_runs(with_loss=None)
    with pytest.raises(SchemaError, match="kind 'fp'"):
        FLP().fit(no_loss)


def test_invalid_settings_raise_config_error(runs: RunTable) -> None:
    with pytest.raises(ConfigError, match="stage1 must be one of"):
        FLP(stage1="cubic").fit(runs)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="min_emerged must be an integer >= 1"):
        FLP(min_emerged=0).fit(runs)
    with pytest.raises(ConfigError, match="emergence_margin"):
        FP(emergence_margin=-1).fit(runs)


def test_stage1_needs_enough_runs() -> None:
    two = emergent_runs(sizes=SIZES[:2])
    with pytest.raises(FitError, match="stage 1"):
        FLP().fit(two)


def test_chinchilla_stage1_needs_params_and_tokens(runs: RunTable) -> None:
    with pytest.raises(FitError, match="collinear"):  # every run at 20 tokens/param: N and D inseparable
        FLP(stage1="chinchilla", n_bootstrap=0).fit(runs)
    model = FLP(stage1="chinchilla", n_bootstrap=0, n_starts=4).fit(emergent_runs(tokens_per_param=VARIED_RATIOS))
    with pytest.raises(SchemaError, match="from_params_tokens"):
        model.predict(Targets(flops=np.array([1e21])))
    assert np.isfinite(model.predict(targets()).get("loss")).all()


def test_not_fitted_and_registry() -> None:
    for cls in (FLP, FP):
        with pytest.raises(NotFittedError):
            cls().predict(targets())
    assert {"flp", "fp"} <= set(surrogate_kinds())
    m = make_surrogate("flp", stage2="sigmoid")
    assert isinstance(m, FLP) and m.get_params()["stage2"] == "sigmoid"


def test_sigmoid_stage2_saturates_below_the_ceiling(runs: RunTable) -> None:
    model = FLP(stage2="sigmoid", n_bootstrap=0).fit(runs)
    far = Targets(flops=np.array([1e24, 1e26]))
    assert np.all(model.predict(far, intervals=False).get("score:lin") <= 1.0)


def test_on_the_shared_synthetic_world() -> None:
    worlds = pytest.importorskip("mixopt.testing.worlds")
    world = worlds.single_domain_world(seed=0)
    sampled = world.sample_runs([2e7, 4e7, 8e7, 1.6e8, 3.2e8, 6.4e8, 1e9], seed=1)
    model = FLP(n_bootstrap=50).fit(sampled)
    flops = np.array([6 * 3e9 * 60e9])
    pred = model.predict(Targets(flops=flops))
    truth = float(np.ravel(world.true_overall_loss(flops))[0])
    assert pred.get("loss")[0] == pytest.approx(truth, rel=WORLD_LOSS_RTOL)
    lo, hi = pred.interval("loss")
    assert lo[0] <= truth <= hi[0]
