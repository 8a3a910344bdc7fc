"""Optuna samplers by name, all seeded; and a batch-friendly NSGA-II.

Names (:func:`make_sampler`):

============== ============================================================================
``nsga2``      NSGA-II (default). Optuna's :class:`~optuna.samplers.NSGAIISampler` — its
               elite selection (non-dominated sorting, crowding distance, constrained
               domination) — with the batch speed-ups of :class:`BatchNSGAIISampler`.
``nsga2-optuna`` Optuna's NSGA-II exactly as shipped (slower per trial; for comparison).
``nsga3``      Optuna's NSGA-III (many objectives).
``tpe``        Optuna's TPE (multivariate, constant liar). Cost per trial grows with the
               number of trials: good up to a few thousand.
``gp``         Optuna's Gaussian-process sampler: best per evaluation, cost grows
               cubically with trials: for small budgets (hundreds of trials).
``random``     uniform in the unit cube (= uniform on the simplex without bounds).
``qmc``        scrambled Sobol points (Optuna's QMCSampler).
``cmaes``      CMA-ES (single objective only).
============== ============================================================================

Samplers that ignore constraints (``random``, ``qmc``) still get the constraint values
(stored on every trial, used for the Pareto set); see ``penalty`` in
:class:`~mixopt.search.objectives.Problem` to steer them away from infeasible models.

Why :class:`BatchNSGAIISampler`
-------------------------------
Optuna's GA base class recomputes a new trial's generation by scanning every completed
trial, and re-reads the cached parent population from all trials, on *every* ``ask``; its
default child generation runs a Python tournament per child. Per trial that is O(number
of trials), so a 5,000-trial study spends most of its time in the sampler (measured in
``benchmarks/bench_search.py``). The subclass keeps Optuna's semantics and storage layout
(the generation is still written to each trial's system attributes, parent populations
to the study's) but

* counts completed trials per generation incrementally (``after_trial``),
* keeps parent populations of past generations in memory,
* takes the search space as given (the runner asks every trial with the same fixed
  distributions) instead of intersecting all trials' spaces per ask,
* generates the children of a generation in one vectorised step through Optuna's public
  ``child_generation_strategy`` hook: binary tournaments under (constrained) Pareto
  domination, uniform crossover (Optuna's default) or SBX, and uniform-reset mutation
  with probability ``1/n_params`` — the same operators as Optuna's default strategy.

With batched ask/tell, every trial of one batch belongs to one generation; the batch size
is the number of children per generation and ``population_size`` the number of parents
kept (a (mu + lambda) scheme; equal by default).
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import optuna
from optuna.distributions import BaseDistribution, FloatDistribution
from optuna.samplers import BaseSampler, NSGAIISampler
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from mixopt.errors import SearchError
from mixopt.search.sampler_names import SAMPLERS

if TYPE_CHECKING:
    from optuna.study import Study

logger = logging.getLogger(__name__)


def derive_seed(seed: int, *salt: int) -> int:
    """A 32-bit seed derived from ``seed`` and integers ``salt`` (independent streams)."""
    ss = np.random.SeedSequence([int(seed) & 0xFFFFFFFF, *[int(s) & 0xFFFFFFFF for s in salt]])
    return int(ss.generate_state(1)[0])


class _VectorChildren:
    """Children of a parent population, generated a block at a time with numpy.

    Called by NSGA-II once per trial (``child_generation_strategy`` hook) with the
    generation's parent population; the first call for a population draws a block of
    children, later calls pop from it.
    """

    def __init__(self, *, seed: int, crossover: str, crossover_prob: float, swapping_prob: float, mutation_prob: float | None, eta: float, block: int) -> None:
        if crossover not in ("uniform", "sbx"):
            raise SearchError(f"crossover must be 'uniform' or 'sbx', got {crossover!r}.")
        for name, p in (("crossover_prob", crossover_prob), ("swapping_prob", swapping_prob)):
            if not 0.0 <= p <= 1.0:
                raise SearchError(f"{name} must be in [0, 1], got {p}.")
        if mutation_prob is not None and not 0.0 <= mutation_prob <= 1.0:
            raise SearchError(f"mutation_prob must be None or in [0, 1], got {mutation_prob}.")
        self._rng = np.random.default_rng(seed)
        self._crossover = crossover
        self._pc = crossover_prob
        self._ps = swapping_prob
        self._pm = mutation_prob
        self._eta = eta
        self._block = max(int(block), 1)
        self._key: tuple[int, ...] | None = None
        self._queue: list[dict[str, Any]] = []
        self._arrays: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None = None

    def _prepare(self, study: Study, names: list[str], dists: list[FloatDistribution], parents: list[FrozenTrial]) -> None:
        x = np.array([[_to_internal(t.params[n], d) for n, d in zip(names, dists, strict=True)] for t in parents])
        sign = np.array([1.0 if d == StudyDirection.MINIMIZE else -1.0 for d in study.directions])
        v = np.array([t.values for t in parents], dtype=float) * sign
        cons = [t.constraints for t in parents]
        constrained = any(len(c) > 0 for c in cons)
        if constrained:
            pen = np.array([sum(max(float(x_), 0.0) for x_ in c.values()) if c else math.inf for c in cons])
            feas = np.array([bool(c) and all(float(x_) <= 0 for x_ in c.values()) for c in cons])
        else:
            pen = np.zeros(len(parents))
            feas = np.ones(len(parents), dtype=bool)
        self._arrays = (x, v, pen, feas)

    def _beats(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        _, v, pen, feas = self._arrays  # type: ignore[misc]
        va, vb = v[a], v[b]
        dom = np.all(va <= vb, axis=1) & np.any(va < vb, axis=1)
        fa, fb = feas[a], feas[b]
        return np.where(fa & fb, dom, np.where(fa & ~fb, True, np.where(~fa & fb, False, pen[a] < pen[b])))

    def _generate(self, n: int, lows: np.ndarray, highs: np.ndarray) -> np.ndarray:
        x = self._arrays[0]  # type: ignore[index]
        mu, p = x.shape
        rng = self._rng
        # first parent: binary tournament over the population
        a, b = rng.integers(0, mu, n), rng.integers(0, mu, n)
        p1 = np.where(self._beats(a, b), a, b)
        if mu > 1:  # second parent: tournament over the population without the first parent
            a, b = rng.integers(0, mu - 1, n), rng.integers(0, mu - 1, n)
            a, b = a + (a >= p1), b + (b >= p1)
            p2 = np.where(self._beats(a, b), a, b)
        else:
            p2 = p1
        x1, x2 = x[p1], x[p2]
        if self._crossover == "uniform":
            take2 = rng.random((n, p)) >= self._ps
            child = np.where(take2, x2, x1)
        else:  # simulated binary crossover (Deb & Agrawal), per variable, within bounds
            u = rng.random((n, p))
            beta = np.where(u <= 0.5, (2 * u) ** (1 / (self._eta + 1)), (1 / (2 * (1 - u))) ** (1 / (self._eta + 1)))
            c1 = 0.5 * ((1 + beta) * x1 + (1 - beta) * x2)
            c2 = 0.5 * ((1 - beta) * x1 + (1 + beta) * x2)
            pick = rng.random((n, p)) < 0.5
            child = np.where(pick, c1, c2)
            swap = rng.random((n, p)) < self._ps  # per-variable crossover probability
            child = np.where(swap, child, x1)
            child = np.clip(child, lows, highs)
        # no crossover: a copy of a uniformly drawn parent
        copy = rng.random(n) >= self._pc
        if copy.any():
            child[copy] = x[rng.integers(0, mu, int(copy.sum()))]
        pm = self._pm if self._pm is not None else 1.0 / max(1, p)
        mut = rng.random((n, p)) < pm
        if mut.any():
            fresh = lows + rng.random((n, p)) * (highs - lows)
            child = np.where(mut, fresh, child)
        return child

    def __call__(self, study: Study, search_space: dict[str, BaseDistribution], parent_population: list[FrozenTrial]) -> dict[str, Any]:
        names = list(search_space)
        dists = [search_space[n] for n in names]
        if not all(isinstance(d, FloatDistribution) and d.step is None for d in dists):
            raise SearchError("BatchNSGAIISampler handles continuous float parameters only; use sampler 'nsga2-optuna'.")
        key = tuple(t.number for t in parent_population) + (hash(tuple(names)),)
        if key != self._key:
            self._key = key
            self._queue = []
            self._prepare(study, names, dists, parent_population)  # type: ignore[arg-type]
        if not self._queue:
            lows = np.array([_to_internal(d.low, d) for d in dists])  # type: ignore[attr-defined]
            highs = np.array([_to_internal(d.high, d) for d in dists])  # type: ignore[attr-defined]
            kids = self._generate(self._block, lows, highs)
            self._queue = [{n: _from_internal(float(v), d) for n, v, d in zip(names, row, dists, strict=True)} for row in kids[::-1]]
        return self._queue.pop()


def _to_internal(v: float, d: FloatDistribution) -> float:
    return math.log(v) if d.log else float(v)


def _from_internal(v: float, d: FloatDistribution) -> float:
    x = math.exp(v) if d.log else v
    return min(max(x, d.low), d.high)


class BatchNSGAIISampler(NSGAIISampler):
    """NSGA-II for batched ask/tell over a fixed search space (see the module docstring).

    Args:
        search_space: the distributions every trial is asked with.
        population_size: parents kept per generation.
        seed: seeds both the parent sampler and the vectorised child generation.
        crossover: ``"uniform"`` (Optuna's default) or ``"sbx"``.
        crossover_prob: probability a child comes from crossover (else it copies a parent).
        swapping_prob: per-variable probability of taking the second parent's value
            (uniform) or of crossing the variable (SBX).
        mutation_prob: per-variable probability of a uniform reset (default ``1/n_params``).
        eta: SBX distribution index (larger = children closer to the parents).

    One sampler instance serves one study (like Optuna's intersection search space).
    """

    def __init__(
        self,
        *,
        search_space: Mapping[str, BaseDistribution],
        population_size: int = 256,
        seed: int | None = None,
        crossover: str = "uniform",
        crossover_prob: float = 0.9,
        swapping_prob: float = 0.5,
        mutation_prob: float | None = None,
        eta: float = 15.0,
    ) -> None:
        children = _VectorChildren(
            seed=derive_seed(0 if seed is None else seed, 1),
            crossover=crossover,
            crossover_prob=crossover_prob,
            swapping_prob=swapping_prob,
            mutation_prob=mutation_prob,
            eta=eta,
            block=population_size,
        )
        with warnings.catch_warnings():
            # the child_generation_strategy hook is marked experimental in Optuna 5; we use it knowingly
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            super().__init__(population_size=population_size, seed=seed, child_generation_strategy=children)
        self._fixed_space = {k: v for k, v in search_space.items() if not v.single()}
        self._counts: dict[int, int] = {}
        self._counts_study: str | None = None
        self._parents: dict[int, list[FrozenTrial]] = {}

    # -- search space: fixed --------------------------------------------------------------
    def infer_relative_search_space(self, study: Study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        return dict(self._fixed_space)

    # -- generation bookkeeping: incremental -------------------------------------------------
    def _sync(self, study: Study) -> None:
        if self._counts_study == study.study_name:
            return
        self._counts_study = study.study_name
        self._parents = {}
        counts: dict[int, int] = {}
        key = self._get_generation_key()
        for t in study.get_trials(deepcopy=False, states=[TrialState.COMPLETE]):
            g = t.system_attrs.get(key, None)
            if g is not None:
                counts[g] = counts.get(g, 0) + 1
        self._counts = counts

    def get_trial_generation(self, study: Study, trial: FrozenTrial) -> int:
        key = self._get_generation_key()
        generation = trial.system_attrs.get(key, None)
        if generation is not None:
            return generation
        self._sync(study)
        max_gen = max(self._counts) if self._counts else 0
        count = self._counts.get(max_gen, 0)
        assert self._population_size is not None
        generation = max_gen if count < self._population_size else max_gen + 1
        study._storage.set_trial_system_attr(trial._trial_id, key, generation)
        return generation

    def get_parent_population(self, study: Study, generation: int) -> list[FrozenTrial]:
        if generation == 0:
            return []
        self._sync(study)
        cached = self._parents.get(generation)
        if cached is None:
            # build missing generations bottom-up (a resumed study has none cached), so that
            # Optuna's select_parent(g) -> get_parent_population(g - 1) never recurses deeply
            start = max([g for g in self._parents if g < generation], default=0) + 1
            for g in range(start, generation + 1):
                self._parents[g] = super().get_parent_population(study, g)
            cached = self._parents[generation]
            for g in [g for g in self._parents if g < generation - 1]:
                del self._parents[g]
        return cached

    def after_trial(self, study: Study, trial: FrozenTrial, state: TrialState, values: Sequence[float] | None) -> None:
        super().after_trial(study, trial, state, values)
        if state == TrialState.COMPLETE:
            self._sync(study)
            g = trial.system_attrs.get(self._get_generation_key(), None)
            if g is not None:
                self._counts[g] = self._counts.get(g, 0) + 1


def make_sampler(
    name: str,
    *,
    seed: int,
    n_objectives: int,
    search_space: Mapping[str, BaseDistribution],
    population_size: int = 256,
    n_trials: int | None = None,
    options: Mapping[str, Any] | None = None,
) -> BaseSampler:
    """A seeded Optuna sampler by name (see the module docstring).

    Args:
        name: one of :data:`SAMPLERS`.
        seed: sampler seed.
        n_objectives: number of objectives (some samplers are single-objective only).
        search_space: the fixed distributions of every trial.
        population_size: NSGA-II/III parents per generation.
        n_trials: planned trials (used to warn about samplers that do not scale).
        options: extra keyword arguments for the sampler (e.g. ``{"crossover": "sbx"}``).

    Raises:
        SearchError: an unknown name or a sampler that cannot handle the problem.
    """
    opts = dict(options or {})
    key = name.lower().replace("_", "-")
    try:
        if key == "nsga2":
            return BatchNSGAIISampler(search_space=search_space, population_size=population_size, seed=seed, **opts)
        if key == "nsga2-optuna":
            return optuna.samplers.NSGAIISampler(population_size=population_size, seed=seed, **opts)
        if key == "nsga3":
            return optuna.samplers.NSGAIIISampler(population_size=population_size, seed=seed, **opts)
        if key == "tpe":
            if n_trials is not None and n_trials > 3000:
                logger.warning("TPE's cost per trial grows with the number of trials; %d trials will be slow. Consider sampler 'nsga2'.", n_trials)
            opts.setdefault("multivariate", True)
            opts.setdefault("constant_liar", True)
            return optuna.samplers.TPESampler(seed=seed, **opts)
        if key == "gp":
            if n_trials is not None and n_trials > 1000:
                logger.warning("The GP sampler's cost grows cubically with trials; %d trials will be very slow. Use it for a few hundred trials, or sampler 'nsga2'.", n_trials)
            return optuna.samplers.GPSampler(seed=seed, **opts)
        if key == "random":
            return optuna.samplers.RandomSampler(seed=seed)
        if key == "qmc":
            opts.setdefault("qmc_type", "sobol")
            opts.setdefault("scramble", True)
            opts.setdefault("warn_asynchronous_seeding", False)
            return optuna.samplers.QMCSampler(seed=seed, **opts)
        if key == "cmaes":
            import importlib.util

            if importlib.util.find_spec("cmaes") is None:
                raise SearchError("Sampler 'cmaes' needs the 'cmaes' package (pip install cmaes); or use 'nsga2'/'tpe'.")
            if n_objectives != 1:
                raise SearchError(f"Sampler 'cmaes' is single-objective, but the search has {n_objectives} objectives; use 'nsga2'.")
            return optuna.samplers.CmaEsSampler(seed=seed, **opts)
    except TypeError as e:
        raise SearchError(f"Invalid options for sampler {name!r}: {e}") from None
    raise SearchError(f"Unknown sampler {name!r}; choose one of {list(SAMPLERS)}.")


__all__ = ["SAMPLERS", "BatchNSGAIISampler", "derive_seed", "make_sampler"]
