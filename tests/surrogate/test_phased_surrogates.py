"""Surrogates on schedules: the recency law, FLP-M's auto on phased tables, the hybrid over schedule features."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from mixopt.data.table import RunTable
from mixopt.errors import FitError
from mixopt.laws.recency import FLPMRecencyLaw, recency_mixture
from mixopt.surrogate.base import Targets, load_surrogate, save_surrogate
from mixopt.surrogate.flpm import FLPM
from mixopt.testing import mixture_world
from mixopt.testing.phases_world import phases_world

#: noise-free data recovers λ to this (measured: < 1e-3 on seeds 0-1)
LAMBDA_ATOL_EXACT = 0.02
#: with 0.5 % loss noise, 16 schedules x 4 sizes: |λ error| <= 0.39 measured on seeds 0-3
LAMBDA_ATOL_NOISY = 0.75
SIZES = [2e7, 5e7, 1e8, 2e8]


def _runs(seed: int, noise: float, n_benchmarks: int = 0, n: int = 16, sizes: list[float] = SIZES):
    w = phases_world(3, n_benchmarks, seed=seed)
    P, E = w.random_schedules(n, seed=seed + 1)
    return w, w.sample_runs(sizes, (P, E), seed=seed + 2, loss_noise=noise, score_noise=noise, n_checkpoints=2)


def _held_out(w, n: int = 24, size: float = 2e8) -> Targets:
    P, E = w.random_schedules(n, seed=99, two_phase=1.0)
    N = np.full(n, size)
    return Targets(flops=6 * N * 20 * N, params=N, tokens=20 * N, domains=w.domains, phases=P, phase_end=E)


def _rel_error(model: FLPM, w, t: Targets) -> float:
    pred = model.predict(t, intervals=False)
    L = np.column_stack([pred.get("loss:" + d) for d in w.loss_domains])
    assert t.phases is not None and t.phase_end is not None
    return float(np.median(np.abs(L / w.true_losses(t.flops, t.phases, t.phase_end) - 1)))


def test_recency_law_reduces_to_the_base_law_on_constant_mixtures() -> None:
    rng = np.random.default_rng(0)
    R = rng.dirichlet(np.ones(3), size=10)
    law = FLPMRecencyLaw(["a", "b", "c"], 2)
    theta = np.array([1.0, 0.2, -3.0, 0.3, -0.2, 0.1, 4.0])
    C = np.full(10, 1e19)
    x2 = law.inputs_from_schedule(C, np.repeat(R[:, None, :], 2, axis=1), rng.uniform(0.2, 0.9, (10, 1)))
    base = law.base.predict(law.base.inputs_from(C, R), theta[:-1])
    np.testing.assert_allclose(law.predict(x2, theta), base, rtol=1e-12, atol=0)
    np.testing.assert_allclose(law.predict(law.inputs_from_scale(C, None, None, R), theta), base, rtol=1e-12, atol=0)
    # λ = 0 is the whole run's token-weighted mixture; λ > 0 moves toward the last phase
    P = np.array([[[0.9, 0.1, 0.0], [0.1, 0.1, 0.8]]])
    E = np.array([[0.8]])
    np.testing.assert_allclose(recency_mixture(P, E, 0.0)[0], [0.74, 0.1, 0.16], rtol=0, atol=1e-12)
    assert recency_mixture(P, E, 5.0)[0, 2] > 0.16
    # a checkpoint before the boundary has seen phase 1 only
    np.testing.assert_allclose(recency_mixture(P, E, 5.0, 0.5)[0], P[0, 0], rtol=0, atol=1e-12)


def test_jacobian_matches_finite_differences() -> None:
    law = FLPMRecencyLaw(["a", "b", "c"], 2)
    rng = np.random.default_rng(1)
    P = rng.dirichlet(np.ones(3), size=(6, 2))
    x = law.inputs_from_schedule(np.geomspace(1e17, 1e20, 6), P, rng.uniform(0.5, 0.9, (6, 1)))
    theta = np.array([1.0, 0.25, -2.0, 0.3, -0.5, 0.2, 2.5])
    J = law.jacobian(x, theta)
    for i in range(theta.size):
        d = np.zeros_like(theta)
        d[i] = 1e-6
        fd = (law.predict(x, theta + d) - law.predict(x, theta - d)) / 2e-6
        np.testing.assert_allclose(J[:, i], fd, rtol=1e-4, atol=1e-9)


@pytest.mark.parametrize("seed", [0, 1])
def test_recency_recovered_without_noise(seed: int) -> None:
    w, runs = _runs(seed, 0.0)
    m = FLPM(stage1="flpm_recency", family="law", intervals="raw", n_bootstrap=0).fit(runs)
    np.testing.assert_allclose(m.stage1_params_[:, -1], w.recency, rtol=0, atol=LAMBDA_ATOL_EXACT)


@pytest.mark.parametrize("seed", [0, 3])
def test_recency_recovered_with_noise_and_beats_the_constant_law(seed: int) -> None:
    w, runs = _runs(seed, 0.005)
    rec = FLPM(stage1="flpm_recency", family="law", intervals="raw", n_bootstrap=0).fit(runs)
    np.testing.assert_allclose(rec.stage1_params_[:, -1], w.recency, rtol=0, atol=LAMBDA_ATOL_NOISY)
    const = FLPM(stage1="flpm", family="law", intervals="raw", n_bootstrap=0).fit(runs)
    t = _held_out(w)
    # measured: 0.1-0.2 % against 0.6-0.8 % median relative loss error
    assert _rel_error(rec, w, t) < 0.5 * _rel_error(const, w, t)


def test_explicit_recency_law_on_constant_runs_is_refused() -> None:
    w = mixture_world(3, 0, seed=0)
    runs = w.sample_runs(SIZES, w.random_mixtures(12, seed=1), seed=2, n_checkpoints=2)
    with pytest.raises(FitError, match="schedules"):
        FLPM(stage1="flpm_recency", family="law", intervals="raw", n_bootstrap=0).fit(runs)


def test_one_phase_table_fits_and_predicts_as_today() -> None:
    """The same runs as constant mixtures (mix:<d>) and as one-phase schedules (mix@1:<d>): identical models."""
    w = mixture_world(3, 2, seed=0)
    runs = w.sample_runs([2e7, 5e7, 1e8, 2e8, 4e8], w.random_mixtures(10, seed=1), seed=2, n_checkpoints=4)
    f = runs.frame
    phased = RunTable(f.rename({"mix:" + d: "mix@1:" + d for d in w.domains}).drop("flops"), runs.benchmarks)
    assert phased.is_phased and phased.n_phases == 1
    a = FLPM(n_bootstrap=4, seed=0).fit(runs)
    b = FLPM(n_bootstrap=4, seed=0).fit(phased)
    assert a.config_ == b.config_
    assert a.selection_["candidate"].to_list() == b.selection_["candidate"].to_list()
    t = Targets.from_params_tokens(np.full(5, 4e8), np.full(5, 8e9), mixture=w.random_mixtures(5, seed=3), domains=w.domains)
    pa, pb = a.predict(t), b.predict(t)
    np.testing.assert_array_equal(pa.mean, pb.mean)
    np.testing.assert_array_equal(pa.lower, pb.lower)
    # the one-phase schedule targets predict the same too
    tb = Targets(flops=t.flops, params=t.params, tokens=t.tokens, domains=w.domains, phases=t.mixture[:, None, :])
    np.testing.assert_array_equal(b.predict(tb).mean, pa.mean)


def test_model_file_round_trip_and_any_number_of_phases(tmp_path) -> None:
    w, runs = _runs(0, 0.005, n_benchmarks=2, sizes=[2e7, 5e7, 1e8, 2e8, 4e8])
    m = FLPM(stage1="flpm_recency", family="hybrid", stage2="logistic", stage2_inputs="fitted", n_bootstrap=4).fit(runs)
    assert m.residual_schedule_
    t = _held_out(w, 6)
    back = load_surrogate(save_surrogate(m, tmp_path / "m"))
    np.testing.assert_array_equal(back.predict(t).mean, m.predict(t).mean)
    # a three-phase schedule equal to a two-phase one (its first phase split in two) predicts the same
    assert t.phases is not None and t.phase_end is not None
    P3 = np.concatenate([t.phases[:, :1], t.phases], axis=1)
    E3 = np.column_stack([t.phase_end[:, 0] / 2, t.phase_end[:, 0]])
    t3 = Targets(flops=t.flops, params=t.params, tokens=t.tokens, domains=w.domains, phases=P3, phase_end=E3)
    np.testing.assert_allclose(m.predict(t3, intervals=False).mean, m.predict(t, intervals=False).mean, rtol=1e-10, atol=0)


def test_hybrid_reads_schedule_features() -> None:
    """The constant law on the overall mixture cannot tell two schedules with the same overall mixture apart; its
    hybrid correction over schedule features can, and it lowers the error on held-out schedules (measured 0.76 % ->
    0.3 % on seed 0)."""
    w, runs = _runs(0, 0.002, n=30)
    law = FLPM(stage1="flpm", family="law", intervals="raw", n_bootstrap=0).fit(runs)
    hyb = FLPM(stage1="flpm", family="hybrid", intervals="raw", n_bootstrap=0).fit(runs)
    P = np.array([[[0.6, 0.2, 0.2], [0.6, 0.2, 0.2]], [[0.7, 0.2, 0.1], [0.2, 0.2, 0.6]]])
    E = np.array([[0.8], [0.8]])
    t = Targets(flops=[6 * 2e8 * 4e9] * 2, params=[2e8] * 2, tokens=[4e9] * 2, domains=w.domains, phases=P, phase_end=E)
    np.testing.assert_allclose(t.mixture[0], t.mixture[1], rtol=0, atol=1e-12)
    lp = law.predict(t, intervals=False).mean
    hp = hyb.predict(t, intervals=False).mean
    np.testing.assert_allclose(lp[0], lp[1], rtol=1e-12, atol=0)
    assert np.max(np.abs(hp[0] / hp[1] - 1)) > 1e-3
    held = _held_out(w)
    assert _rel_error(hyb, w, held) < _rel_error(law, w, held)


@pytest.mark.slow
def test_auto_chooses_the_recency_law_on_a_world_with_recency() -> None:
    w, runs = _runs(0, 0.005, n_benchmarks=2, n=20, sizes=[2e7, 5e7, 1e8, 2e8, 4e8])
    m = FLPM(n_bootstrap=6).fit(runs)
    assert m.config_["stage1"] == "flpm_recency"
    assert "stage1=flpm_recency, family=law" in m.selection_["candidate"].to_list()
    t = _held_out(w, size=4e8)
    pred = m.predict(t)
    assert pred.lower is not None and np.all(np.isfinite(pred.lower[:, :3]))


def test_phased_table_keeps_existing_surrogates_working() -> None:
    """Surrogates that read only the overall mixture fit and predict phased tables (the constant approximation)."""
    from mixopt.surrogate.base import make_surrogate

    w, runs = _runs(0, 0.005, n=12)
    m = make_surrogate("regmix").fit(runs.final())
    t = _held_out(w, 4)
    assert np.all(np.isfinite(m.predict(t).mean))
    assert isinstance(runs.frame, pl.DataFrame)


def _mirrored_runs(sizes: list[float], n: int = 6, seed: int = 3):
    """``n`` schedules (A then B, ending at 0.5) and their mirrors (B then A): pairs with the same whole-run mixture."""
    w = phases_world(3, 0, seed=seed)
    P, _ = w.random_schedules(n, seed=seed, two_phase=1.0)
    P = np.concatenate([P, P[:, ::-1]], axis=0)
    E = np.full((2 * n, 1), 0.5)
    return w, w.sample_runs(sizes, (P, E), seed=seed + 1, loss_noise=0.005, score_noise=0.005, n_checkpoints=2)


def test_schedule_groups_tell_schedules_of_one_overall_mixture_apart() -> None:
    from mixopt.surrogate.schedule import schedule_groups

    _, runs = _mirrored_runs([2e7, 5e7])
    final = runs.final()
    inverse, first = schedule_groups(final)
    assert first.size == 12  # 6 pairs: the overall mixture alone gives 6 groups
    assert np.unique(np.round(final.mixture(), 4), axis=0).shape[0] == 6
    # one group per schedule, across sizes; a constant run written in two phases groups by its mixture
    assert all(np.unique(inverse[final.params() == s]).size == 12 for s in np.unique(final.params()))
    f = final.frame
    cons = RunTable(f.with_columns(**{f"mix@2:{d}": f[f"mix@1:{d}"] for d in runs.domains}).drop([f"mix:{d}" for d in runs.domains]),
                    runs.benchmarks)
    cons2 = RunTable(cons.frame.with_columns(pl.lit(0.7).alias("phase_end@1")), runs.benchmarks)
    np.testing.assert_array_equal(schedule_groups(cons)[0], schedule_groups(cons2)[0])


def test_leave_mixtures_out_folds_hold_out_whole_schedules() -> None:
    """A fold holds out schedules, not overall mixtures: a held-out schedule's mirror (same mixture) may be fitted on."""
    from mixopt.surrogate.flpm_auto import make_folds, mixture_folds
    from mixopt.surrogate.schedule import schedule_groups

    _, runs = _mirrored_runs([1e8], n=8)
    folds = mixture_folds(runs, 1)
    assert len(folds) == 1 and "4 of 16 mixtures" in folds[0].description
    fold = folds[0]
    both = RunTable(pl.concat([fold.train.final().frame, fold.test.frame]), runs.benchmarks)
    g, _ = schedule_groups(both)
    n_tr = fold.train.final().n_runs
    assert not set(g[:n_tr].tolist()) & set(g[n_tr:].tolist())  # no held-out schedule is fitted on
    mix_tr, mix_te = np.round(fold.train.final().mixture(), 4), np.round(fold.test.mixture(), 4)
    assert any(np.allclose(a, b) for a in mix_te for b in mix_tr)  # grouping by overall mixture would forbid this
    # schedules at two sizes (no size or transfer fold): the schedule folds, in range
    _, two = _mirrored_runs([2e7, 6e7], n=8)
    assert [f.kind for f in make_folds(two)] == ["mixture"]
    constant = mixture_world(3, 0, seed=0)
    assert make_folds(constant.sample_runs([2e7, 6e7], constant.random_mixtures(16, seed=1), n_checkpoints=2)) == []


def test_phased_auto_on_in_range_folds_scores_flpm_against_its_schedule_form() -> None:
    """Two sizes of schedules: mixture folds only, where flpm and flpm_recency compete and the other forms are excluded."""
    w = phases_world(3, 0, seed=1)
    P, E = w.random_schedules(20, seed=2, two_phase=0.7)
    runs = w.sample_runs([2e7, 6e7], (P, E), seed=3, loss_noise=0.003, score_noise=0.003, n_checkpoints=3)
    m = FLPM(n_bootstrap=4).fit(runs)
    t = m.selection_
    status = dict(zip(t["candidate"].to_list(), t["status"].to_list(), strict=True))
    assert status["stage1=dml"] == "excluded" and status["stage1=dml_recency"] == "excluded"
    assert status["stage1=flpm_recency, family=law"] in ("scored", "chosen")
    assert status["stage1=flpm, family=law"] in ("scored", "chosen")
    assert m.config_["stage1"] == "flpm_recency"  # the world has recency (λ 2-6 on two of its domains)


@pytest.mark.slow
def test_phased_auto_out_of_range_scores_both_recency_forms() -> None:
    """Scale folds (5 sizes): dml_recency is a candidate beside flpm_recency, scored on the same folds as flpm and dml."""
    w, runs = _runs(0, 0.005, n=16, sizes=[2e7, 5e7, 1e8, 2e8, 4e8])
    m = FLPM(n_bootstrap=4).fit(runs)
    t = m.selection_.filter(pl.col("step") == "stage1")
    scored = {c: s for c, s in zip(t["candidate"].to_list(), t["status"].to_list(), strict=True)}
    for form in ("flpm", "dml", "flpm_recency", "dml_recency"):
        assert scored[f"stage1={form}, family=law"] in ("scored", "chosen", "averaged"), (form, scored)
    # the winner is judged by the folds; on this world (seed 0) auto picks an N,D form, so only candidacy is pinned here
    chosen = m.config_["stage1"]
    assert any(k.startswith(f"stage1={chosen},") and v in ("chosen", "averaged") for k, v in scored.items()), (chosen, scored)
