"""A shortlist people can act on: K diverse recommendations from the knee region of a front.

A Pareto set with compute as an objective can hold hundreds of rows (every compute level
has its own best mixtures); nobody trains hundreds of models. The shortlist picks ``k``:

1. **Scale.** Each objective is scaled to ``[0, 1]`` over the front, 1 = best (maximised and
   minimised objectives alike); an objective constant over the front scales to 1.
2. **Knee distance.** ``knee_distance`` = weighted Euclidean distance of a row to the ideal
   point ``(1, ..., 1)`` in that space, ``sqrt(sum_j w_j (1 - s_j)^2 / sum_j w_j)`` with the
   config's ``[objectives] weights`` (default all 1). Small = a balanced compromise near the
   knee of the front; the row that wins every objective at once would have 0.
3. **Knee region.** The rows whose knee distance is among the best ``knee_fraction`` of the
   front (default 25 %, never fewer than ``k`` rows).
4. **Diversity.** Greedy farthest-point selection inside the region: start from the row
   with the smallest knee distance, then repeatedly add the row whose smallest distance to
   the rows already chosen is largest, measured on the mixture ratios and the scaled
   objectives together (so two picks differ in what they train on or in what they buy).
   ``rank`` is the order of selection (1 = the best knee).

The method is deterministic (ties broken by front order) and needs no extra evaluation.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import polars as pl

from mixopt.errors import SearchError

#: Rows on the shortlist by default.
DEFAULT_SHORTLIST = 5
#: Share of the front (by knee distance) the shortlist is drawn from.
KNEE_FRACTION = 0.25


def scaled_objectives(values: np.ndarray, directions: Sequence[str]) -> np.ndarray:
    """``(n, m)`` objective values scaled to [0, 1] over the rows, 1 = best."""
    y = np.asarray(values, dtype=np.float64)
    sign = np.array([1.0 if d == "maximize" else -1.0 for d in directions])
    up = y * sign
    lo, hi = up.min(axis=0), up.max(axis=0)
    span = hi - lo
    return np.where(span > 0, (up - lo) / np.where(span > 0, span, 1.0), 1.0)


def knee_distance(values: np.ndarray, directions: Sequence[str], weights: Sequence[float] | None = None) -> np.ndarray:
    """``(n,)`` weighted distance of each row to the ideal point in scaled objective space."""
    s = scaled_objectives(values, directions)
    w = np.ones(s.shape[1]) if weights is None else np.asarray(weights, dtype=np.float64)
    if w.shape != (s.shape[1],) or np.any(~np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
        raise SearchError(f"shortlist weights must be {s.shape[1]} numbers >= 0 with a positive sum, got {w.tolist()}.")
    return np.sqrt(((1.0 - s) ** 2 * w).sum(axis=1) / w.sum())


def shortlist(
    front: pl.DataFrame,
    objectives: Sequence[tuple[str, str]],
    domains: Sequence[str],
    *,
    k: int = DEFAULT_SHORTLIST,
    weights: Mapping[str, float] | None = None,
    knee_fraction: float = KNEE_FRACTION,
) -> pl.DataFrame:
    """Pick ``k`` diverse knee-region rows of ``front`` (see the module docstring).

    Args:
        front: the Pareto table (``obj:<name>`` and ``mix:<d>`` columns).
        objectives: ``(name, direction)`` per objective.
        domains: mixture domains (``mix:<d>`` columns).
        k: rows to pick (fewer if the front is smaller).
        weights: ``{objective: weight >= 0}`` for the knee distance (default all 1;
            objectives not named get 0 when any is named).
        knee_fraction: share of the front, by knee distance, to choose from.

    Returns:
        ``min(k, front.height)`` rows of ``front`` in selection order, with ``rank`` and
        ``knee_distance`` columns first.
    """
    if not isinstance(k, int) or k < 1:
        raise SearchError(f"shortlist size must be an integer >= 1, got {k!r}.")
    if not 0 < knee_fraction <= 1:
        raise SearchError(f"knee_fraction must be in (0, 1], got {knee_fraction!r}.")
    if front.height == 0:
        return front.with_columns(pl.lit(None, dtype=pl.Int64).alias("rank"),
                                  pl.lit(None, dtype=pl.Float64).alias("knee_distance")).head(0)
    names = [n for n, _ in objectives]
    dirs = [d for _, d in objectives]
    vals = front.select([f"obj:{n}" for n in names]).to_numpy().astype(np.float64)
    w = None
    if weights:
        w = [float(weights.get(n, 0.0)) for n in names]
    dist = knee_distance(vals, dirs, w)
    n = front.height
    m = min(k, n)
    region_n = min(n, max(m, int(np.ceil(knee_fraction * n))))
    region = np.argsort(dist, kind="stable")[:region_n]
    mix_cols = [f"mix:{d}" for d in domains if f"mix:{d}" in front.columns]
    mix = front.select(mix_cols).to_numpy().astype(np.float64) if mix_cols else np.zeros((n, 0))
    feats = np.hstack([mix, scaled_objectives(vals, dirs)])[region]
    chosen = [0]  # region is sorted by knee distance: its first row is the best knee
    gap = np.linalg.norm(feats - feats[0], axis=1)
    while len(chosen) < m:
        gap_masked = gap.copy()
        gap_masked[chosen] = -1.0
        j = int(np.argmax(gap_masked))
        chosen.append(j)
        gap = np.minimum(gap, np.linalg.norm(feats - feats[j], axis=1))
    rows = region[chosen]
    out = front[rows.tolist()]
    return out.select(
        pl.Series("rank", np.arange(1, m + 1, dtype=np.int64)),
        pl.Series("knee_distance", dist[rows]),
        pl.all(),
    )


__all__ = ["DEFAULT_SHORTLIST", "KNEE_FRACTION", "knee_distance", "scaled_objectives", "shortlist"]
