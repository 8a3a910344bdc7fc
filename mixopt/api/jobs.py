"""Where jobs run: Ray (default; local, or a cluster by address) or a thread pool.

:class:`JobRunner` starts a task (:func:`mixopt.api.tasks.run_task`) and calls back in the
event loop when it ends. A job's progress is read from its Optuna study (the runner writes
every finished batch there), so it is true whichever process runs the job, and survives
a restart of the service. Ray is started or connected by :func:`mixopt._ray.start_or_connect`
(the one way, for every executor) when the first job starts.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

from mixopt._ray import RaySession, start_or_connect
from mixopt.api.settings import Settings
from mixopt.api.tasks import run_task

logger = logging.getLogger(__name__)

Done = Callable[[Any, BaseException | None], Awaitable[None]]


class JobRunner:
    """Runs fit and search tasks on Ray or in threads; at most one task per job id."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.kind = settings.executor
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None
        self._ray: Any = None
        self._remote: Any = None
        self._session: RaySession | None = None
        self._init_lock = threading.Lock()
        self._running: dict[str, tuple[Any, asyncio.Task[None]]] = {}
        self._closing = False

    # -- backends ----------------------------------------------------------------------------
    def _ensure_ray(self) -> None:
        with self._init_lock:
            if self._remote is not None:
                return
            self._session = start_or_connect(self.settings.ray_address, num_cpus=self.settings.ray_num_cpus,
                                             init_kwargs={"configure_logging": False},  # the server's logging stays its own
                                             purpose="The service's job runner")
            ray = self._ray = self._session.ray
            self._remote = ray.remote(num_cpus=1, max_retries=0)(run_task)

    def _start(self, kind: str, spec: Mapping[str, Any]) -> tuple[Any, concurrent.futures.Future[Any]]:
        """Start a task; returns (handle for cancel, concurrent future of its result)."""
        if self.kind == "ray":
            self._ensure_ray()
            ref = self._remote.remote(kind, dict(spec))
            return ref, ref.future()
        if self._pool is None:
            self._pool = concurrent.futures.ThreadPoolExecutor(self.settings.job_workers, thread_name_prefix="mixopt-job")
        fut = self._pool.submit(run_task, kind, dict(spec))
        return fut, fut

    async def submit(self, job_id: str, kind: str, spec: Mapping[str, Any], done: Done, *, before: Any = None) -> None:
        """Start ``kind`` with ``spec``; ``await done(result, error)`` in this loop when it ends.

        ``before``: a callable run first in a worker thread (e.g. opening the study storage).
        """
        if before is not None:
            await asyncio.to_thread(before)
        handle, fut = await asyncio.to_thread(self._start, kind, spec)  # ray.init can take seconds

        async def watch() -> None:
            err: BaseException | None = None
            result = None
            try:
                result = await asyncio.wrap_future(fut)
            except BaseException as e:  # noqa: BLE001 - every failure is reported on the job
                err = getattr(e, "cause", None) or e
                if isinstance(err, asyncio.CancelledError) and not isinstance(e, asyncio.CancelledError):
                    err = e
            finally:
                self._running.pop(job_id, None)
            if self._closing:  # the service is stopping: the job stays unfinished and is marked interrupted
                return
            try:
                await done(result, err)
            except Exception:  # noqa: BLE001
                logger.exception("Recording the end of job %s failed", job_id)

        task = asyncio.get_running_loop().create_task(watch(), name=f"watch-{job_id}")
        self._running[job_id] = (handle, task)

    def is_running(self, job_id: str) -> bool:
        return job_id in self._running

    def force_cancel(self, job_id: str, *, force: bool = False) -> None:
        """Stop a task that ignored its cancel flag (Ray: interrupt the task, or with ``force`` stop its
        worker; threads cannot be stopped)."""
        entry = self._running.get(job_id)
        if entry is None:
            return
        handle = entry[0]
        if self.kind == "ray" and self._ray is not None:
            try:
                self._ray.cancel(handle, force=force)
            except Exception:  # noqa: BLE001 - finished meanwhile
                pass
        elif isinstance(handle, concurrent.futures.Future):
            handle.cancel()  # only works while still queued

    def running(self) -> list[str]:
        """Ids of the jobs this runner is running now."""
        return list(self._running)

    async def close(self) -> None:
        """Stop watching; Ray tasks end with the Ray this runner started, threads at their next batch."""
        self._closing = True
        for _handle, task in list(self._running.values()):
            task.cancel()
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
        if self._session is not None:
            await asyncio.to_thread(self._session.close)

    def describe(self) -> str:
        if self.kind == "ray":
            return f"ray ({self.settings.ray_address or 'local'})"
        return f"thread ({self.settings.job_workers} workers)"


class StudyProgress:
    """Finished-trial counts of job studies, read from their Optuna storage (journal files or a database)."""

    def __init__(self, shared_url: str | None) -> None:
        self.shared_url = shared_url
        self._storages: OrderedDict[str, Any] = OrderedDict()  # url -> storage (journal storages read incrementally)
        self._lock = threading.Lock()

    def _storage(self, url: str) -> Any:
        with self._lock:
            st = self._storages.get(url)
            if st is None:
                if url.startswith("journal:"):
                    from optuna.storages import JournalStorage
                    from optuna.storages.journal import JournalFileBackend

                    st = JournalStorage(JournalFileBackend(url[len("journal:"):]))
                else:
                    from mixopt.search.storage import open_storage

                    try:
                        st = open_storage(study_url(url))
                    except Exception as e:  # noqa: BLE001
                        from mixopt.errors import ConfigError

                        raise ConfigError(f"Cannot open the study storage ({type(e).__name__}: {e}); check MIXOPT_STUDY_STORAGE.") from None
                self._storages[url] = st
                while len(self._storages) > 64:
                    self._storages.popitem(last=False)
            else:
                self._storages.move_to_end(url)
            return st

    def open(self) -> None:
        """Create the shared database's study schema now (concurrent first jobs would race to create it)."""
        if self.shared_url:
            self._storage(self.shared_url)

    def open_quietly(self) -> None:
        try:
            self.open()
        except Exception:  # noqa: BLE001 - reported again when a request or job uses the storage
            logger.exception("Cannot open the study storage %s", self.shared_url)

    def forget(self, url: str) -> None:
        with self._lock:
            self._storages.pop(url, None)

    def count(self, url: str, study_name: str) -> int:
        """Finished (complete or failed) trials of ``study_name``; 0 if it does not exist yet."""
        from optuna.trial import TrialState

        if url.startswith("journal:") and not Path(url[len("journal:"):]).is_file():
            return 0
        try:
            st = self._storage(url)
            sid = st.get_study_id_from_name(study_name)
        except KeyError:
            return 0
        except Exception:  # noqa: BLE001 - storage not readable yet
            logger.debug("progress of %s unavailable", study_name, exc_info=True)
            return 0
        return int(st.get_n_trials(sid, state=(TrialState.COMPLETE, TrialState.FAIL)))


def study_url(url: str) -> str:
    """The SQLAlchemy URL Optuna should use (psycopg 3 driver for ``postgresql://``)."""
    return "postgresql+psycopg://" + url[len("postgresql://"):] if url.startswith("postgresql://") else url


__all__ = ["JobRunner", "StudyProgress", "study_url"]
