"""A fit job: one surrogate method fitted on a run table and saved (``mixopt fit`` and the API's fit job)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mixopt.data.table import RunTable
from mixopt.surrogate.base import Surrogate, make_surrogate, save_surrogate


def fit_model(runs: RunTable, method: str, settings: Mapping[str, Any] | None = None) -> Surrogate:
    """``method`` (a surrogate kind, e.g. ``"flp"``) with ``settings``, fitted on ``runs``."""
    return make_surrogate(method, **dict(settings or {})).fit(runs)


def save_model(model: Surrogate, out_dir: str | Path) -> Path:
    """Write the fitted ``model`` to the folder ``out_dir``; the folder."""
    return save_surrogate(model, out_dir)


__all__ = ["fit_model", "save_model"]
