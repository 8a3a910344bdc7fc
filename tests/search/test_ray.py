"""The Ray executor against a real local Ray: same results as local, failures and crashes fail trials only."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from mixopt.search import LocalExecutor, RayExecutor, run_study

from .conftest import AnalyticSurrogate, analytic_problem, fitted_analytic


@pytest.fixture(scope="module")
def ray_exec(ray_local):
    from ray import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # CrashingSurrogate, as conftest does
    ex = RayExecutor(workers=2)
    yield ex
    ex.close()  # Ray was started by the fixture: close() leaves it running


class CrashingSurrogate(AnalyticSurrogate):
    """Kills its worker process when asked about r_a > 0.8 (inside a Ray worker only)."""

    def _predict(self, targets, *, intervals, level):
        if os.environ.get("MIXOPT_TEST_DRIVER") != str(os.getpid()) and np.any(targets.mixture[:, 0] > 0.8):
            os._exit(1)
        return super()._predict(targets, intervals=intervals, level=level)


def test_ray_gives_the_same_result_as_local(ray_exec) -> None:
    """Same seed and the same number of batches in flight: the same trials, whatever the executor."""
    p = analytic_problem(fitted_analytic(), flops=(1e20, 1e22))
    ray_res = run_study(p, trials=384, batch_size=64, seed=7, executor=ray_exec, progress=False)
    local_res = run_study(p, trials=384, batch_size=64, seed=7, executor=LocalExecutor(slots=2), progress=False)
    cols = ["trial", "mix:a", "mix:b", "mix:c", "flops", "obj:score:x", "obj:score:y"]
    a, b = (r.trials.select(cols).to_numpy() for r in (ray_res, local_res))
    np.testing.assert_array_equal(a, b)
    assert ray_res.executor == "Ray (2 workers)" and local_res.executor == "in-process (2 slots)"
    assert ray_res.pareto.equals(local_res.pareto)


def test_ray_task_that_raises_fails_its_trials_only(ray_exec, caplog) -> None:
    p = analytic_problem(fitted_analytic(fail_when="high_a"))
    res = run_study(p, trials=256, batch_size=8, seed=0, executor=ray_exec, max_failed_batches=100, progress=False)
    assert res.n_trials == 256 and res.n_failed > 0 and res.n_complete > 0
    assert "r_a > 0.6 is not allowed" in caplog.text
    assert res.pareto["mix:a"].max() <= 0.6


def test_crashed_ray_worker_fails_its_trials_and_the_search_goes_on(ray_exec, monkeypatch) -> None:
    monkeypatch.setenv("MIXOPT_TEST_DRIVER", str(os.getpid()))
    s = CrashingSurrogate()
    s._fit(None)
    s.fitted_ = True
    p = analytic_problem(s)
    res = run_study(p, trials=128, batch_size=16, sampler="random", seed=1, executor=ray_exec, max_failed_batches=100,
                    progress=False)
    assert res.n_trials == 128 and res.n_failed > 0 and res.n_complete > 0
    failed = res.trials.filter(res.trials["state"] == "FAIL")
    ok = res.trials.filter(res.trials["state"] == "COMPLETE")
    assert ok["mix:a"].max() <= 0.8
    assert failed.height % 16 == 0  # a batch is one Ray task: its trials fail together


def test_ray_starts_automatically_in_a_fresh_process(tmp_path) -> None:
    """No address: RayExecutor starts a local Ray (and shuts it down at close)."""
    code = textwrap.dedent(
        """
        import ray
        from mixopt.search import RayExecutor, run_study, SearchSpace, MixtureSpace, ComputeSpace, Problem
        from mixopt.testing import WorldSurrogate
        from mixopt.testing import mixture_world
        w = mixture_world(n_domains=3, n_benchmarks=2, seed=0)
        p = Problem(SearchSpace(MixtureSpace(w.domains), ComputeSpace(flops=1e21)), WorldSurrogate(w),
                    ["score:hellaswag", "score:humaneval"])
        assert not ray.is_initialized()
        ex = RayExecutor()
        res = run_study(p, trials=64, batch_size=32, executor=ex, progress=False)
        assert ray.is_initialized() and res.n_complete == 64
        ex.close()
        assert not ray.is_initialized()
        print("OK", ex.slots)
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "OK" in out.stdout
    # quiet by default (issue 14): no token-authentication warning, no dashboard
    assert "Token authentication" not in out.stderr and "dashboard" not in out.stderr.lower(), out.stderr[-2000:]


def test_sigterm_shuts_down_the_local_ray_it_started(tmp_path) -> None:
    """`mixopt optimize` on Ray, terminated: exit 143, batches kept, and every process it started is gone."""
    import signal
    import time

    from search.conftest import write_endless_search_config

    cfg = write_endless_search_config(tmp_path, """
        trials = 100000000
        executor = "ray"
        workers = 1
    """)
    p = subprocess.Popen([sys.executable, "-m", "mixopt", "optimize", str(cfg), "--no-progress"], stderr=subprocess.PIPE,
                         text=True, cwd=tmp_path)

    def descendants(pid: int) -> set[int]:
        out: set[int] = set()
        todo = [pid]
        while todo:
            q = todo.pop()
            try:
                kids = open(f"/proc/{q}/task/{q}/children").read().split()
            except OSError:
                continue
            for k in map(int, kids):
                if k not in out:
                    out.add(k)
                    todo.append(k)
        return out

    log = tmp_path / "s.log"
    deadline = time.time() + 240
    kids: set[int] = set()
    while time.time() < deadline and (not log.exists() or log.stat().st_size < 20_000):
        kids |= descendants(p.pid)
        time.sleep(0.2)
    kids |= descendants(p.pid)
    assert kids, "Ray started no processes?"
    p.send_signal(signal.SIGTERM)
    _, err = p.communicate(timeout=120)
    assert p.returncode == 143, err[-3000:]
    assert "Token authentication" not in err and "Traceback" not in err
    alive = set()
    for _ in range(100):  # Ray's processes exit on shutdown; give them a few seconds
        alive = {k for k in kids if os.path.exists(f"/proc/{k}") and "zombie" not in open(f"/proc/{k}/status").read().lower()}
        if not alive:
            break
        time.sleep(0.2)
    assert not alive, [open(f"/proc/{k}/cmdline").read().replace("\0", " ")[:120] for k in alive]
