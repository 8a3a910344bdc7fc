"""Phased jobs (schedules): the spec, the reference trainer's sampler, the command template, the ladder."""

import json
import sys

import numpy as np
import pytest

from mixopt.config import load_project
from mixopt.errors import ConfigError, SchemaError
from mixopt.train.external import CommandTrainer
from mixopt.train.ladder import ladder_jobs, read_jobs, write_jobs
from mixopt.train.reference import PhaseSampler, ReferenceTrainer, phase_plan
from mixopt.train.spec import JobSpec

MICRO = dict(context=64, batch=4, eval_windows=4, cloze_items=12, cloze_context=32, threads=1)
MIX = {"prose": 0.4, "code": 0.3, "docs": 0.2, "math": 0.1}
ANNEAL = {"prose": 0.1, "code": 0.1, "docs": 0.1, "math": 0.7}
TWO_PHASE = ({"end": 0.75, "mixture": MIX}, {"end": 1.0, "mixture": ANNEAL})
#: losses of two trainings of the same job are equal to this relative tolerance (CPU runs are bit-stable)
LOSS_RTOL = 0.0
#: sampled domain shares within a phase match its ratios to this (binomial noise of ~20k draws)
SHARE_ATOL = 0.02


def _job(**kw):
    base = dict(run_id="micro", params=2.5e4, tokens=4 * 64 * 12, seed=0, checkpoints=3)
    base.update(kw)
    return JobSpec(**base)


# -- the spec ----------------------------------------------------------------------------------
def test_a_phased_spec_fills_the_whole_run_mixture_and_round_trips():
    job = _job(phases=TWO_PHASE)
    want = {d: 0.75 * MIX[d] + 0.25 * ANNEAL[d] for d in MIX}
    assert job.mixture == pytest.approx(want, abs=1e-12)
    assert [e for e, _ in job.schedule] == [0.75, 1.0]
    again = JobSpec.from_dict(json.loads(json.dumps(job.to_dict())))
    assert again == job
    cols = job.phase_columns()
    assert cols["phase_end@1"] == 0.75 and "phase_end@2" not in cols  # the last phase ends at 1
    assert cols["mix@2:math"] == 0.7 and cols["mix@1:prose"] == 0.4


def test_a_one_phase_schedule_is_the_constant_mixture():
    one = _job(phases=[{"end": 1.0, "mixture": MIX}])
    assert one == _job(mixture=MIX)
    assert one.phases == () and one.phase_columns() == {}


@pytest.mark.parametrize("phases, says", [
    ([{"end": 0.5, "mixture": MIX}, {"end": 1.0, "mixture": {**ANNEAL, "math": 0.9}}], "sum to"),
    ([{"end": 0.5, "mixture": MIX}, {"end": 0.9, "mixture": ANNEAL}], "not 1"),
    ([{"end": 1.2, "mixture": MIX}, {"end": 1.0, "mixture": ANNEAL}], "within (0, 1]"),
    ([{"end": 0.6, "mixture": MIX}, {"end": 0.6, "mixture": ANNEAL}], "increase"),
    ([{"end": 0.5, "mixture": MIX}, {"end": 1.0, "mixture": {"prose": 0.5, "code": 0.5}}], "same domains"),
])
def test_bad_phases_are_refused_with_the_reason(phases, says):
    with pytest.raises(SchemaError, match="phase") as e:
        _job(phases=phases)
    assert says in str(e.value)


def test_a_mixture_that_contradicts_the_phases_is_refused():
    with pytest.raises(SchemaError, match="token-weighted"):
        _job(phases=TWO_PHASE, mixture=MIX)


# -- the reference trainer ----------------------------------------------------------------------
def test_the_sampler_switches_the_mixture_at_the_boundary():
    """Count the rows drawn from each domain in each phase: they follow that phase's ratios."""
    domains = list(MIX)
    steps, B = 4000, 8
    job = _job(phases=TWO_PHASE, tokens=steps * B * 64)
    probs, bounds, cols = phase_plan(job, domains, steps)
    assert bounds == [3000, 4000] and cols["phase_end@1"] == 0.75
    train = {d: np.zeros(200, dtype=np.uint8) for d in domains}
    sampler = PhaseSampler(domains, train, probs, bounds, batch=B, context=64, rng=np.random.default_rng(0))
    counts = np.zeros((2, len(domains)))
    for step in range(1, steps + 1):
        counts[0 if step <= 3000 else 1] += np.bincount(sampler.sources(step), minlength=len(domains))
    np.testing.assert_allclose(counts[0] / counts[0].sum(), list(MIX.values()), atol=SHARE_ATOL)
    np.testing.assert_allclose(counts[1] / counts[1].sum(), list(ANNEAL.values()), atol=SHARE_ATOL)
    # a hard switch: a domain only the second phase uses is never drawn before the boundary
    only_late = _job(phases=[{"end": 0.5, "mixture": {"a": 1.0, "b": 0.0}}, {"end": 1.0, "mixture": {"a": 0.0, "b": 1.0}}],
                     tokens=100 * B * 64)
    probs, bounds, _ = phase_plan(only_late, ["a", "b"], 100)
    s = PhaseSampler(["a", "b"], {"a": train["prose"], "b": train["code"]}, probs, bounds, batch=B, context=64,
                     rng=np.random.default_rng(1))
    drawn = [set(s.sources(step).tolist()) for step in range(1, 101)]
    assert all(d == {0} for d in drawn[:50]) and all(d == {1} for d in drawn[50:])


def test_a_phase_without_a_step_is_refused():
    from mixopt.errors import TrainerError

    job = _job(phases=[{"end": 0.001, "mixture": MIX}, {"end": 1.0, "mixture": ANNEAL}])
    with pytest.raises(TrainerError, match="phase 1 .* gets no training step"):
        phase_plan(job, list(MIX), 100)


@pytest.fixture(scope="module")
def trained(fixture_corpus_dir, tmp_path_factory):
    t = ReferenceTrainer(corpus=str(fixture_corpus_dir), **MICRO)
    run = lambda job: t.train(job, tmp_path_factory.mktemp("job"))  # noqa: E731
    return {"constant": run(_job(mixture=MIX)), "one_phase": run(_job(phases=[{"end": 1.0, "mixture": MIX}])),
            "two_phase": run(_job(phases=TWO_PHASE))}


def test_a_one_phase_job_trains_bit_identically_to_the_constant_mixture(trained):
    a, b = trained["constant"], trained["one_phase"]
    np.testing.assert_allclose(b.losses(), a.losses(), rtol=LOSS_RTOL, atol=0)
    np.testing.assert_allclose(b.scores(), a.scores(), rtol=LOSS_RTOL, atol=0)
    assert a.frame.columns == b.frame.columns and not any("@" in c for c in a.frame.columns)


def test_phased_rows_carry_the_phase_columns_as_trained(trained):
    t = trained["two_phase"]
    f = t.frame
    assert f["phase_end@1"].to_list() == [0.75] * 3 and "phase_end@2" not in f.columns  # 12 steps: 9 + 3
    assert t.is_phased and t.n_phases == 2 and t.phase().tolist() == [1, 1, 2]  # checkpoints at steps 4, 8, 12
    assert f["mix@2:math"][0] == pytest.approx(0.7) and f["mix@1:prose"][0] == pytest.approx(0.4)
    np.testing.assert_allclose(t.mixture()[0], [0.75 * MIX[d] + 0.25 * ANNEAL[d] for d in MIX], atol=1e-12)
    # the same seed and the first 9 steps' mixture: the first checkpoint (step 4) is the constant run's
    np.testing.assert_allclose(t.losses()[0], trained["constant"].losses()[0], rtol=LOSS_RTOL, atol=0)
    assert not np.allclose(t.losses()[-1], trained["constant"].losses()[-1])


# -- the command trainer ------------------------------------------------------------------------
SCRIPT = """
import json, sys
sched, out = json.loads(sys.argv[1]), sys.argv[2]
open(out + "/schedule_seen.json", "w").write(json.dumps(sched))
with open(out + "/results.csv", "w") as f:
    f.write("tokens,loss:prose,loss:math\\n")
    for t, l in ((500, 3.0), (1000, 2.5)):
        f.write(f"{t},{l},{l + 0.1}\\n")
"""


def test_the_command_template_receives_the_schedule_as_json(tmp_path):
    script = tmp_path / "train.py"
    script.write_text(SCRIPT)
    mix1, mix2 = {"prose": 0.8, "math": 0.2}, {"prose": 0.3, "math": 0.7}
    job = JobSpec(run_id="cmd", params=1e6, tokens=1000, phases=[{"end": 0.8, "mixture": mix1}, {"end": 1.0, "mixture": mix2}])
    t = CommandTrainer(command=f"{sys.executable} {script} {{schedule_json}} {{out}}")
    table = t.train(job, tmp_path / "job")
    seen = json.loads((tmp_path / "job" / "out" / "schedule_seen.json").read_text())
    assert seen == [{"end": 0.8, "mixture": mix1}, {"end": 1.0, "mixture": mix2}]
    assert table.frame["phase_end@1"].to_list() == [0.8, 0.8]
    assert table.frame["mix@2:math"].to_list() == [0.7, 0.7]
    np.testing.assert_allclose(table.mixture()[0], [0.8 * 0.8 + 0.2 * 0.3, 0.8 * 0.2 + 0.2 * 0.7])
    constant = JobSpec(run_id="c", mixture=mix1, params=1e6, tokens=1000)
    assert json.loads(t.argv(constant, tmp_path)[2]) == [{"end": 1.0, "mixture": mix1}]


# -- the ladder ---------------------------------------------------------------------------------
LADDER = """
[ladder]
sizes = [2e4, 4e4]
tokens = 2e5
[ladder.mixtures]
uniform = { a = 0.5, b = 0.5 }
[ladder.schedules.anneal_b]
ends = [0.8]
mixtures = [{ a = 0.5, b = 0.5 }, { a = 0.1, b = 0.9 }]
"""


def test_the_ladder_trains_schedules_beside_mixtures(tmp_path):
    (tmp_path / "l.toml").write_text(LADDER)
    cfg = load_project(tmp_path / "l.toml", search=False).train
    jobs = {j.run_id: j for j in ladder_jobs(cfg)}
    assert set(jobs) == {"N40K_uniform_s0", "N40K_anneal_b_s0", "N20K_uniform_s0", "N20K_anneal_b_s0"}
    assert jobs["N40K_anneal_b_s0"].schedule == [(0.8, {"a": 0.5, "b": 0.5}), (1.0, {"a": 0.1, "b": 0.9})]
    assert jobs["N40K_uniform_s0"].phases == ()
    path = write_jobs(list(jobs.values()), tmp_path / "jobs.csv")
    assert {j.run_id: j for j in read_jobs(path)} == jobs


@pytest.mark.parametrize("body, says", [
    ("ends = [0.8]\nmixtures = [{ a = 0.5, b = 0.5 }, { a = 0.1, b = 0.5 }]", "sum to"),
    ("ends = [1.3, 1.0]\nmixtures = [{ a = 0.5, b = 0.5 }, { a = 0.1, b = 0.9 }]", "within (0, 1]"),
    ("ends = [0.8]\nmixtures = [{ a = 0.5, b = 0.5 }, { a = 1.0 }]", "same domains"),
    ("ends = [0.5, 0.8]\nmixtures = [{ a = 0.5, b = 0.5 }, { a = 0.1, b = 0.9 }]", "not 1"),
    ("ends = [0.5]\nmixtures = [{ a = 0.5, b = 0.5 }]", "at least two phases"),
])
def test_a_bad_ladder_schedule_is_refused(tmp_path, body, says):
    text = LADDER.split("[ladder.schedules.anneal_b]")[0] + "[ladder.schedules.bad]\n" + body + "\n"
    (tmp_path / "l.toml").write_text(text)
    with pytest.raises(ConfigError, match="ladder.schedules.bad") as e:
        load_project(tmp_path / "l.toml", search=False)
    assert says in str(e.value)


def test_appending_schedules_to_constant_runs_writes_the_constant_ones_in_every_phase(trained, tmp_path):
    """A table of constant runs takes phased runs (and the other way round): one-phase runs repeat their mixture."""
    from mixopt.data.readers import read_runs
    from mixopt.train.store import append_runs

    path = tmp_path / "runs.csv"
    append_runs(path, trained["constant"])
    two = trained["two_phase"].frame.with_columns(__import__("polars").lit("phased").alias("run"))
    from mixopt.data.table import RunTable

    table, added = append_runs(path, RunTable(two, trained["two_phase"].benchmarks))
    assert added == ["phased"]
    back = read_runs(path)
    assert back.n_phases == 2 and set(back.runs) == {"micro", "phased"}
    const = back.select_runs(["micro"]).frame
    for d in MIX:
        for c in (f"mix@1:{d}", f"mix@2:{d}", f"mix:{d}"):
            np.testing.assert_allclose(const[c].to_numpy(), MIX[d], rtol=0, atol=1e-12)
    np.testing.assert_allclose(back.select_runs(["micro"]).losses(), trained["constant"].losses(), rtol=0, atol=0)


def test_ladder_sizes_that_give_the_same_reference_model_are_refused(tmp_path):
    """1.5e4 and 3e4 both build 2 layers of width 32 (25472 parameters): the runs would be copies."""
    (tmp_path / "l.toml").write_text(LADDER.replace("sizes = [2e4, 4e4]", "sizes = [1.5e4, 3e4, 6e4]"))
    cfg = load_project(tmp_path / "l.toml", search=False).train
    with pytest.raises(ConfigError, match="same model") as e:
        ladder_jobs(cfg)
    assert "1.5e+04, 3e+04 -> 2 layers x width 32 (25472 parameters)" in str(e.value)
