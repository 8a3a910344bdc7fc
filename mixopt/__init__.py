"""mixopt: data-mixture optimisation for LLM pre-training.

Public API re-exports only, loaded on first use (PEP 562 ``__getattr__``): ``import mixopt``
imports no numpy, polars, scipy, torch, optuna or ray, so a command or a service pays only for
what it uses. ``from mixopt import RunTable`` loads :mod:`mixopt.data`; the errors are light and
loaded at once.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from mixopt.errors import (
    ConfigError,
    FitError,
    MixoptError,
    ModelFileError,
    NotFittedError,
    NotPredictableError,
    SchemaError,
    SearchError,
    TrainerError,
)

if TYPE_CHECKING:  # pragma: no cover
    from mixopt.data import Benchmark, RunTable
    from mixopt.data.changes import DomainChanges, map_runs
    from mixopt.surrogate import Prediction, Surrogate, Targets, load_surrogate, make_surrogate, save_surrogate
    from mixopt.workflows.plan import plan

__version__ = "0.1.0"

#: public name -> the module that defines it (imported on first access)
_LAZY: dict[str, str] = {
    "Benchmark": "mixopt.data",
    "RunTable": "mixopt.data",
    "DomainChanges": "mixopt.data.changes",
    "map_runs": "mixopt.data.changes",
    "Prediction": "mixopt.surrogate",
    "Surrogate": "mixopt.surrogate",
    "Targets": "mixopt.surrogate",
    "load_surrogate": "mixopt.surrogate",
    "make_surrogate": "mixopt.surrogate",
    "save_surrogate": "mixopt.surrogate",
    "plan": "mixopt.workflows.plan",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'mixopt' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "Benchmark",
    "ConfigError",
    "DomainChanges",
    "FitError",
    "MixoptError",
    "ModelFileError",
    "NotFittedError",
    "NotPredictableError",
    "Prediction",
    "RunTable",
    "SchemaError",
    "SearchError",
    "Surrogate",
    "Targets",
    "TrainerError",
    "__version__",
    "load_surrogate",
    "make_surrogate",
    "map_runs",
    "plan",
    "save_surrogate",
]
