"""The decision layer: chance constraints, joint draws, P(best) / P(feasible), the robust region,
honest infeasibility (exit code 5, headed files) and rank 1 == best everywhere."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import polars as pl
import pytest

from mixopt.errors import SearchError
from mixopt.search import ComputeSpace, MixtureSpace, Problem, SearchSpace, parse_constraint, run_study
from mixopt.search import decision as D
from mixopt.surrogate.base import Prediction, Targets
from mixopt.testing import mixture_world
from mixopt.testing.truth import WorldSurrogate
from tests._configs import write_search_config

from .conftest import analytic_problem


# -- chance constraints ---------------------------------------------------------------------------
def test_chance_constraint_parses_with_its_probability() -> None:
    c = parse_constraint("score:gsm8k >= 0.71 @ 0.9")
    assert (c.op, c.threshold, c.probability) == (">=", 0.71, 0.9)
    assert c.z == pytest.approx(1.2815515655446004)
    assert parse_constraint("loss:code <= 1.2 @ 95%").probability == pytest.approx(0.95)
    plain = parse_constraint("score:gsm8k >= 0.71")
    assert plain.probability is None and plain.effective_kappa(1.645) == 1.645


@pytest.mark.parametrize(("text", "message"), [
    ("score:a >= 0.7 @", "must be followed by a probability"),
    ("score:a >= 0.7 @ high", "must be a number like 0.9"),
    ("score:a >= 0.7 @ 1", r"must be in \[0.5, 1\)"),
    ("score:a >= 0.7 @ 0.3", r"must be in \[0.5, 1\)"),
    ("compute <= 1e21 @ 0.9", "compute is exact"),
])
def test_chance_constraint_parse_errors_say_what_to_write(text: str, message: str) -> None:
    with pytest.raises(SearchError, match=message):
        parse_constraint(text)


def test_chance_constraint_config_error_is_clear(tmp_path) -> None:
    from mixopt.config import load_config
    from mixopt.errors import ConfigError

    p = tmp_path / "c.toml"
    p.write_text('[compute]\nflops = 1e21\n[objectives]\noptimize = ["score:x"]\nconstraints = ["score:x >= 0.5 @ 2"]\n'
                 '[surrogate]\nmodel = "m"\n')
    with pytest.raises(ConfigError, match=r"objectives.constraints\[0\].*\[0.5, 1\)"):
        load_config(p)


def test_chance_constraint_picks_meet_it_with_their_probability(analytic) -> None:
    # score:x = 0.3 + 0.5 r_a + ..., sd 0.01: the @ 0.9 bound needs the mean >= 0.6 + 1.28 sd
    p = analytic_problem(analytic, constraints=["score:x >= 0.6 @ 0.9"])
    res = run_study(p, trials=512, batch_size=64, seed=1, progress=False)
    s = res.shortlist
    col = "p:score:x >= 0.6 @ 0.9"
    assert s.height == 5 and col in s.columns and "p_feasible" in s.columns
    assert s[col].min() >= 0.9 and (s["score:x"] >= 0.6 + 1.28 * 0.01 - 1e-9).all()
    assert [q["constraints"][col[2:]] for q in res.decision["picks"]] == pytest.approx(s[col].to_list())
    plain = run_study(analytic_problem(analytic, constraints=["score:x >= 0.6"]), trials=512, batch_size=64, seed=1,
                      progress=False)
    assert plain.pareto["score:x"].min() < 0.6 + 1.28 * 0.01  # the plain bound lets the means sit closer


# -- draws and the statistics ---------------------------------------------------------------------
def test_comonotone_draws_are_seeded_and_centred() -> None:
    pred = Prediction.from_normal(("a", "b"), np.array([[1.0, 2.0], [3.0, 4.0]]), np.array([[0.1, 0.2], [0.3, 0.0]]), 0.9)
    d1, d2 = D.comonotone_draws(pred, n_draws=200, seed=3), D.comonotone_draws(pred, n_draws=200, seed=3)
    assert np.array_equal(d1["a"], d2["a"]) and d1["a"].shape == (200, 2)
    np.testing.assert_allclose(d1["a"].mean(axis=0), [1.0, 3.0], atol=1e-12)
    np.testing.assert_allclose(d1["a"].std(axis=0), [0.1, 0.3], rtol=0.02)
    np.testing.assert_allclose(d1["a"][:, 1], 3.0 + 3.0 * (d1["a"][:, 0] - 1.0), atol=1e-12)  # comonotone across rows
    assert np.all(d1["b"][:, 1] == 4.0)  # no uncertainty: the mean


def test_draw_stats_count_the_draws() -> None:
    # 4 draws, 3 candidates, one maximised objective: row 0 wins draws 0-2, row 2 wins draw 3
    v = np.array([[0.9, 0.5, 0.1], [0.8, 0.7, 0.2], [0.95, 0.2, 0.3], [0.1, 0.2, 0.6]])[:, :, None]
    margins = np.array([[-1, 1, -1], [-1, -1, -1], [1, 1, -1], [-1, -1, -1]], dtype=float)[:, :, None]
    st = D.draw_stats(v, margins, ["maximize"], scale_from=np.array([[0.0], [1.0]]), weights=None, epsilon=0.15,
                      required=[None])
    np.testing.assert_allclose(st.p_best, [0.75, 0.0, 0.25])
    np.testing.assert_allclose(st.p_near, [0.75, 0.25, 0.25])  # draw 1: row 1 is 0.1 behind; draw 3: none near
    np.testing.assert_allclose(st.p_feasible, [0.75, 0.5, 1.0])
    assert st.beats(0, 1) == 0.75 and st.beats(2, 0) == 0.25
    chance = D.draw_stats(v, margins, ["maximize"], scale_from=np.array([[0.0], [1.0]]), weights=None, epsilon=0.15,
                          required=[0.9])
    assert chance.eligible.tolist() == [False, False, True] and chance.p_best.tolist() == [0.0, 0.0, 1.0]


class JointWorld(WorldSurrogate):
    """A world's truth plus *joint* draws that disagree between mixtures: each draw perturbs
    every benchmark's weight on each domain loss (the same perturbation for all rows)."""

    kind: ClassVar[str] = "test-joint-world"

    def __init__(self, world: Any, *, jitter: float = 0.02) -> None:
        super().__init__(world, std=0.0)
        self.jitter = float(jitter)

    def predict_draws(self, targets: Targets, *, n_draws: int, seed: int) -> dict[str, np.ndarray]:
        return self._predict_draws(targets.align(self.domains_), n_draws=n_draws, seed=seed)

    def _predict_draws(self, targets: Targets, *, n_draws: int, seed: int) -> dict[str, np.ndarray]:
        w = self.world
        rng = np.random.default_rng(seed)
        losses = w.true_losses(targets.flops, targets.mixture)
        base = w.scores_from_losses(losses)
        out = {q: np.empty((n_draws, len(targets))) for q in self.outputs_}
        for s in range(n_draws):
            shift = losses @ (self.jitter * rng.standard_normal((losses.shape[1], base.shape[1])))
            for j, b in enumerate(w.benchmarks):
                out[f"score:{b.name}"][s] = base[:, j] + shift[:, j]
        for j, d in enumerate(w.loss_domains):
            out[f"loss:{d}"][:] = losses[:, j]
        out["loss"][:] = losses @ w.overall_weights
        return out

    def _settings(self) -> dict[str, Any]:
        return {"jitter": self.jitter}

    def _set_state(self, state: dict[str, Any], arrays: Mapping[str, np.ndarray]) -> None:  # pragma: no cover
        raise NotImplementedError


def _true_optimum(world: Any, q: int, flops: float) -> float:
    mixes = world.random_mixtures(200_000, seed=5)
    return float(world.true_scores(np.full(len(mixes), flops), mixes)[:, q].max())


def test_p_best_finds_a_worlds_known_best() -> None:
    world = mixture_world(3, 3, seed=0)
    space = SearchSpace(MixtureSpace(world.domains), ComputeSpace(flops=1e21))
    q = [b.name for b in world.benchmarks].index("humaneval")
    opt = _true_optimum(world, q, 1e21)
    # exact truth, joint draws of width ~0: rank 1 is the truly best trial and P(best) is sure of it
    sharp = run_study(Problem(space, JointWorld(world, jitter=1e-6), ["score:humaneval"]), trials=1024, batch_size=128,
                      seed=0, progress=False)
    d = sharp.decision
    assert d["draws"]["kind"] == "joint" and d["picks"][0]["p_best"] > 0.95
    assert sharp.best["trial"] == sharp.shortlist["trial"][0] == d["picks"][0]["trial"]
    assert 100 * (opt - sharp.best["score:humaneval"]) <= 0.5  # true regret of rank 1 within half a point
    # wide joint draws: P(best) spreads over many candidates, the picks are indistinguishable and the robust
    # region holds the true best mixture's neighbourhood
    wide = run_study(Problem(space, JointWorld(world, jitter=0.05), ["score:humaneval"]), trials=1024, batch_size=128,
                     seed=0, progress=False)
    wd = wide.decision
    assert wd["picks"][0]["p_best"] < 0.5 and wd["indistinguishable"] and wd["n_within_epsilon"] >= 2
    region = wd["robust_region"]["mixture"]
    top = sharp.best
    for dname in world.domains:
        lo, hi = region[dname]
        assert lo - 0.02 <= top[f"mix:{dname}"] <= hi + 0.02
    assert sum(p["p_best"] for p in wd["picks"]) <= 1 + 1e-12
    assert wd["picks"][0]["p_best"] == max(p["p_best"] for p in wd["picks"])  # ranked by P(best)


def test_decision_is_seeded() -> None:
    world = mixture_world(3, 3, seed=0)
    space = SearchSpace(MixtureSpace(world.domains), ComputeSpace(flops=1e21))
    runs = [run_study(Problem(space, JointWorld(world, jitter=0.05), ["score:humaneval", "score:hellaswag"]),
                      trials=256, batch_size=64, seed=4, progress=False) for _ in range(2)]
    assert json.dumps(runs[0].decision, default=str) == json.dumps(runs[1].decision, default=str)


# -- extrapolation and the headline -----------------------------------------------------------------
def test_headline_states_the_pick_its_certainty_and_the_distance(analytic) -> None:
    analytic.train_max_flops_ = 1e19  # the analytic stand-in has no runs: say its largest run was 1e19 FLOPs
    res = run_study(analytic_problem(analytic, constraints=["score:x >= 0.5"]), trials=256, batch_size=64, progress=False)
    lines = res.headline()
    assert lines[0].startswith(f"PICK: trial {res.best['trial']} (shortlist rank 1)")
    text = "\n".join(lines)
    assert "P(best)" in text and "P(feasible)" in text and "robust region" in text and "binds:" in text
    ex = res.decision["extrapolation"]
    assert ex["compute_ratio"] == pytest.approx(1e21 / 1e19) and ex["warning"]
    assert "100x the compute of the largest sampling run" in text and "WARNING" in text
    assert res.report().startswith(lines[0])  # before any table


# -- infeasible: exit code 5, headed files ------------------------------------------------------------
def _config(tmp_path: Path, runs: Path, constraints: str) -> Path:
    return write_search_config(tmp_path / "c.toml", runs, objectives=f"constraints = {constraints}", trials=128, batch_size=64,
                               storage="memory", output="out/front.csv")


def test_infeasible_search_exits_5_with_headed_files(tmp_path, runs_file, capsys) -> None:
    from mixopt.cli import main
    from mixopt.cli._output import EXIT_INFEASIBLE

    cfg = _config(tmp_path, runs_file, '["score:gsm8k >= 0.99"]')
    assert main(["optimize", str(cfg), "--no-progress"]) == EXIT_INFEASIBLE == 5
    out, err = capsys.readouterr()
    assert out.startswith("NO FEASIBLE MIXTURE") and "'score:gsm8k >= 0.99' binds" in out
    assert "no feasible mixture" in err and "exit code 5" in err
    front = pl.read_csv(tmp_path / "out" / "front.csv")
    short = pl.read_csv(tmp_path / "out" / "front.shortlist.csv")
    assert front.height == 0 and {"trial", "mix:web", "flops", "obj:score:hellaswag", "con:score:gsm8k >= 0.99"} <= set(front.columns)
    assert short.height == 0 and {"rank", "p_best", "p_feasible", "trial"} <= set(short.columns)
    summary = json.loads((tmp_path / "out" / "front.summary.json").read_text())
    assert summary["infeasible"] is True and summary["shortlist"] == [] and summary["best"] is None
    assert "binds" in summary["reason"] and summary["binding"][0]["constraint"] == "score:gsm8k >= 0.99"
    assert summary["decision"]["infeasible"]["closest"]["violates"] == ["score:gsm8k >= 0.99"]
    # --json: the same answer, the same exit code
    assert main(["optimize", str(cfg), "--no-progress", "--json"]) == 5
    js = json.loads(capsys.readouterr().out)
    assert js["infeasible"] is True and js["binding"][0]["constraint"] == "score:gsm8k >= 0.99"


def test_cli_constraint_option_and_rank_1_is_best_everywhere(tmp_path, runs_file, capsys) -> None:
    from mixopt.cli import main

    cfg = _config(tmp_path, runs_file, "[]")
    rep = tmp_path / "r.html"
    assert main(["optimize", str(cfg), "--no-progress", "--constraint", "score:gsm8k >= 0.05 @ 0.9", "--report", str(rep)]) == 0
    out = capsys.readouterr().out
    summary = json.loads((tmp_path / "out" / "front.summary.json").read_text())
    assert summary["constraints"] == ["score:gsm8k >= 0.05 @ 0.9"]
    rank1 = pl.read_csv(tmp_path / "out" / "front.shortlist.csv").row(0, named=True)
    assert rank1["rank"] == 1 and rank1["trial"] == summary["best"]["trial"] == summary["decision"]["picks"][0]["trial"]
    assert summary["shortlist"][0]["trial"] == rank1["trial"]
    assert out.startswith(f"PICK: trial {rank1['trial']} (shortlist rank 1)")
    html = rep.read_text()
    assert "shortlist rank 1" in html and "P(best)" in html
    assert main(["optimize", str(cfg), "--no-progress", "--constraint", "score:gsm8k >= 0.05 @ 1.5"]) == 2
    assert "[0.5, 1)" in capsys.readouterr().err


def test_api_search_job_result_says_infeasible_and_what_binds(tmp_path, runs_file) -> None:
    from mixopt.api.tasks import optimize_task

    config = {"surrogate": {"method": "test-linear"}, "compute": {"flops": 1e21},
              "objectives": {"optimize": ["score:hellaswag"], "constraints": ["score:gsm8k >= 0.99 @ 0.9"]},
              "search": {"trials": 128, "batch_size": 64}}
    summary = optimize_task({"config": config, "dataset_path": str(runs_file), "job_dir": str(tmp_path / "job"),
                             "storage": str(tmp_path / "job" / "study.log"), "study_name": "j", "trials": 128})
    assert summary["infeasible"] is True and summary["n_pareto"] == 0
    assert summary["binding"][0]["constraint"] == "score:gsm8k >= 0.99 @ 0.9" and "binds" in summary["reason"]
    assert pl.read_parquet(tmp_path / "job" / "pareto.parquet").columns[:2] == ["trial", "mix:web"]
    feasible = optimize_task({"config": {**config, "objectives": {"optimize": ["score:hellaswag"]}},
                              "dataset_path": str(runs_file), "job_dir": str(tmp_path / "job2"),
                              "storage": str(tmp_path / "job2" / "study.log"), "study_name": "j", "trials": 128})
    d = feasible["decision"]
    assert feasible["infeasible"] is False and feasible["best"]["trial"] == d["picks"][0]["trial"]
    assert d["extrapolation"]["compute_ratio"] > 1 and d["robust_region"]["mixture"]
