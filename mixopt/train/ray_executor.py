"""Training jobs as Ray tasks (the only module of :mod:`mixopt.train` that imports Ray).

Each job is one Ray task with a resource request (``cpus_per_job`` CPUs; ``gpus_per_job``
GPUs, by default 1 when the cluster has GPUs, else 0); Ray runs as many at once as the
cluster fits, capped by ``max_parallel``. Inside the task the job runs as a guarded child
process (:func:`mixopt.train.executors.run_guarded`): past its budget it is killed and
reported as ``"timeout"``. The driver also stops waiting for a task at budget + a grace
period (a lost node, a wedged task) and cancels it. The job folders must be on a file system
the workers see (always true for a local Ray); the rows come back through Ray.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from mixopt._ray import node_id, start_or_connect
from mixopt.errors import ConfigError
from mixopt.train.executors import JobExecutor, TrainerRef, _report, prepare_job_dir, run_guarded
from mixopt.train.spec import JobResult, JobSpec

logger = logging.getLogger(__name__)

#: extra seconds the driver waits past a job's budget before it cancels the task itself
DRIVER_GRACE_S = 60.0


def _run_remote(job_dir: str, spec: dict[str, Any], timeout_s: float | None) -> dict[str, Any]:
    res = run_guarded(Path(job_dir), JobSpec.from_dict(spec), timeout_s)
    out: dict[str, Any] = {"status": res.status, "message": res.message, "wall_s": res.wall_s, "log_tail": res.log_tail,
                           "node": node_id()}
    if res.table is not None:
        out["rows"] = res.table.frame.to_dicts()
        out["benchmarks"] = res.table.benchmarks_dict()
    return out


def _to_result(spec: JobSpec, d: dict[str, Any]) -> JobResult:
    table = None
    if d.get("rows"):
        import polars as pl

        from mixopt.data.table import Benchmark, RunTable

        table = RunTable(pl.DataFrame(d["rows"], infer_schema_length=None), [Benchmark.from_dict(b) for b in d["benchmarks"]])
    return JobResult(spec=spec, status=d["status"], table=table, message=d["message"], wall_s=d["wall_s"], log_tail=d["log_tail"],
                     node=d.get("node"))


class RayJobExecutor(JobExecutor):
    """Run guarded jobs as Ray tasks.

    Args:
        address: Ray cluster address; None starts a local Ray (shut down on :meth:`close`).
        max_parallel: tasks in flight at once.
        cpus_per_job: CPUs requested per task.
        gpus_per_job: GPUs requested per task; None = 1 when the cluster has GPUs, else 0.
        num_cpus: CPUs of a local Ray (default: the CPUs this process may use).
        max_retries: runs of a job again after its Ray worker or node died (a lost node of a cluster).

    Ray is started or connected by :func:`mixopt._ray.start_or_connect` (a failure raises
    :class:`~mixopt.errors.ClusterError`); :meth:`close` gives that session back.
    """

    def __init__(self, address: str | None = None, *, max_parallel: int = 2, cpus_per_job: float = 1.0,
                 gpus_per_job: float | None = None, num_cpus: int | None = None, max_retries: int = 2) -> None:
        if max_parallel < 1:
            raise ConfigError(f"max_parallel must be >= 1, got {max_parallel}.")
        self._session = start_or_connect(address, num_cpus=num_cpus, purpose="The training jobs' Ray executor")
        ray = self._ray = self._session.ray
        res = ray.cluster_resources()
        self.gpus_per_job = float(gpus_per_job) if gpus_per_job is not None else (1.0 if res.get("GPU", 0) >= 1 else 0.0)
        self.cpus_per_job = float(cpus_per_job)
        self.max_parallel = int(max_parallel)
        # a task whose worker or node died is run again elsewhere (a job's own failure or timeout is a result, not retried)
        self._remote = ray.remote(num_cpus=self.cpus_per_job, num_gpus=self.gpus_per_job, max_retries=int(max_retries),
                                  scheduling_strategy="SPREAD")(_run_remote)  # jobs go round the nodes

    def describe(self) -> str:
        return f"ray ({self.max_parallel} in flight, {self.cpus_per_job:g} CPU / {self.gpus_per_job:g} GPU per job)"

    def run(self, jobs: Sequence[JobSpec], trainer: TrainerRef, workdir: str | Path, *, timeout_s: float | None = None,
            on_result: Callable[[JobResult], None] | None = None) -> list[JobResult]:
        ray = self._ray
        pending = list(jobs)
        flight: dict[Any, tuple[JobSpec, float]] = {}
        results: dict[str, JobResult] = {}

        def done(res: JobResult) -> None:
            _report(res)
            results[res.spec.run_id] = res
            if on_result is not None:
                on_result(res)

        try:
            while pending or flight:
                while pending and len(flight) < self.max_parallel:
                    spec = pending.pop(0)
                    d = prepare_job_dir(Path(workdir), trainer, spec)
                    flight[self._remote.remote(str(d), spec.to_dict(), timeout_s)] = (spec, time.perf_counter())
                ready, _ = ray.wait(list(flight), num_returns=1, timeout=1.0)
                for ref in ready:
                    spec, t0 = flight.pop(ref)
                    try:
                        done(_to_result(spec, ray.get(ref)))
                    except Exception as e:  # noqa: BLE001 - a crashed task or worker: that job fails, others go on
                        done(JobResult(spec=spec, status="failed", message=f"job {spec.run_id!r}: Ray task failed: {type(e).__name__}: {e}",
                                       wall_s=time.perf_counter() - t0))
                if timeout_s is not None:
                    now = time.perf_counter()
                    for ref, (spec, t0) in list(flight.items()):
                        if now - t0 > timeout_s + DRIVER_GRACE_S:
                            ray.cancel(ref, force=True)
                            flight.pop(ref)
                            done(JobResult(spec=spec, status="timeout", wall_s=now - t0,
                                           message=f"job {spec.run_id!r}: no answer from its Ray task {now - t0:.0f} s after start (budget {timeout_s:.0f} s); cancelled"))
        finally:
            for ref in flight:
                ray.cancel(ref, force=True)
        return [results[s.run_id] for s in jobs]

    def close(self) -> None:
        self._session.close()


__all__ = ["RayJobExecutor"]
