"""Surrogates: FLP, FP, FLP-M and comparators behind one interface."""

from mixopt.surrogate.base import (
    MODEL_FORMAT_VERSION,
    Prediction,
    Surrogate,
    Targets,
    load_surrogate,
    make_surrogate,
    save_surrogate,
    surrogate_kinds,
)

__all__ = [
    "MODEL_FORMAT_VERSION",
    "Prediction",
    "Surrogate",
    "Targets",
    "load_surrogate",
    "make_surrogate",
    "save_surrogate",
    "surrogate_kinds",
]
