"""The README's main job end to end: ``configs/example.toml`` on its shipped data with the REAL FLP-M
(fewer trials), then a resume that refits nothing and starts nothing."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from mixopt.config import load_config
from mixopt.workflows import run_search
from mixopt.workflows.optimize import search_with_surrogate, write_result

REPO = Path(__file__).resolve().parents[2]
#: Trials of the reduced example (the config asks for 2,000).
TRIALS = 512


@pytest.fixture(scope="module")
def example(tmp_path_factory):
    ws = tmp_path_factory.mktemp("example")
    shutil.copytree(REPO / "configs", ws / "configs")
    shutil.copytree(REPO / "mixopt" / "examples", ws / "mixopt" / "examples")
    cfg_path = ws / "configs" / "example.toml"
    cfg = load_config(cfg_path, overrides={"trials": TRIALS})
    assert cfg.surrogate.method == "flpm" and cfg.search.storage.endswith("example_study.log")
    res, surrogate = search_with_surrogate(cfg, progress=False)
    return ws, cfg_path, cfg, res, surrogate


def test_example_runs_with_the_real_flpm_and_writes_its_files(example) -> None:
    ws, _, cfg, res, _ = example
    assert res.n_trials == TRIALS and res.n_complete == TRIALS and res.n_failed == 0
    assert res.executor.startswith("in-process")  # a search this small does not start Ray
    written, failed = write_result(res, cfg.output)
    assert failed is None
    assert {p.name for p in written} == {"example_pareto.csv", "example_pareto.shortlist.csv", "example_pareto.summary.json"}
    assert all(p.parent == ws / "out" for p in written)
    assert res.shortlist.height == 5 and res.best is not None and res.hypervolume > 0


def test_example_constraints_bind(example) -> None:
    # both constraints cut off part of the space the objectives would otherwise go to
    _, _, _, res, _ = example
    t = res.trials.filter(res.trials["state"] == "COMPLETE")
    gsm, data = t["con:score:gsm8k >= 0.71"].to_numpy(), t["con:data"].to_numpy()
    assert 0.05 < np.mean(gsm > 0) < 0.95 and 0.05 < np.mean(data > 0) < 0.95
    # and the front presses against them: its extremes sit near the gsm8k floor and near the math-token limit
    f = res.pareto
    assert f["con:score:gsm8k >= 0.71"].max() > -0.005
    assert f["con:data"].max() > -0.1
    assert f["mix:math"].max() <= 4e10 / f["tokens"].max() + 1e-9  # math tokens within 4 epochs of 1e10
    assert res.pareto.height < res.n_feasible  # a front, not the whole feasible set


def test_example_resume_refits_nothing_and_runs_nothing(example, monkeypatch) -> None:
    _, cfg_path, _, first, _ = example
    from mixopt.surrogate.flpm import FLPM

    monkeypatch.setattr(FLPM, "_fit", lambda self, runs: pytest.fail("FLP-M refitted on resume"))
    again = run_search(load_config(cfg_path, overrides={"trials": TRIALS}), progress=False)
    assert again.n_new == 0 and again.executor == "nothing to run"
    assert again.hypervolume == pytest.approx(first.hypervolume) and again.reference_source == "study"
    assert again.pareto.equals(first.pareto)


def test_example_config_says_what_it_does() -> None:
    text = (REPO / "configs" / "example.toml").read_text()
    assert re.search(r'^constraints = \["score:gsm8k >= 0\.71"\]', text, re.M)
    assert "available = { math = 1e10 }" in text


def test_example_summary_names_the_pick_its_certainty_and_the_robust_region(example) -> None:
    _, _, _, res, _ = example
    d = res.decision
    assert res.best["trial"] == res.shortlist["trial"][0] == d["picks"][0]["trial"]  # rank 1 is "best"
    head = "\n".join(res.headline())
    assert "robust region" in head and d["robust_region"]["text"] in head
    assert set(d["robust_region"]["mixture"]) == {"web", "code", "math"}
    for q in d["picks"]:  # every pick's P(feasible), in the summary and in the terminal
        assert 0 <= q["p_feasible"] <= 1 and f"P(feasible) {q['p_feasible']:.2f}" in head
    # the GSM8K floor is met on the mean only: it binds, and P(feasible) says how sure that is
    assert any(b.get("constraint") == "score:gsm8k >= 0.71" for b in d["binding"])
    assert d["picks"][0]["p_feasible"] < 0.9
    ex = d["extrapolation"]
    assert ex["compute_ratio"] == pytest.approx(1e22 / 1.2e20, rel=0.05) and "83" in head


def test_example_with_a_chance_floor_is_infeasible_and_says_why(example) -> None:
    _, cfg_path, _, _, surrogate = example
    cfg = load_config(cfg_path, overrides={"trials": 256, "storage": "memory",
                                           "objectives.constraints": ["score:gsm8k >= 0.71 @ 0.9"]})
    res = run_search(cfg, surrogate, progress=False)
    assert res.infeasible and res.best is None and res.shortlist.height == 0
    assert res.decision["infeasible"]["binding"][0]["constraint"] == "score:gsm8k >= 0.71 @ 0.9"
    assert res.headline()[0].startswith("NO FEASIBLE MIXTURE")
