"""Mixture search: the space (simplex with bounds, compute, data limits), objectives,
the batched Optuna ask/tell runner, executors (local, Ray) and results (Pareto set,
hypervolume, best mixture).

Entry points: :func:`run_search` (from a config) and :func:`run_study` (from objects).
Ray is imported only when a :class:`RayExecutor` is created.
"""

from mixopt.search.api import build_problem, build_space, fit_surrogate, run_search
from mixopt.search.executors import Executor, LocalExecutor, RayExecutor, make_executor
from mixopt.search.objectives import (
    Aggregate,
    ComputeCost,
    Constraint,
    Evaluation,
    Metric,
    Objective,
    Problem,
    parse_constraint,
    parse_objective,
)
from mixopt.search.results import SearchResult, hypervolume, pareto_mask
from mixopt.search.runner import open_session, run_study, study_history
from mixopt.search.shortlist import shortlist
from mixopt.search.storage import StudyLock, storage_url
from mixopt.search.samplers import SAMPLERS, BatchNSGAIISampler, make_sampler
from mixopt.search.space import ComputeSpace, DataBudget, MixtureSpace, Points, SearchSpace
from mixopt.search.truth import WorldSurrogate

__all__ = [
    "SAMPLERS",
    "Aggregate",
    "BatchNSGAIISampler",
    "ComputeCost",
    "ComputeSpace",
    "Constraint",
    "DataBudget",
    "Evaluation",
    "Executor",
    "LocalExecutor",
    "Metric",
    "MixtureSpace",
    "Objective",
    "Points",
    "Problem",
    "RayExecutor",
    "SearchResult",
    "SearchSpace",
    "StudyLock",
    "WorldSurrogate",
    "build_problem",
    "build_space",
    "fit_surrogate",
    "hypervolume",
    "make_executor",
    "make_sampler",
    "open_session",
    "pareto_mask",
    "parse_constraint",
    "parse_objective",
    "run_search",
    "run_study",
    "shortlist",
    "storage_url",
    "study_history",
]
