"""The external-command trainer with a real script that writes results, one that fails, one that hangs."""

import sys

import numpy as np
import pytest

from mixopt.errors import ConfigError
from mixopt.train.executors import LocalJobExecutor, TrainerRef
from mixopt.train.external import CommandTrainer
from mixopt.train.spec import JobSpec

MIX = {"web": 0.5, "code": 0.3, "math": 0.2}
HANG_BUDGET_S = 4.0
GENEROUS_BUDGET_S = 300.0


def _job(run_id, **kw):
    return JobSpec(run_id=run_id, mixture=MIX, params=1e8, tokens=2e9, seed=0, checkpoints=3, **kw)


def test_ok_fail_and_hang_side_by_side(tmp_path, job_command):
    jobs = {mode: _job(f"run_{mode}") for mode in ("ok", "fail", "hang", "nofile")}
    ex = LocalJobExecutor(max_parallel=4)
    results = {}
    seen = []  # one template per mode: four batches on four threads, so the jobs run at the same time
    for mode in jobs:
        seen.append((mode, TrainerRef(kind="command", settings={"command": job_command(mode)})))
    import threading

    def run(mode, ref):
        budget = HANG_BUDGET_S if mode == "hang" else GENEROUS_BUDGET_S  # a loaded machine starts python slowly
        results[mode] = ex.run([jobs[mode]], ref, tmp_path, timeout_s=budget)[0]

    threads = [threading.Thread(target=run, args=s) for s in seen]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ok = results["ok"]
    assert ok.status == "ok", ok.message
    assert ok.table.runs == ("run_ok",) and len(ok.table) == 3
    np.testing.assert_allclose(ok.table.mixture()[0], [0.5, 0.3, 0.2])
    assert ok.table.benchmark("hellaswag").chance == 0.25
    fail = results["fail"]
    assert fail.status == "failed" and "out of memory" in fail.message and fail.table is None
    hang = results["hang"]
    assert hang.status == "timeout" and "wall-clock budget" in hang.message
    assert hang.wall_s < HANG_BUDGET_S + 3.0  # stopped at its budget, not an hour later
    assert "job.py hang" in hang.log_tail
    nofile = results["nofile"]
    assert nofile.status == "failed" and "no results file" in nofile.message


def test_placeholders_are_filled_without_a_shell(tmp_path):
    t = CommandTrainer(command="train --mix {mix_json} --n {params} --d {tokens} --out {out} --id {run_id} --seed {seed}")
    argv = t.argv(_job("r1"), tmp_path)
    assert argv[:2] == ["train", "--mix"]
    assert argv[2] == '{"web": 0.5, "code": 0.3, "math": 0.2}'  # one argument, spaces and all
    assert argv[4] == "100000000" and argv[6] == "2000000000" and argv[10] == "r1"


def test_shell_mode_quotes_values(tmp_path):
    t = CommandTrainer(command="echo {mix_json} > {out}/x", shell=True)
    cmd = t.argv(_job("r1"), tmp_path)
    assert isinstance(cmd, str) and "'{\"web\": 0.5" in cmd


def test_unknown_placeholder_is_a_config_error():
    with pytest.raises(ConfigError, match="placeholder"):
        CommandTrainer(command="train {mixture}")


def test_a_job_spec_cannot_carry_a_command(tmp_path):
    # the command comes from the trainer's settings (the user's config), never from the job
    spec = JobSpec(run_id="x", mixture=MIX, params=1e8, tokens=2e9, options={"command": "rm -rf /"})
    t = CommandTrainer(command=f"{sys.executable} -c pass")
    assert "rm" not in " ".join(t.argv(spec, tmp_path))
