"""mixopt: data-mixture optimisation for LLM pre-training.

Public API re-exports only; heavy dependencies (torch, optuna, ray) load lazily.
"""

from mixopt.data import Benchmark, RunTable
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
from mixopt.surrogate import Prediction, Surrogate, Targets, load_surrogate, make_surrogate, save_surrogate

__version__ = "0.1.0"

__all__ = [
    "Benchmark",
    "ConfigError",
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
    "save_surrogate",
]
