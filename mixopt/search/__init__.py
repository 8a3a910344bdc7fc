"""Mixture search: the space (simplex with bounds, compute, data limits), objectives,
the batched Optuna ask/tell runner, executors (local, Ray) and results (Pareto set,
hypervolume, best mixture).

Entry point: :func:`run_study` (from objects); a search from a config file is the workflow
:func:`mixopt.workflows.run_search`. Ray is imported only when a :class:`RayExecutor` is created.

Package rule: ``mixopt.search`` may import ``mixopt.errors``, ``mixopt.data``, ``mixopt.laws``
and ``mixopt.surrogate``; never ``mixopt.config``, ``mixopt.train``, ``mixopt.workflows``,
``mixopt.api`` or ``mixopt.cli``. Only :mod:`mixopt.search.executors` (its Ray executor) may
import Ray.

The runner and the samplers (the modules that import Optuna) load on first use of their names
(PEP 562 ``__getattr__``, as ``import mixopt`` does): a config can be parsed, and a finished
study's stored result read back (:mod:`mixopt.search.stored`), without importing Optuna.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

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
from mixopt.search.sampler_names import SAMPLERS
from mixopt.search.shortlist import shortlist
from mixopt.search.space import ComputeSpace, DataBudget, MixtureSpace, Points, SearchSpace
from mixopt.search.storage import StudyLock, storage_url

if TYPE_CHECKING:  # pragma: no cover
    from mixopt.search.runner import open_session, run_study, study_history
    from mixopt.search.samplers import BatchNSGAIISampler, make_sampler

#: public name -> the module that defines it (imported on first access: these import Optuna)
_LAZY: dict[str, str] = {
    "open_session": "mixopt.search.runner",
    "run_study": "mixopt.search.runner",
    "study_history": "mixopt.search.runner",
    "BatchNSGAIISampler": "mixopt.search.samplers",
    "make_sampler": "mixopt.search.samplers",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'mixopt.search' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


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
