"""The search runner: Optuna ask/tell in batches. The only module that touches ``optuna.Trial``.

One iteration: ask a batch of trials (every trial is asked with the same fixed unit-cube
distributions, one per coordinate of the :class:`~mixopt.search.space.SearchSpace`), stack
their parameters into an ``(n, dim)`` array, hand it to the executor (one vectorised
``surrogate.predict`` per batch), then set each trial's constraint values (Optuna 5's
``Trial.set_constraint``; ``<= 0`` feasible, read by the NSGA-II/TPE/GP samplers) and tell
its objective values. The executor may hold several batches in flight (``slots``, e.g. one
per Ray worker): the runner asks the next batch while earlier ones are evaluated and tells
results in submission order, so a seed gives the same search for the same number of slots
on any executor. A batch whose evaluation raised (or whose Ray worker died),
and any row with a non-finite prediction, is told FAIL (the error is kept in the trial's
user attribute ``mixopt:error``) and the search goes on; ``max_failed_batches``
consecutive batches with no completed trial stop it with a :class:`SearchError`.

Storage
-------
The study runs **in memory** and each finished batch is written to the persistent storage
(``Study.add_trials``) before the next batch is asked. The default storage is an Optuna
journal file written in batches (:mod:`mixopt.search.storage`: one write + fsync per
batch), which keeps persisted trials close to in-memory speed; SQLite files and
SQLAlchemy URLs (PostgreSQL) stay available. The persistent study is an ordinary Optuna
study (open it with ``optuna.load_study``); trials there are always finished. Resuming
(same storage and study name) copies its trials into memory and continues: **every trial
whose batch was written is kept**; an interrupted batch (Ctrl-C, SIGTERM) is written
before the error propagates, so only trials still being evaluated when the process is
killed are lost (they were never told).

**One runner per study.** :class:`~mixopt.search.storage.StudyLock` refuses a second
process on the same study before anything runs, so the trial target is global and every
count is true. The study records the problem it was created for (space, objectives,
constraints), a key of the surrogate's data and settings (when known) and a fingerprint
of the surrogate (objective values at 8 fixed points, 6 significant digits); resuming with
a different problem, other data or a surrogate that predicts differently is refused. The
problem and the key are checked by :func:`open_session` **before** any surrogate is
fitted. The hypervolume reference point is fixed on the study's first run and each run
appends its hypervolume to the study (:data:`HV_HISTORY_ATTR`).

Determinism: the sampler is seeded from ``(seed, number of trials already in the
study)``, so a given history and seed always continue the same way.
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import math
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import polars as pl
from optuna.distributions import FloatDistribution
from optuna.trial import FrozenTrial, TrialState

from mixopt.errors import SearchError
from mixopt.search.assemble import build_result
from mixopt.search.decision import DEFAULT_DRAWS, DEFAULT_EPSILON, check_settings
from mixopt.search.executors import Executor, LocalExecutor
from mixopt.search.objectives import Evaluation, Problem
from mixopt.search.results import SearchResult, best_row
from mixopt.search.samplers import derive_seed, make_sampler
from mixopt.search.shortlist import DEFAULT_SHORTLIST
from mixopt.search.storage import (
    StudyLock,
    add_told_trials,
    batched_writes,
    make_memory_storage,
    open_storage,
    storage_file,
    storage_url,
)

logger = logging.getLogger(__name__)

#: Study user attribute holding the problem description (refuses resuming another problem).
PROBLEM_ATTR = "mixopt:problem"
#: Study user attribute holding objective values at fixed points (refuses resuming with another surrogate).
PROBE_ATTR = "mixopt:probe"
#: Trial user attribute holding the error of a failed evaluation.
ERROR_ATTR = "mixopt:error"
#: Study user attribute holding the key (hash of data + settings) of the surrogate the study was run with.
SURROGATE_KEY_ATTR = "mixopt:surrogate_key"
#: Study user attribute holding the hypervolume reference point fixed on the first run (JSON).
REFERENCE_ATTR = "mixopt:reference_point"
#: Study user attribute holding the hypervolume after each run that added trials (JSON list).
HV_HISTORY_ATTR = "mixopt:hv_history"


# -- studies --------------------------------------------------------------------------------
@contextlib.contextmanager
def _optuna_quiet() -> Iterator[None]:
    """Optuna logs at WARNING while the runner works (restored afterwards)."""
    old = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(max(old, optuna.logging.WARNING))
    try:
        yield
    finally:
        optuna.logging.set_verbosity(old)


def _canonical(d: Mapping[str, Any]) -> str:
    return json.dumps(d, sort_keys=True, default=str)


def _probe(problem: Problem) -> list[float | None] | None:
    """Objective values at 8 fixed points (6 significant digits): a fingerprint of the surrogate."""
    u = np.random.default_rng(20241008).random((8, problem.space.dim))
    try:
        vals = problem(u).values.ravel()
    except Exception:  # noqa: BLE001 - a failing surrogate is reported by the search itself
        return None
    return [float(f"{v:.6g}") if np.isfinite(v) else None for v in vals]


@dataclass
class StudySession:
    """A persistent study opened for one run, under its :class:`StudyLock`.

    Attributes:
        url: normalised storage URL.
        study_name: the study's name.
        storage: the Optuna storage.
        lock: held until :meth:`close`.
        study: the stored study (None until created by the first run).
        earlier: its finished trials when opened.
    """

    url: str
    study_name: str
    storage: Any
    lock: StudyLock
    study: optuna.Study | None = None
    earlier: list[FrozenTrial] = field(default_factory=list)

    @property
    def n_finished(self) -> int:
        return len(self.earlier)

    def attr(self, key: str) -> Any:
        return None if self.study is None else self.study.user_attrs.get(key)

    def set_attr(self, key: str, value: Any) -> None:
        if self.study is not None:
            with batched_writes(self.storage):
                self.study.set_user_attr(key, value)

    def close(self) -> None:
        self.lock.release()

    def __enter__(self) -> StudySession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_session(url: str, study_name: str, *, description: Mapping[str, Any] | None = None,
                 surrogate_key: str | None = None) -> StudySession:
    """Lock and open a stored study, refusing a mismatch before any work.

    Args:
        url: a normalised storage URL (:func:`~mixopt.search.storage.storage_url`).
        study_name: the study.
        description: the problem's :meth:`Problem.describe` (or the same dict computed
            before the surrogate exists); a stored study for another problem is refused.
        surrogate_key: hash of the surrogate's data and settings; a stored study fitted on
            other data or settings is refused.

    Raises:
        SearchError: another process holds the study, the storage cannot be opened, or
            the stored study is for another problem or surrogate.
    """
    if not study_name:
        raise SearchError("study_name must be a non-empty string.")
    lock = StudyLock(url, study_name).acquire()
    try:
        with _optuna_quiet():
            storage = open_storage(url)
            try:
                existing = optuna.study.get_all_study_names(storage)
            except Exception as e:  # noqa: BLE001
                raise SearchError(f"Cannot read studies from {url!r}: {type(e).__name__}: {e}.") from None
            session = StudySession(url=url, study_name=study_name, storage=storage, lock=lock)
            if study_name not in existing:
                return session
            study = optuna.load_study(study_name=study_name, storage=storage)
            lock.attach(study)
            session.study = study
            _check_description(session, description)
            stored_key = study.user_attrs.get(SURROGATE_KEY_ATTR)
            if surrogate_key and stored_key and stored_key != surrogate_key:
                raise SearchError(
                    f"Study {study_name!r} in {url} was run with a surrogate fitted on other data or settings "
                    f"(key {stored_key[:12]}, now {surrogate_key[:12]}): its trials would not be comparable. "
                    "Restore the data and [surrogate] settings, or give a new study_name (or storage)."
                )
            session.earlier = [t for t in study.get_trials(deepcopy=False) if t.state.is_finished()]
            logger.info("Resuming study %r from %s: %d finished trials.", study_name, url, len(session.earlier))
            return session
    except BaseException:
        lock.release()
        raise


def _check_description(session: StudySession, description: Mapping[str, Any] | None) -> None:
    if description is None or session.study is None:
        return
    stored = session.attr(PROBLEM_ATTR)
    desc = _canonical(description)
    if stored is not None and stored != desc:
        old, new = json.loads(stored), json.loads(desc)
        diff = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
        raise SearchError(
            f"Study {session.study_name!r} in {session.url} was created for a different search problem "
            f"(differs in: {', '.join(diff)}). Resume it with the same settings, or give a new study_name (or storage)."
        )
    dirs = [d for _, d in description.get("objectives", [])]
    if dirs and [d.name.lower() for d in session.study.directions] != dirs:
        raise SearchError(
            f"Study {session.study_name!r} in {session.url} has directions "
            f"{[d.name.lower() for d in session.study.directions]}, the search has {dirs}; give a new study_name."
        )


def _prepare_session(session: StudySession, problem: Problem, surrogate_key: str | None) -> None:
    """Check the surrogate fingerprint of a stored study, or create the study."""
    probe = _probe(problem)
    if session.study is not None:
        _check_description(session, problem.describe())
        stored_probe = session.attr(PROBE_ATTR)
        if stored_probe is not None and probe is not None and stored_probe != probe:
            raise SearchError(
                f"Study {session.study_name!r} in {session.url} was run with a surrogate that predicts differently from "
                "this one (refitted on other data or settings?): its trials would not be comparable. "
                "Use the same model (e.g. [surrogate] model = a saved model), or give a new study_name."
            )
        return
    with batched_writes(session.storage):
        try:
            study = optuna.create_study(storage=session.storage, study_name=session.study_name,
                                        directions=list(problem.directions))
        except optuna.exceptions.DuplicatedStudyError:
            raise SearchError(
                f"Study {session.study_name!r} in {session.url} was created by another process while this one "
                "was starting. One process drives a study at a time: wait for it, or give another study_name."
            ) from None
        study.set_user_attr(PROBLEM_ATTR, _canonical(problem.describe()))
        if probe is not None:
            study.set_user_attr(PROBE_ATTR, probe)
        if surrogate_key:
            study.set_user_attr(SURROGATE_KEY_ATTR, surrogate_key)
    session.study = study
    session.lock.attach(study)


def study_history(storage: str | Path, study_name: str) -> dict[str, Any]:
    """Read a stored study's fixed hypervolume reference point and its hypervolume history.

    Needs no lock and runs nothing. Returns ``{"reference_point": {objective: value} | None,
    "hypervolume_history": [{"run", "n_trials", "n_new", "hypervolume", "finished_at"}, ...],
    "n_trials": finished trials}``.
    """
    url = storage_url(storage)
    if url is None:
        raise SearchError("An in-memory study has no stored history; give the study's storage file or URL.")
    f = storage_file(url)
    if f is not None and not f.exists():
        raise SearchError(f"No study storage at {f}.")
    with _optuna_quiet():
        st = open_storage(url, for_writing=False)
        try:
            study = optuna.load_study(study_name=study_name, storage=st)
        except KeyError:
            raise SearchError(f"No study named {study_name!r} in {url}.") from None
    attrs = study.user_attrs
    return {
        "reference_point": json.loads(attrs[REFERENCE_ATTR]) if attrs.get(REFERENCE_ATTR) else None,
        "hypervolume_history": json.loads(attrs.get(HV_HISTORY_ATTR) or "[]"),
        "n_trials": sum(1 for t in study.get_trials(deepcopy=False) if t.state.is_finished()),
    }


# -- the loop ---------------------------------------------------------------------------------
def _progress(total: int, initial: int, enabled: bool) -> Any:
    """A tqdm bar on a terminal; plain lines when stderr is a file or a pipe (:func:`mixopt._terminal.progress`)."""
    from mixopt._terminal import progress

    return progress(total, initial=initial, enabled=enabled, unit="trial", desc="mixopt search",
                    dynamic_ncols=True, leave=True)


def _check_run_settings(problem: Problem, trials: int, batch_size: int, population_size: int | None,
                        max_failed_batches: int, study_name: str, n_draws: int, epsilon: float,
                        weights: Mapping[str, float] | None) -> int:
    """Reject bad :func:`run_study` settings before anything is opened; returns the population size."""
    if not isinstance(trials, int) or trials < 1:
        raise SearchError(f"trials must be an integer >= 1, got {trials!r}.")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise SearchError(f"batch_size must be an integer >= 1, got {batch_size!r}.")
    pop = int(population_size or batch_size)
    if pop < 2:
        raise SearchError(f"population_size must be >= 2, got {pop}.")
    if max_failed_batches < 1:
        raise SearchError(f"max_failed_batches must be >= 1, got {max_failed_batches}.")
    if not study_name:
        raise SearchError("study_name must be a non-empty string.")
    check_settings(n_draws, epsilon)
    if weights is not None:
        best_row(pl.DataFrame(), tuple(zip(problem.objective_names, problem.directions, strict=True)), weights)
    return pop


def run_study(
    problem: Problem,
    *,
    trials: int,
    batch_size: int = 128,
    sampler: str = "nsga2",
    sampler_options: Mapping[str, Any] | None = None,
    population_size: int | None = None,
    seed: int = 0,
    storage: str | Path | None = None,
    study_name: str = "mixopt",
    executor: Executor | Callable[[int], Executor] | None = None,
    progress: bool = True,
    warm_start: Sequence[Mapping[str, float]] = (),
    max_failed_batches: int = 5,
    reference_point: Mapping[str, float] | None = None,
    weights: Mapping[str, float] | None = None,
    session: StudySession | None = None,
    surrogate_key: str | None = None,
    shortlist_size: int = DEFAULT_SHORTLIST,
    n_draws: int = DEFAULT_DRAWS,
    epsilon: float = DEFAULT_EPSILON,
) -> SearchResult:
    """Run (or resume) a batched ask/tell search.

    Args:
        problem: what to evaluate (space, objectives, constraints, surrogate).
        trials: total finished trials the study should have (earlier runs count: a resumed
            study runs only the rest).
        batch_size: trials asked, evaluated and told together (children per NSGA-II
            generation).
        sampler: sampler name (:data:`~mixopt.search.samplers.SAMPLERS`).
        sampler_options: extra keyword arguments for the sampler.
        population_size: NSGA-II/III parents per generation (default ``batch_size``).
        seed: search seed.
        storage: None/"memory" (in memory), a journal file (``.log``), an SQLite file path,
            or an SQLAlchemy URL (see :mod:`mixopt.search.storage`). Ignored with ``session``.
        study_name: study name in the storage.
        executor: where batches are evaluated (default :class:`LocalExecutor`), or a
            factory called with the number of trials left to run, only when there are any
            (so nothing is started for a finished study). A created executor is closed here.
        progress: show a tqdm progress bar (stderr).
        warm_start: mixtures to evaluate first on a new study, as ``{domain: ratio}`` dicts
            (optional ``"flops"`` key; default the middle of the compute range).
        max_failed_batches: stop after this many consecutive batches without a completed trial.
        reference_point: hypervolume reference ``{objective: value}`` (default: fixed on the
            study's first run, see :mod:`mixopt.search.results`).
        weights: scalarisation weights for ``SearchResult.best`` and the shortlist.
        session: an already opened (locked, checked) study from :func:`open_session`; the
            caller closes it.
        surrogate_key: hash of the surrogate's data and settings, recorded in a new study.
        shortlist_size: rows on the shortlist.
        n_draws: joint draws behind P(best), P(feasible) and the robust region
            (:mod:`mixopt.search.decision`; seeded by ``seed``).
        epsilon: tolerance of "within epsilon of the best", in the objectives' units.

    Returns:
        The :class:`SearchResult` over every finished trial of the study.

    Raises:
        SearchError: bad settings, a stored study for another problem, another process on
            the study, or evaluation failing for ``max_failed_batches`` batches in a row.
    """
    pop = _check_run_settings(problem, trials, batch_size, population_size, max_failed_batches, study_name,
                              n_draws, epsilon, weights)
    own_session = session is None
    url = storage_url(storage) if session is None else session.url
    if session is None and url is not None:
        session = open_session(url, study_name, description=problem.describe(), surrogate_key=surrogate_key)
    try:
        with _optuna_quiet():
            if session is not None:
                _prepare_session(session, problem, surrogate_key)
            return _run(problem, session, trials=trials, batch_size=batch_size, sampler=sampler,
                        sampler_options=sampler_options, pop=pop, seed=seed, study_name=study_name,
                        executor=executor, progress=progress, warm_start=warm_start,
                        max_failed_batches=max_failed_batches, reference_point=reference_point,
                        weights=weights, shortlist_size=shortlist_size, n_draws=n_draws, epsilon=epsilon)
    finally:
        if own_session and session is not None:
            session.close()


def _run(problem: Problem, session: StudySession | None, *, trials: int, batch_size: int, sampler: str,
         sampler_options: Mapping[str, Any] | None, pop: int, seed: int, study_name: str,
         executor: Executor | Callable[[int], Executor] | None, progress: bool,
         warm_start: Sequence[Mapping[str, float]], max_failed_batches: int,
         reference_point: Mapping[str, float] | None, weights: Mapping[str, float] | None,
         shortlist_size: int, n_draws: int, epsilon: float) -> SearchResult:
    t_start = time.perf_counter()
    space = problem.space
    names = list(space.names)
    dists = {n: FloatDistribution(0.0, 1.0) for n in names}
    persistent = session.study if session is not None else None
    earlier = session.earlier if session is not None else []
    n_before = len(earlier)
    remaining = max(trials - n_before, 0)
    if remaining == 0 and n_before and [t.number for t in earlier] == list(range(n_before)):
        # a finished study: nothing to ask, so no sampler and no in-memory copy of its trials
        # (the copy would hold the same trials under the same numbers)
        logger.info("Study %r already has %d finished trials (asked for %d); nothing to run.", study_name, n_before, trials)
        return _result(problem, _Finished(earlier), session, n_before=n_before, study_name=study_name, sampler=sampler,
                       seed=seed, ex=None, t_start=t_start, reference_point=reference_point, weights=weights,
                       shortlist_size=shortlist_size, n_draws=n_draws, epsilon=epsilon)
    samp = make_sampler(
        sampler, seed=derive_seed(seed, n_before), n_objectives=len(problem.objectives),
        search_space=dists, population_size=pop, n_trials=trials, options=sampler_options,
    )
    study = optuna.create_study(directions=list(problem.directions), sampler=samp, study_name=study_name,
                                storage=make_memory_storage())
    if earlier:
        study.add_trials(earlier)
    if not earlier and warm_start:
        for u in _warm_points(problem, warm_start):
            study.enqueue_trial({n: float(v) for n, v in zip(names, u, strict=True)})
    own_executor = not isinstance(executor, Executor)
    ex: Executor | None = executor if isinstance(executor, Executor) else None
    if remaining == 0:
        logger.info("Study %r already has %d finished trials (asked for %d); nothing to run.", study_name, n_before, trials)
    elif ex is None:
        ex = executor(remaining) if callable(executor) else LocalExecutor()
    try:
        if ex is not None:
            _loop(problem, study, persistent, session, ex, dists=dists, trials=trials, batch_size=batch_size,
                  n_before=n_before, progress=progress, max_failed_batches=max_failed_batches)
    finally:
        if own_executor and ex is not None:
            ex.close()
    return _result(problem, study, session, n_before=n_before, study_name=study_name, sampler=sampler, seed=seed, ex=ex,
                   t_start=t_start, reference_point=reference_point, weights=weights, shortlist_size=shortlist_size,
                   n_draws=n_draws, epsilon=epsilon)


class _Finished:
    """A finished study's trials, read as :func:`build_result` reads a study (``get_trials``)."""

    def __init__(self, trials: list[FrozenTrial]) -> None:
        self._trials = trials

    def get_trials(self, deepcopy: bool = True) -> list[FrozenTrial]:
        return copy.deepcopy(self._trials) if deepcopy else list(self._trials)


def _result(problem: Problem, study: Any, session: StudySession | None, *, n_before: int, study_name: str, sampler: str,
            seed: int, ex: Executor | None, t_start: float, reference_point: Mapping[str, float] | None,
            weights: Mapping[str, float] | None, shortlist_size: int, n_draws: int, epsilon: float) -> SearchResult:
    """The :class:`SearchResult` over ``study``'s finished trials, with this run's history entry."""
    elapsed = time.perf_counter() - t_start
    n_new = sum(1 for t in study.get_trials(deepcopy=False) if t.state.is_finished()) - n_before
    ref, source = _reference(session, reference_point)
    res = build_result(
        problem, study, study_name=study_name, storage=session.url if session else None, sampler=sampler, seed=seed,
        n_new=n_new, elapsed_s=elapsed, executor=ex.describe() if ex is not None else "nothing to run",
        reference_point=ref, weights=weights, shortlist_size=shortlist_size, n_draws=n_draws, epsilon=epsilon,
    )
    return _record_history(session, res, source)


def _reference(session: StudySession | None, given: Mapping[str, float] | None) -> tuple[Mapping[str, float] | None, str]:
    if given:
        return given, "config"
    if session is not None and session.attr(REFERENCE_ATTR):
        return json.loads(session.attr(REFERENCE_ATTR)), "study"
    return None, "front" if session is None else "study"


def _record_history(session: StudySession | None, res: SearchResult, source: str) -> SearchResult:
    """Fix the study's reference point on its first run and append this run's hypervolume."""
    history: list[dict[str, Any]] = []
    if session is not None and session.study is not None:
        history = json.loads(session.attr(HV_HISTORY_ATTR) or "[]")
        if source == "study" and not session.attr(REFERENCE_ATTR) and res.pareto.height:
            session.set_attr(REFERENCE_ATTR, json.dumps(dict(res.reference_point)))
        if res.n_new > 0:
            history.append({"run": len(history) + 1, "n_trials": res.n_trials, "n_new": res.n_new,
                            "hypervolume": res.hypervolume,
                            "finished_at": datetime.now(UTC).isoformat(timespec="seconds")})
            session.set_attr(HV_HISTORY_ATTR, json.dumps(history))
    elif res.n_new > 0:
        history = [{"run": 1, "n_trials": res.n_trials, "n_new": res.n_new, "hypervolume": res.hypervolume,
                    "finished_at": datetime.now(UTC).isoformat(timespec="seconds")}]
    return replace(res, hypervolume_history=tuple(history), reference_source=source)


def _loop(problem: Problem, study: optuna.Study, persistent: optuna.Study | None, session: StudySession | None,
          executor: Executor, *, dists: Mapping[str, FloatDistribution], trials: int, batch_size: int,
          n_before: int, progress: bool, max_failed_batches: int) -> None:
    names = list(dists)
    bar = _progress(trials, min(n_before, trials), progress)
    asked_n = n_before
    inflight: deque[tuple[list[optuna.Trial], Any]] = deque()
    unsaved: list[int] = []  # trial numbers told but not yet written
    failed_in_a_row = 0
    last_error = ""
    try:
        while asked_n < trials or inflight:
            # keep `slots` batches in flight: ask the next while earlier ones are evaluated
            while asked_n < trials and len(inflight) < executor.slots:
                b = min(batch_size, trials - asked_n)
                asked = [study.ask(dists) for _ in range(b)]
                u = _params_matrix(asked, names)
                inflight.append((asked, executor.submit(problem, u)))
                asked_n += b
            asked, handle = inflight.popleft()
            out = executor.result(handle)
            n_ok, msg = _tell_batch(study, asked, out, problem.constraint_names)
            unsaved += [t.number for t in asked]
            if persistent is not None and session is not None:
                _save(study, persistent, session, unsaved)
                unsaved = []
            bar.update(len(asked))
            if n_ok == 0:
                failed_in_a_row += 1
                last_error = msg or last_error
                if failed_in_a_row >= max_failed_batches:
                    raise SearchError(
                        f"{failed_in_a_row} batches in a row failed completely (last error: {last_error}). "
                        "The failed trials are recorded; fix the surrogate or the space and resume."
                    )
            else:
                failed_in_a_row = 0
    finally:
        bar.close()
        for _, handle in inflight:  # interrupted: nothing more to wait for
            executor.cancel(handle)
        if persistent is not None and session is not None and unsaved:
            _save(study, persistent, session, unsaved)


def _params_matrix(asked: Sequence[optuna.Trial], names: Sequence[str]) -> np.ndarray:
    """``(n, dim)`` parameters of asked trials (``Trial.params`` deep-copies: read it once per trial)."""
    out = np.empty((len(asked), len(names)), dtype=np.float64)
    for i, t in enumerate(asked):
        p = t.params
        out[i] = [p[n] for n in names]
    return out


def _warm_points(problem: Problem, warm: Sequence[Mapping[str, float]]) -> np.ndarray:
    space = problem.space
    rows, flops = [], []
    lo, hi = space.compute.flops_range()
    for i, w in enumerate(warm):
        w = dict(w)
        f = float(w.pop("flops", math.sqrt(lo * hi)))
        unknown = sorted(set(w) - set(space.domains))
        if unknown:
            raise SearchError(f"warm_start[{i}] names unknown domain(s) {unknown}; the domains are {list(space.domains)}.")
        rows.append([float(w.get(d, 0.0)) for d in space.domains])
        flops.append(f)
    return space.encode(np.array(rows), np.array(flops))


def _tell(study: optuna.Study, trial: optuna.Trial, values: list[float] | None = None,
          state: TrialState | None = None) -> None:
    """``Study.tell`` without its return value: Optuna deep-copies the told trial to return
    it (O(d) objects per trial, a third of the runner's time at 64 domains) and the runner
    never reads it. Falls back to the public ``tell`` if Optuna's internals move."""
    if _TELL is None:
        study.tell(trial, values, state=state)
    else:
        _TELL(study=study, trial=trial, value_or_values=values, state=state)


try:  # the body of Study.tell (Optuna 4-5); the public method adds only the deep copy
    from optuna.study._tell import _tell_with_warning as _TELL
except ImportError:  # pragma: no cover - a future Optuna
    _TELL = None


def _tell_batch(
    study: optuna.Study,
    asked: list[optuna.Trial],
    out: Evaluation | BaseException,
    constraint_names: Sequence[str],
) -> tuple[int, str]:
    """Tell every trial of a batch; returns (number completed, an error message if any)."""
    first, last = asked[0].number, asked[-1].number
    if not isinstance(out, BaseException) and out.values.shape[0] != len(asked):
        out = SearchError(f"evaluation returned {out.values.shape[0]} rows for {len(asked)} trials")
    if isinstance(out, BaseException):
        msg = f"{type(out).__name__}: {out}"[:500]
        logger.warning("Evaluation of trials %d-%d failed (%s); they are marked FAIL and the search goes on.", first, last, msg)
        for t in asked:
            t.set_user_attr(ERROR_ATTR, msg)
            _tell(study, t, state=TrialState.FAIL)
        return 0, msg
    vals, cons, ok = out.values, out.constraints, out.ok
    n_ok = 0
    for i, t in enumerate(asked):
        if not ok[i]:
            t.set_user_attr(ERROR_ATTR, "the surrogate returned a non-finite value")
            _tell(study, t, state=TrialState.FAIL)
            continue
        for j, cname in enumerate(constraint_names):
            t.set_constraint(cname, float(cons[i, j]))
        _tell(study, t, vals[i].tolist())
        n_ok += 1
    msg = ""
    if n_ok < len(asked):
        msg = "the surrogate returned non-finite values"
        logger.warning("%d trial(s) of batch %d-%d got non-finite predictions and are marked FAIL.", len(asked) - n_ok, first, last)
    return n_ok, msg


def _save(study: optuna.Study, persistent: optuna.Study, session: StudySession, numbers: list[int]) -> None:
    """Write told trials to the persistent study (one batched write for a journal file)."""
    all_trials = study.get_trials(deepcopy=False)
    with batched_writes(session.storage):
        add_told_trials(persistent, [all_trials[n] for n in numbers])
    session.lock.refresh()


__all__ = [
    "ERROR_ATTR",
    "HV_HISTORY_ATTR",
    "PROBE_ATTR",
    "PROBLEM_ATTR",
    "REFERENCE_ATTR",
    "SURROGATE_KEY_ATTR",
    "StudySession",
    "build_result",
    "open_session",
    "open_storage",
    "run_study",
    "storage_url",
    "study_history",
]
