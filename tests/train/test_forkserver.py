"""Jobs forked from a job server: the same rows as a fresh interpreter, no state between jobs, failures stay the job's."""

import os
import time

import pytest

from mixopt.train.executors import LocalJobExecutor, TrainerRef
from mixopt.train.forkserver import SERVER_LOG, fork_supported
from mixopt.train.spec import JobSpec

pytestmark = pytest.mark.skipif(not fork_supported(), reason="jobs are forked on Linux only")

MICRO = dict(context=64, batch=4, eval_windows=4, cloze_items=12, cloze_context=32)
MIX = {"prose": 0.4, "code": 0.3, "docs": 0.2, "math": 0.1}
BUDGET_S = 300.0  # a loaded machine starts python slowly
HANG_BUDGET_S = 6.0
GONE_WAIT_S = 10.0


def _micro(run_id, seed=0, **options):
    return JobSpec(run_id=run_id, mixture=MIX, params=2.5e4, tokens=4 * 64 * 8, seed=seed, checkpoints=2, options=options)


def _job(run_id):
    return JobSpec(run_id=run_id, mixture={"web": 0.5, "code": 0.3, "math": 0.2}, params=1e8, tokens=2e9, checkpoints=2)


def _shell(job_command, prelude):
    """A shell command template: ``prelude`` (``case`` on the run id), then the stand-in job in mode ok."""
    return TrainerRef(kind="command", settings={"command": f"{prelude} {job_command('ok')}", "shell": True})


def _gone(pid_file):
    """Whether the process whose id the job wrote is gone (killed and reaped) within a few seconds."""
    pid = int(pid_file.read_text())
    deadline = time.perf_counter() + GONE_WAIT_S
    while time.perf_counter() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.1)
    return False


def test_a_job_forked_after_another_matches_it_run_alone(fixture_corpus_dir, tmp_path):
    ref = TrainerRef(kind="reference", settings={"corpus": str(fixture_corpus_dir), **MICRO})
    # the first job sets what a reused process would carry over: other torch threads, fp32 instead of bf16 autocast,
    # v4's attention function; its evaluation sets (12 cloze items) are not the second job's (8)
    first = _micro("first", seed=1, threads=3, bf16="off", kernels="v4")
    second = _micro("second", threads=None, cloze_items=8)  # torch's default threads
    forked = LocalJobExecutor(max_parallel=1, fork_jobs=True).run([first, second], ref, tmp_path / "forked", timeout_s=BUDGET_S)
    alone = LocalJobExecutor(max_parallel=1, fork_jobs=False).run([second], ref, tmp_path / "alone", timeout_s=BUDGET_S)
    assert all(r.ok for r in forked + alone), [r.message for r in forked + alone]
    assert "2 job(s) forked" in (tmp_path / "forked" / SERVER_LOG).read_text()
    rows = lambda root: (root / "second" / "rows.csv").read_bytes()  # noqa: E731
    assert rows(tmp_path / "forked") == rows(tmp_path / "alone")  # bit for bit
    threads = lambda root: next(ln for ln in (root / "second" / "log.txt").read_text().splitlines() if "torch thread" in ln)  # noqa: E731
    assert threads(tmp_path / "forked").split("kernels")[1] == threads(tmp_path / "alone").split("kernels")[1]
    assert len(forked[1].table) == 2 and forked[1].table.frame.equals(alone[0].table.frame)


def test_a_killed_a_hanging_and_a_good_job(tmp_path, job_command):
    prelude = "case {run_id} in *killed*) kill -9 $PPID; exit 0;; *hang*) sleep 3600;; esac;"
    ref = _shell(job_command, prelude)
    killed, ok = LocalJobExecutor(max_parallel=2, fork_jobs=True).run([_job("r_killed"), _job("r_ok")], ref, tmp_path, timeout_s=BUDGET_S)
    assert killed.status == "failed" and "exit -9" in killed.message  # the job's own process died of SIGKILL
    assert ok.status == "ok" and ok.table.runs == ("r_ok",)
    assert "2 job(s) forked" in (tmp_path / SERVER_LOG).read_text()
    t0 = time.perf_counter()
    (hang,) = LocalJobExecutor(fork_jobs=True).run([_job("r_hang")], ref, tmp_path / "hang", timeout_s=HANG_BUDGET_S)
    assert hang.status == "timeout" and "wall-clock budget" in hang.message
    assert time.perf_counter() - t0 < HANG_BUDGET_S + GONE_WAIT_S  # stopped at its budget


def test_jobs_go_on_when_the_job_server_dies(tmp_path, job_command):
    # the first job kills the server it was forked from (its parent's parent), then waits
    prelude = ("case {run_id} in *lost*) echo $$ > {out}/sh.pid; kill -9 $(awk '{{print $4}}' /proc/$PPID/stat); "
               "sleep 3600;; esac;")
    jobs = [_job("r_lost"), _job("r_ok1"), _job("r_ok2")]
    lost, ok1, ok2 = LocalJobExecutor(max_parallel=1, fork_jobs=True).run(jobs, _shell(job_command, prelude), tmp_path, timeout_s=BUDGET_S)
    assert lost.status == "failed" and "job server it was forked from exited" in lost.message
    assert ok1.ok and ok2.ok  # started as fresh interpreters
    assert _gone(tmp_path / "r_lost" / "out" / "sh.pid")  # the lost job's process group was stopped


def test_an_interrupt_stops_the_running_jobs_and_the_server(tmp_path, job_command):
    prelude = "case {run_id} in *hang*) echo $$ > {out}/sh.pid; sleep 3600;; esac;"

    def interrupt(res):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        LocalJobExecutor(max_parallel=2, fork_jobs=True).run([_job("r_hang"), _job("r_ok")], _shell(job_command, prelude), tmp_path,
                                                             timeout_s=BUDGET_S, on_result=interrupt)
    assert _gone(tmp_path / "r_hang" / "out" / "sh.pid")
    assert "job server done" in (tmp_path / SERVER_LOG).read_text()
