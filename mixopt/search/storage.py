"""Where a study lives: storage strings, a batched journal file, and the one-runner lock.

Storage strings (config ``[search] storage``, ``--storage``):

* ``"memory"`` (or ``""``, ``":memory:"``, ``"none"``): nothing is kept after the run.
* a path ending in ``.log`` / ``.journal`` / ``.jsonl``, or ``"journal:<path>"``: an Optuna
  journal file (the default: ``<study_name>.log``). mixopt writes it **in batches**: the
  log records of a whole batch of trials are appended with one write and one ``fsync``
  (:class:`BatchedJournalFileBackend`), so persisting costs little more than running in
  memory. The file is an ordinary Optuna journal: ``optuna.load_study(storage=
  JournalStorage(JournalFileBackend(path)))`` reads it.
* any other path (``.db``, ``.sqlite``, ...): an SQLite file (WAL, synchronous=NORMAL).
* a string with ``://``: an SQLAlchemy URL (``postgresql://user@host/db``) for teams that
  share a database.

Concurrency rule: **one process drives a study at a time; a second is refused.** Before
anything is fitted or run, the runner takes :class:`StudyLock`: for a file storage an
exclusive ``flock`` on ``<file>.mixopt-lock`` (released by the kernel when the process
exits, however it exits, so a crash leaves no stale lock); for a database URL a lease
in the study's user attributes (``mixopt:lease``, refreshed after every batch; a lease
not refreshed for :data:`LEASE_TTL_S` seconds is considered abandoned). A second process
gets a :class:`~mixopt.errors.SearchError` naming the holder (pid, host, start time).
Reading a study (``optuna.load_study``, :func:`mixopt.search.study_history`) needs no lock.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import time
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from mixopt.errors import SearchError

logger = logging.getLogger(__name__)

#: File suffixes that mean "Optuna journal file".
JOURNAL_SUFFIXES = (".log", ".journal", ".jsonl")
#: Seconds after which a database lease that was not refreshed is considered abandoned.
LEASE_TTL_S = 600.0
#: Study user attribute holding the database lease.
LEASE_ATTR = "mixopt:lease"


def storage_url(storage: str | Path | None, base_dir: Path | None = None) -> str | None:
    """Normalise a storage setting: ``None`` (in memory), ``"journal:<abs path>"`` or an SQLAlchemy URL.

    ``base_dir`` resolves relative paths (default: the current directory).
    """
    if storage is None:
        return None
    s = str(storage).strip()
    if s in ("", "memory", ":memory:", "none"):
        return None
    if "://" in s:
        return s
    journal = s.startswith("journal:")
    p = Path(s[len("journal:"):] if journal else s).expanduser()
    if base_dir is not None and not p.is_absolute():
        p = base_dir / p
    if journal or p.suffix.lower() in JOURNAL_SUFFIXES:
        return f"journal:{p.resolve()}"
    return f"sqlite:///{p.resolve()}"


def storage_file(url: str | None) -> Path | None:
    """The file behind a journal or SQLite URL (None for memory or a server database)."""
    if url is None:
        return None
    if url.startswith("journal:"):
        return Path(url[len("journal:"):])
    if url.startswith("sqlite:///"):
        p = url[len("sqlite:///"):]
        return None if p in ("", ":memory:") else Path(p)
    return None


def check_writable_file(path: Path, what: str, *, create_parent: bool = True) -> None:
    """Raise a SearchError unless ``path`` can be created or appended to (checked, not guessed).

    The parent folder is created when ``create_parent`` (the caller asked for this file).
    """
    path = Path(path)
    if path.exists() and path.is_dir():
        raise SearchError(f"The {what} {path} is a directory; give a file path.")
    parent = path.parent
    if not parent.exists():
        if not create_parent:
            raise SearchError(f"The folder of the {what} {path} does not exist; create {parent} first.")
        try:
            parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise SearchError(f"Cannot create the folder {parent} for the {what} ({e.strerror or e}); "
                              "choose a path in a folder you can write to.") from None
    if path.exists():
        if not os.access(path, os.W_OK):
            raise SearchError(f"The {what} {path} exists and is not writable; fix its permissions or choose another path.")
        return
    probe = parent / f".mixopt-write-test-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        raise SearchError(f"Cannot write the {what} in {parent} ({e.strerror or e}); "
                          "choose a path in a folder you can write to.") from None


# -- journal file written in batches ---------------------------------------------------------
def _journal_classes() -> tuple[type, type]:
    from optuna.storages.journal import BaseJournalBackend, JournalFileBackend

    return BaseJournalBackend, JournalFileBackend


def _get_lock_file(lock: Any) -> Any:
    from optuna.storages.journal._file import get_lock_file

    return get_lock_file(lock)


def make_batched_backend(path: str | Path) -> Any:
    """A :class:`BatchedJournalFileBackend` for ``path`` (Optuna imported lazily)."""
    base, _ = _journal_classes()
    cls = _batched_class(base)
    return cls(str(path))


_BATCHED_CLASS: type | None = None


# Longer than the ~80-line rule on purpose: a class factory (Optuna is imported lazily, so the
# subclass is built on first use); its body is the subclass's methods, which belong together.
def _batched_class(base: type) -> type:
    global _BATCHED_CLASS
    if _BATCHED_CLASS is not None:
        return _BATCHED_CLASS
    _, file_backend = _journal_classes()

    class BatchedJournalFileBackend(base):  # type: ignore[misc, valid-type]
        """Optuna's journal file, with appends held back inside :meth:`batch` and written at its end.

        Outside :meth:`batch` every append goes straight to the file (Optuna's behaviour).
        Inside, appended records are kept in memory and served to this process's reads as
        if written (Optuna replays its own writes to learn trial ids), then appended with one
        write + ``fsync`` when the block ends, even when it ends by an exception. Safe only
        with one writer per file, which :class:`StudyLock` guarantees.
        """

        def __init__(self, file_path: str) -> None:
            self._inner = file_backend(file_path)
            self._pending: list[dict[str, Any]] = []
            self._n_file: int | None = None  # records in the file, once read to the end
            self._depth = 0

        def read_logs(self, log_number_from: int) -> Iterable[dict[str, Any]]:
            n = log_number_from
            if self._depth and self._n_file is not None and n >= self._n_file:
                return self._pending[n - self._n_file:]  # nothing new in the file: we are its only writer
            out = list(self._inner.read_logs(n))
            self._n_file = n + len(out)  # Optuna never asks beyond what it has read
            return out + self._pending

        def append_logs(self, logs: list[dict[str, Any]]) -> None:
            if self._depth:
                self._pending.extend(logs)
            else:
                self._inner.append_logs(logs)
                if self._n_file is not None:
                    self._n_file += len(logs)

        def flush(self) -> None:
            """Write the held-back records (one append, one fsync)."""
            if self._pending:
                pending, self._pending = self._pending, []
                self._write(pending)
                if self._n_file is not None:
                    self._n_file += len(pending)

        def _write(self, logs: list[dict[str, Any]]) -> None:
            """Append ``logs`` as Optuna's file backend does (its lock, one write, fsync), encoding
            a ``distributions`` dict shared by many records once."""
            lock, path = getattr(self._inner, "_lock", None), getattr(self._inner, "_file_path", None)
            if lock is None or path is None:  # pragma: no cover - another Optuna layout: its own writer
                self._inner.append_logs(logs)
                return
            frags: dict[int, tuple[Any, str]] = {}
            lines = []
            for log in logs:
                d = log.get("distributions")
                if type(d) is not dict or not d:
                    lines.append(json.dumps(log, separators=(",", ":")))
                    continue
                hit = frags.get(id(d))
                if hit is None:
                    hit = frags[id(d)] = (d, json.dumps(d, separators=(",", ":")))
                rest = json.dumps({k: v for k, v in log.items() if k != "distributions"}, separators=(",", ":"))
                lines.append(f'{rest[:-1]},"distributions":{hit[1]}}}' if rest != "{}" else f'{{"distributions":{hit[1]}}}')
            with _get_lock_file(lock):
                with open(path, "ab") as f:
                    f.write(("\n".join(lines) + "\n").encode("utf-8"))
                    f.flush()
                    os.fsync(f.fileno())

        @property
        def in_batch(self) -> bool:
            """True inside :meth:`batch` (appends are held back)."""
            return self._depth > 0

        @property
        def n_logs(self) -> int:
            """Records in the file plus those held back (-1 until the file was read to its end)."""
            return -1 if self._n_file is None else self._n_file + len(self._pending)

        @contextlib.contextmanager
        def batch(self) -> Iterator[None]:
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
                if not self._depth:
                    self.flush()

    _BATCHED_CLASS = BatchedJournalFileBackend
    return _BATCHED_CLASS


_JOURNAL_STORAGE_CLASS: type | None = None


# Longer than the ~80-line rule on purpose: a class factory like _batched_class above; the
# length is the subclass's methods and their docstrings.
def _journal_storage_class() -> type:
    """Optuna's :class:`~optuna.storages.JournalStorage` with a cheap ``add_trials`` for finished trials.

    ``Study.add_trials`` writes one ``CREATE_TRIAL`` record per trial, serialising every
    parameter's distribution to JSON, and then replays its own record to learn the trial id,
    parsing every distribution back: at 64 domains that cost as much as asking the trials.
    Inside a :meth:`BatchedJournalFileBackend.batch` this subclass writes the very same record
    (so the file is an ordinary Optuna journal) with each distribution's JSON computed once per
    distribution, and applies it to the replay state directly from the finished trial (the
    result a replay would give: same id, number, state, values, parameters, attributes).
    Outside a batch, or when the replay is behind the file, Optuna's own path runs.
    """
    global _JOURNAL_STORAGE_CLASS
    if _JOURNAL_STORAGE_CLASS is not None:
        return _JOURNAL_STORAGE_CLASS
    from datetime import timezone

    from optuna.distributions import FloatDistribution, distribution_to_json
    from optuna.storages import JournalStorage
    from optuna.storages.journal._storage import JournalOperation
    from optuna.trial import FrozenTrial, TrialState

    class RunnerJournalStorage(JournalStorage):  # type: ignore[misc, valid-type]
        def __init__(self, backend: Any) -> None:
            super().__init__(backend)
            # one entry per set of distribution objects: (the objects, their JSON dict, all plain floats?)
            self._dist_json: dict[tuple[tuple[str, ...], tuple[int, ...]], tuple[list[Any], dict[str, str], bool]] = {}

        def _distributions_json(self, dists: dict[str, Any]) -> tuple[dict[str, str], bool]:
            """``{name: distribution JSON}`` of a trial's distributions (computed once per set of objects)."""
            key = (tuple(dists), tuple(map(id, dists.values())))
            hit = self._dist_json.get(key)
            if hit is None:
                objs = list(dists.values())  # kept alive, so the ids in the key stay theirs
                plain = all(type(d) is FloatDistribution and not d.log for d in objs)
                hit = (objs, {k: distribution_to_json(d) for k, d in dists.items()}, plain)
                if len(self._dist_json) > 64:
                    self._dist_json.clear()
                self._dist_json[key] = hit
            return hit[1], hit[2]

        def create_new_trial(self, study_id: int, template_trial: FrozenTrial | None = None) -> int:
            be = self._backend
            if template_trial is None or template_trial.state == TrialState.RUNNING or not getattr(be, "in_batch", False):
                return super().create_new_trial(study_id, template_trial)
            t = template_trial
            multi = t.values is not None and len(t.values) > 1
            log: dict[str, Any] = {
                "study_id": study_id,
                "datetime_start": (t.datetime_start.astimezone(timezone.utc).isoformat(timespec="microseconds")
                                   if t.datetime_start else None),
                "state": t.state, "value": None if multi else t.value, "values": t.values if multi else None,
            }
            if t.datetime_complete:
                log["datetime_complete"] = t.datetime_complete.astimezone(timezone.utc).isoformat(timespec="microseconds")
            log["distributions"], plain = self._distributions_json(t.distributions)
            if plain and all(type(v) is float and v == v for v in t.params.values()):
                log["params"] = dict(t.params)  # FloatDistribution's internal value is the float itself
            else:
                log["params"] = {k: t.distributions[k].to_internal_repr(v) for k, v in t.params.items()}
            log["user_attrs"] = t.user_attrs
            log["system_attrs"] = t.system_attrs
            log["intermediate_values"] = t.intermediate_values
            with self._thread_lock:
                rr = self._replay_result
                if rr.log_number_read != be.n_logs:
                    self._sync_with_backend()  # catch up first, so the record applied below is the next one
                if rr.log_number_read == be.n_logs and study_id in rr._studies:
                    be.append_logs([{"op_code": JournalOperation.CREATE_TRIAL, "worker_id": rr.worker_id, **log}])
                    rr.log_number_read += 1
                    return _apply_finished(rr, study_id, t, log)
            return super().create_new_trial(study_id, template_trial)

    def _apply_finished(rr: Any, study_id: int, t: FrozenTrial, log: dict[str, Any]) -> int:
        """What replaying ``log`` (a finished trial's CREATE_TRIAL record) does to the replay state."""
        trial_id = len(rr._trials)
        ids = rr._study_id_to_trial_ids[study_id]
        rr._trials[trial_id] = FrozenTrial(
            number=len(ids), trial_id=trial_id, state=t.state, value=log["value"], values=log["values"],
            datetime_start=t.datetime_start, datetime_complete=t.datetime_complete,
            # the finished trial's own dicts, not copies: a finished trial never changes, and every
            # extra live container makes each of Python's full garbage collections longer
            params=t.params, distributions=t.distributions, user_attrs=t.user_attrs,
            system_attrs=t.system_attrs, intermediate_values=t.intermediate_values)
        ids.append(trial_id)
        rr._trial_id_to_study_id[trial_id] = study_id
        rr._last_created_trial_id_by_this_process = trial_id
        return trial_id

    _JOURNAL_STORAGE_CLASS = RunnerJournalStorage
    return _JOURNAL_STORAGE_CLASS


def add_told_trials(study: Any, trials: list[Any]) -> None:
    """Copy finished trials of the runner's in-memory study into ``study`` (its persistent twin).

    ``Study.add_trials`` validates each trial again (every parameter against its distribution);
    these were validated when asked and told, so a batched journal takes them as they are.
    Any other storage goes through ``Study.add_trials``.
    """
    storage = getattr(study, "_storage", None)
    if isinstance(storage, _journal_storage_class()) and getattr(storage._backend, "in_batch", False):
        sid = study._study_id
        for t in trials:
            storage.create_new_trial(sid, template_trial=t)
    else:
        study.add_trials(trials)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cur = dbapi_connection.cursor()
    cur.execute("PRAGMA journal_mode=WAL")  # readers do not block the writer; fewer fsyncs
    cur.execute("PRAGMA synchronous=NORMAL")  # safe with WAL: an application crash loses nothing committed
    cur.close()


def open_storage(url: str, *, for_writing: bool = True) -> Any:
    """An Optuna storage for ``url``: a batched journal file, or RDB (SQLite gets WAL).

    ``for_writing=False`` skips the writability check (reading a study on a read-only disk).
    """
    import optuna

    path = storage_file(url)
    if path is not None and for_writing:
        check_writable_file(path, "study storage")
    if url.startswith("journal:"):
        try:
            return _journal_storage_class()(make_batched_backend(path))
        except Exception as e:  # noqa: BLE001 - unreadable or damaged file
            raise SearchError(f"Cannot open the journal storage {path}: {type(e).__name__}: {e}.") from None
    try:
        st = optuna.storages.RDBStorage(url)
    except Exception as e:  # noqa: BLE001 - bad URL, missing driver, unreadable file
        raise SearchError(f"Cannot open the study storage {url!r}: {type(e).__name__}: {e}. "
                          "Give a journal (.log) or SQLite file path, or a valid SQLAlchemy URL.") from None
    if url.startswith("sqlite"):
        from sqlalchemy import event

        event.listen(st.engine, "connect", _sqlite_pragmas)
        st.engine.dispose()  # reconnect with the pragmas
    return st


@contextlib.contextmanager
def signals_deferred() -> Iterator[None]:
    """Hold SIGINT and SIGTERM until the block ends, then deliver them to the previous handlers.

    A Ctrl-C or a SIGTERM handler raises wherever the interpreter happens to be; inside a
    storage write that can leave a torn journal line or a stale journal lock file. Writes
    are short, so deferring the signal for their duration costs nothing noticeable. (A
    thread signal mask would not do: Python runs handlers in the main thread whichever
    thread received the signal, and polars keeps worker threads.) Main thread only.
    """
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pending: list[int] = []
    sigs = (signal.SIGINT, signal.SIGTERM)
    old = {sig: signal.getsignal(sig) for sig in sigs}
    for sig in sigs:
        signal.signal(sig, lambda signum, _frame: pending.append(signum))
    try:
        yield
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)
        for sig in pending:
            handler = old[sig]
            if callable(handler):
                handler(sig, None)
            elif handler == signal.SIG_DFL:
                os.kill(os.getpid(), sig)


@contextlib.contextmanager
def batched_writes(storage: Any) -> Iterator[None]:
    """Write a batch of storage operations safely: signals deferred, and a batched journal's
    appends held back and written at the end of the block (one write + fsync)."""
    backend = getattr(storage, "_backend", None)
    with signals_deferred():
        if backend is not None and hasattr(backend, "batch"):
            with backend.batch():
                yield
        else:
            yield


# -- the in-memory study the runner drives ----------------------------------------------------
_MEMORY_CLASS: type | None = None


def make_memory_storage() -> Any:
    """Optuna's in-memory storage, with ``set_trial_param`` made O(1) per parameter.

    Optuna's :class:`~optuna.storages.InMemoryStorage` copies a running trial's parameter
    and distribution dicts on every ``suggest`` (copy-on-write for readers), which makes
    asking a trial O(d^2) in its d parameters: at 64 domains that alone held the search to
    ~200 trials per CPU-second. The runner is the only reader of its in-memory study, so
    this subclass writes the parameter in place (same result, same checks).
    """
    global _MEMORY_CLASS
    if _MEMORY_CLASS is None:
        from optuna import distributions
        from optuna.storages import InMemoryStorage

        class _RunnerMemoryStorage(InMemoryStorage):
            def set_trial_param(self, trial_id: int, param_name: str, param_value_internal: float,
                                distribution: Any) -> None:
                with self._lock:
                    trial = self._get_trial(trial_id)
                    self.check_trial_is_updatable(trial_id, trial.state)
                    study = self._studies[self._trial_id_to_study_id_and_number[trial_id][0]]
                    known = study.param_distribution.get(param_name)
                    if known is None:
                        study.param_distribution[param_name] = distribution
                    elif known is not distribution:
                        distributions.check_distribution_compatibility(known, distribution)
                        study.param_distribution[param_name] = distribution
                    trial.params[param_name] = distribution.to_external_repr(param_value_internal)
                    trial.distributions[param_name] = distribution

        _MEMORY_CLASS = _RunnerMemoryStorage
    return _MEMORY_CLASS()


# -- one runner per study ----------------------------------------------------------------------
def _holder() -> dict[str, Any]:
    return {"pid": os.getpid(), "host": socket.gethostname(), "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


class StudyLock:
    """Exclusive right to run one study (see the module docstring).

    Use as a context manager, or :meth:`acquire` / :meth:`release`. File storages lock the
    whole file (every study in it); database URLs lease the one study (:meth:`attach`
    once the study exists, :meth:`refresh` after every batch).
    """

    def __init__(self, url: str | None, study_name: str) -> None:
        self.url = url
        self.study_name = study_name
        self._fd: int | None = None
        self._lease_study: Any = None
        self._token = uuid.uuid4().hex

    @property
    def path(self) -> Path | None:
        f = storage_file(self.url)
        return None if f is None else f.with_name(f.name + ".mixopt-lock")

    def acquire(self) -> StudyLock:
        path = self.path
        if path is None:
            return self
        import fcntl

        check_writable_file(path, "study lock file")
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            try:
                holder = json.loads(os.pread(fd, 4096, 0).decode() or "{}")
            except (ValueError, OSError):
                holder = {}
            os.close(fd)
            who = f"pid {holder.get('pid', '?')} on {holder.get('host', '?')} since {holder.get('since', '?')}"
            raise SearchError(
                f"The study storage {storage_file(self.url)} is in use by another mixopt run ({who}). "
                "One process drives a study at a time: wait for it to finish (then resume with a larger "
                "trials target), or give another storage or study_name."
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(_holder()).encode(), 0)
        self._fd = fd
        return self

    def attach(self, study: Any) -> None:
        """Database URLs: take (or refuse) the lease on ``study``."""
        if self.path is not None or self.url is None:
            return
        raw = study.user_attrs.get(LEASE_ATTR)
        now = time.time()
        if raw:
            try:
                lease = json.loads(raw)
            except ValueError:
                lease = {}
            if lease.get("token") != self._token and now - float(lease.get("heartbeat", 0)) < LEASE_TTL_S:
                raise SearchError(
                    f"Study {self.study_name!r} in {self.url} is being run by pid {lease.get('pid', '?')} on "
                    f"{lease.get('host', '?')} since {lease.get('since', '?')} (lease refreshed "
                    f"{now - float(lease.get('heartbeat', 0)):.0f} s ago). One process drives a study at a time: "
                    f"wait for it (a lease not refreshed for {LEASE_TTL_S:.0f} s lapses), or give another study_name."
                )
        self._lease_study = study
        self.refresh()

    def refresh(self) -> None:
        if self._lease_study is not None:
            self._lease_study.set_user_attr(LEASE_ATTR, json.dumps(_holder() | {"token": self._token, "heartbeat": time.time()}))

    def release(self) -> None:
        if self._lease_study is not None:
            with contextlib.suppress(Exception):
                self._lease_study.set_user_attr(LEASE_ATTR, "")
            self._lease_study = None
        if self._fd is not None:
            import fcntl

            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, 0)
                fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> StudyLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


__all__ = [
    "JOURNAL_SUFFIXES",
    "add_told_trials",
    "LEASE_ATTR",
    "LEASE_TTL_S",
    "StudyLock",
    "batched_writes",
    "signals_deferred",
    "check_writable_file",
    "make_batched_backend",
    "make_memory_storage",
    "open_storage",
    "storage_file",
    "storage_url",
]
