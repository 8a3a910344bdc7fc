"""mixopt plan: the next runs chosen by what they teach about the decision."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest

from mixopt.data import Benchmark, RunTable
from mixopt.errors import SearchError
from mixopt.search import ComputeSpace, MixtureSpace, Problem, SearchSpace
from mixopt.search.plan import PlanSettings, candidate_runs, greedy_batch, plan_runs
from mixopt.search.space import Points
from mixopt.surrogate.base import Prediction, Surrogate, Targets
from mixopt.train.ladder import read_jobs
from mixopt.workflows.plan import plan_jobs, write_plan

ROOT = Path(__file__).resolve().parents[2]


class HingeSurrogate(Surrogate):
    """Loss over domains a, b, c with two uncertain parameters, one draw each per fitted model.

    ``loss = 2 + θ·(r_b - 0.5) + φ·3·(r_c - 1/3)`` at a proxy run (C < 1e17), but at the
    target compute only ``θ`` matters: the decision (how much b) hinges on θ alone. φ is
    the larger source of variance at the proxies, so a design for the parameters (doptimal)
    wants c to vary, while the decision wants b to vary.
    """

    kind: ClassVar[str] = "test-plan-hinge"
    uses_mixture: ClassVar[bool] = True

    def _fit(self, runs: RunTable | None) -> None:
        self.domains_ = ("a", "b", "c")
        self.benchmarks_ = (Benchmark(name="x", chance=0.25),)
        self.outputs_ = ("loss",)
        self.unpredictable_ = {}

    def _loss(self, targets: Targets, theta: np.ndarray, phi: np.ndarray) -> np.ndarray:
        r = targets.mixture
        proxy = (targets.flops < 1e17).astype(float)
        return 2 + theta[:, None] * (r[:, 1] - 0.5)[None, :] + proxy[None, :] * phi[:, None] * 3 * (r[:, 2] - 1 / 3)[None, :]

    def _predict(self, targets: Targets, *, intervals: bool, level: float) -> Prediction:
        mean = self._loss(targets, np.zeros(1), np.zeros(1))[0][:, None]
        return Prediction.from_normal(self.outputs_, mean, 0.1 if intervals else None, level)

    def _predict_draws(self, targets: Targets, *, n_draws: int, seed: int) -> dict[str, np.ndarray]:
        rng = np.random.default_rng(seed)
        theta, phi = 0.1 * rng.standard_normal(n_draws), 0.1 * rng.standard_normal(n_draws)
        return {"loss": self._loss(targets, theta, phi)}

    def _get_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        return {}, {}

    def _set_state(self, state: dict[str, Any], arrays: Mapping[str, np.ndarray]) -> None:  # pragma: no cover
        self._fit(None)


def _problem(caps: Mapping[str, float] | None = None) -> Problem:
    s = HingeSurrogate()
    s._fit(None)
    s.fitted_ = True
    space = SearchSpace(MixtureSpace(("a", "b", "c"), floors={"a": 0.05}, caps=dict(caps or {"c": 0.6})),
                        ComputeSpace(params=1e9, tokens=2e10))
    return Problem(space, s, ["loss"])


# coverage 0: these tests are about the criterion's own picks (coverage picks are tested on their own)
SETTINGS = PlanSettings(runs=4, sizes=(1e6,), tokens_per_param=20.0, n_candidates=128, n_targets=64, n_draws=128, coverage=0.0)


def test_decision_puts_runs_where_the_deciding_domain_varies_doptimal_where_variance_is() -> None:
    problem = _problem()
    cand = candidate_runs(problem, SETTINGS.sizes, 20.0, SETTINGS.n_candidates, SETTINGS.seed)
    spread_b = np.median(np.abs(cand.mixture[:, 1] - 0.5))
    spread_c = np.median(np.abs(cand.mixture[:, 2] - 1 / 3))
    dec = plan_runs(problem, SETTINGS)
    dop = plan_runs(problem, PlanSettings(**{**SETTINGS.__dict__, "criterion": "doptimal"}))
    # the decision's runs sit where b is far from its midpoint (θ shows most), c near its own (φ is noise to it)
    assert np.all(np.abs(dec.mixture[:, 1] - 0.5) > spread_b)
    assert np.mean(np.abs(dec.mixture[:, 2] - 1 / 3)) < np.mean(np.abs(dop.mixture[:, 2] - 1 / 3))
    assert np.mean(np.abs(dop.mixture[:, 2] - 1 / 3)) > spread_c
    assert dec.summary["draws"] == "joint" and 0 < dec.summary["p_best_of_pick"] <= 1


def test_plan_respects_bounds_budget_and_is_seeded() -> None:
    problem = _problem(caps={"c": 0.3, "b": 0.7})
    st = PlanSettings(**{**SETTINGS.__dict__, "sizes": (1e6, 4e6), "runs": 50, "flops": 6 * 20 * (3 * 1e12 + 16e12)})
    p = plan_runs(problem, st)
    assert np.all(p.mixture[:, 2] <= 0.3 + 1e-9) and np.all(p.mixture[:, 1] <= 0.7 + 1e-9)
    assert np.all(p.mixture[:, 0] >= 0.05 - 1e-9)
    assert np.allclose(p.mixture.sum(axis=1), 1)
    assert p.flops.sum() <= st.flops * (1 + 1e-9)
    assert np.allclose(p.tokens, 20 * p.params) and np.allclose(p.flops, 6 * p.params * p.tokens)
    again = plan_runs(problem, st)
    assert np.array_equal(p.mixture, again.mixture) and np.array_equal(p.params, again.params)
    other = plan_runs(problem, PlanSettings(**{**st.__dict__, "seed": 1}))
    assert not np.array_equal(p.mixture, other.mixture)


def test_greedy_batch_picks_the_informative_run_once_and_honours_the_budget() -> None:
    rng = np.random.default_rng(0)
    s = 400
    r = rng.standard_normal(s)
    y = rng.standard_normal((s, 5, 1)) * 0.5
    y[:, 3, 0] = r + 0.1 * rng.standard_normal(s)  # run 3 measures the regret
    y[:, 4, 0] = y[:, 3, 0]  # run 4 would measure the same thing again
    picked, gains = greedy_batch(y - y.mean(axis=0), r, np.ones(5), runs=2, flops=None, noise=0.05)
    assert picked[0] in (3, 4) and set(picked) != {3, 4}
    assert gains[0] > 10 * gains[1]
    cost = np.array([1.0, 1.0, 1.0, 100.0, 100.0])
    picked, _ = greedy_batch(y - y.mean(axis=0), r, cost, runs=5, flops=3.0, noise=0.05)
    assert sorted(picked) == [0, 1, 2]


def test_bad_settings_say_what_is_expected() -> None:
    with pytest.raises(SearchError, match="criterion must be one of"):
        PlanSettings(criterion="greedy")
    with pytest.raises(SearchError, match="runs must be an integer >= 1"):
        PlanSettings(runs=0)
    with pytest.raises(SearchError, match="No candidate run fits the FLOPs budget"):
        plan_runs(_problem(), PlanSettings(**{**SETTINGS.__dict__, "flops": 1.0}))


def test_plan_csv_round_trips_to_ladder_jobs(tmp_path: Path) -> None:
    p = plan_runs(_problem(), SETTINGS)
    csv, js = write_plan(p, tmp_path / "plan.csv", settings=SETTINGS)
    jobs = read_jobs(csv)
    assert [j.to_dict() for j in jobs] == [j.to_dict() for j in plan_jobs(p)]
    assert all(set(j.mixture) == {"a", "b", "c"} for j in jobs)
    meta = json.loads(js.read_text())
    assert meta["criterion"] == "decision" and len(meta["runs"]) == len(p)


def test_cli_plan_on_the_shipped_ladder_writes_jobs_the_ladder_reads(tmp_path: Path, capsys) -> None:
    from mixopt.cli.main import main

    cfg = tmp_path / "plan.toml"
    cfg.write_text(f"""[data]
runs = "{ROOT / 'mixopt/examples/ladder_runs.csv'}"
[surrogate]
method = "flpm"
[compute]
params = 1.2e6
tokens = 3.2e6
[domains.math]
floor = 0.05
[objectives]
optimize = ["loss:prose", "loss:code"]
""")
    out = tmp_path / "next.csv"
    assert main(["plan", str(cfg), "--runs", "3", "--out", str(out), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["draws"] == "joint"
    jobs = read_jobs(out)
    assert len(jobs) == 3 and all(j.mixture["math"] >= 0.05 - 1e-9 for j in jobs)
    assert all(j.params < 1.2e6 for j in jobs)


def test_plan_section_of_a_config_is_parsed_and_checked(tmp_path: Path) -> None:
    import mixopt
    from mixopt.config import load_config
    from mixopt.errors import ConfigError

    base = f"""[data]
runs = "{ROOT / 'mixopt/examples/ladder_runs.csv'}"
[surrogate]
method = "flpm"
[compute]
params = 1.2e6
tokens = 3.2e6
[objectives]
optimize = ["loss:prose"]
"""
    good = tmp_path / "good.toml"
    good.write_text(base + "[plan]\nruns = 2\ncriterion = \"doptimal\"\nsizes = [4e4]\ntokens_per_param = 40\nn_candidates = 16\n")
    st = load_config(good).plan
    assert st == PlanSettings(runs=2, criterion="doptimal", sizes=(4e4,), tokens_per_param=40.0, n_candidates=16)
    p = mixopt.plan(good)
    assert len(p) == 2 and np.allclose(p.params, 4e4) and np.allclose(p.tokens, 1.6e6)
    bad = tmp_path / "bad.toml"
    bad.write_text(base + "[plan]\nruns = 0\ncritrion = \"x\"\n")
    with pytest.raises(ConfigError, match=r"(?s)critrion.*runs must be an integer >= 1"):
        load_config(bad)


class TieSurrogate(HingeSurrogate):
    """Two target mixtures tied in the mean; θ decides which wins. Exactly one proxy candidate
    (c > 0.7) measures θ; every other proxy candidate measures its own nuisance φ_k, with
    three times θ's variance (so it is what a design for the parameters would want)."""

    kind: ClassVar[str] = "test-plan-tie"

    def _predict_draws(self, targets: Targets, *, n_draws: int, seed: int) -> dict[str, np.ndarray]:
        rng = np.random.default_rng(seed)
        theta, phi = rng.standard_normal(n_draws), rng.standard_normal((n_draws, 16))
        r = targets.mixture
        at_target = 2 + 0.1 * theta[:, None] * (r[:, 0] - r[:, 1])[None, :]
        k = np.minimum((r[:, 0] * 16).astype(int), 15)
        proxy = np.where(r[:, 2][None, :] > 0.7, 2 + 0.1 * theta[:, None], 2 + 0.3 * phi[:, k])
        return {"loss": np.where((targets.flops >= 1e17)[None, :], at_target, proxy)}


def test_the_run_that_decides_between_two_tied_picks_is_planned_first_and_plans_are_seeded() -> None:
    s = TieSurrogate()
    s._fit(None)
    s.fitted_ = True
    space = SearchSpace(MixtureSpace(("a", "b", "c")), ComputeSpace(params=1e9, tokens=2e10))
    problem = Problem(space, s, ["loss"])
    mix = np.array([[0.05 + 0.1 * i, 0.9 - 0.1 * i, 0.05] for i in range(8)])
    mix = np.insert(mix, 5, [0.1, 0.1, 0.8], axis=0)  # candidate 5 is the informative one
    n = len(mix)
    cand = Points(mixture=mix, flops=np.full(n, 6 * 1e6 * 2e7), params=np.full(n, 1e6), tokens=np.full(n, 2e7))
    tgt = Points(mixture=np.array([[0.6, 0.3, 0.1], [0.3, 0.6, 0.1]]), flops=np.full(2, 6 * 1e9 * 2e10),
                 params=np.full(2, 1e9), tokens=np.full(2, 2e10))
    st = PlanSettings(runs=3, n_draws=512, seed=3)
    p = plan_runs(problem, st, candidates=cand, targets=tgt)
    assert p.index[0] == 5 and p.value[0] > 10 * p.value[1:].max()
    dop = plan_runs(problem, PlanSettings(**{**st.__dict__, "criterion": "doptimal"}), candidates=cand, targets=tgt)
    assert dop.index[0] != 5  # the design rule wants the noisier nuisance runs
    again = plan_runs(problem, st, candidates=cand, targets=tgt)
    assert np.array_equal(p.index, again.index) and np.array_equal(p.value, again.value)


def test_posterior_draws_are_wide_far_from_the_runs_and_plans_use_them() -> None:
    from mixopt.data import read_runs
    from mixopt.surrogate import make_surrogate

    runs = read_runs(ROOT / "mixopt/examples/runs_3domain.csv")
    model = make_surrogate("regmix", seed=0).fit(runs)
    final = runs.final()
    near = final.mixture()[:1]
    far = np.array([[0.98, 0.01, 0.01]]) if near[0, 0] < 0.9 else np.array([[0.01, 0.01, 0.98]])
    fl = np.full(2, float(final.flops().max()))
    q = next(o for o in model.outputs_ if o.startswith("loss"))
    t = Targets(flops=fl, mixture=np.vstack([near, far]), domains=final.domains)
    d = model.predict_posterior_draws(t, n_draws=400, seed=0, names=(q,))[q]
    assert d.shape == (400, 2) and np.log(d[:, 1]).std() > 2 * np.log(d[:, 0]).std()
    assert np.array_equal(d, model.predict_posterior_draws(t, n_draws=400, seed=0, names=(q,))[q])
    space = SearchSpace(MixtureSpace(final.domains), ComputeSpace(flops=float(fl[0])))
    st = PlanSettings(runs=2, sizes=(float(final.params().min()),), tokens_per_param=20.0, n_candidates=32,
                      n_targets=32, n_draws=64)
    p = plan_runs(Problem(space, model, [q]), st)
    assert p.draws == "posterior" and len(p) == 2
    assert plan_runs(Problem(space, model, [q]), PlanSettings(**{**st.__dict__, "draws": "model"})).draws == "joint"
    with pytest.raises(SearchError, match="predict_posterior_draws"):
        plan_runs(_problem(), PlanSettings(**{**SETTINGS.__dict__, "draws": "posterior"}))


def test_prediction_criterion_plans_first_the_run_that_measures_the_decision_points() -> None:
    rng = np.random.default_rng(1)
    s = 400
    f = rng.standard_normal((s, 3))  # the objective at 3 decision points, per draw
    y = rng.standard_normal((s, 6, 1)) * 0.3
    y[:, 2, 0] = f.sum(axis=1) + 0.05 * rng.standard_normal(s)  # run 2 moves with every point at once
    picked, gains = greedy_batch(y - y.mean(axis=0), f, np.ones(6), runs=3, flops=None, noise=0.05, scale=False)
    assert picked[0] == 2 and gains[0] > 5 * max(gains[1:])
    assert picked == greedy_batch(y - y.mean(axis=0), f, np.ones(6), runs=3, flops=None, noise=0.05, scale=False)[0]


def test_regmix_posterior_draws_carry_the_linear_parts_uncertainty_and_prediction_plans_are_seeded(tmp_path: Path) -> None:
    from mixopt.data import read_runs
    from mixopt.surrogate import make_surrogate
    from mixopt.surrogate.base import load_surrogate, save_surrogate

    runs = read_runs(ROOT / "mixopt/examples/runs_3domain.csv")
    model = make_surrogate("regmix", seed=0).fit(runs)
    final = runs.final()
    q = next(o for o in model.outputs_ if o.startswith("loss"))
    fl = float(final.flops().max())
    mix = np.array([[0.8, 0.1, 0.1], [0.1, 0.8, 0.1], [0.1, 0.1, 0.8]])
    t = Targets(flops=np.full(3, fl), mixture=mix, domains=final.domains)
    with_lin = np.log(model.predict_posterior_draws(t, n_draws=400, seed=0, names=(q,))[q]).std(axis=0)
    for fit in model.fits_.values():
        fit.pop("ridge")
    without = np.log(model.predict_posterior_draws(t, n_draws=400, seed=0, names=(q,))[q]).std(axis=0)
    assert np.all(with_lin > without)
    model = make_surrogate("regmix", seed=0).fit(runs)
    again = load_surrogate(save_surrogate(model, tmp_path / "m.mixopt"))
    assert again.fits_[q]["ridge"] == model.fits_[q]["ridge"]
    space = SearchSpace(MixtureSpace(final.domains), ComputeSpace(flops=fl))
    st = PlanSettings(runs=3, criterion="prediction", sizes=(float(final.params().min()),), tokens_per_param=20.0,
                      n_candidates=32, n_targets=32, n_draws=64)
    p = plan_runs(Problem(space, model, [q]), st)
    assert p.criterion == "prediction" and p.draws == "posterior" and len(p) == 3 and np.all(p.value > 0)
    p2 = plan_runs(Problem(space, model, [q]), st)
    assert np.array_equal(p.index, p2.index) and np.array_equal(p.value, p2.value)


def _tie_problem() -> tuple[Problem, Points, Points]:
    """TieSurrogate with candidate 5 (the only one that measures θ) and candidate 9, a near copy of it
    (L1 0.02): after 5, the copy is the only run left that still says anything about the decision."""
    s = TieSurrogate()
    s._fit(None)
    s.fitted_ = True
    problem = Problem(SearchSpace(MixtureSpace(("a", "b", "c")), ComputeSpace(params=1e9, tokens=2e10)), s, ["loss"])
    mix = np.array([[0.05 + 0.1 * i, 0.9 - 0.1 * i, 0.05] for i in range(8)])
    mix = np.insert(mix, 5, [0.1, 0.1, 0.8], axis=0)
    mix = np.vstack([mix, [0.11, 0.1, 0.79]])
    n = len(mix)
    cand = Points(mixture=mix, flops=np.full(n, 6 * 1e6 * 2e7), params=np.full(n, 1e6), tokens=np.full(n, 2e7))
    tgt = Points(mixture=np.array([[0.6, 0.3, 0.1], [0.3, 0.6, 0.1]]), flops=np.full(2, 6 * 1e9 * 2e10),
                 params=np.full(2, 1e9), tokens=np.full(2, 2e10))
    return problem, cand, tgt


def test_a_run_already_made_or_already_in_the_batch_is_never_proposed_again() -> None:
    problem, cand, tgt = _tie_problem()
    st = PlanSettings(runs=3, n_draws=512, seed=3, noise=0.1, coverage=0.0)  # one noisy run leaves θ half-known: a repeat still teaches
    exact = plan_runs(problem, PlanSettings(**{**st.__dict__, "duplicate_l1": 0.0}), candidates=cand, targets=tgt)
    assert list(exact.index[:2]) == [5, 9]  # only exact repeats excluded: the near copy is the next best run
    p = plan_runs(problem, st, candidates=cand, targets=tgt)
    assert p.index[0] == 5 and 9 not in p.index and p.summary["repeats_dropped"] == 0
    # The best candidate is a run of the table (its mixture as stored, within L1 0.01): neither it nor its copy comes back.
    made = Points(mixture=np.array([[0.105, 0.1, 0.795], [0.1, 0.1, 0.8]]), flops=np.full(2, 6 * 1e6 * 2e7),
                  params=np.array([1e6, 4e6]), tokens=np.array([2e7, 8e7]))
    again = plan_runs(problem, st, candidates=cand, targets=tgt, existing=made.take(np.array([0])))
    assert not {5, 9} & set(again.index.tolist()) and again.summary["repeats_dropped"] == 2
    dist = np.abs(again.mixture[:, None, :] - made.mixture[None, :1, :]).sum(axis=2)
    assert dist.min() > st.duplicate_l1
    # The same mixture at another size is another run.
    other = plan_runs(problem, st, candidates=cand, targets=tgt, existing=made.take(np.array([1])))
    assert other.index[0] == 5 and other.summary["repeats_dropped"] == 0
    with pytest.raises(SearchError, match="repeats a run already made"):
        plan_runs(problem, st, candidates=cand.take(np.array([5, 9])), targets=tgt, existing=made)
    with pytest.raises(SearchError, match="duplicate_l1 must be an L1 distance"):
        PlanSettings(duplicate_l1=-0.1)


def test_the_loops_plan_proposal_is_not_a_run_already_in_the_table() -> None:
    import polars as pl

    from mixopt.config import load_config
    from mixopt.data import read_runs
    from mixopt.data.table import MIX_PREFIX
    from mixopt.workflows.loop import plan_next
    from mixopt.workflows.optimize import fit_surrogate

    cfg = load_config(ROOT / "configs/ladder_loop.toml")
    cfg = replace_plan(cfg, PlanSettings(runs=1, n_candidates=64, n_targets=64, n_draws=64))
    model = fit_surrogate(cfg)
    runs = read_runs(ROOT / "mixopt/examples/ladder_runs.csv")
    first = plan_next(cfg, model, runs)
    # Train "the same run" (the proposal's size and mixture, as a real run stores it) and propose again.
    final = runs.final().frame
    row = final.filter(pl.col("params") == first["params"]).head(1)
    mix = {MIX_PREFIX + d: float(x) for d, x in first["mixture"].items()}
    row = row.with_columns(pl.lit("next_r1_s0").alias("run"), pl.lit(first["tokens"]).alias("tokens"),
                           *[pl.lit(round(v, 4)).alias(k) for k, v in mix.items()])
    from mixopt.data import RunTable

    more = RunTable(pl.concat([runs.frame, row.select(runs.frame.columns)], how="vertical_relaxed"), runs.benchmarks)
    second = plan_next(cfg, model, more)
    l1 = sum(abs(second["mixture"][d] - first["mixture"][d]) for d in first["mixture"])
    assert second["params"] != first["params"] or l1 > PlanSettings().duplicate_l1
    assert plan_next(cfg, model, runs) == first  # without the run, the same proposal (seeded)


def replace_plan(cfg: Any, st: PlanSettings) -> Any:
    from dataclasses import replace

    return replace(cfg, plan=st)


def test_coverage_share_of_the_batch_covers_the_decision_region_nearest_first() -> None:
    rng = np.random.default_rng(2)
    s = 300
    r = rng.standard_normal(s)
    y = rng.standard_normal((s, 6, 1)) * 0.3
    y[:, 0, 0] = r + 0.05 * rng.standard_normal(s)  # the criterion wants run 0, then its near twin 1
    y[:, 1, 0] = r + 0.05 * rng.standard_normal(s)
    feats = np.array([[0.5, 0.5, 0.0], [0.52, 0.48, 0.0], [0.05, 0.1, 0.85], [0.3, 0.3, 0.4], [0.45, 0.45, 0.1], [0.0, 0.9, 0.1]])
    seen = np.array([[0.5, 0.4, 0.1], [0.0, 0.95, 0.05]])
    # three decision points at candidate 3's mixture, one near candidate 2's
    region = np.array([[0.3, 0.3, 0.4]] * 3 + [[0.05, 0.1, 0.85]])
    yc = y - y.mean(axis=0)
    plain, _ = greedy_batch(yc, r, np.ones(6), runs=2, flops=None, noise=0.05)
    assert plain[0] in (0, 1) and plain[1] not in (2, 3)
    kw = {"runs": 2, "flops": None, "noise": 0.05, "coverage": 0.5, "features": feats, "seen": seen, "region": region}
    picked, _ = greedy_batch(yc, r, np.ones(6), **kw)
    assert picked[0] == plain[0] and picked[1] == 3  # pick 1 (t = 1) is the coverage pick: where most decision points are
    picked, _ = greedy_batch(yc, r, np.array([1.0, 1.0, 1.0, 4.0, 1.0, 1.0]), **kw)
    assert picked[1] == 2  # coverage picks are made at the criterion's size (cost 1): the next best cover there
    picked, _ = greedy_batch(yc, r, np.array([4.0, 4.0, 1.0, 4.0, 1.0, 1.0]), **kw)
    assert picked[0] in (0, 1) and picked[1] == 3  # the criterion went to cost 4: coverage follows it there
    with pytest.raises(SearchError, match="coverage must be a share"):
        PlanSettings(coverage=1.0)


def test_fill_covers_while_the_regmix_fit_has_fewer_runs_than_parameters_then_the_criterion_plans() -> None:
    """``[plan] fill = "auto"``: a swarm of 4 domains gives ``regmix`` 8 features + intercept = 9 linear
    parameters. Fitted on 8 runs every pick is a coverage pick (so the criterion does not change the batch);
    on 20 runs (or with ``fill = "off"``) the criterion picks again (its first pick is the criterion's)."""
    import polars as pl

    from mixopt.surrogate import make_surrogate
    from mixopt.testing import mixture_world, random_mixtures

    world = mixture_world(n_domains=4, n_benchmarks=0, seed=3)
    table = world.sample_runs([1e7], random_mixtures(40, 4, seed=4), n_checkpoints=1, loss_noise=0.005, score_noise=0.0,
                              seed=5).final()
    f = table.frame
    table = RunTable(f.select("run", "params", "tokens", *[c for c in f.columns if c.startswith("mix:")], pl.col("loss").alias("loss:overall")))
    n, d = float(table.params()[0]), float(table.tokens()[0])
    X = table.mixture()
    space = SearchSpace(MixtureSpace(table.domains), ComputeSpace(params=n, tokens=d))
    tgt = Points(mixture=random_mixtures(32, 4, seed=6), flops=np.full(32, 6 * n * d), params=np.full(32, n), tokens=np.full(32, d))

    def pts(ix: np.ndarray) -> Points:
        return Points(mixture=X[ix], flops=np.full(ix.size, 6 * n * d), params=np.full(ix.size, n), tokens=np.full(ix.size, d))

    def plan(n_fit: int, **kw: Any):
        made, rest = np.arange(n_fit), np.arange(n_fit, 40)
        model = make_surrogate("regmix", seed=0).fit(table.select_runs(table.run_ids()[made]))
        st = PlanSettings(runs=4, n_draws=128, seed=1, **kw)
        return model, plan_runs(Problem(space, model, ["loss:overall"]), st, candidates=pts(rest), targets=tgt, existing=pts(made))

    model, few = plan(8)
    assert model.design_size(("loss:overall",)) == (8, 9)
    assert few.summary["fill"] is True and few.summary["design"] == {"runs": 8, "parameters": 9}
    _, few_pred = plan(8, criterion="prediction")
    assert np.array_equal(few.index, few_pred.index)  # coverage picks alone: the criterion does not matter
    _, few_off = plan(8, fill="off")
    _, few_off_pred = plan(8, fill="off", criterion="prediction")
    assert few_off.summary["fill"] is False and not np.array_equal(few_off.index, few.index)
    assert few_off.index[0] != few_off_pred.index[0]  # without fill the first pick is the criterion's own
    model, many = plan(20)
    assert model.design_size() == (20, 9) and many.summary["fill"] is False
    _, many_pred = plan(20, criterion="prediction")
    assert many.index[0] != many_pred.index[0]
    # a surrogate without design_size (no linear part to count) never fills
    assert plan_runs(_problem(), SETTINGS).summary["fill"] is False and plan_runs(_problem(), SETTINGS).summary["design"] is None
    with pytest.raises(SearchError, match="fill must be one of"):
        PlanSettings(fill="always")
