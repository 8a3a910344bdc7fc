"""Executors: where batches of trials are evaluated.

An executor takes a :class:`~mixopt.search.objectives.Problem` (a pure function of
unit-cube points) and a batch of points, and returns either an
:class:`~mixopt.search.objectives.Evaluation` or the exception the evaluation raised.
It never raises for a failed evaluation: the runner marks those trials FAIL and the
search goes on. Executors know nothing of Optuna.

* :class:`LocalExecutor` evaluates in this process.
* :class:`RayExecutor` runs every batch as a Ray task, ``workers`` batches at a time. It starts a local Ray when no
  address is given (``num_cpus`` = the CPUs this process may use, no dashboard, quiet
  logging) or connects to ``address``; the problem (with its surrogate) is put into the
  object store **once** and deserialised once per worker process. A task whose worker
  crashes, or that raises, or that exceeds ``timeout_s``, comes back as an exception. Ray is
  started or connected by :func:`mixopt._ray.start_or_connect` (the one way, for every executor)
  and imported only when a :class:`RayExecutor` is used.
"""

from __future__ import annotations

import logging
import os
import time
from abc import ABC, abstractmethod
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import numpy as np

from mixopt._ray import available_cpus, fetch, start_or_connect
from mixopt.errors import SearchError
from mixopt.search.objectives import Evaluation, Problem

logger = logging.getLogger(__name__)

Outcome = Evaluation | BaseException


class Executor(ABC):
    """Evaluates batches; failures come back as exceptions, never raised.

    The runner keeps up to :attr:`slots` batches in flight: it submits a batch, asks the
    next one while earlier ones are evaluated, and collects results in submission order
    (so the search is deterministic for a given number of slots, whatever the timing).

    Attributes:
        slots: evaluation batches in flight at once (1 = ask, evaluate, tell in turn).
    """

    slots: int = 1

    @abstractmethod
    def submit(self, problem: Problem, u: np.ndarray) -> Any:
        """Start evaluating ``u`` (``(n, dim)`` cube points); returns a handle for :meth:`result`."""

    @abstractmethod
    def result(self, handle: Any) -> Outcome:
        """Wait for a submitted batch: its :class:`Evaluation`, or the exception it raised."""

    def cancel(self, handle: Any) -> None:  # noqa: B027 - optional hook
        """Give up on a submitted batch (no-op by default)."""

    def map(self, problem: Problem, batches: Sequence[np.ndarray]) -> list[Outcome]:
        """Evaluate several batches (all submitted, then collected in order)."""
        handles = [self.submit(problem, u) for u in batches]
        return [self.result(h) for h in handles]

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release resources (no-op by default)."""

    def describe(self) -> str:
        return type(self).__name__

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class LocalExecutor(Executor):
    """Evaluate in this process when a batch is submitted.

    Args:
        slots: batches the runner keeps in flight; locally this only changes the order of
            ask and tell (use the same value as a Ray run to reproduce it exactly).
    """

    def __init__(self, slots: int = 1) -> None:
        if slots < 1:
            raise SearchError(f"slots must be >= 1, got {slots}.")
        self.slots = int(slots)

    def submit(self, problem: Problem, u: np.ndarray) -> Outcome:
        try:
            return problem(u)
        except Exception as e:  # noqa: BLE001 - an objective's exception fails its trials, not the search
            return e

    def result(self, handle: Any) -> Outcome:
        return handle

    def describe(self) -> str:
        return "in-process" if self.slots == 1 else f"in-process ({self.slots} slots)"


# -- Ray -----------------------------------------------------------------------------------
#: Problems already deserialised in this (worker) process, by object-store key.
_WORKER_CACHE: OrderedDict[str, Problem] = OrderedDict()
_WORKER_CACHE_SIZE = 4


def _evaluate_remote(key: str, boxed_ref: list[Any], u: np.ndarray) -> Evaluation:
    """Body of the Ray task: fetch the problem once per worker process, evaluate ``u``."""
    problem = _WORKER_CACHE.get(key)
    if problem is None:
        problem = fetch(boxed_ref[0])
        _WORKER_CACHE[key] = problem
        while len(_WORKER_CACHE) > _WORKER_CACHE_SIZE:
            _WORKER_CACHE.popitem(last=False)
    return problem(u)


class RayExecutor(Executor):
    """Evaluate batches as Ray tasks.

    Args:
        address: Ray cluster address (``"auto"``, ``"ray://host:10001"``, ...); None starts
            a local Ray (unless one is already running in this process, which is reused).
        workers: evaluation batches in flight at once, one Ray task each (default: the
            cluster's CPU count).
        num_cpus: CPUs of a locally started Ray (default: :func:`available_cpus`).
        max_retries: Ray runs a task again when its worker process or node died, up to this many
            times, on any live node (a lost cluster node loses no trials; evaluations are pure, so a
            rerun gives the same answer); 0: its trials fail at once. An exception the objective
            raises is never retried: its trials fail.
        timeout_s: seconds to wait for one batch before its trials fail (None: no limit).
        init_kwargs: extra keyword arguments for ``ray.init``.
        dashboard: start the Ray dashboard with a local Ray (default off: no web server on
            port 8265, no dashboard agent, no token-authentication warning).

    Ray is started (or connected) when the executor is created, by
    :func:`mixopt._ray.start_or_connect`; :meth:`close` gives that session back (Ray is shut
    down when the last session of the process that started it closes). A start or connect
    failure raises :class:`~mixopt.errors.ClusterError`.
    """

    def __init__(
        self,
        address: str | None = None,
        *,
        workers: int | None = None,
        num_cpus: int | None = None,
        max_retries: int = 2,
        timeout_s: float | None = None,
        init_kwargs: dict[str, Any] | None = None,
        dashboard: bool = False,
    ) -> None:
        if workers is not None and workers < 1:
            raise SearchError(f"workers must be >= 1, got {workers}.")
        self._session = start_or_connect(address, num_cpus=num_cpus, dashboard=dashboard, init_kwargs=init_kwargs,
                                         purpose="The search's Ray executor")
        ray = self._ray = self._session.ray
        cpus = int(ray.cluster_resources().get("CPU", 1))
        self.slots = int(workers or max(cpus, 1))
        self.timeout_s = timeout_s
        # SPREAD: batches go round the nodes (Ray's default fills the driver's node first and leaves
        # a cluster's other nodes idle while their tasks queue there)
        self._remote = ray.remote(num_cpus=1, max_retries=int(max_retries), scheduling_strategy="SPREAD")(_evaluate_remote)
        self._problem: Problem | None = None
        self._ref: Any = None
        self._key = ""

    def describe(self) -> str:
        return f"Ray ({self.slots} workers)"

    def _put(self, problem: Problem) -> None:
        if problem is not self._problem:
            self._problem = problem
            self._ref = self._ray.put(problem)
            self._key = f"{os.getpid()}-{id(problem)}-{time.time_ns()}"

    def submit(self, problem: Problem, u: np.ndarray) -> Any:
        try:
            self._put(problem)
        except Exception as e:  # noqa: BLE001 - e.g. an unpicklable surrogate: the batch fails
            return e
        return self._remote.remote(self._key, [self._ref], u)

    def result(self, handle: Any) -> Outcome:
        if isinstance(handle, BaseException):
            return handle
        ray = self._ray
        try:
            return ray.get(handle, timeout=self.timeout_s)
        except Exception as e:  # noqa: BLE001 - task error, crashed worker, timeout, lost object
            if isinstance(e, ray.exceptions.GetTimeoutError):
                self.cancel(handle)
            cause = getattr(e, "cause", None)
            return cause if isinstance(cause, BaseException) else e

    def cancel(self, handle: Any) -> None:
        if not isinstance(handle, BaseException):
            try:
                self._ray.cancel(handle, force=True)
            except Exception:  # noqa: BLE001 - already finished or gone
                pass

    def close(self) -> None:
        self._problem = None
        self._ref = None
        self._session.close()


def make_executor(kind: str = "local", *, address: str | None = None, workers: int | None = None,
                  **kwargs: Any) -> Executor:
    """An executor by name: ``"local"`` or ``"ray"``."""
    if kind == "local":
        return LocalExecutor(workers or 1)
    if kind == "ray":
        return RayExecutor(address or None, workers=workers, **kwargs)
    raise SearchError(f"Unknown executor {kind!r}; choose 'local' or 'ray'.")


__all__ = ["Executor", "LocalExecutor", "RayExecutor", "available_cpus", "make_executor"]
