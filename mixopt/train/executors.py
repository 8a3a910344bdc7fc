"""Run training jobs: each in a guarded child process, several at once.

Every job runs as ``python -m mixopt.train.worker JOB_DIR`` in its own process group with a
wall-clock budget: a job past its budget is killed (with everything it started) and
reported as ``"timeout"`` with its log tail; a job that fails is reported as ``"failed"``;
the others go on either way. :class:`LocalJobExecutor` runs up to ``max_parallel`` jobs on
this machine; :class:`~mixopt.train.ray_executor.RayJobExecutor` runs them as Ray tasks
(the only module that imports Ray).
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


class LocalJobExecutor(JobExecutor):
    """Run up to ``max_parallel`` guarded jobs at once on this machine.

    Args:
        max_parallel: jobs side by side (each uses the trainer's ``threads``).
        poll_s: how often to check running jobs, seconds.
    """

    def __init__(self, max_parallel: int = 1, poll_s: float = 0.2) -> None:
        if max_parallel < 1:
            raise ConfigError(f"max_parallel must be >= 1, got {max_parallel}.")
        self.max_parallel = int(max_parallel)
        self.poll_s = float(poll_s)

    def describe(self) -> str:
        return f"local ({self.max_parallel} at once)"

    def run(self, jobs: Sequence[JobSpec], trainer: TrainerRef, workdir: str | Path, *, timeout_s: float | None = None,
            on_result: Callable[[JobResult], None] | None = None) -> list[JobResult]:
        workdir = Path(workdir)
        pending = list(jobs)
        running: list[tuple[JobSpec, Path, subprocess.Popen, float]] = []
        results: dict[str, JobResult] = {}
        try:
            while pending or running:
                while pending and len(running) < self.max_parallel:
                    spec = pending.pop(0)
                    d = prepare_job_dir(workdir, trainer, spec)
                    running.append((spec, d, start_job(d), time.perf_counter()))
                    logger.info("started job %s", spec.run_id)
                still = []
                for spec, d, proc, t0 in running:
                    rc = proc.poll()
                    el = time.perf_counter() - t0
                    if rc is None and timeout_s is not None and el > timeout_s:
                        _kill_group(proc)
                        res = finish_job(spec, d, None, el, timeout_s)
                    elif rc is not None:
                        res = finish_job(spec, d, rc, el, timeout_s)
                    else:
                        still.append((spec, d, proc, t0))
                        continue
                    _report(res)
                    results[spec.run_id] = res
                    if on_result is not None:
                        on_result(res)
                running = still
                if running:
                    time.sleep(self.poll_s)
        finally:
            for _, _, proc, _ in running:
                _kill_group(proc)
        return [results[s.run_id] for s in jobs]


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
