"""FLP-M's stage-2 interval widening beyond the sampling compute, from a backtest by size.

Used by :class:`~mixopt.surrogate.flpm.FLPM` with ``intervals="widen"``; the error it measures
grows the score intervals of targets beyond the largest training run.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from mixopt.data.table import Benchmark, RunTable
from mixopt.surrogate.emergence import emerged_mask

logger = logging.getLogger(__name__)


def size_backtest_widening(runs: RunTable, X: np.ndarray, Y: np.ndarray, M: np.ndarray, ids: np.ndarray,
                           keep: Sequence[Benchmark], *, make_stage2: Callable[[], Any], noise_sd: np.ndarray,
                           margin: float) -> tuple[np.ndarray, np.ndarray]:
    """Stage-2 extrapolation error beyond the sampling compute, from a backtest by size.

    The runs whose final compute is within a factor 1.5 of the largest are held out,
    the nets are refitted on the rest, and the held-out runs' *emerged* checkpoints are
    predicted from their observed losses: the rms error beyond the nets' noise is
    ``e_b``, measured at ``d_b``, the median log-distance in compute of those checkpoints
    beyond the backtest's training compute. A target at compute ``C`` beyond the
    training maximum ``C_max`` gets an extra sd ``e_b·sqrt(log(C / C_max) / d_b)`` in
    quadrature (error growing like a random walk in log-compute: the backtest's nets
    saw less data than the final ones, so linear growth over-widens). Measured on
    synthetic 3-domain worlds at 10x the largest sampling run: 90 % coverage goes from
    0.48 to 0.86 when the sampling runs stop early in the benchmarks' rise, and from
    0.90 to 1.00 (too wide) when they reach well into it -- a deliberate lean towards
    over- rather than under-coverage. Benchmarks the backtest cannot measure (too few
    points on either side) get ``e_b = 0`` and a log message.

    Args:
        runs, X, Y, M, ids: the stage-2 training checkpoints: the run table, domain losses
            ``(n, m)``, scores ``(n, b)``, their training mask ``(n, b)`` and run ids ``(n,)``.
        keep: the ``b`` predictable benchmarks (columns of ``Y``).
        make_stage2: makes a fresh, unfitted stage-2 model with the surrogate's settings.
        noise_sd: ``(b,)`` held-out noise sd of the final stage-2 model.
        margin: emergence margin.

    Returns:
        ``(e (b,), d (b,))``: score units, and log-compute distances (e-folds).
    """
    rates = np.zeros(len(keep))
    dists = np.ones(len(keep))
    flops = runs.flops()
    final = runs.final()
    cf = dict(zip(final.run_ids().tolist(), final.flops().tolist(), strict=True))
    c_top = max(cf.values())
    held_runs = {r for r, c in cf.items() if c >= c_top / 1.5}
    held = np.array([r in held_runs for r in ids.tolist()])
    if held.all() or not held.any():
        logger.info("FLP-M: no size backtest possible (one compute level); score intervals are not widened.")
        return rates, dists
    Mtr = M & ~held[:, None]
    c_train = float(flops[~held].max())
    ok_cols = [j for j in range(len(keep)) if Mtr[:, j].sum() >= 2]
    if not ok_cols:
        return rates, dists
    net = make_stage2().fit(
        X, np.where(Mtr[:, ok_cols], Y[:, ok_cols], np.nan), Mtr[:, ok_cols], ids,
        chance=[keep[j].chance for j in ok_cols], higher_is_better=[keep[j].higher_is_better for j in ok_cols],
    )
    for i, j in enumerate(ok_cols):
        b = keep[j]
        s = runs.scores([b.name])[:, 0]
        rows = held & emerged_mask(s, b, float(margin)) & (flops > c_train)
        if rows.sum() < 2:
            logger.info("FLP-M: benchmark %r has < 2 emerged checkpoints beyond the size backtest's compute; "
                        "its intervals are not widened.", b.name)
            continue
        pred = net.predict_mean(X[rows])[:, i]
        excess = max(float(np.mean((pred - s[rows]) ** 2)) - float(noise_sd[j]) ** 2, 0.0)
        dist = max(float(np.median(np.log(flops[rows] / c_train))), math.log(1.5))
        rates[j] = math.sqrt(excess)
        dists[j] = dist
    logger.debug("FLP-M: extrapolation errors %s", dict(zip([b.name for b in keep], rates.round(4).tolist(), strict=True)))
    return rates, dists


__all__ = ["size_backtest_widening"]
