"""Joint predictive draws: one fitted-parameter draw across every target row.

A :class:`~mixopt.surrogate.base.Prediction` gives each target its own interval; a search
that asks "does mixture A beat mixture B?" or "is this pick the best of five?" needs the
predictions of all mixtures *together*. :meth:`Surrogate.predict_draws
<mixopt.surrogate.base.Surrogate.predict_draws>` returns ``n_draws x n_rows`` arrays per
quantity in which draw ``s`` is one plausible world: the same fitted parameters (one
bootstrap-by-run refit, one ensemble member, one residual-noise value per quantity) for
every row. Differences between rows within a draw are then what the model is sure of;
what moves all rows together cancels in a comparison.

**Calibrated like the intervals.** The raw draws of a surrogate (its bootstrap refits plus
residual noise) have the spread of the model's *own* interval, which the interval
calibrator (:mod:`mixopt.surrogate.calibrate`) widens with the extrapolation distance.
:func:`calibrated_draws` therefore keeps the raw draws' *dependence* (their ranks across
draws, per row and quantity) and maps each row's marginal onto the calibrated interval: a
monotone, piecewise-linear map per row and quantity that sends the raw draws' ``(1-l)/2``,
median and ``(1+l)/2`` quantiles to ``lower``, ``mean`` and ``upper`` of the level-``l``
interval (linear beyond them). A monotone map per marginal leaves the copula unchanged, so
the draws stay joint across rows while their 5 % / 95 % quantiles are the 90 % interval.

**The default** (:func:`comonotone_draws`, for surrogates with nothing better): one shared
standard normal ``z[s, q]`` per draw and quantity, the same for every row, pushed through
the same map with the normal's own quantiles (a two-piece normal with the interval's
asymmetry). Rows then move together perfectly (comonotone): a conservative stand-in that
gives ``P(A beats B)`` from the means alone, with the spread of each row correct.

Every draw is seeded (``seed``) and depends only on ``(seed, n_draws)`` and the row's own
inputs, never on the other rows of the batch.

Shapes: ``S = n_draws`` draws, ``n`` rows.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from mixopt.errors import SchemaError

#: the interval level the draws' marginals are matched to (the calibrators' reference level)
DRAW_LEVEL = 0.9
#: most draws one call may ask for (the arrays are n_draws x n_rows per quantity)
MAX_DRAWS = 100_000
#: a raw side spread below this fraction of the interval's side counts as degenerate
_DEGENERATE = 1e-9


def check_draw_args(n_draws: object, seed: object) -> tuple[int, int]:
    """Validated ``(n_draws, seed)``; raises SchemaError naming the value and the fix."""
    problems = []
    if isinstance(n_draws, bool) or not isinstance(n_draws, (int, np.integer)) or not 1 <= int(n_draws) <= MAX_DRAWS:
        problems.append(f"n_draws must be an integer in [1, {MAX_DRAWS}], got {n_draws!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or int(seed) < 0:
        problems.append(f"seed must be a non-negative integer, got {seed!r}")
    if problems:
        raise SchemaError("Invalid predict_draws arguments: " + "; ".join(problems) + ".")
    return int(n_draws), int(seed)


def draw_rng(seed: int, stream: int = 0) -> np.random.Generator:
    """The generator of one stream of draws (``stream`` separates independent uses of one seed)."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), 0x6D69786F, int(stream)]))


def shared_normals(n_draws: int, n_quantities: int, seed: int) -> np.ndarray:
    """``(S, q)`` standard normals: one per draw and quantity, shared by every row."""
    return draw_rng(seed, 1).standard_normal((n_draws, n_quantities))


def _piecewise(raw: np.ndarray, q_lo: np.ndarray, q_mid: np.ndarray, q_hi: np.ndarray,
               lower: np.ndarray, mean: np.ndarray, upper: np.ndarray) -> np.ndarray:
    """Map ``raw (S, n)`` so that ``q_lo, q_mid, q_hi (n,)`` go to ``lower, mean, upper (n,)``."""
    with np.errstate(divide="ignore", invalid="ignore"):
        up = (upper - mean) / (q_hi - q_mid)
        down = (mean - lower) / (q_mid - q_lo)
        dev = raw - q_mid
        return mean + np.where(dev >= 0, up, down) * dev


def sorted_quantiles(srt: np.ndarray, qs: tuple[float, ...]) -> np.ndarray:
    """``np.quantile(a, qs, axis=0)`` (method ``linear``) from ``srt = np.sort(a, axis=0)`` of finite ``a (S, ...)``.

    The same numbers: numpy's virtual indexes ``(S - 1)·q``, the same neighbouring order
    statistics (a partition and a sort agree on them) and its interpolation
    ``a + (b - a)·g``, or ``b - (b - a)·(1 - g)`` where ``g >= 0.5``; tested against
    ``np.quantile``.
    """
    S = srt.shape[0]
    virtual = (S - 1) * np.asarray(qs, dtype=np.float64)
    prev = np.floor(virtual)
    nxt = prev + 1
    top = virtual >= S - 1
    prev[top] = nxt[top] = -1
    prev_i, next_i = prev.astype(np.intp), nxt.astype(np.intp)
    gamma = (virtual - prev_i).reshape((-1,) + (1,) * (srt.ndim - 1))
    lo, hi = srt[prev_i], srt[next_i]
    diff = hi - lo
    out = lo + diff * gamma
    np.subtract(hi, diff * (1 - gamma), out=out, where=np.broadcast_to(gamma >= 0.5, out.shape))
    return out


def match_marginals(raw: np.ndarray, mean: np.ndarray, lower: np.ndarray, upper: np.ndarray, *,
                    level: float, z: np.ndarray) -> np.ndarray:
    """Raw joint draws ``(S, n)`` mapped onto a calibrated interval per row (module docstring).

    Args:
        raw: ``(S, n)`` raw draws of one quantity (NaN = a failed draw).
        mean, lower, upper: ``(n,)`` point prediction and the level-``level`` interval.
        level: the interval's central coverage.
        z: ``(S,)`` shared standard normals of this quantity, used for the rows whose raw
            draws have no spread on a side (or too few finite draws).

    Returns:
        ``(S, n)`` draws whose ``(1-level)/2`` / ``(1+level)/2`` quantiles are ``lower`` / ``upper``.
    """
    raw = np.asarray(raw, dtype=np.float64)
    S = raw.shape[0]
    a = (1.0 - level) / 2.0
    finite = np.isfinite(raw)
    count = finite.sum(axis=0)
    # a failed draw (NaN) takes the row's median of the finite draws
    srt = np.sort(np.where(finite, raw, np.inf), axis=0)
    if S and bool((count == S).all()):  # nothing to fill: the quantiles from the sort already made
        fill = raw
        q_lo, q_mid, q_hi = sorted_quantiles(srt, (a, 0.5, 1.0 - a))
    else:
        med = np.take_along_axis(srt, np.maximum(count - 1, 0)[None, :] // 2, axis=0)[0]
        fill = np.where(finite, raw, np.where(count > 0, med, 0.0)[None, :])
        q_lo, q_mid, q_hi = np.quantile(fill, (a, 0.5, 1.0 - a), axis=0)
    side = np.maximum(np.abs(upper - mean), np.abs(mean - lower))
    tiny = _DEGENERATE * np.maximum(side, 1e-300)
    bad = ~((q_hi - q_mid > tiny) & (q_mid - q_lo > tiny)) | (count < max(3, S // 2))
    out = _piecewise(fill, q_lo, q_mid, q_hi, lower, mean, upper)
    if bad.any():
        from mixopt._normal import ndtri

        zq = float(ndtri(1.0 - a))
        zz = np.broadcast_to(np.asarray(z, dtype=np.float64)[:, None], (S, int(bad.sum())))
        out[:, bad] = _piecewise(zz, -zq, 0.0, zq, lower[bad], mean[bad], upper[bad])
    return out


def comonotone_draws(mean: np.ndarray, lower: np.ndarray, upper: np.ndarray, names: tuple[str, ...], *,
                     n_draws: int, seed: int, level: float = DRAW_LEVEL) -> dict[str, np.ndarray]:
    """The default draws: one shared normal per draw and quantity through each row's interval.

    Args:
        mean, lower, upper: ``(n, q)`` prediction and its level-``level`` interval.
        names: the ``q`` quantity names.

    Returns:
        ``{name: (S, n)}``; NaN where the prediction (or its interval) is NaN.
    """
    from mixopt._normal import ndtri

    z = shared_normals(n_draws, len(names), seed)
    zq = float(ndtri(0.5 + level / 2.0))
    out = {}
    for j, name in enumerate(names):
        zz = np.broadcast_to(z[:, j : j + 1], (n_draws, mean.shape[0]))
        out[name] = _piecewise(zz, -zq, 0.0, zq, lower[:, j], mean[:, j], upper[:, j])
    return out


def calibrated_draws(raw: Mapping[str, np.ndarray], mean: np.ndarray, lower: np.ndarray, upper: np.ndarray,
                     names: tuple[str, ...], *, n_draws: int, seed: int, level: float = DRAW_LEVEL) -> dict[str, np.ndarray]:
    """Joint draws from raw model draws, each marginal matched to the calibrated interval.

    Args:
        raw: ``{name: (S, n)}`` raw joint draws (a quantity missing here gets the default).
        mean, lower, upper: ``(n, q)`` calibrated prediction at ``level``.
        names: the ``q`` quantity names.

    Returns:
        ``{name: (S, n)}`` for every name.
    """
    from mixopt._normal import ndtri

    z = shared_normals(n_draws, len(names), seed)  # the normals comonotone_draws draws for the same seed
    zq = float(ndtri(0.5 + level / 2.0))
    out = {}
    for j, name in enumerate(names):
        r = raw.get(name)
        if r is None:  # comonotone_draws' draw of this quantity
            zz = np.broadcast_to(z[:, j : j + 1], (n_draws, mean.shape[0]))
            out[name] = _piecewise(zz, -zq, 0.0, zq, lower[:, j], mean[:, j], upper[:, j])
            continue
        if r.shape != (n_draws, mean.shape[0]):
            raise ValueError(f"raw draws of {name!r} must be ({n_draws}, {mean.shape[0]}), got {r.shape}")
        out[name] = match_marginals(r, mean[:, j], lower[:, j], upper[:, j], level=level, z=z[:, j])
    return out


__all__ = ["DRAW_LEVEL", "MAX_DRAWS", "calibrated_draws", "check_draw_args", "comonotone_draws", "draw_rng",
           "match_marginals", "shared_normals", "sorted_quantiles"]
