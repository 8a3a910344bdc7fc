"""Searching schedules: the schedule space, per-phase bounds, whole-run token limits, [phases] configs, result columns."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
import polars as pl
import pytest

from mixopt.data import Benchmark, RunTable
from mixopt.data.phases import overall_mixture
from mixopt.errors import ConfigError, SearchError
from mixopt.search import ComputeSpace, DataBudget, MixtureSpace, Problem, SearchSpace, run_study
from mixopt.search.schedule import ScheduleSpace
from mixopt.surrogate.base import Prediction, Surrogate, Targets, register

#: a decoded schedule respects its bounds to this
BOUND_ATOL = 1e-9
#: the search's best found value is this close to the analytic optimum
OPT_ATOL = 0.03


class RecencySurrogate(Surrogate):
    """Closed form over schedules: ``score:x = 0.3 + 0.5·r_a(last phase)``, ``score:y = 0.3 + 0.5·r_b(whole run)``.

    Only the last phase's ratio of ``a`` counts for ``x`` (a recency effect); constant targets are one phase.
    """

    kind: ClassVar[str] = "test-recency"
    uses_mixture: ClassVar[bool] = True

    def _fit(self, runs: RunTable | None) -> None:
        self.domains_ = ("a", "b", "c")
        self.benchmarks_ = (Benchmark(name="x", chance=0.25), Benchmark(name="y", chance=0.25))
        self.outputs_ = ("score:x", "score:y")
        self.unpredictable_ = {}

    def _predict(self, targets: Targets, *, intervals: bool, level: float) -> Prediction:
        P, _ = targets.schedule()
        mean = np.column_stack([0.3 + 0.5 * P[:, -1, 0], 0.3 + 0.5 * targets.mixture[:, 1]])
        return Prediction.from_normal(self.outputs_, mean, 0.01 if intervals else None, level)

    def _get_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        return {}, {}

    def _set_state(self, state: dict[str, Any], arrays: Mapping[str, np.ndarray]) -> None:
        self._fit(None)


register(RecencySurrogate)


def _recency() -> RecencySurrogate:
    s = RecencySurrogate()
    s._fit(None)
    s.fitted_ = True
    return s


def _schedule(ends=((0.6, 0.9),), caps2=None, floors1=None) -> ScheduleSpace:
    doms = ("a", "b", "c")
    return ScheduleSpace([MixtureSpace(doms, floors=floors1 or {}), MixtureSpace(doms, caps=caps2 or {})], list(ends))


def test_the_schedule_space_stays_in_bounds_and_round_trips():
    sp = _schedule(caps2={"a": 0.6}, floors1={"c": 0.2})
    assert sp.dim == 2 + 2 + 1 and sp.coordinate_names[-1] == "u:phase_end@1"
    u = np.random.default_rng(0).random((500, sp.dim))
    P, E = sp.to_schedule(u)
    assert P.shape == (500, 2, 3) and E.shape == (500, 1)
    np.testing.assert_allclose(P.sum(axis=2), 1.0, atol=BOUND_ATOL)
    assert np.all(P[:, 1, 0] <= 0.6 + BOUND_ATOL) and np.all(P[:, 0, 2] >= 0.2 - BOUND_ATOL)
    assert np.all((E >= 0.6) & (E <= 0.9))
    assert sp.contains(P, E).all()
    np.testing.assert_allclose(sp.to_unit(P, E), u, atol=1e-9)
    np.testing.assert_allclose(sp.to_mixture(u), overall_mixture(P, E), atol=1e-12)
    # outer whole-run bounds: c >= 0.2 for at least 60 % of the run; a <= 0.6 for at least 10 % (phase caps only)
    assert sp.floor[2] == pytest.approx(0.2 * 0.6) and sp.cap[0] == pytest.approx(0.9 + 0.1 * 0.6)


@pytest.mark.parametrize("ends, says", [
    ([1.2], "strictly inside"),
    ([(0.9, 0.7)], "strictly inside"),
    ([0.5, 0.6], "need 1 boundaries"),
])
def test_bad_boundaries_are_refused(ends, says):
    with pytest.raises(SearchError, match="schedule") as e:
        _schedule(ends=ends)
    assert says in str(e.value)


def test_a_two_phase_search_respects_per_phase_bounds_and_whole_run_token_limits():
    """x wants a in the last phase; the data limit on a counts both phases, so the search puts a late and keeps it out of phase 1."""
    D = 1e9
    supply = 0.2 * D  # a may give 20 % of the run's tokens, over both phases
    space = SearchSpace(_schedule(caps2={"a": 0.8}), ComputeSpace(params=1e6, tokens=D),
                        DataBudget(available={"a": supply}, max_epochs=1.0))
    res = run_study(Problem(space, _recency(), ["score:x", "score:y"]), trials=1536, batch_size=128, seed=0, progress=False)
    f = res.pareto
    assert f.height > 3
    P = np.stack([f.select(f"mix@{k}:a", f"mix@{k}:b", f"mix@{k}:c").to_numpy() for k in (1, 2)], axis=1)
    E = f["phase_end@1"].to_numpy()[:, None]
    assert np.all(P[:, 1, 0] <= 0.8 + BOUND_ATOL) and np.all((E >= 0.6 - BOUND_ATOL) & (E <= 0.9 + BOUND_ATOL))
    overall = overall_mixture(P, E)
    np.testing.assert_allclose(f.select("mix:a", "mix:b", "mix:c").to_numpy(), overall, atol=1e-9)
    used = overall[:, 0] * f["tokens"].to_numpy()
    assert np.all(used <= supply * (1 + 1e-9))  # epochs add up across phases
    np.testing.assert_allclose(f["tokens:a"].to_numpy(), used, rtol=1e-12)
    # the best x: a = 0.8 in phase 2 (its cap) needs a share of at most 0.25 -> boundary >= 0.75; no a in phase 1
    best = f.sort("score:x", descending=True).row(0, named=True)
    assert best["score:x"] == pytest.approx(0.3 + 0.5 * 0.8, abs=OPT_ATOL)
    assert best["mix@1:a"] < OPT_ATOL and best["phase_end@1"] >= 0.75 - OPT_ATOL


class OverallSurrogate(RecencySurrogate):
    """``score:x = 0.3 + 0.5·r_a(whole run)``: reads only the whole-run mixture (no recency law)."""

    kind: ClassVar[str] = "test-overall"

    def _predict(self, targets: Targets, *, intervals: bool, level: float) -> Prediction:
        mean = np.column_stack([0.3 + 0.5 * targets.mixture[:, 0], 0.3 + 0.5 * targets.mixture[:, 1]])
        return Prediction.from_normal(self.outputs_, mean, 0.01 if intervals else None, level)


register(OverallSurrogate)


def _limited_search(surrogate: Surrogate, trials: int = 768):
    D = 1e9
    space = SearchSpace(_schedule(caps2={"a": 0.8}), ComputeSpace(params=1e6, tokens=D),
                        DataBudget(available={"a": 0.2 * D}, max_epochs=1.0))
    return run_study(Problem(space, surrogate, ["score:x"]), trials=trials, batch_size=128, seed=0, progress=False)


def test_a_schedule_that_truly_wins_is_recommended_over_the_best_constant_mixture():
    """x counts only the last phase's a; a's data limit holds a constant mixture to a <= 0.2 (x <= 0.4),
    while a schedule puts a = 0.8 in a last phase of <= 25 % (x ~ 0.7): the schedule wins beyond noise."""
    res = _limited_search(_recency())
    svc = res.schedule_vs_constant
    assert svc is not None and svc is res.decision["schedule_vs_constant"]
    assert svc["recommended"] == "schedule" and svc["reason"] == "schedule_better" and svc["reads_schedule"]
    assert svc["p_schedule_better"] >= 0.9 and svc["schedule"]["trial"] == res.best["trial"]
    const = svc["constant"]
    P = np.array([[const[f"mix@{k}:{d}"] for d in "abc"] for k in (1, 2)])
    np.testing.assert_allclose(P[0], P[1], atol=1e-12)  # a constant mixture: equal phases
    assert const["mix:a"] <= 0.2 + 1e-9 and const["obj:score:x"] == pytest.approx(0.3 + 0.5 * 0.2, abs=OPT_ATOL)
    d = svc["difference"]["score:x"]
    assert d["lower"] > 0.2 and d["mean"] == pytest.approx(res.best["score:x"] - const["obj:score:x"], abs=0.02)
    text = "\n".join(res.headline())
    assert "SCHEDULE OR CONSTANT: recommend the schedule" in text and "best constant mixture" in text


def test_without_a_recency_law_the_constant_mixture_is_recommended_and_says_why():
    res = _limited_search(_overall())
    svc = json.loads(json.dumps(res.to_json()))["decision"]["schedule_vs_constant"]  # the summary JSON carries it
    assert svc["recommended"] == "constant" and svc["reason"] == "no_recency_law" and not svc["reads_schedule"]
    assert abs(svc["difference"]["score:x"]["mean"]) < 0.02  # same whole-run mixture limit: no real difference
    assert "reads only the whole-run mixture" in svc["text"]
    assert "recommend the constant mixture" in "\n".join(res.headline())


def _overall() -> OverallSurrogate:
    s = OverallSurrogate()
    s._fit(None)
    s.fitted_ = True
    return s


def test_a_constant_search_is_unchanged():
    space = SearchSpace(MixtureSpace(("a", "b", "c")), ComputeSpace(params=1e6, tokens=1e9))
    problem = Problem(space, _recency(), ["score:x", "score:y"])
    assert space.schedule is None and "schedule" not in problem.describe()
    res = run_study(problem, trials=128, batch_size=64, progress=False)
    assert res.schedule_vs_constant is None
    assert not any("@" in c for c in res.pareto.columns) and space.decode(np.full((1, space.dim), 0.5)).phases is None


# -- configs and files -----------------------------------------------------------------------------
CONFIG = """
[data]
runs = "runs.csv"
[surrogate]
method = "test-linear"
[compute]
params = 1e6
tokens = 1e9
[phases]
count = 2
ends = [[0.6, 0.9]]
[phases.cap]
a = [0.3, 1.0]
[tokens]
available = {{ a = 3e8 }}
max_epochs = 1
[objectives]
optimize = ["score:x", "score:y"]
[search]
trials = 256
batch_size = 64
storage = "memory"
output = "{out}"
"""


def _runs(path):
    rng = np.random.default_rng(0)
    rows = []
    for i in range(12):
        r = rng.dirichlet(np.ones(3))
        for t in (2e8, 1e9):
            rows.append({"run": f"r{i}", "params": 1e6, "tokens": t, "mix:a": r[0], "mix:b": r[1], "mix:c": r[2],
                         "score:x": 0.3 + 0.5 * r[0] + 0.01 * np.log10(t) + rng.normal(0, 0.005),
                         "score:y": 0.3 + 0.5 * r[1] + 0.01 * np.log10(t) + rng.normal(0, 0.005)})
    pl.DataFrame(rows).write_csv(path)
    (path.parent / "runs.benchmarks.json").write_text('[{"name": "x", "chance": 0.25}, {"name": "y", "chance": 0.25}]')


def test_optimize_with_phases_writes_the_phase_columns(tmp_path):
    import json

    from mixopt.config import load_config
    from mixopt.workflows.optimize import optimize

    from .conftest import LinearMixSurrogate  # noqa: F401  (registers test-linear)

    _runs(tmp_path / "runs.csv")
    (tmp_path / "c.toml").write_text(CONFIG.format(out=tmp_path / "front.csv"))
    cfg = load_config(tmp_path / "c.toml")
    assert cfg.phases is not None and cfg.phases.ends == ((0.6, 0.9),) and cfg.phases.cap == {"a": (0.3, 1.0)}
    res = optimize(cfg, progress=False).result
    cols = ["mix@1:a", "mix@1:b", "mix@1:c", "mix@2:a", "mix@2:b", "mix@2:c", "phase_end@1"]
    for name in ("front.csv", "front.shortlist.csv"):
        f = pl.read_csv(tmp_path / name)
        assert all(c in f.columns for c in cols), name
        assert f["mix@1:a"].max() <= 0.3 + BOUND_ATOL
        assert (f["mix:a"] * f["tokens"]).max() <= 3e8 * (1 + 1e-9)
    summary = json.loads((tmp_path / "front.summary.json").read_text())
    assert "phase_end@1" in summary["best"] and "mix@2:a" in summary["best"]
    assert "phase 2 (" in res.report() and "phase 1 (0-" in "\n".join(res.headline())
    # the robust region per phase: each phase's ratio ranges (within that phase's bounds) and its end's range
    region = res.decision["robust_region"]
    assert region["n"] >= 1 and len(region["phases"]) == 2
    p1, p2 = region["phases"]
    assert p1["mixture"]["a"][1] <= 0.3 + BOUND_ATOL and 0.6 - BOUND_ATOL <= p1["end"][0] <= p1["end"][1] <= 0.9 + BOUND_ATOL
    assert p2["end"] == [1.0, 1.0] and set(p2["mixture"]) == {"a", "b", "c"}
    assert region["text"].startswith("whole run ") and "; phase 1 (ends " in region["text"] and "; phase 2 (ends 100%)" in region["text"]
    assert "; phase 2 (ends 100%)" in res.report()


@pytest.mark.parametrize("phases, says", [
    ("count = 1\nends = []", "integer >= 2"),
    ("count = 2", "give the 1 phase boundaries"),
    ("count = 2\nends = [1.0]", "strictly inside (0, 1)"),
    ("count = 3\nends = [[0.5, 0.8], [0.7, 0.9]]", "may not overlap"),
    ("count = 2\nends = [0.8]\n[phases.floor]\na = [0.7, 0.0]\nb = [0.5, 0.0]", "floors of phase 1 sum to 1.2"),
    ("count = 2\nends = [0.8]\n[phases.cap]\na = [0.5, 0.5, 0.5]", "2 ratios in [0, 1], one per phase"),
    ("count = 2\nends = [0.8]\nbounds = 3", "bounds"),
])
def test_a_bad_phases_section_is_refused_with_a_clear_error(tmp_path, phases, says):
    from mixopt.config import load_config

    _runs(tmp_path / "runs.csv")
    text = CONFIG.format(out=tmp_path / "f.csv")
    start = text.index("[phases]")
    end = text.index("[tokens]")
    (tmp_path / "c.toml").write_text(text[:start] + "[phases]\n" + phases + "\n" + text[end:])
    with pytest.raises(ConfigError, match="phases") as e:
        load_config(tmp_path / "c.toml")
    assert says in str(e.value)


def test_per_phase_bounds_for_an_unknown_domain_are_refused(tmp_path):
    from mixopt.config import load_config
    from mixopt.workflows.optimize import build_space

    _runs(tmp_path / "runs.csv")
    (tmp_path / "c.toml").write_text(CONFIG.format(out=tmp_path / "f.csv").replace("a = [0.3, 1.0]", "web = [0.3, 1.0]"))
    with pytest.raises(SearchError, match=r"\[phases\] floor/cap name domain\(s\) \['web'\]"):
        build_space(load_config(tmp_path / "c.toml"), ("a", "b", "c"))
