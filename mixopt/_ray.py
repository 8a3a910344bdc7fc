"""The one way mixopt starts Ray or connects to a Ray cluster.

Every Ray user (the search's :class:`~mixopt.search.executors.RayExecutor`, the training
jobs' :class:`~mixopt.train.ray_executor.RayJobExecutor`, the HTTP service's job runner)
calls :func:`start_or_connect` and gives the :class:`RaySession` back with
:meth:`RaySession.close`. The rules, the same for all:

* ``address`` given (``"auto"``, ``"10.0.0.5:6379"``, ``"ray://head:10001"``): connect to that
  cluster; otherwise start a local Ray with ``num_cpus`` CPUs (default: the CPUs this
  process may run on), no dashboard, quiet logging, no worker output on the driver.
* A Ray already running in this process is reused, whatever the address (Ray allows one
  connection per process); it is then not shut down by this session.
* Sessions count: Ray is shut down when the last session of the process that started it
  closes (a search and a training batch in one process share one Ray).
* ``ray.init`` replaces the process's SIGINT/SIGTERM handlers; the caller's are put back.
* Any failure to start or connect raises :class:`~mixopt.errors.ClusterError` naming what was
  tried and how to fix it.

Ray is imported only when a session is opened (``import mixopt`` stays fast).
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any

from mixopt.errors import ClusterError

logger = logging.getLogger(__name__)

_lock = threading.Lock()
_sessions = 0  # open sessions of the Ray this process started (0 when it did not start one)


def available_cpus() -> int:
    """CPUs this process may run on (affinity mask; falls back to ``os.cpu_count``)."""
    try:
        return max(len(os.sched_getaffinity(0)), 1)
    except AttributeError:  # pragma: no cover - not Linux
        return max(os.cpu_count() or 1, 1)


def is_running() -> bool:
    """True when this process is already connected to a Ray (using it costs nothing more)."""
    ray = sys.modules.get("ray")
    return bool(ray is not None and ray.is_initialized())


@dataclass
class RaySession:
    """A use of Ray by one executor.

    Attributes:
        ray: the ``ray`` module (for ``remote``, ``get``, ``wait``, ``cancel``).
        address: the address asked for (None: a local Ray).
        owned: True when this session counts towards shutting Ray down on close.
    """

    ray: Any
    address: str | None
    owned: bool
    closed: bool = False

    def resources(self) -> dict[str, float]:
        """The cluster's total resources (``{"CPU": 4.0, "GPU": 1.0, ...}``)."""
        return dict(self.ray.cluster_resources())

    def close(self) -> None:
        """Give the session back; the last owned session of the process shuts Ray down."""
        global _sessions
        if self.closed:
            return
        self.closed = True
        if not self.owned:
            return
        with _lock:
            _sessions -= 1
            last = _sessions <= 0
            if last:
                _sessions = 0
        if last and self.ray.is_initialized():
            self.ray.shutdown()


def fetch(ref: Any) -> Any:
    """The value of an object reference (inside a Ray task: an object the driver put)."""
    import ray

    return ray.get(ref)


def node_id() -> str | None:
    """The id of the Ray node this code runs on (None outside Ray)."""
    ray = sys.modules.get("ray")
    if ray is None or not ray.is_initialized():
        return None
    return str(ray.get_runtime_context().get_node_id())


def _caller_handlers() -> dict[int, Any]:
    if threading.current_thread() is not threading.main_thread():
        return {}
    return {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}


def _restore(handlers: dict[int, Any]) -> None:
    for sig, handler in handlers.items():
        if handler is not None and signal.getsignal(sig) is not handler:
            signal.signal(sig, handler)


def _import_ray(purpose: str) -> Any:
    try:
        import ray
    except ImportError as e:
        raise ClusterError(f"{purpose} needs the 'ray' package, which cannot be imported ({e}); "
                           "install it (pip install 'ray[default]') or use executor = \"local\".") from None
    return ray


def start_or_connect(address: str | None = None, *, num_cpus: int | None = None, dashboard: bool = False,
                     init_kwargs: dict[str, Any] | None = None, purpose: str = "The Ray executor") -> RaySession:
    """Connect to the Ray cluster at ``address``, or start a local Ray (see the module docstring).

    Args:
        address: a cluster address; None or ``""`` starts a local Ray.
        num_cpus: CPUs of a local Ray (default :func:`available_cpus`; ignored with an address).
        dashboard: start the dashboard with a local Ray (default off: no web server on 8265).
        init_kwargs: extra keyword arguments for ``ray.init`` (they win over the defaults).
        purpose: who asks, for error messages.
    """
    global _sessions
    ray = _import_ray(purpose)
    with _lock:
        if ray.is_initialized():
            owned = _sessions > 0  # a Ray one of our sessions started: count this use too
            _sessions += int(owned)
            return RaySession(ray, address or None, owned)
        kwargs: dict[str, Any] = {"include_dashboard": bool(dashboard), "logging_level": logging.WARNING,
                                  "log_to_driver": False, "configure_logging": True}
        if address:
            kwargs["address"] = address
            kwargs.pop("include_dashboard")  # a cluster's dashboard is the cluster's business
        else:
            kwargs["num_cpus"] = int(num_cpus or available_cpus())
        kwargs.update(init_kwargs or {})
        # Ray turns token authentication on for a new local cluster and warns about it on every
        # start: quiet that one logger while Ray starts (restored afterwards).
        auth_log = logging.getLogger("ray._private.authentication.authentication_token_setup")
        old_level = auth_log.level
        auth_log.setLevel(logging.ERROR)
        handlers = _caller_handlers()
        t0 = time.perf_counter()
        try:
            ray.init(**kwargs)
        except Exception as e:  # noqa: BLE001 - any start or connect failure, with what was tried
            where = f"connect to the Ray cluster at {address!r}" if address else f"start a local Ray ({kwargs.get('num_cpus')} CPUs)"
            fix = ("check the address (`ray status --address ADDRESS` on this machine) and that the cluster runs the "
                   "same Ray and Python versions" if address else "check that /tmp is writable and ports are free")
            raise ClusterError(f"{purpose} could not {where}: {type(e).__name__}: {e}. Fix: {fix}; "
                               "or use executor = \"local\".") from None
        finally:
            auth_log.setLevel(old_level)
            _restore(handlers)
        _sessions = 1
    logger.info("Ray %s in %.1f s: %s", "connected" if address else "started", time.perf_counter() - t0,
                ray.cluster_resources())
    return RaySession(ray, address or None, True)


__all__ = ["RaySession", "available_cpus", "fetch", "is_running", "node_id", "start_or_connect"]
