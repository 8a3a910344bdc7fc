"""Emergence: which checkpoints of a benchmark have risen above chance (shared by FLP, FP and FLP-M).

A checkpoint of benchmark ``b`` has emerged (paper: score >= chance + 5 points) when
``score >= chance + emergence_margin`` (higher-is-better metrics) or
``score <= chance - emergence_margin`` (lower-is-better); every checkpoint counts when
``chance`` is None. ``emergence="first_crossing"`` instead keeps every checkpoint of a run
from its first emerged one onward. The margin is on the metric's own scale (0.05 = 5
points of a 0-1 accuracy).
"""

from __future__ import annotations

import numpy as np
import polars as pl

from mixopt.data.table import Benchmark
from mixopt.errors import ConfigError

EMERGENCE_MODES: tuple[str, ...] = ("checkpoint", "first_crossing")


def emerged_mask(
    scores: np.ndarray,
    benchmark: Benchmark,
    margin: float = 0.05,
    *,
    run_ids: np.ndarray | None = None,
    mode: str = "checkpoint",
) -> np.ndarray:
    """Which checkpoints of one benchmark have emerged above chance.

    Args:
        scores: ``(n,)`` scores (NaN = not evaluated, never emerged).
        benchmark: metadata (chance level and direction).
        margin: distance from chance on the metric's scale (paper: 0.05).
        run_ids: ``(n,)`` run of every row, rows in token order within a run (as
            :class:`RunTable` keeps them); needed for ``mode="first_crossing"``.
        mode: ``"checkpoint"`` (each checkpoint on its own, the paper) or
            ``"first_crossing"`` (every checkpoint from a run's first emerged one onward).

    Returns:
        ``(n,)`` bool.
    """
    s = np.asarray(scores, dtype=np.float64)
    finite = np.isfinite(s)
    if benchmark.chance is None:
        m = finite
    elif benchmark.higher_is_better:
        m = finite & (s >= benchmark.chance + margin)
    else:
        m = finite & (s <= benchmark.chance - margin)
    if mode == "first_crossing":
        if run_ids is None:
            raise ConfigError("emergence='first_crossing' needs the run id of every row.")
        frame = pl.DataFrame({"r": np.asarray(run_ids).astype(str), "m": m})
        m = frame.select(pl.col("m").cast(pl.Int8).cum_max().over("r") > 0)["m"].to_numpy() & finite
    elif mode != "checkpoint":
        raise ConfigError(f"emergence must be one of {list(EMERGENCE_MODES)}, got {mode!r}.")
    return np.asarray(m, dtype=bool)


def weak_evidence_predictable(benchmark: Benchmark, n_evaluated: int, n_evaluated_runs: int, *, anchored: bool,
                              min_points: int, min_runs: int) -> bool:
    """Whether a benchmark with too few emerged checkpoints is still predicted, on weak evidence.

    The paper drops a benchmark with fewer than ``min_emerged`` checkpoints above chance +
    margin. A stage 2 that is **anchored at chance** (a sigmoid from the chance level to a
    learned ceiling, fitted on every evaluated checkpoint, at chance or not) still has a
    curve to extrapolate from the foot of the emergence curve, and a prediction with an
    honest wide interval serves better than none: such a benchmark is predicted when it has
    a chance level and at least ``min_points`` evaluated checkpoints from ``min_runs`` runs.
    Its intervals are calibrated on their own (the weak group) by the caller's internal
    backtest. A stage 2 trained on emerged points only (the paper's linear net) cannot.
    """
    return bool(anchored and benchmark.chance is not None and n_evaluated >= min_points and n_evaluated_runs >= min_runs)


#: one-sided z of the rank correlation between loss and score a benchmark needs to carry a signal (1 %)
SIGNAL_Z = 2.33


def score_signal(scores: np.ndarray, loss: np.ndarray, benchmark: Benchmark) -> float:
    """How strongly a benchmark's scores follow the loss: the one-sided z of their rank correlation.

    ``z = -rho·sqrt(n - 1)`` for a higher-is-better metric (``+rho·sqrt(n - 1)`` for lower-is-better),
    ``rho`` the Spearman correlation of loss and score over the checkpoints where both are finite:
    large when the score improves as the loss falls, about 0 for a benchmark that stays at chance
    (noise around the floor). A benchmark below :data:`SIGNAL_Z` has **no signal at all** in the
    runs, and nothing to extrapolate, not even on weak evidence; 0 with fewer than 3 points.
    """
    s, x = np.asarray(scores, dtype=np.float64), np.asarray(loss, dtype=np.float64)
    ok = np.isfinite(s) & np.isfinite(x)
    n = int(ok.sum())
    if n < 3 or np.ptp(s[ok]) == 0 or np.ptp(x[ok]) == 0:
        return 0.0
    rs = np.argsort(np.argsort(s[ok])).astype(np.float64)
    rx = np.argsort(np.argsort(x[ok])).astype(np.float64)
    rho = float(np.corrcoef(rs, rx)[0, 1])
    return (-rho if benchmark.higher_is_better else rho) * float(np.sqrt(n - 1))


def _threshold_text(b: Benchmark, margin: float) -> str:
    if b.chance is None:
        return "any score (no chance floor)"
    if b.higher_is_better:
        return f"score >= chance {b.chance:g} + margin {margin:g} = {b.chance + margin:g}"
    return f"score <= chance {b.chance:g} - margin {margin:g} = {b.chance - margin:g}"


__all__ = ["EMERGENCE_MODES", "SIGNAL_Z", "emerged_mask", "score_signal", "weak_evidence_predictable"]
