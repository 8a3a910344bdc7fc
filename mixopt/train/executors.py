"""Run training jobs: each in a guarded child process, several at once.

Every job runs :func:`mixopt.train.worker.main` on its job folder in its own process and process
group with a wall-clock budget: a job past its budget is killed (with everything it started) and
reported as ``"timeout"`` with its log tail; a job that fails is reported as ``"failed"``;
the others go on either way. :class:`LocalJobExecutor` runs up to ``max_parallel`` jobs on
this machine, on Linux each forked from one job server per batch (:mod:`mixopt.train.forkserver`)
that has imported the trainer already, elsewhere each as ``python -m mixopt.train.worker JOB_DIR``;
:class:`~mixopt.train.ray_executor.RayJobExecutor` runs them as Ray tasks, each as
``python -m mixopt.train.worker JOB_DIR`` (the only module that imports Ray).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mixopt.errors import ConfigError, MixoptError
from mixopt.train.forkserver import SERVER_LOG, SERVER_WAIT_S, JobServer, JobServerError, fork_supported
from mixopt.train.spec import JobResult, JobSpec
from mixopt.train.worker import JOB_FILE, ROWS_FILE

logger = logging.getLogger(__name__)

LOG_FILE = "log.txt"
LOG_TAIL_CHARS = 2000


@dataclass(frozen=True, kw_only=True)
class TrainerRef:
    """Which trainer runs the jobs: its registered ``kind`` and settings (from the user's config)."""

    kind: str = "reference"
    settings: dict[str, Any] = field(default_factory=dict)


def prepare_job_dir(root: Path, trainer: TrainerRef, spec: JobSpec) -> Path:
    """A fresh folder ``root/<run_id>`` with the job file (an old attempt is replaced)."""
    d = Path(root) / spec.run_id
    if d.exists():
        shutil.rmtree(d)
    d.mkdir(parents=True)
    (d / JOB_FILE).write_text(json.dumps({"trainer": {"kind": trainer.kind, "settings": trainer.settings}, "spec": spec.to_dict()}, indent=1))
    return d


def _tail(path: Path, n: int = LOG_TAIL_CHARS) -> str:
    try:
        with path.open("rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - n))
            return f.read().decode("utf-8", errors="replace")
    except OSError:
        return ""


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait()


def start_job(job_dir: Path) -> subprocess.Popen:
    """Start the worker for a prepared job folder (own process group, log to ``log.txt``)."""
    log = (job_dir / LOG_FILE).open("wb")
    try:
        return subprocess.Popen([sys.executable, "-m", "mixopt.train.worker", str(job_dir)], stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True, cwd=str(job_dir))
    finally:
        log.close()


def finish_job(spec: JobSpec, job_dir: Path, returncode: int | None, wall_s: float, timeout_s: float | None) -> JobResult:
    """Turn a finished (or killed) worker into a :class:`JobResult`."""
    tail = _tail(job_dir / LOG_FILE)
    if returncode is None:
        msg = f"job {spec.run_id!r} exceeded its wall-clock budget of {timeout_s:.0f} s and was stopped"
        return JobResult(spec=spec, status="timeout", message=msg + f"; log tail:\n{tail}", wall_s=wall_s, log_tail=tail)
    if returncode != 0:
        msg = f"job {spec.run_id!r} failed (exit {returncode}); log tail:\n{tail}"
        return JobResult(spec=spec, status="failed", message=msg, wall_s=wall_s, log_tail=tail)
    from mixopt.data.readers import read_runs

    try:
        table = read_runs(job_dir / ROWS_FILE)
    except (MixoptError, OSError) as e:
        return JobResult(spec=spec, status="failed", message=f"job {spec.run_id!r} wrote no readable rows: {e}", wall_s=wall_s, log_tail=tail)
    return JobResult(spec=spec, status="ok", table=table, wall_s=wall_s, log_tail=tail)


def run_guarded(job_dir: Path, spec: JobSpec, timeout_s: float | None) -> JobResult:
    """Run one prepared job to the end or to its budget (blocking)."""
    t0 = time.perf_counter()
    proc = start_job(job_dir)
    try:
        rc: int | None = proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        rc = None
    except BaseException:
        _kill_group(proc)
        raise
    return finish_job(spec, job_dir, rc, time.perf_counter() - t0, timeout_s)


class JobExecutor(ABC):
    """Base of job executors: ``run(jobs, trainer, workdir, timeout_s, on_result) -> results``."""

    @abstractmethod
    def run(self, jobs: Sequence[JobSpec], trainer: TrainerRef, workdir: str | Path, *, timeout_s: float | None = None,
            on_result: Callable[[JobResult], None] | None = None) -> list[JobResult]:
        """Run every job (calling ``on_result`` as each finishes); the results in job order."""

    def close(self) -> None:
        """Release resources (no-op by default)."""

    def describe(self) -> str:
        return type(self).__name__


class _Running:
    """A running local job: a fresh interpreter (``proc``) or a child forked by the batch's job server (``pid``)."""

    def __init__(self, spec: JobSpec, job_dir: Path, server: JobServer | None) -> None:
        self.spec, self.dir, self.t0 = spec, job_dir, time.perf_counter()
        self.server: JobServer | None = None
        self.proc: subprocess.Popen | None = None
        pid = server.start(job_dir) if server is not None else None
        if pid is None:
            self.proc = start_job(job_dir)
            self.pid = self.proc.pid
        else:
            self.server, self.pid = server, pid

    def poll(self) -> int | None:
        if self.proc is not None:
            return self.proc.poll()
        return self.server.returncodes.get(self.pid)  # type: ignore[union-attr]

    def kill(self) -> None:
        """Kill the job's process group and wait until it is gone (as far as its server can tell)."""
        if self.proc is not None:
            _kill_group(self.proc)
            return
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        deadline = time.perf_counter() + SERVER_WAIT_S
        while self.poll() is None and time.perf_counter() < deadline and self.server.wait(0.2):  # type: ignore[union-attr]
            pass


class LocalJobExecutor(JobExecutor):
    """Run up to ``max_parallel`` guarded jobs at once on this machine.

    With ``fork_jobs`` each :meth:`run` starts one job server (:mod:`mixopt.train.forkserver`) that imports the
    trainer once and forks every job from there, so no job pays for a fresh interpreter and the trainer's imports
    (for the reference trainer ~2 CPU-s a job). A job is still its own process and process group, with its own budget
    and its own failure; should the server fail, the jobs it was running are reported as failed and the rest start
    as fresh interpreters.

    Args:
        max_parallel: jobs side by side (each uses the trainer's ``threads``).
        poll_s: how often to check running jobs, seconds (with a job server: at most this long after a job ends).
        fork_jobs: fork the jobs from a job server; None (default): where supported (Linux), else fresh interpreters.
    """

    def __init__(self, max_parallel: int = 1, poll_s: float = 0.2, fork_jobs: bool | None = None) -> None:
        if max_parallel < 1:
            raise ConfigError(f"max_parallel must be >= 1, got {max_parallel}.")
        if fork_jobs and not fork_supported():
            raise ConfigError(f"fork_jobs = True needs Linux (this is {sys.platform}); leave it unset to start every job as "
                              "a fresh interpreter here.")
        self.max_parallel = int(max_parallel)
        self.poll_s = float(poll_s)
        self.fork_jobs = fork_supported() if fork_jobs is None else bool(fork_jobs)

    def describe(self) -> str:
        return f"local ({self.max_parallel} at once{', forked from a job server' if self.fork_jobs else ''})"

    def _server(self, trainer: TrainerRef, workdir: Path) -> JobServer | None:
        try:
            return JobServer({"kind": trainer.kind, "settings": trainer.settings}, workdir / SERVER_LOG)
        except (JobServerError, OSError) as e:
            logger.warning("no job server (%s); every job starts as a fresh interpreter", e)
            return None

    def run(self, jobs: Sequence[JobSpec], trainer: TrainerRef, workdir: str | Path, *, timeout_s: float | None = None,
            on_result: Callable[[JobResult], None] | None = None) -> list[JobResult]:
        workdir = Path(workdir)
        pending = list(jobs)
        running: list[_Running] = []
        results: dict[str, JobResult] = {}
        server = self._server(trainer, workdir) if self.fork_jobs and pending else None
        try:
            while pending or running:
                while pending and len(running) < self.max_parallel:
                    spec = pending.pop(0)
                    d = prepare_job_dir(workdir, trainer, spec)
                    try:
                        running.append(_Running(spec, d, server))
                    except JobServerError as e:  # the server is gone: this job and the rest start fresh
                        logger.warning("%s; the remaining jobs start as fresh interpreters", e)
                        running = self._lost_running(server, running, results, on_result)
                        server = None
                        running.append(_Running(spec, d, None))
                    logger.info("started job %s", spec.run_id)
                if server is not None and not server.alive:
                    running = self._lost_running(server, running, results, on_result)
                    server = None
                still = []
                for r in running:
                    rc = r.poll()
                    el = time.perf_counter() - r.t0
                    if rc is None and timeout_s is not None and el > timeout_s:
                        r.kill()
                        res = finish_job(r.spec, r.dir, None, el, timeout_s)
                    elif rc is not None:
                        res = finish_job(r.spec, r.dir, rc, el, timeout_s)
                    else:
                        still.append(r)
                        continue
                    self._done(res, results, on_result)
                running = still
                if running:
                    if server is not None and any(r.server is server for r in running):
                        server.wait(self.poll_s)  # returns as soon as a forked job ends
                    else:
                        time.sleep(self.poll_s)
        finally:
            for r in running:
                r.kill()
            if server is not None:
                server.close()
        return [results[s.run_id] for s in jobs]

    @staticmethod
    def _done(res: JobResult, results: dict[str, JobResult], on_result: Callable[[JobResult], None] | None) -> None:
        _report(res)
        results[res.spec.run_id] = res
        if on_result is not None:
            on_result(res)

    def _lost_running(self, server: JobServer, running: list[_Running], results: dict[str, JobResult],
                      on_result: Callable[[JobResult], None] | None) -> list[_Running]:
        """The job server failed: stop the jobs it was running and report them failed (the rest start fresh);
        the jobs still running."""
        rc = server.proc.poll()
        server.close(wait_s=0.0)
        lost = [r for r in running if r.server is server and r.poll() is None]
        for r in lost:
            try:
                os.killpg(r.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            tail = _tail(r.dir / LOG_FILE)
            msg = (f"job {r.spec.run_id!r} was stopped: the job server it was forked from exited (exit {rc}; its log: "
                   f"{server.log_path}); run the command again to train it. Log tail:\n{tail}")
            self._done(JobResult(spec=r.spec, status="failed", message=msg, wall_s=time.perf_counter() - r.t0, log_tail=tail),
                       results, on_result)
        logger.warning("the job server exited (exit %s, log %s); the remaining jobs start as fresh interpreters", rc, server.log_path)
        return [r for r in running if r not in lost]  # those that ended before are reported as usual


def _report(res: JobResult) -> None:
    if res.ok:
        logger.info("job %s finished in %.1f s", res.spec.run_id, res.wall_s)
    else:
        logger.warning("job %s %s after %.1f s: %s", res.spec.run_id, res.status, res.wall_s, res.message.splitlines()[0])


def make_job_executor(kind: str = "local", *, max_parallel: int = 1, address: str | None = None,
                      cpus_per_job: float = 1.0, gpus_per_job: float | None = None) -> JobExecutor:
    """``"local"`` or ``"ray"`` (a Ray address implies Ray)."""
    if kind == "ray" or address:
        from mixopt.train.ray_executor import RayJobExecutor

        return RayJobExecutor(address=address, max_parallel=max_parallel, cpus_per_job=cpus_per_job, gpus_per_job=gpus_per_job)
    if kind != "local":
        raise ConfigError(f"Unknown job executor {kind!r}; use \"local\" or \"ray\".")
    return LocalJobExecutor(max_parallel=max_parallel)


__all__ = ["JobExecutor", "LocalJobExecutor", "TrainerRef", "finish_job", "make_job_executor", "prepare_job_dir", "run_guarded", "start_job"]
