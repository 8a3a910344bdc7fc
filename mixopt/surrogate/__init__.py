"""Surrogates: FLP, FP, FLP-M and comparators behind one interface.

Package rule: ``mixopt.surrogate`` may import ``mixopt.errors``, ``mixopt.data`` and
``mixopt.laws``; never ``mixopt.search``, ``mixopt.train`` or anything above them. torch is
imported only where a network is fitted or used.
"""

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
