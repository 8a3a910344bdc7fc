"""Calibrated prediction intervals: conformal scaling by extrapolation distance.

A surrogate's own intervals (bootstrap by run plus residual noise) describe how well the
law is pinned down by the runs it saw. They say nothing about how wrong the *law* is when
it extrapolates: on Gadre et al. the FLP 90% intervals covered 46% of the held-out models.
:class:`IntervalCalibrator` learns how much wider the intervals must be, from an internal
backtest on the user's own runs (see :mod:`mixopt.surrogate.select`: leave the largest
size(s) out, predict them), as a function of the **extrapolation distance** ``d`` (by
default the number of decades of compute beyond the largest fitted run,
:func:`extrapolation_distance`).

Method (split-conformal, normalised by the model's own interval):

1. For every held-out point, the *normalised score* is the error in units of the model's
   own half-interval on the side of the error:
   ``z = |actual - mean| / (upper - mean)`` if ``actual >= mean`` else ``/ (mean - lower)``.
   A calibrated model at its reference level has ``P(z <= 1) = level``.
2. The score is allowed to grow with distance: ``z(d) = q · (1 + g·d)``. For every growth
   ``g`` of a small grid the conformal quantile ``q`` of ``z / (1 + g·d)`` is computed
   (the ``ceil((n+1)·level)``-th smallest value) and the pinball loss of ``q·(1 + g·d)``
   at ``level`` is evaluated; the smallest ``g`` within 2% of the best loss is kept (a
   flat growth when the data cannot tell).
   With fewer points than a finite conformal rank needs (``n < level/(1-level)``, 9 at
   90%), the points first have to show that the model's own interval is too narrow beyond
   noise (:func:`too_narrow`): if its errors were Gaussian and the interval calibrated,
   ``u = Φ⁻¹((1+level)/2)·z`` would be ``|N(0, 1)|`` and ``Σu²`` chi-square with ``n``
   degrees of freedom; only a sum beyond that law's upper ``1 - level`` tail (the interval's
   own miss rate) widens. Then ``q`` is the largest score and never below 1 (so few points
   cannot shrink intervals); otherwise the factor is 1 (``q = 1``, ``g = 0``). The largest
   of 3-7 scores exceeds 1 by chance on 27-52% of calibrated intervals, and taking it
   whenever it did widened intervals that needed nothing (FLP's score group on the synthetic
   worlds, seeds 1-10: world seed 2's scores 0.09-1.36 were widened 1.36x; docs/figures.md).
3. A new interval at distance ``d`` scales each side of the model's reference-level
   interval by ``factor(d)`` (clipped to ``[min_factor, max_factor]``), so asymmetric
   (log-space) intervals stay asymmetric.

**Beyond the calibrated range.** The held-out points reach a largest distance ``r`` (the
*reach*: how far the internal backtests extrapolated, at least :data:`MIN_REACH`); the
target usually lies further (a fold that leaves the largest size out extrapolates one size
step, the target several). Inside the reach ``factor(d) = q·(1 + g·d)``. Beyond it the
factor keeps growing by the extrapolation rule::

    factor(d) = max(q·(1 + g·d), q·(1 + g·r)·(d / r)^gamma),   d > r,  gamma = EXTRAPOLATION_EXPONENT

the fitted linear trend, or (what the folds cannot show) the normalised error growing like
``(d / r)^0.5``, whichever is larger. The prior's reasoning: a law's extrapolation error
grows about linearly in log-compute (an error in an exponent), while the model's own
interval grows too, partly (bootstrap of that exponent) and partly not (residual noise):
the ratio of the two, the normalised score, then grows between ``d^0`` and ``d^1``; the
square root is the middle, and it is what the random-walk widening of
:meth:`~mixopt.surrogate.flpm.FLPM._calibrate` assumes. The factor stays continuous at
``r``. A target beyond the reach carries a flag (``Prediction.beyond_calibration``) because
its interval rests on this rule, not on measured coverage; :attr:`IntervalCalibrator.calibrated_ratio`
is ``10**r`` for decade distances.

Points can be calibrated per group (e.g. ``"loss"`` and ``"score"``): a group with at least
``min_points`` points gets its own ``(q, g)``, the others use the pooled fit. With fewer
than ``min_points`` points in all, the calibrator is the identity (factor 1) and says so in
``reason_``. A group kept ``own`` (FLP's ``"loss"``) never borrows the pool: without
``min_points`` points of its own its factor is 1. A held-out point whose own interval has zero
width on the error's side (:data:`DEGENERATE_HALF`; a fold fitted with as many parameters as
points) is dropped and counted in ``n_degenerate_``: its score is infinite and made the factor
the ``max_factor`` (on Gadre's 5-run protocol and on Pythia, loss intervals 6x-1e11x the loss).
The conformal quantile's guarantee assumes exchangeable points; held-out runs
of one fold are not (they share the fold's fit), so coverage is approximate, which is why
every backtest reports it.

Example::

    cal = IntervalCalibrator(level=0.9).fit(actual, mean, lower, upper, distance, groups)
    lo, hi = cal.apply(mean_new, lower_new, upper_new, distance_new, groups=groups_new)
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from typing import Any, Self

import numpy as np
import polars as pl

from mixopt._normal import ndtri
from mixopt.errors import ConfigError, NotFittedError, SchemaError

logger = logging.getLogger(__name__)

#: growth rates tried per decade of extrapolation distance
DEFAULT_GROWTH_GRID: tuple[float, ...] = (0.0, 0.25, 0.5, 1.0, 2.0, 4.0)
#: the pooled entry of :attr:`IntervalCalibrator.params_`
POOLED = "*"
#: growth exponent of the factor beyond the calibrated reach (module docstring)
EXTRAPOLATION_EXPONENT = 0.5
#: smallest reach (decades) the extrapolation rule scales from: a factor of 1.5 in compute
MIN_REACH = math.log10(1.5)
#: an own half-interval at most this share of ``max(|mean|, 1)`` is degenerate (zero width: a fold's fit
#: with as many parameters as points, or failed bootstraps) and says nothing about a multiplicative factor
DEGENERATE_HALF = 1e-9
_TINY = 1e-12


def extrapolation_distance(target: np.ndarray, fitted_max: float) -> np.ndarray:
    """Decades beyond the largest fitted value: ``max(0, log10(target / fitted_max))``.

    Args:
        target: ``(n,)`` compute (FLOPs) or any positive scale of the targets.
        fitted_max: the largest value of the same scale among the fitted runs.

    Returns:
        ``(n,)`` non-negative distances (0 inside the fitted range).
    """
    t = np.asarray(target, dtype=np.float64)
    if not (math.isfinite(fitted_max) and fitted_max > 0):
        raise SchemaError(f"fitted_max must be a finite positive number, got {fitted_max!r}.")
    with np.errstate(divide="ignore", invalid="ignore"):
        d = np.log10(t / float(fitted_max))
    return np.where(np.isfinite(d), np.maximum(d, 0.0), 0.0)


def normalised_scores(actual: np.ndarray, mean: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> np.ndarray:
    """Error in units of the half-interval on the error's side, ``(n,)`` (see module doc).

    A zero-width side gives ``inf`` for a non-zero error (no finite factor covers it) and
    0 for an exact hit.
    """
    a, m, lo, hi = (np.asarray(v, dtype=np.float64) for v in (actual, mean, lower, upper))
    err = a - m
    half = np.where(err >= 0, hi - m, m - lo)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.abs(err) / np.maximum(half, 0.0)
    z = np.where(np.abs(err) <= _TINY * np.maximum(np.abs(a), 1.0), 0.0, z)
    return np.where(np.isnan(z), np.inf, z)


def conformal_quantile(scores: np.ndarray, level: float) -> float:
    """Split-conformal quantile: the ``ceil((n+1)·level)``-th smallest score (the largest
    score when that rank exceeds ``n``). NaN for no scores."""
    s = np.sort(np.asarray(scores, dtype=np.float64))
    n = s.size
    if n == 0:
        return math.nan
    k = min(n, max(1, math.ceil((n + 1) * level)))
    return float(s[k - 1])


def _chi2_sf(x: float, dof: int) -> float:
    """``P(χ²_dof >= x)`` for an integer ``dof >= 1`` (closed forms; scipy's ``chi2.sf`` to 1e-12)."""
    if not x > 0:
        return 1.0
    if not math.isfinite(x):
        return 0.0
    h = x / 2.0
    if dof % 2 == 0:  # Poisson sum
        term = total = 1.0
        for k in range(1, dof // 2):
            term *= h / k
            total += term
        return min(1.0, math.exp(-h) * total)
    r = math.sqrt(x)
    total = math.erfc(r / math.sqrt(2.0))
    term = r * math.sqrt(2.0 / math.pi) * math.exp(-h)
    for k in range(1, (dof - 1) // 2 + 1):
        total += term
        term *= x / (2 * k + 1)
    return min(1.0, total)


def too_narrow(scores: np.ndarray, level: float) -> bool:
    """True when normalised scores (:func:`normalised_scores`) show the intervals too narrow beyond noise.

    Under a calibrated Gaussian interval ``u = Φ⁻¹((1+level)/2)·z`` is ``|N(0, 1)|``, so ``Σu²`` is
    chi-square with ``n`` degrees of freedom; the intervals are too narrow when that sum lies in the
    law's upper ``1 - level`` tail (the test errs as often as the interval misses). It counts how far
    each point misses, not only whether: one point 3 half-widths out among 5 is enough, one 1.3 half-widths
    out among points well inside is not. An infinite score (a miss no finite factor covers) is too narrow;
    no scores are not."""
    z = np.asarray(scores, dtype=np.float64)
    if z.size == 0:
        return False
    if not np.all(np.isfinite(z)):
        return True
    c = float(ndtri(0.5 + 0.5 * float(level)))
    return _chi2_sf(float(np.sum((c * z) ** 2)), int(z.size)) < 1.0 - float(level)


def _pinball(z: np.ndarray, q: np.ndarray, level: float) -> float:
    r = z - q
    return float(np.mean(np.maximum(level * r, (level - 1.0) * r)))


def _fit_growth(z: np.ndarray, d: np.ndarray, level: float, grid: Sequence[float], q_min: float = 0.0) -> tuple[float, float, float]:
    """Best ``(q, g, pinball)`` for ``z ≈ q·(1 + g·d)`` at ``level`` (finite ``z`` only), ``q >= q_min``.

    The floor is part of the fit: each growth is scored with the ``q`` it would be used with. Raising
    ``q`` to the floor after choosing ``g`` kept a growth fitted to a smaller ``q``, and the factor then
    exceeded every point's need (3 loss points with scores 0.5-0.9 gave factors up to 2.3, not 1)."""
    ok = np.isfinite(z)
    z_f, d_f = np.where(ok, z, np.nanmax(np.where(ok, z, np.nan)) if ok.any() else 1.0), d
    results = []
    for g in grid:
        grow = 1.0 + g * d_f
        q = max(conformal_quantile(z / grow, level), q_min)  # inf scores stay inf (kept by the quantile)
        pin = _pinball(z_f, (q if math.isfinite(q) else np.nanmax(z_f / grow)) * grow, level)
        results.append((q, float(g), pin))
    best = min(r[2] for r in results)
    for q, g, pin in results:  # smallest growth within 2% of the best loss
        if pin <= best * 1.02 + 1e-15:
            return q, g, pin
    return results[0]  # pragma: no cover - the loop always returns


class IntervalCalibrator:
    """Scale a surrogate's intervals so that they cover at their nominal level when extrapolating.

    sklearn-style: ``__init__`` stores settings, :meth:`fit` learns, state ends in ``_``.

    Args:
        level: the reference level of the intervals given to :meth:`fit` (and to
            :meth:`apply`), e.g. 0.9.
        min_points: fewest points for a fit (pooled) or for a group's own fit.
        growth_grid: growth rates ``g`` (per unit of distance) tried.
        min_factor: smallest factor (intervals never shrink below this fraction).
        max_factor: largest factor (an interval that misses by 1000x is not repaired by
            a 1000x factor; coverage is then reported as missed).
        apart: groups kept out of the pooled fit (they get their own fit when they have
            ``min_points`` points): e.g. ``"weak"``, the rows of benchmarks predicted on weak
            evidence, whose large misses would otherwise widen every group that falls back
            to the pool.
        own: groups that never borrow the pooled fit: without ``min_points`` points of their
            own they keep the model's own interval (factor 1). E.g. ``"loss"``: its errors are
            not those of the scores that dominate the pool (on Gadre's 5-run protocol the pool's
            score misses made the loss intervals 13-100x the model's own).

    Attributes (after fit):
        params_: ``{group: (q, g)}``; the pooled fit under :data:`POOLED` (absent when
            fewer than ``min_points`` points in all).
        table_: polars frame, one row per group (and the pool): ``group``, ``n``, ``q``,
            ``g``, ``coverage_before`` (share with ``z <= 1``), ``coverage_after`` (share
            with ``z <= factor(d)``, in-sample).
        reason_: why the calibrator is the identity, or "".
        n_points_: points used.
        n_degenerate_: ``{group: count}`` of points dropped because the model's own interval had
            zero width on the error's side (:data:`DEGENERATE_HALF`): no factor of a zero
            interval covers anything, and an infinite score would make the factor infinite.
    """

    def __init__(
        self,
        level: float = 0.9,
        *,
        min_points: int = 5,
        growth_grid: Sequence[float] = DEFAULT_GROWTH_GRID,
        min_factor: float = 0.25,
        max_factor: float = 100.0,
        apart: Sequence[str] = (),
        own: Sequence[str] = (),
    ) -> None:
        self.level = level
        self.apart = tuple(apart)
        self.own = tuple(own)
        self.min_points = min_points
        self.growth_grid = tuple(growth_grid)
        self.min_factor = min_factor
        self.max_factor = max_factor

    def _check(self) -> None:
        problems = []
        if not (isinstance(self.level, (int, float)) and 0 < self.level < 1):
            problems.append(f"level must be in (0, 1), got {self.level!r}")
        if not isinstance(self.min_points, (int, np.integer)) or self.min_points < 1:
            problems.append(f"min_points must be an integer >= 1, got {self.min_points!r}")
        if not self.growth_grid or any(not (math.isfinite(g) and g >= 0) for g in self.growth_grid):
            problems.append(f"growth_grid must be non-empty and finite >= 0, got {self.growth_grid!r}")
        if not (0 < self.min_factor <= 1 <= self.max_factor):
            problems.append(f"need 0 < min_factor <= 1 <= max_factor, got {self.min_factor!r}, {self.max_factor!r}")
        if problems:
            raise ConfigError("Invalid IntervalCalibrator settings: " + "; ".join(problems) + ".")

    def fit(
        self,
        actual: np.ndarray,
        mean: np.ndarray,
        lower: np.ndarray,
        upper: np.ndarray,
        distance: np.ndarray,
        groups: Sequence[str] | np.ndarray | None = None,
    ) -> Self:
        """Learn the factors from held-out points of an internal backtest.

        Args:
            actual, mean, lower, upper: ``(n,)`` observed values, point predictions and
                the model's own ``level`` interval. Rows with a non-finite value are dropped.
            distance: ``(n,)`` extrapolation distance of each point (>= 0).
            groups: ``(n,)`` group label of each point (e.g. ``"loss"``/``"score"``) or None.

        Returns:
            self.
        """
        self._check()
        arrs = [np.asarray(v, dtype=np.float64).reshape(-1) for v in (actual, mean, lower, upper, distance)]
        n = arrs[0].shape[0]
        if any(a.shape != (n,) for a in arrs):
            raise SchemaError(f"actual, mean, lower, upper and distance must all have shape (n,), got {[a.shape for a in arrs]}.")
        g = np.full(n, POOLED, dtype=object) if groups is None else np.asarray(groups, dtype=object).reshape(-1)
        if g.shape != (n,):
            raise SchemaError(f"groups must have shape ({n},), got {g.shape}.")
        ok = np.all([np.isfinite(a) for a in arrs], axis=0)
        a, m, lo, hi, d = (x[ok] for x in arrs)
        g = g[ok]
        if np.any(d < 0):
            raise SchemaError("distance must be >= 0 (decades beyond the fitted range); got negative values.")
        z = normalised_scores(a, m, lo, hi)
        half = np.where(a - m >= 0, hi - m, m - lo)
        degenerate = half <= DEGENERATE_HALF * np.maximum(np.abs(m), 1.0)
        self.n_degenerate_ = {str(k): int(np.sum(degenerate & (g == k))) for k in sorted({str(v) for v in g[degenerate]})}
        if degenerate.any():
            logger.info("interval calibration: %d held-out point(s) with a zero-width own interval dropped (%s)", int(degenerate.sum()), self.n_degenerate_)
        z, d, g = z[~degenerate], d[~degenerate], g[~degenerate]
        self.scores_, self.distance_, self.groups_ = z, d, g
        self.n_points_ = int(z.size)
        self.params_: dict[str, tuple[float, float]] = {}
        rows = []
        if z.size < self.min_points:
            self.reason_ = f"identity: {z.size} held-out point(s) from the internal backtest, need >= {self.min_points} to calibrate; intervals are the model's own"
            logger.info("interval calibration: %s", self.reason_)
        else:
            self.reason_ = ""
            keys = [POOLED] + sorted({str(k) for k in g.tolist()} - {POOLED})
            for key in keys:
                sel = self._in_group(g, key)
                if sel.sum() < self.min_points:
                    continue
                # too few points for a finite conformal rank: widen only when they show the interval too narrow
                # beyond noise, then by the largest miss; never shrink (q >= 1)
                few = math.ceil((sel.sum() + 1) * float(self.level)) > sel.sum()
                if few and not too_narrow(z[sel], float(self.level)):
                    q, gr = 1.0, 0.0
                else:
                    q, gr, _ = _fit_growth(z[sel], d[sel], float(self.level), self.growth_grid, q_min=1.0 if few else 0.0)
                self.params_[key] = (q, gr)
                fac = self._factor_from(q, gr, d[sel])
                rows.append({"group": key, "n": int(sel.sum()), "q": q, "g": gr, "coverage_before": float(np.mean(z[sel] <= 1.0)), "coverage_after": float(np.mean(z[sel] <= fac))})
        self.table_ = pl.DataFrame(rows, schema={"group": pl.String, "n": pl.Int64, "q": pl.Float64, "g": pl.Float64, "coverage_before": pl.Float64, "coverage_after": pl.Float64}, orient="row")
        return self

    def _in_group(self, labels: np.ndarray, key: str) -> np.ndarray:
        """``(n,)`` bool: the points of group ``key`` (the pool: every group not kept ``apart``)."""
        if key == POOLED:
            return ~np.isin(labels, list(getattr(self, "apart", ())))
        return labels == key

    def _factor_from(self, q: float, g: float, d: np.ndarray, reach: float = math.inf) -> np.ndarray:
        if not math.isfinite(q):
            q = self.max_factor
        d = np.asarray(d, dtype=np.float64)
        f = q * (1.0 + g * d)
        if math.isfinite(reach):
            r = max(float(reach), MIN_REACH)
            beyond = d > r
            if beyond.any():
                prior = q * (1.0 + g * r) * (d[beyond] / r) ** EXTRAPOLATION_EXPONENT
                f = f.copy()
                f[beyond] = np.maximum(f[beyond], prior)
        return np.clip(f, self.min_factor, self.max_factor)

    def reach(self, group: str | None = None) -> float:
        """Largest distance among the calibration points of ``group`` (pooled when the group
        has no fit of its own or is None); NaN for the identity calibrator."""
        self._check_fitted()
        if not self.params_ or not self.distance_.size:
            return math.nan
        key = group if group in self.params_ else POOLED
        use = self._in_group(self.groups_, key)
        return float(np.max(self.distance_[use])) if use.any() else float(np.max(self.distance_))

    def _check_fitted(self) -> None:
        if not hasattr(self, "params_"):
            raise NotFittedError("This IntervalCalibrator is not fitted yet; call fit(...) first.")

    @property
    def calibrated_ratio(self) -> float | None:
        """The largest compute ratio the calibration points reached (``10**max(distance)``
        for decade distances), or None for the identity calibrator."""
        self._check_fitted()
        if not self.params_ or not self.distance_.size:
            return None
        return float(10.0 ** float(np.max(self.distance_)))

    @property
    def is_identity(self) -> bool:
        """True when there was too little data to calibrate (factor 1 everywhere)."""
        self._check_fitted()
        return not self.params_

    def factor(self, distance: np.ndarray, groups: Sequence[str] | np.ndarray | str | None = None, level: float | None = None) -> np.ndarray:
        """Multiplier of the reference-level half-intervals, ``(n,)``.

        Args:
            distance: ``(n,)`` extrapolation distances.
            groups: ``(n,)`` labels, one label for all, or None (pooled).
            level: wanted coverage; None = the reference level. Another level uses the
                conformal quantile of the stored scores at that level with the fitted growth.
        """
        self._check_fitted()
        d = np.atleast_1d(np.asarray(distance, dtype=np.float64))
        out = np.ones(d.shape)
        if not self.params_:
            return out
        lev = float(self.level if level is None else level)
        if not 0 < lev < 1:
            raise ConfigError(f"level must be in (0, 1), got {level}.")
        if groups is None or isinstance(groups, str):  # one label for every row
            key = POOLED if groups is None else groups
            if self._borrows_nothing(key):
                return out
            q, g, reach = self._group_factor(key, level, lev)
            return self._factor_from(q, g, d, reach)
        labels = np.asarray(groups, dtype=object).reshape(d.shape)
        for key in set(labels.tolist()):
            sel = labels == key
            if self._borrows_nothing(key):
                continue
            q, g, reach = self._group_factor(key, level, lev)
            out[sel] = self._factor_from(q, g, d[sel], reach)
        return out

    def _borrows_nothing(self, key: str) -> bool:
        """True for a group kept ``own`` that has no fit of its own (its factor is 1)."""
        return key in getattr(self, "own", ()) and key not in self.params_

    def _group_factor(self, key: str, level: float | None, lev: float) -> tuple[float, float, float]:
        """``(q, g, reach)`` of a group at a level; they depend on the fit only, so they are kept."""
        cache = self.__dict__.get("_factor_cache")
        if cache is None or cache[0] is not self.params_:
            cache = self.__dict__["_factor_cache"] = (self.params_, {})
        hit = cache[1].get((key, level, lev))
        if hit is None:
            k = key if key in self.params_ else POOLED
            q, g = self.params_[k]
            if level is not None and lev != self.level:
                use = self._in_group(self.groups_, k)
                q = conformal_quantile(self.scores_[use] / (1.0 + g * self.distance_[use]), lev)
            hit = cache[1][(key, level, lev)] = (q, g, self.reach(k))
        return hit

    def apply(
        self,
        mean: np.ndarray,
        lower: np.ndarray,
        upper: np.ndarray,
        distance: np.ndarray,
        *,
        groups: Sequence[str] | np.ndarray | str | None = None,
        level: float | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Calibrated interval: each side of the reference-level interval times :meth:`factor`.

        Args:
            mean, lower, upper: ``(n,)`` point predictions and the model's own interval at
                the reference ``level`` the calibrator was fitted at.
            distance: ``(n,)``; groups, level: as in :meth:`factor`.

        Returns:
            ``(lower, upper)``, each ``(n,)``.
        """
        m = np.asarray(mean, dtype=np.float64)
        f = self.factor(distance, groups, level).reshape(m.shape) if m.size else np.ones(m.shape)
        lo = m - f * (m - np.asarray(lower, dtype=np.float64))
        hi = m + f * (np.asarray(upper, dtype=np.float64) - m)
        return lo, hi

    # -- model files -------------------------------------------------------------------------
    def state(self) -> dict[str, Any]:
        """JSON-able fitted state (settings, parameters and the stored scores)."""
        self._check_fitted()
        return {
            "settings": {
                "level": self.level,
                "min_points": self.min_points,
                "growth_grid": list(self.growth_grid),
                "min_factor": self.min_factor,
                "max_factor": self.max_factor,
                "apart": list(self.apart),
                "own": list(self.own),
            },
            "n_degenerate": dict(self.n_degenerate_),
            "params": {k: [float(q), float(g)] for k, (q, g) in self.params_.items()},
            "scores": [float(v) if math.isfinite(v) else 1e300 for v in self.scores_.tolist()],
            "distance": self.distance_.tolist(),
            "groups": [str(v) for v in self.groups_.tolist()],
            "reason": self.reason_,
            "table": self.table_.to_dicts(),
        }

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> IntervalCalibrator:
        """Rebuild a fitted calibrator from :meth:`state`."""
        s = dict(state["settings"])
        cal = cls(
            float(s["level"]),
            min_points=int(s["min_points"]),
            growth_grid=tuple(s["growth_grid"]),
            min_factor=float(s["min_factor"]),
            max_factor=float(s["max_factor"]),
            apart=tuple(s.get("apart", ())),
            own=tuple(s.get("own", ())),
        )
        cal.n_degenerate_ = {str(k): int(v) for k, v in dict(state.get("n_degenerate", {})).items()}
        cal.params_ = {k: (float(v[0]), float(v[1])) for k, v in dict(state["params"]).items()}
        sc = np.asarray(state["scores"], dtype=np.float64)
        cal.scores_ = np.where(sc >= 1e300, np.inf, sc)
        cal.distance_ = np.asarray(state["distance"], dtype=np.float64)
        cal.groups_ = np.asarray(state["groups"], dtype=object)
        cal.n_points_ = int(cal.scores_.size)
        cal.reason_ = str(state.get("reason", ""))
        rows = list(state.get("table", []))
        cal.table_ = pl.DataFrame(rows, schema={"group": pl.String, "n": pl.Int64, "q": pl.Float64, "g": pl.Float64, "coverage_before": pl.Float64, "coverage_after": pl.Float64}, orient="row")
        return cal

    def __repr__(self) -> str:
        return (
            f"IntervalCalibrator(level={self.level!r}, min_points={self.min_points!r}, growth_grid={self.growth_grid!r}, "
            f"min_factor={self.min_factor!r}, max_factor={self.max_factor!r}, apart={self.apart!r}, own={self.own!r})"
        )


__all__ = [
    "DEFAULT_GROWTH_GRID",
    "EXTRAPOLATION_EXPONENT",
    "MIN_REACH",
    "POOLED",
    "IntervalCalibrator",
    "conformal_quantile",
    "extrapolation_distance",
    "normalised_scores",
    "too_narrow",
]
