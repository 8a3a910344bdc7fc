"""The optimize workflow: from a :class:`~mixopt.config.SearchConfig` to a written :class:`SearchResult`.

``mixopt optimize CONFIG`` (and an API search job) is ``load_config`` + :func:`run_search` +
:func:`write_result`; :func:`optimize` does the three and hands back the surrogate it used, so a
report of the run needs no second load or fit.
Every check that can fail is done before the expensive steps, in this order:

1. the config is validated when loaded;
2. :func:`check_outputs`: the output file can be written (its folder is created), it is
   not one of the inputs (run table, ratios, config, model, study storage), and the
   study storage can be written;
3. the study is locked (one runner per study, :mod:`mixopt.search.storage`) and, when it
   exists, checked against the config's problem and the surrogate's data key;
4. the run table's domains and benchmarks, the bounds and the data budget are checked
   before the surrogate is fitted;
5. the surrogate's domains and outputs are checked before the first trial.

**Model cache.** With a file storage, the fitted surrogate is saved beside the study
(``<storage file>.models/<key>/``, a normal model directory with its integrity manifest)
under a key = SHA-256 of the run files' bytes, the [data] settings, the method and its
settings, and the model format version. A resume with the same data and settings loads it
instead of refitting; other data gives another key (and a study fitted on other data is
refused before any fit).

**Result cache.** A finished study in a journal file also stores its result beside it
(``<storage file>.results/<study>/``, :mod:`mixopt.search.stored`) under a key = SHA-256 of
the journal file's bytes, the whole config, the surrogate's key, mixopt's code (each source
file's size and modification time) and the NumPy and polars versions. A resume that would
run no trial (same study bytes, same config) reads it back instead of replaying the journal
and re-assembling the decision (the joint draws behind P(best)); the surrogate still comes
from the model cache. Any change (a new trial, another setting, edited code) misses the key
and the result is computed as before and stored again. Only for a fitted (not given)
surrogate and the configured executor.

**Executor.** Nothing is started when the study already has its trials. ``executor =
"ray"`` without an address (and no Ray already running in this process) runs in-process
when fewer than :data:`RAY_MIN_TRIALS` trials remain (the result's ``executor`` says so):
starting Ray costs several seconds, more than such a search takes here. The choice is by
count, never by a clock, so the same config and study always get the same executor.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import math
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mixopt._ray import is_running as ray_is_running
from mixopt.backtest import _takes_target
from mixopt.config import SearchConfig, config_to_dict
from mixopt.data.readers import read_runs
from mixopt.errors import MixoptError, ModelFileError, SearchError
from mixopt.search.executors import Executor, LocalExecutor, make_executor
from mixopt.search.objectives import OutputInfo, Problem, parse_constraint, parse_objective
from mixopt.search.results import SearchResult
from mixopt.search.space import ComputeSpace, DataBudget, MixtureSpace, SearchSpace
from mixopt.search.storage import StudyLock, check_writable_file, storage_file, storage_url
from mixopt.search.stored import load_result, save_result, stored_key
from mixopt.surrogate.base import MODEL_FORMAT_VERSION, Surrogate, Targets, load_surrogate, make_surrogate, save_surrogate

if TYPE_CHECKING:  # pragma: no cover
    from mixopt.search.runner import StudySession

logger = logging.getLogger(__name__)

#: A local Ray is started only when at least this many trials remain. In-process the built-in
#: surrogates evaluate about 1,000 (64 domains) to 4,000 (the example, 5 domains) trials per
#: CPU-second (docs/figures.md, "Search"), so a smaller search takes seconds, less than
#: starting Ray does.
RAY_MIN_TRIALS = 20_000
#: Study user attribute holding the config's problem sections (checked before fitting).
PROBLEM_CONFIG_ATTR = "mixopt:problem_config"


def build_space(config: SearchConfig, domains: Sequence[str], *, source: str = "the surrogate") -> SearchSpace:
    """The search space of a config over ``domains`` (the surrogate's mixture domains).

    Raises:
        SearchError: the config names a domain not in ``domains``; infeasible bounds; a
            token budget no mixture can meet.
    """
    domains = tuple(domains)
    named = set(config.domains) | set(config.tokens.available)
    unknown = sorted(named - set(domains))
    if unknown:
        if domains:
            raise SearchError(
                f"The config names domain(s) {unknown} that {source} lacks (it has {list(domains)}). Fix the names under [domains]/[tokens], or refit on runs that include those domains."
            )
        raise SearchError(
            f'The config names domain(s) {unknown}, but {source} does not depend on the mixture (no domains). Use a mixture-aware surrogate (method = "flpm") or remove [domains]/[tokens].'
        )
    floors = {d: c.floor for d, c in config.domains.items() if c.pin is None}
    caps = {d: c.cap for d, c in config.domains.items() if c.pin is None}
    pins = {d: c.pin for d, c in config.domains.items() if c.pin is not None}
    mixture = MixtureSpace(domains, floors=floors, caps=caps, pins=pins)  # type: ignore[arg-type]
    if config.phases is not None:
        mixture = _schedule_space(config, domains, floors, caps, pins)  # type: ignore[assignment]
    c = config.compute
    if c.flops is not None:
        compute = ComputeSpace(flops=c.flops, tokens_per_param=c.tokens_per_param)
    else:
        compute = ComputeSpace(params=c.params, tokens=c.tokens)
    t = config.tokens
    data = DataBudget(available=t.available, max_epochs=t.max_epochs, epochs=t.epochs) if t.available else None
    return SearchSpace(mixture, compute, data)


def _schedule_space(config: SearchConfig, domains: tuple[str, ...], floors: dict, caps: dict, pins: dict) -> Any:
    """The :class:`~mixopt.search.schedule.ScheduleSpace` of ``[phases]``: per phase, ``[phases.floor]``/``[phases.cap]``
    over the ``[domains]`` bounds; a pinned domain keeps its pin in every phase."""
    from mixopt.search.schedule import ScheduleSpace

    ph = config.phases
    assert ph is not None
    named = set(ph.floor) | set(ph.cap)
    unknown = sorted(named - set(domains))
    if unknown:
        raise SearchError(f"[phases] floor/cap name domain(s) {unknown} that the surrogate lacks (it has {list(domains)}); fix the names.")
    pinned = sorted(named & set(pins))
    if pinned:
        raise SearchError(f"[phases] gives per-phase bounds for pinned domain(s) {pinned}: a pin holds in every phase; drop the pin under [domains] or the bounds under [phases].")
    spaces = []
    for k in range(ph.count):
        f = {**floors, **{d: v[k] for d, v in ph.floor.items()}}
        c = {**caps, **{d: v[k] for d, v in ph.cap.items()}}
        try:
            spaces.append(MixtureSpace(domains, floors=f, caps=c, pins=pins))
        except SearchError as e:
            raise SearchError(f"[phases] phase {k + 1}: {e}") from None
    return ScheduleSpace(spaces, list(ph.ends))


def _precheck_outputs(config: SearchConfig, info: OutputInfo) -> None:
    for o in config.objectives.optimize:
        parse_objective(o).bind(info)
    for c in config.objectives.constraints:
        parse_constraint(c).bind(info)


def _read_config_runs(config: SearchConfig) -> Any:
    """The config's run table; with ``[domains.changes] runs``, the old runs mapped into the new
    domain space and added to it (:func:`mixopt.data.changes.map_runs`, ``evidence`` column)."""
    d = config.data
    runs = read_runs(d.runs, **d.read_options())  # type: ignore[arg-type]
    ch = config.changes
    if ch is not None and ch.runs is not None:
        from mixopt.data.changes import combine_runs, map_runs

        old = read_runs(ch.runs, **d.read_options())
        runs = combine_runs(map_runs(old, ch, new_runs=runs).runs, runs)
    return runs


def surrogate_key(config: SearchConfig) -> str | None:
    """SHA-256 of what the fitted surrogate depends on (None when a saved model is used).

    Covers the bytes of the run table and ratios files, every [data] setting, the method,
    its settings and the model format version.
    """
    if config.surrogate.model is not None or config.data.runs is None:
        return None
    h = hashlib.sha256()
    old = (config.changes.runs,) if config.changes is not None and config.changes.runs is not None else ()
    for f in (config.data.runs, config.data.ratios, *old):
        if f is not None:
            with open(f, "rb") as fh:
                for chunk in iter(lambda: fh.read(1 << 20), b""):
                    h.update(chunk)
        h.update(b"\0")
    plain = config_to_dict(config)
    data = {k: v for k, v in plain["data"].items() if k not in ("runs", "ratios")}
    desc = {"data": data, "method": config.surrogate.method, "settings": plain["surrogate"]["settings"], "model_format": MODEL_FORMAT_VERSION, "target_flops": config_target_flops(config)}
    if config.changes is not None:
        desc["changes"] = plain["changes"]
    h.update(json.dumps(desc, sort_keys=True, default=str).encode())
    return h.hexdigest()


def model_cache_dir(config: SearchConfig) -> Path | None:
    """Where fitted surrogates are cached beside the study (None: in-memory or server storage)."""
    f = storage_file(storage_url(config.search.storage))
    return None if f is None else f.with_name(f.name + ".models")


def result_cache_dir(config: SearchConfig) -> Path | None:
    """Where the result of the config's finished study is stored (None: the study is not in a journal file)."""
    url = storage_url(config.search.storage)
    f = storage_file(url) if url is not None and url.startswith("journal:") else None
    if f is None:
        return None
    return f.with_name(f.name + ".results") / hashlib.sha256(config.search.study_name.encode()).hexdigest()[:16]


@functools.cache
def _code_fingerprint() -> str:
    """SHA-256 of the path, size and modification time of each of mixopt's source files (once per process)."""
    root = Path(__file__).resolve().parents[1]
    h = hashlib.sha256()
    for folder, dirs, files in os.walk(root):
        dirs.sort()
        for name in sorted(files):
            if name.endswith(".py"):
                st = os.stat(os.path.join(folder, name))
                h.update(f"{os.path.relpath(os.path.join(folder, name), root)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def result_key(config: SearchConfig, surrogate_key: str, journal: Path) -> str:
    """SHA-256 of what a finished study's result depends on (see "Result cache" above)."""
    import polars as pl

    h = hashlib.sha256()
    with open(journal, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    desc = {"config": config_to_dict(config), "surrogate_key": surrogate_key, "code": _code_fingerprint(), "numpy": np.__version__, "polars": pl.__version__}
    h.update(b"\0" + json.dumps(desc, sort_keys=True, default=str).encode())
    return h.hexdigest()


def _stored_result(config: SearchConfig, url: str, key: str, folder: Path) -> tuple[SearchResult, Surrogate] | None:
    """The stored result of the config's finished, unchanged study (and the cached surrogate), or None."""
    journal = storage_file(url)
    if journal is None or not journal.is_file() or stored_key(folder) is None:
        return None
    lock = StudyLock(url, config.search.study_name).acquire()  # no other run may be writing the study meanwhile
    try:
        res = load_result(folder, result_key(config, key, journal))
    finally:
        lock.release()
    if res is None:
        return None
    logger.info("Study %r is finished and unchanged: its result is read from %s (nothing to run).", config.search.study_name, folder)
    surrogate = fit_surrogate(config, key=key, cache=model_cache_dir(config))
    # stored as a resume gives it (no new trial, nothing run). elapsed_s is the search's own time, as when the
    # journal is replayed: what comes after the study and the model are read (here: nothing), never 0 (trials/s 0.0)
    t0 = time.perf_counter()
    return replace(res, elapsed_s=max(time.perf_counter() - t0, 1e-9)), surrogate


def _store_result(config: SearchConfig, res: SearchResult, url: str, key: str, folder: Path) -> None:
    """Store a finished study's result as its resume would give it (no new trial, nothing run)."""
    journal = storage_file(url)
    if journal is None or res.n_trials < config.search.trials:
        return
    try:
        save_result(replace(res, n_new=0, executor="nothing to run", elapsed_s=0.0), folder, result_key(config, key, journal))
    except Exception as e:  # noqa: BLE001 - a store that cannot be written only costs the full resume next time
        logger.warning("Could not store the result in %s (%s: %s).", folder, type(e).__name__, e)


def problem_config(config: SearchConfig) -> dict[str, Any]:
    """The config sections that define the search problem (stored with the study)."""
    d = config_to_dict(config)
    o = d["objectives"]
    out = {"domains": d["domains"], "tokens": d["tokens"], "compute": d["compute"], "objectives": {k: o[k] for k in ("optimize", "constraints", "risk_kappa", "penalty")}}
    if d.get("phases") is not None:  # absent without [phases]: studies of constant mixtures resume as before
        out["phases"] = d["phases"]
    return out


def config_target_flops(config: SearchConfig) -> float | None:
    """The request's compute (FLOPs) from ``[compute]``: the geometric middle of the flops range,
    or ``6·N·D`` at the middles of the params and tokens ranges; None when neither is given."""
    c = config.compute
    if c.flops is not None:
        return float(math.sqrt(float(c.flops[0]) * float(c.flops[1])))
    if c.params is not None and c.tokens is not None:
        n = math.sqrt(float(c.params[0]) * float(c.params[1]))
        d = math.sqrt(float(c.tokens[0]) * float(c.tokens[1]))
        return float(Targets.from_params_tokens(np.array([n]), np.array([d])).flops[0])
    return None


def fit_surrogate(config: SearchConfig, *, key: str | None = None, cache: Path | None = None) -> Surrogate:
    """Load the saved model, or read the runs and fit ``config.surrogate.method`` on them.

    The run table's domains and benchmarks are checked against the config (bounds, data
    budget, objectives, constraints) before fitting. With ``key`` and ``cache``, a model
    cached under ``cache/key`` is loaded instead of fitting, and a fitted one is cached.
    """
    sc = config.surrogate
    if sc.model is not None:
        logger.info("Loading the surrogate from %s", sc.model)
        return load_surrogate(sc.model)
    if config.data.runs is None:
        raise SearchError('No surrogate: give [data] runs = "..." to fit one, or [surrogate] model = "...".')
    cached = cache / key if cache is not None and key else None
    if cached is not None and cached.is_dir():
        try:
            model = load_surrogate(cached)
            logger.info("Loaded the fitted %s from the study's model cache %s (no refit).", sc.method, cached)
            return model
        except ModelFileError as e:
            logger.warning("Ignoring the damaged cached model %s (%s); refitting.", cached, e)
    d = config.data
    runs = _read_config_runs(config)
    outputs = [f"score:{b}" for b in runs.benchmark_names] + [f"loss:{x}" for x in runs.loss_domains]
    if runs.has_overall_loss:
        outputs.append("loss")
    info = OutputInfo(
        outputs=tuple(outputs),
        higher_is_better={f"score:{b.name}": b.higher_is_better for b in runs.benchmarks},
        chance={f"score:{b.name}": b.chance for b in runs.benchmarks},
        domains=runs.domains,
    )
    try:
        _precheck_outputs(config, info)
        build_space(config, runs.domains, source=f"the run table {d.runs.name}")  # type: ignore[union-attr]
    except SearchError as e:
        raise SearchError(f"{e}\n(checked against {d.runs} before fitting)") from None
    settings = dict(sc.settings)
    target = config_target_flops(config)
    if "target_flops" not in settings and target is not None and _takes_target(sc.method):
        # the request's compute is known before fitting: model choice is judged at its distance from the runs
        settings["target_flops"] = target
        logger.info("Fitting %s with target_flops %.3g from [compute].", sc.method, target)
    surrogate = make_surrogate(sc.method, **settings)
    t0 = time.perf_counter()
    surrogate.fit(runs)
    logger.info("Fitted %s on %d runs in %.1f s", sc.method, runs.n_runs, time.perf_counter() - t0)
    if cached is not None:
        tmp = cached.with_name(f".{cached.name}.{uuid.uuid4().hex[:8]}.tmp")
        try:
            save_surrogate(surrogate, tmp)
            if cached.exists():
                shutil.rmtree(cached)
            tmp.rename(cached)
        except (OSError, MixoptError) as e:  # a cache that cannot be written only costs a refit next time
            logger.warning("Could not cache the fitted model in %s (%s).", cached, e)
            shutil.rmtree(tmp, ignore_errors=True)
    return surrogate


def check_outputs(config: SearchConfig) -> None:
    """Check, before any work, that every file the search writes can be written safely.

    The output table, its summary and shortlist siblings, and the study storage must be
    writable (missing folders are created: the config asked for these paths), and none of
    them may be an input: the run table, the ratios file, the config file or the model.

    Raises:
        SearchError: naming the path, the problem and the fix.
    """
    inputs = {
        p.resolve(): what
        for p, what in (
            (config.data.runs, "the run table ([data] runs)"),
            (config.data.ratios, "the ratios file ([data] ratios)"),
            (config.path, "the config file"),
            (config.surrogate.model, "the model ([surrogate] model)"),
        )
        if p is not None
    }
    store = storage_file(storage_url(config.search.storage))
    targets: list[tuple[Path, str]] = []
    out = config.search.output
    if out is not None:
        out = Path(out)
        ext = out.suffix
        targets += [(out, "output file ([search] output / --output)"), (out.with_name(f"{out.stem}.summary.json"), "output summary"), (out.with_name(f"{out.stem}.shortlist{ext}"), "output shortlist")]
    for path, what in targets:
        r = path.resolve()
        for inp, inwhat in inputs.items():
            if r == inp or (inp.is_dir() and inp in r.parents):
                raise SearchError(f"The {what} {path} would overwrite {inwhat}; choose another output path.")
        if store is not None and r == store.resolve():
            raise SearchError(f"The {what} {path} is the study storage; choose another output path.")
        check_writable_file(path, what)
    if store is not None:
        r = store.resolve()
        for inp, inwhat in inputs.items():
            if r == inp:
                raise SearchError(f"The study storage {store} is {inwhat}; choose another storage path.")
        check_writable_file(store, "study storage ([search] storage / --storage)")


def write_result(result: SearchResult, path: str | Path, *, trials: bool = False) -> tuple[list[Path], str | None]:
    """Write a result; if that fails, write it to a fresh temporary folder instead.

    Returns:
        ``(paths written, None)``, or ``(paths written in the fallback folder, why the
        requested path failed)``: the work is never lost because an output path went bad
        during the run.
    """
    path = Path(path)
    try:
        return result.write(path, trials=trials), None
    except (OSError, SearchError) as e:
        why = f"{type(e).__name__}: {e}"
        fallback = Path(tempfile.mkdtemp(prefix=f"mixopt-{result.study_name or 'search'}-"))
        ext = path.suffix.lower() if path.suffix.lower() in (".parquet", ".csv", ".json") else ".csv"
        written = result.write(fallback / f"{path.stem or 'pareto'}{ext}", trials=trials)
        logger.warning("Could not write %s (%s); wrote the results to %s instead.", path, why, fallback)
        return written, why


def build_problem(config: SearchConfig, surrogate: Surrogate) -> Problem:
    """Space + objectives + constraints for a fitted surrogate (validated)."""
    surrogate._check_fitted()
    domains = tuple(getattr(surrogate, "domains_", ()) or ()) if surrogate.uses_mixture else ()
    space = build_space(config, domains, source=f"the surrogate ({type(surrogate).__name__})")
    o = config.objectives
    return Problem(space, surrogate, list(o.optimize), list(o.constraints), kappa=o.risk_kappa, penalty=o.penalty)


def run_search(
    config: SearchConfig,
    surrogate: Surrogate | None = None,
    *,
    progress: bool = True,
    executor: Executor | None = None,
) -> SearchResult:
    """Run the search a config describes.

    Args:
        config: a validated config (:func:`mixopt.config.load_config`).
        surrogate: a fitted surrogate; None loads it from the study's model cache, or
            fits ``config.surrogate.method`` on ``config.data`` (or loads
            ``config.surrogate.model``).
        progress: show a progress bar on the terminal (stderr).
        executor: evaluate with this executor instead of the configured one (the caller
            closes it).

    Returns:
        The :class:`SearchResult` (write it with :func:`write_result`).

    Raises:
        SearchError: an unwritable output or storage, another process on the study, an
            infeasible or mis-specified problem (all before any fit or trial), or a search
            whose evaluations keep failing.
        mixopt.errors.SchemaError: unreadable run data.
    """
    return search_with_surrogate(config, surrogate, progress=progress, executor=executor)[0]


def search_with_surrogate(config: SearchConfig, surrogate: Surrogate | None = None, *, progress: bool = True, executor: Executor | None = None) -> tuple[SearchResult, Surrogate]:
    """:func:`run_search`, also returning the surrogate it used (fitted, cached or given)."""
    if not isinstance(config, SearchConfig):
        raise SearchError(f"run_search expects a SearchConfig (from mixopt.config.load_config), got {type(config).__name__}.")
    check_outputs(config)
    s = config.search
    url = storage_url(s.storage)
    key = surrogate_key(config) if surrogate is None else None
    stored = result_cache_dir(config) if key and executor is None else None
    if stored is not None:
        hit = _stored_result(config, url, key, stored)  # type: ignore[arg-type]
        if hit is not None:
            return hit
    # Optuna (through the runner) is imported only past the stored result: a finished study's resume needs none of it
    from mixopt.search.runner import open_session, run_study

    session: StudySession | None = None
    if url is not None:
        session = open_session(url, s.study_name, surrogate_key=key)
    try:
        if session is not None:
            _check_problem_config(session, config)
        if surrogate is None:
            surrogate = fit_surrogate(config, key=key, cache=model_cache_dir(config))
        problem = build_problem(config, surrogate)
        factory = executor if executor is not None else _executor_factory(config)
        res = run_study(
            problem,
            trials=s.trials,
            batch_size=s.batch_size,
            sampler=s.sampler,
            sampler_options=s.sampler_options,
            population_size=s.population_size,
            seed=s.seed,
            storage=s.storage,
            study_name=s.study_name,
            executor=factory,
            progress=progress,
            warm_start=s.warm_start,
            max_failed_batches=s.max_failed_batches,
            reference_point=dict(config.objectives.reference_point) or None,
            weights=dict(config.objectives.weights) or None,
            session=session,
            surrogate_key=key,
            shortlist_size=config.objectives.shortlist,
            epsilon=config.objectives.epsilon,
        )
        if session is not None and session.study is not None and not session.attr(PROBLEM_CONFIG_ATTR):
            session.set_attr(PROBLEM_CONFIG_ATTR, json.dumps(problem_config(config), sort_keys=True, default=str))
        if stored is not None:  # the study is still locked: its journal is as this result saw it
            _store_result(config, res, url, key, stored)  # type: ignore[arg-type]
        return res, surrogate
    finally:
        if session is not None:
            session.close()


@dataclass(frozen=True)
class Optimized:
    """What :func:`optimize` did: the result, the surrogate it used, the files written."""

    result: SearchResult
    surrogate: Surrogate
    written: list[Path]
    write_error: str | None  # why ``[search] output`` could not be written (then ``written`` is the fallback)


def optimize(config: SearchConfig, *, progress: bool = True, executor: Executor | None = None) -> Optimized:
    """Run the search a config describes and write its tables to ``[search] output`` (when set)."""
    result, surrogate = search_with_surrogate(config, progress=progress, executor=executor)
    written, failed = write_result(result, config.output) if config.output is not None else ([], None)
    return Optimized(result, surrogate, written, failed)


def _check_problem_config(session: StudySession, config: SearchConfig) -> None:
    stored = session.attr(PROBLEM_CONFIG_ATTR)
    if not stored:
        return
    old, new = json.loads(stored), json.loads(json.dumps(problem_config(config), sort_keys=True, default=str))
    if old != new:
        diff = [f"[{k}]" for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)]
        raise SearchError(
            f"Study {session.study_name!r} in {session.url} was created for a different search problem "
            f"(the config differs in {', '.join(diff)}; checked before fitting). Resume it with the same "
            "settings, or give a new study_name (or storage)."
        )


def _executor_factory(config: SearchConfig) -> Any:
    s = config.search

    def make(remaining: int) -> Executor:
        kind = "ray" if s.ray_address else s.executor  # an address means Ray
        if kind == "ray" and not s.ray_address and not ray_is_running() and remaining < RAY_MIN_TRIALS:
            logger.info("%d trials remain (< %d); running them in-process, not starting Ray.", remaining, RAY_MIN_TRIALS)
            return _InProcess(s.workers or 1)
        return make_executor(kind, address=s.ray_address, workers=s.workers, dashboard=s.ray_dashboard)

    return make


class _InProcess(LocalExecutor):
    def describe(self) -> str:
        return f"in-process (too small to start Ray: < {RAY_MIN_TRIALS:,} trials)"


__all__ = [
    "RAY_MIN_TRIALS",
    "Optimized",
    "optimize",
    "search_with_surrogate",
    "build_problem",
    "build_space",
    "check_outputs",
    "fit_surrogate",
    "model_cache_dir",
    "problem_config",
    "result_cache_dir",
    "result_key",
    "run_search",
    "surrogate_key",
    "write_result",
]
