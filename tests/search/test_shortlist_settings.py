"""The decision's ε from the config, the command line and the API; a single objective's shortlist."""

from __future__ import annotations

import json

import polars as pl
import pytest

from mixopt.config import load_config
from mixopt.errors import ConfigError
from mixopt.search import ComputeSpace, MixtureSpace, Problem, SearchSpace, run_study
from mixopt.search import decision as D
from mixopt.testing import mixture_world
from tests._configs import write_search_config

from .test_decision import JointWorld


# -- ε ------------------------------------------------------------------------------------------------
def test_epsilon_is_read_from_objectives_with_the_decisions_default(tmp_path, runs_file) -> None:
    assert load_config(write_search_config(tmp_path / "a.toml", runs_file)).objectives.epsilon == D.DEFAULT_EPSILON
    cfg = load_config(write_search_config(tmp_path / "b.toml", runs_file, objectives="epsilon = 0.02"))
    assert cfg.objectives.epsilon == 0.02
    assert load_config(tmp_path / "b.toml", overrides={"epsilon": 0.1}).objectives.epsilon == 0.1
    with pytest.raises(ConfigError, match=r"objectives\.epsilon"):
        load_config(write_search_config(tmp_path / "c.toml", runs_file, objectives="epsilon = -0.01"))


def test_cli_epsilon_sets_the_decisions_tolerance(tmp_path, runs_file, capsys) -> None:
    from mixopt.cli import main

    near = {}
    for eps in (None, 0.05):
        d = tmp_path / str(eps)
        d.mkdir()
        cfg = write_search_config(d / "c.toml", runs_file, trials=128, batch_size=64, storage="memory", output="out/front.csv")
        assert main(["optimize", str(cfg), "--no-progress", *(["--epsilon", str(eps)] if eps else [])]) == 0
        summary = json.loads((d / "out" / "front.summary.json").read_text())
        assert summary["decision"]["epsilon"] == (eps or D.DEFAULT_EPSILON)
        near[eps] = summary["decision"]
    capsys.readouterr()
    # the same trials (same seed), judged with a wider ε: at least as many candidates are near the best, and each
    # pick is near it at least as often
    assert near[0.05]["n_within_epsilon"] >= near[None]["n_within_epsilon"]
    assert near[0.05]["n_within_epsilon"] > near[None]["n_within_epsilon"] or near[None]["n_within_epsilon"] == near[None]["n_candidates"]
    wide = {p["trial"]: p["p_within_epsilon"] for p in near[0.05]["picks"]}
    assert all(wide[p["trial"]] >= p["p_within_epsilon"] for p in near[None]["picks"] if p["trial"] in wide)


def test_api_search_config_sets_epsilon(tmp_path, runs_file) -> None:
    from mixopt.api.tasks import optimize_task

    config = {"surrogate": {"method": "test-linear"}, "compute": {"flops": 1e21},
              "objectives": {"optimize": ["score:hellaswag", "score:humaneval"], "epsilon": 0.03},
              "search": {"trials": 128, "batch_size": 64}}
    summary = optimize_task({"config": config, "dataset_path": str(runs_file), "job_dir": str(tmp_path / "job"),
                             "storage": str(tmp_path / "job" / "study.log"), "study_name": "j", "trials": 128})
    assert summary["decision"]["epsilon"] == 0.03


def test_run_study_refuses_a_negative_epsilon() -> None:
    world = mixture_world(3, 3, seed=0)
    space = SearchSpace(MixtureSpace(world.domains), ComputeSpace(flops=1e21))
    with pytest.raises(Exception, match="epsilon must be a number >= 0"):
        run_study(Problem(space, JointWorld(world), ["score:humaneval"]), trials=8, batch_size=8, epsilon=-1.0, progress=False)


# -- one objective ------------------------------------------------------------------------------------
def test_single_objective_shortlist_is_the_top_distinct_mixtures_ranked_by_p_best() -> None:
    world = mixture_world(3, 3, seed=0)
    space = SearchSpace(MixtureSpace(world.domains), ComputeSpace(flops=1e21))
    res = run_study(Problem(space, JointWorld(world, jitter=0.05), ["score:humaneval"]), trials=512, batch_size=128,
                    seed=0, progress=False, shortlist_size=5)
    short, mix = res.shortlist, [f"mix:{d}" for d in world.domains]
    assert short.height == 5 and short.select(mix).unique().height == 5
    # drawn from the top trials by the objective (one per mixture) ...
    top = (res.trials.filter(pl.col("feasible")).sort("obj:score:humaneval", descending=True, maintain_order=True)
           .unique(subset=mix, keep="first", maintain_order=True).head(5))
    assert set(short["trial"]) == set(top["trial"])
    assert short["obj:score:humaneval"].min() >= top["obj:score:humaneval"].min()
    # ... ranked by P(best); rank 1 is best everywhere
    p = short["p_best"].to_list()
    assert p == sorted(p, reverse=True) and sum(p) <= 1 + 1e-12
    assert short["rank"].to_list() == [1, 2, 3, 4, 5]
    d = res.decision
    assert res.best["trial"] == short["trial"][0] == d["picks"][0]["trial"]
    assert [x["trial"] for x in d["picks"]] == short["trial"].to_list()
    # the judged candidates are the best trials by the objective (not the first trials run)
    assert res.candidates["obj:score:humaneval"].max() == res.trials.filter(pl.col("feasible"))["obj:score:humaneval"].max()


def test_single_objective_shortlist_through_the_cli_has_rank_1_as_best(tmp_path, runs_file, capsys) -> None:
    from mixopt.cli import main

    cfg = write_search_config(tmp_path / "c.toml", runs_file, optimize=("score:hellaswag",), objectives="shortlist = 3",
                              trials=128, batch_size=64, storage="memory", output="out/front.csv")
    assert main(["optimize", str(cfg), "--no-progress"]) == 0
    out = capsys.readouterr().out
    short = pl.read_csv(tmp_path / "out" / "front.shortlist.csv")
    summary = json.loads((tmp_path / "out" / "front.summary.json").read_text())
    assert short.height == 3 and short["rank"].to_list() == [1, 2, 3]
    assert short["trial"][0] == summary["best"]["trial"] == summary["decision"]["picks"][0]["trial"]
    assert [r["trial"] for r in summary["shortlist"]] == short["trial"].to_list()
    assert out.startswith(f"PICK: trial {short['trial'][0]} (shortlist rank 1)")
