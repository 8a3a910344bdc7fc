"""From a :class:`~mixopt.config.SearchConfig` to a :class:`SearchResult`: the library entry point.

``mixopt optimize CONFIG`` is ``load_config`` + :func:`run_search` + ``result.write``.
Every check that can fail is done before the expensive steps: the config is validated
when loaded; the run table's domains and benchmarks, the bounds and the data budget
before the surrogate is fitted; the surrogate's domains and outputs before the first
trial.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

from mixopt.config import SearchConfig
from mixopt.errors import SearchError
from mixopt.search.executors import Executor, make_executor
from mixopt.search.objectives import OutputInfo, Problem, parse_constraint, parse_objective
from mixopt.search.results import SearchResult
from mixopt.search.runner import run_study
from mixopt.search.space import ComputeSpace, DataBudget, MixtureSpace, SearchSpace
from mixopt.surrogate.base import Surrogate

logger = logging.getLogger(__name__)


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
                f"The config names domain(s) {unknown} that {source} lacks (it has {list(domains)}). "
                "Fix the names under [domains]/[tokens], or refit on runs that include those domains."
            )
        raise SearchError(
            f"The config names domain(s) {unknown}, but {source} does not depend on the mixture (no domains). "
            "Use a mixture-aware surrogate (method = \"flpm\") or remove [domains]/[tokens]."
        )
    floors = {d: c.floor for d, c in config.domains.items() if c.pin is None}
    caps = {d: c.cap for d, c in config.domains.items() if c.pin is None}
    pins = {d: c.pin for d, c in config.domains.items() if c.pin is not None}
    mixture = MixtureSpace(domains, floors=floors, caps=caps, pins=pins)  # type: ignore[arg-type]
    c = config.compute
    if c.flops is not None:
        compute = ComputeSpace(flops=c.flops, tokens_per_param=c.tokens_per_param)
    else:
        compute = ComputeSpace(params=c.params, tokens=c.tokens)
    t = config.tokens
    data = DataBudget(available=t.available, max_epochs=t.max_epochs, epochs=t.epochs) if t.available else None
    return SearchSpace(mixture, compute, data)


def _precheck_outputs(config: SearchConfig, info: OutputInfo) -> None:
    for o in config.objectives.optimize:
        parse_objective(o).bind(info)
    for c in config.objectives.constraints:
        parse_constraint(c).bind(info)


def fit_surrogate(config: SearchConfig) -> Surrogate:
    """Load the saved model, or read the runs and fit ``config.surrogate.method`` on them.

    The run table's domains and benchmarks are checked against the config (bounds, data
    budget, objectives, constraints) before fitting.
    """
    from mixopt.surrogate.base import load_surrogate, make_surrogate

    sc = config.surrogate
    if sc.model is not None:
        logger.info("Loading the surrogate from %s", sc.model)
        return load_surrogate(sc.model)
    if config.data.runs is None:
        raise SearchError("No surrogate: give [data] runs = \"...\" to fit one, or [surrogate] model = \"...\".")
    from mixopt.data.readers import read_runs

    d = config.data
    runs = read_runs(d.runs, **d.read_options())  # type: ignore[arg-type]
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
    surrogate = make_surrogate(sc.method, **dict(sc.settings))
    t0 = time.perf_counter()
    surrogate.fit(runs)
    logger.info("Fitted %s on %d runs in %.1f s", sc.method, runs.n_runs, time.perf_counter() - t0)
    return surrogate


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
        surrogate: a fitted surrogate; None fits ``config.surrogate.method`` on
            ``config.data`` (or loads ``config.surrogate.model``).
        progress: show a progress bar on the terminal (stderr).
        executor: evaluate with this executor instead of the configured one (the caller
            closes it).

    Returns:
        The :class:`SearchResult` (write it with ``result.write(config.output)``).

    Raises:
        SearchError: an infeasible or mis-specified problem (before any trial runs), or a
            search whose evaluations keep failing.
        mixopt.errors.SchemaError: unreadable run data.
    """
    if not isinstance(config, SearchConfig):
        raise SearchError(f"run_search expects a SearchConfig (from mixopt.config.load_config), got {type(config).__name__}.")
    if surrogate is None:
        surrogate = fit_surrogate(config)
    problem = build_problem(config, surrogate)
    s = config.search
    own = executor is None
    if executor is None:
        kind = "ray" if s.ray_address else s.executor  # an address means Ray
        executor = make_executor(kind, address=s.ray_address, workers=s.workers)
    try:
        return run_study(
            problem,
            trials=s.trials,
            batch_size=s.batch_size,
            sampler=s.sampler,
            sampler_options=s.sampler_options,
            population_size=s.population_size,
            seed=s.seed,
            storage=s.storage,
            study_name=s.study_name,
            executor=executor,
            progress=progress,
            warm_start=s.warm_start,
            max_failed_batches=s.max_failed_batches,
            reference_point=dict(config.objectives.reference_point) or None,
            weights=dict(config.objectives.weights) or None,
        )
    finally:
        if own:
            executor.close()


__all__ = ["build_problem", "build_space", "fit_surrogate", "run_search"]
