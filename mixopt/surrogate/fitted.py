"""Fitted-law helpers of the compute surrogates (FLP, FP): a law with its fitted parameters and
bootstrap draws, the rows of their fit reports, and the chunking of bootstrap predictions.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from mixopt.laws.base import Law
from mixopt.laws.fitter import LawFitter
from mixopt.laws.forms import make_law

#: bootstrap predictions are computed for at most this many (draw x target) cells at once
_CHUNK_CELLS = 2_000_000


@dataclass
class FittedLaw:
    """A law with its fitted parameters, bootstrap draws and residual scale.

    Attributes:
        law: the law.
        params: ``(p,)`` best parameters.
        boot: ``(B, p)`` bootstrap parameters (NaN rows: failed draws).
        scale: residual sd in the law's residual space.
    """

    law: Law
    params: np.ndarray
    boot: np.ndarray
    scale: float

    @classmethod
    def from_fitter(cls, f: LawFitter) -> FittedLaw:
        return cls(law=f.law, params=np.asarray(f.params_, dtype=np.float64),
                   boot=np.asarray(f.bootstrap_params_, dtype=np.float64), scale=float(f.residual_scale_))

    def state(self) -> dict[str, Any]:
        return {"law": self.law.name, "config": self.law.config(), "scale": self.scale}

    @classmethod
    def from_state(cls, state: Mapping[str, Any], params: np.ndarray, boot: np.ndarray) -> FittedLaw:
        cfg = {k: (None if v is None else v) for k, v in dict(state.get("config", {})).items()}
        for k in ("reference", "params_reference", "tokens_reference", "floor"):
            if k in cfg and cfg[k] is not None:
                cfg[k] = float(cfg[k])
        law = make_law(str(state["law"]), **cfg)
        p = law.n_params
        params = np.asarray(params, dtype=np.float64).reshape(p)
        boot = np.asarray(boot, dtype=np.float64).reshape(-1, p)
        return cls(law=law, params=params, boot=boot, scale=float(state["scale"]))


_REPORT_SCHEMA = {
    "quantity": pl.String,
    "law": pl.String,
    "status": pl.String,
    "reason": pl.String,
    "n_points": pl.Int64,
    "n_runs": pl.Int64,
    "params": pl.String,
    "residual_scale": pl.Float64,
    "bootstrap_failed": pl.Int64,
}


def _report_row(quantity: str, law: str, status: str, reason: str = "", n_points: int = 0, n_runs: int = 0,
                params: dict[str, float] | None = None, scale: float = math.nan, failed: int = 0) -> dict[str, Any]:
    return {"quantity": quantity, "law": law, "status": status, "reason": reason, "n_points": n_points,
            "n_runs": n_runs, "params": json.dumps(params or {}), "residual_scale": scale, "bootstrap_failed": failed}


def _chunks(n: int, n_draws: int) -> list[slice]:
    size = max(1, _CHUNK_CELLS // max(n_draws, 1))
    return [slice(i, min(i + size, n)) for i in range(0, max(n, 1), size)] if n else [slice(0, 0)]


__all__ = ["FittedLaw"]
