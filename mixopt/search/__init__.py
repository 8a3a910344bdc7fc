"""Mixture search: the space (simplex with bounds, compute, data limits), objectives,
the batched Optuna ask/tell runner, executors (local, Ray) and results (Pareto set,
hypervolume, best mixture).

Entry point: :func:`run_study` (from objects); a search from a config file is the workflow
:func:`mixopt.workflows.run_search`. Ray is imported only when a :class:`RayExecutor` is created.

Package rule: ``mixopt.search`` may import ``mixopt.errors``, ``mixopt.data``, ``mixopt.laws``
and ``mixopt.surrogate``; never ``mixopt.config``, ``mixopt.train``, ``mixopt.workflows``,
``mixopt.api`` or ``mixopt.cli``. Only :mod:`mixopt.search.executors` (its Ray executor) may
import Ray.
"""

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
from mixopt.search.samplers import SAMPLERS, BatchNSGAIISampler, make_sampler
from mixopt.search.shortlist import shortlist
from mixopt.search.space import ComputeSpace, DataBudget, MixtureSpace, Points, SearchSpace
from mixopt.search.storage import StudyLock, storage_url

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
    "hypervolume",
    "make_executor",
    "make_sampler",
    "open_session",
    "pareto_mask",
    "parse_constraint",
    "parse_objective",
    "run_study",
    "shortlist",
    "storage_url",
    "study_history",
]
