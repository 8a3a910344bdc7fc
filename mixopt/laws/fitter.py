"""Fitting any :class:`~mixopt.laws.base.Law`: :class:`LawFitter` and its helpers.

Practice follows Epoch's re-analysis of Chinchilla (Besiroglu et al. 2024):

* residuals in log space for laws that say so (``log y - log f(x; theta)``), else linear;
* a Huber loss (``huber_delta`` in residual units; 1e-3 in log space is Epoch's choice) or
  plain least squares;
* multi-start from a grid of starting points (a seeded, *nested* subsample when the grid
  is large, so more starts are never worse), every start recorded in ``starts_``. Laws
  with an analytic Jacobian are solved as the (robust) least-squares problems they are:
  one batched projected Levenberg-Marquardt run over all starts at once
  (:mod:`mixopt.laws.solvers`: Gauss-Newton with Huber IRLS weights, bounds respected),
  which stops starts that cannot win early; laws without one use L-BFGS-B per start;
* every budget counts iterations, never seconds: the same data, settings and seed give
  the same fit on any machine, at any load and any thread count;
* laws that are linear in their parameters in residual space (:meth:`Law.design`) are solved
  in closed form (weighted least squares; Huber by iteratively reweighted least squares,
  which converges to the exact Huber minimiser because the problem is convex);
* bootstrap **by run**: whole groups (runs) are resampled with replacement and every draw is
  refitted, warm-started from the best fit. A draw is represented as integer row weights, so
  no data is copied and linear laws fit all draws in one batched solve.

Randomness comes only from ``np.random.default_rng(seed)`` (never the global RNG).
"""

from __future__ import annotations

import itertools
import logging
import math
import time
from collections.abc import Sequence
from typing import Any, Literal, Self

import numpy as np
import polars as pl

from mixopt._params import init_params
from mixopt.errors import ConfigError, FitError, NotFittedError, SchemaError
from mixopt.laws.base import Law
from mixopt.laws.solvers import batched_lm
from mixopt.laws.uncertainty import GroupResample, combine_interval, predictive_std

logger = logging.getLogger(__name__)

LossName = Literal["huber", "squared"]

#: starts used when ``n_starts`` is None and the grid is larger than this
DEFAULT_MAX_STARTS = 64
#: MAD -> standard deviation factor for normal residuals
_MAD_TO_SD = 1.482602218505602
#: objective value returned where the law is undefined (non-positive or non-finite output)
_PENALTY = 1e30
#: condition number above which a (weighted) least-squares system counts as singular
_MAX_COND = 1e12
#: IRLS stopping rule for the Huber closed form: max |Δθ| <= tol·(1 + |θ|)
_IRLS_TOL = 1e-10
_IRLS_MAXITER = 500
#: Levenberg-Marquardt iterations of a bootstrap refit (warm-started at the best fit)
BOOTSTRAP_MAXITER = 200
#: the multi-start solver checks every this many iterations for starts that cannot win
PRUNE_EVERY = 10
#: starts whose objectives differ by less than this (relative) are tied: the first one wins
TIE_RTOL = 1e-12


# -- the fitter ------------------------------------------------------------------------------
class LawFitter:
    """Fit a :class:`~mixopt.laws.base.Law` to data: robust, multi-start, bootstrapped.

    sklearn-style: ``__init__`` stores settings only; :meth:`fit` validates and returns
    ``self``; fitted state ends in ``_``; prediction before ``fit`` raises
    :class:`~mixopt.errors.NotFittedError`.

    Args:
        law: the law to fit.
        loss: ``"huber"`` (robust; Epoch's choice) or ``"squared"`` (least squares).
        huber_delta: Huber threshold in residual units (log units for log-space laws).
        n_starts: starting points of the multi-start fit; None = the whole grid up to
            :data:`DEFAULT_MAX_STARTS`. Starts are a seeded permutation of the grid, so
            ``n_starts=k+1`` tries every start of ``n_starts=k`` and one more.
        n_bootstrap: bootstrap draws (by group) after the main fit; 0 for none.
        seed: seeds ``np.random.default_rng`` for the start order and the draws.
        maxiter: iteration cap per start (Levenberg-Marquardt iterations for laws with a
            Jacobian, L-BFGS-B iterations otherwise). There is no time budget: fits are
            bounded by iterations only, so they do not depend on the machine.
        at_iteration_cap: what to do when every start stops at ``maxiter`` without
            convergence: ``"raise"`` (default) a FitError, or
            ``"best"``: keep the lowest-objective start and log a warning. A caller that
            judges the fit by its own held-out backtest (FLP-M's ``auto``) uses ``"best"``:
            high-dimensional mixture laws (17 sources, 20 parameters) crawl along flat
            valleys near their optimum, where tight tolerances may not be met.

    Attributes (after fit):
        params_: ``(p,)`` best parameters (names in ``law.param_names``).
        objective_: weighted mean loss at ``params_`` (``Σ w·ρ(r) / Σ w``).
        starts_: polars frame, one row per start: ``start``, ``method`` (``"lm"``,
            ``"lbfgsb"``, ``"closed_form"`` or ``"irls"``), ``init:<name>`` (the grid
            point), ``<name>`` (final), ``objective``, ``converged`` and ``message`` (from
            the solver; a start stopped early because it could not win says so),
            ``n_iter`` (solver iterations; IRLS iterations for ``"irls"``).
        bootstrap_params_: ``(B, p)``; a row is NaN where that draw could not be fitted
            (e.g. it resampled fewer distinct inputs than parameters). ``(0, p)`` when no
            bootstrap was run.
        bootstrap_failed_: number of NaN rows in ``bootstrap_params_``.
        residual_scale_: robust residual sd at ``params_`` (1.4826·MAD, times
            ``sqrt(n / (n - p))``), in the law's residual space (log units for log laws).
        n_samples_: rows with positive weight; ``n_groups_``: distinct groups among them.
        fit_seconds_: wall time of ``fit`` (reported only; nothing depends on it).
    """

    def __init__(
        self,
        law: Law,
        *,
        loss: LossName = "huber",
        huber_delta: float = 1e-3,
        n_starts: int | None = None,
        n_bootstrap: int = 0,
        seed: int | None = 0,
        maxiter: int = 2000,
        at_iteration_cap: str = "raise",
    ) -> None:
        self.law = law
        self.loss = loss
        self.huber_delta = huber_delta
        self.n_starts = n_starts
        self.n_bootstrap = n_bootstrap
        self.seed = seed
        self.maxiter = maxiter
        self.at_iteration_cap = at_iteration_cap

    def get_params(self) -> dict[str, Any]:
        """Settings given to ``__init__``."""
        return init_params(self)

    def __repr__(self) -> str:
        return "LawFitter(" + ", ".join(f"{k}={v!r}" for k, v in self.get_params().items()) + ")"

    # -- validation ------------------------------------------------------------------------
    def _check_settings(self) -> None:
        problems = []
        if not isinstance(self.law, Law):
            problems.append(f"law must be a mixopt.laws.Law instance, got {type(self.law).__name__}")
        if self.loss not in ("huber", "squared"):
            problems.append(f"loss must be 'huber' or 'squared', got {self.loss!r}")
        try:
            d = float(self.huber_delta)
            if not math.isfinite(d) or d <= 0:
                raise ValueError
        except (TypeError, ValueError):
            problems.append(f"huber_delta must be finite and > 0, got {self.huber_delta!r} (1e-3 in log space is typical)")
        if self.n_starts is not None and (not isinstance(self.n_starts, (int, np.integer)) or self.n_starts < 1):
            problems.append(f"n_starts must be None or an integer >= 1, got {self.n_starts!r}")
        if not isinstance(self.n_bootstrap, (int, np.integer)) or self.n_bootstrap < 0:
            problems.append(f"n_bootstrap must be an integer >= 0, got {self.n_bootstrap!r}")
        if self.at_iteration_cap not in ("raise", "best"):
            problems.append(f"at_iteration_cap must be 'raise' or 'best', got {self.at_iteration_cap!r}")
        if not isinstance(self.maxiter, (int, np.integer)) or self.maxiter < 1:
            problems.append(f"maxiter must be an integer >= 1, got {self.maxiter!r}")
        if self.seed is not None and not isinstance(self.seed, (int, np.integer)):
            problems.append(f"seed must be an int or None, got {self.seed!r}")
        if problems:
            raise ConfigError("Invalid LawFitter settings: " + "; ".join(problems) + ".")

    def _as_inputs(self, x: np.ndarray, what: str = "x") -> np.ndarray:
        law = self.law
        a = np.asarray(x, dtype=np.float64)
        if a.ndim == 1 and law.n_inputs == 1:
            a = a[:, None]
        if a.ndim != 2 or a.shape[1] != law.n_inputs:
            raise SchemaError(
                f"{what} must have shape (n, {law.n_inputs}) with columns {list(law.inputs)} for law "
                f"{law.name!r}, got shape {np.shape(x)}."
            )
        return a

    def _validate(
        self, x: np.ndarray, y: np.ndarray, groups: np.ndarray | None, weights: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        law = self.law
        x = self._as_inputs(x)
        y = np.asarray(y, dtype=np.float64).reshape(-1) if np.ndim(y) <= 1 else np.asarray(y, dtype=np.float64)
        n = x.shape[0]
        if y.shape != (n,):
            raise SchemaError(f"y must have shape (n,) = ({n},) to match x, got {np.shape(y)}.")
        if groups is None:
            g = np.arange(n)
        else:
            g = np.asarray(groups)
            if g.shape != (n,):
                raise SchemaError(f"groups must have shape (n,) = ({n},) (one run id per row), got {g.shape}.")
        if weights is None:
            w = np.ones(n)
        else:
            w = np.asarray(weights, dtype=np.float64)
            if w.shape != (n,):
                raise SchemaError(f"weights must have shape (n,) = ({n},), got {w.shape}.")
            if not np.all(np.isfinite(w)) or np.any(w < 0):
                raise SchemaError("weights must be finite and >= 0; fix or drop the offending rows.")
        problems = []
        bad_x = ~np.isfinite(x).all(axis=1)
        if bad_x.any():
            problems.append(f"inputs must be finite, but got NaN/inf in {int(bad_x.sum())} row(s) (e.g. row "
                            f"{int(np.flatnonzero(bad_x)[0])}); drop those rows")
        bad_y = ~np.isfinite(y)
        if bad_y.any():
            problems.append(f"targets must be finite, but got {int(bad_y.sum())} NaN/inf target(s) (e.g. row "
                            f"{int(np.flatnonzero(bad_y)[0])}); drop those rows")
        if law.positive_inputs and np.any(x[~bad_x] <= 0):
            problems.append(f"law {law.name!r} takes logs of its inputs {list(law.inputs)}, which must be > 0; "
                            f"got min {float(np.min(x[~bad_x])):.4g}")
        if law.log_space and np.any(y[~bad_y] <= 0):
            problems.append(
                f"law {law.name!r} is fitted on log targets, which must be > 0; got {int(np.sum(y[~bad_y] <= 0))} "
                f"value(s) <= 0 (min {float(np.min(y[~bad_y])):.4g}); drop them or use a linear-space law"
            )
        if problems:
            raise FitError(f"Cannot fit law {law.name!r}: " + "; ".join(problems) + ".")
        use = w > 0
        n_eff = int(use.sum())
        p = law.n_params
        if n_eff < p:
            raise FitError(
                f"Cannot fit law {law.name!r}: a law with {p} parameters {list(law.param_names)} must be fitted on at "
                f"least {p} points with positive weight, but got only {n_eff}; provide more points (runs or "
                "checkpoints) or use a law with fewer parameters."
            )
        const = [law.inputs[j] for j in range(x.shape[1]) if np.ptp(x[use, j]) == 0]
        if const:
            raise FitError(
                f"Cannot fit law {law.name!r}: every input must vary across the points, but got input(s) {const} "
                f"constant ({x[use][0].tolist()}) over all {n_eff} points, so the law's dependence on them is not "
                "identifiable; use data that varies them (e.g. several model sizes or compute budgets)."
            )
        if x.shape[1] >= 2:
            z = np.log(x[use]) if law.positive_inputs else x[use]
            z = z - z.mean(axis=0)
            sv = np.linalg.svd(z / np.maximum(np.abs(z).max(axis=0), 1e-300), compute_uv=False)
            if sv[-1] <= 1e-8 * sv[0]:
                raise FitError(
                    f"Cannot fit law {law.name!r}: its inputs {list(law.inputs)} must vary independently, but got "
                    f"{'log-' if law.positive_inputs else ''}inputs that are collinear over the {n_eff} points (e.g. "
                    "every run trained at the same tokens per parameter), so the law cannot separate their effects; "
                    "add runs with other ratios or use a law of one input (e.g. compute only)."
                )
        distinct = np.unique(x[use], axis=0).shape[0]
        if distinct < p:
            raise FitError(
                f"Cannot fit law {law.name!r}: a law with {p} parameters must see at least {p} distinct inputs "
                f"{list(law.inputs)}, but the {n_eff} points have only {distinct} (points with equal inputs pin down "
                "one value); add more model sizes or compute budgets."
            )
        return x, y, g, w

    # -- objective -----------------------------------------------------------------------
    def _rho_psi(self, r: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if self.loss == "squared":
            return 0.5 * r * r, r
        d = float(self.huber_delta)
        a = np.abs(r)
        rho = np.where(a <= d, 0.5 * r * r, d * (a - 0.5 * d))
        return rho, np.clip(r, -d, d)

    def _scale(self) -> float:
        # divide the Huber objective by delta so it is O(|r|) and L-BFGS-B's tolerances bite
        return float(self.huber_delta) if self.loss == "huber" else 1.0

    def _make_objective(self, x: np.ndarray, y: np.ndarray, w: np.ndarray, analytic: bool):
        law = self.law
        log = law.log_space
        gy = np.log(y) if log else y
        norm = float(w.sum()) * self._scale()

        def fun(theta: np.ndarray) -> tuple[float, np.ndarray] | float:
            with np.errstate(all="ignore"):
                f = law.predict(x, theta)
                bad = not np.all(np.isfinite(f)) or (log and np.any(f <= 0))
                if bad:
                    return (_PENALTY, np.zeros_like(theta)) if analytic else _PENALTY
                r = gy - (np.log(f) if log else f)
                rho, psi = self._rho_psi(r)
                val = float(np.dot(w, rho)) / norm
                if not analytic:
                    return val
                jac = law.jacobian(x, theta)
                c = w * psi / (f if log else 1.0)
                grad = -(c @ jac) / norm
                if not np.all(np.isfinite(grad)):
                    return _PENALTY, np.zeros_like(theta)
                return val, grad

        return fun

    def objective_at(
        self, theta: np.ndarray, x: np.ndarray, y: np.ndarray, weights: np.ndarray | None = None
    ) -> tuple[float, np.ndarray]:
        """The fit's objective and its gradient at ``theta``, as the optimiser sees them.

        The optimiser minimises ``Σ w·ρ(r) / (Σ w · s)`` with ``s = huber_delta`` for the
        Huber loss (so the objective is O(|r|)) and ``s = 1`` for squared loss.

        Args:
            theta: ``(p,)`` parameters; x: ``(n, q)``; y: ``(n,)``; weights: ``(n,)`` or None.

        Returns:
            ``(value, gradient (p,))``; the gradient is analytic when the law has a
            Jacobian, else by central differences.
        """
        self._check_settings()
        x = self._as_inputs(x)
        y = np.asarray(y, dtype=np.float64)
        w = np.ones(x.shape[0]) if weights is None else np.asarray(weights, dtype=np.float64)
        theta = np.asarray(theta, dtype=np.float64)
        if self.law.jacobian(x, theta) is not None:
            val, grad = self._make_objective(x, y, w, True)(theta)
            return float(val), np.asarray(grad)
        fun = self._make_objective(x, y, w, False)
        h = 1e-6 * np.maximum(1.0, np.abs(theta))
        steps = np.eye(theta.size) * h[:, None]
        grad = np.array([(fun(theta + d) - fun(theta - d)) / (2 * h[i]) for i, d in enumerate(steps)])
        return float(fun(theta)), grad

    # -- starts --------------------------------------------------------------------------
    def _start_points(self, x: np.ndarray, y: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        law = self.law
        grid = law.start_grid(x, y)
        missing = [n for n in law.param_names if n not in grid]
        if missing:
            raise ConfigError(f"law {law.name!r}: start_grid() has no values for parameter(s) {missing}.")
        axes = [np.unique(np.asarray(grid[n], dtype=np.float64)) for n in law.param_names]
        lo, hi = law.bounds
        total = int(np.prod([a.size for a in axes]))
        k = min(total, DEFAULT_MAX_STARTS if self.n_starts is None else int(self.n_starts))
        order = rng.permutation(total)[:k]
        pts = np.array(list(itertools.product(*axes)), dtype=np.float64)[order] if total <= 200_000 else np.array(
            [[a[i] for a, i in zip(axes, np.unravel_index(j, [a.size for a in axes]), strict=True)] for j in order]
        )
        return np.clip(pts, lo, hi)

    # -- fit -------------------------------------------------------------------------------
    def fit(
        self,
        x: np.ndarray,
        y: np.ndarray,
        groups: np.ndarray | Sequence[Any] | None = None,
        weights: np.ndarray | None = None,
        *,
        resample: GroupResample | None = None,
        init: np.ndarray | None = None,
    ) -> Self:
        """Fit the law; returns self.

        Args:
            x: ``(n, q)`` inputs (``(n,)`` accepted for one-input laws), units of
                ``law.inputs``.
            y: ``(n,)`` targets (> 0 for log-space laws).
            groups: ``(n,)`` run id of every row; the bootstrap resamples whole groups.
                None: every row is its own group.
            weights: ``(n,)`` non-negative row weights (default 1).
            resample: a shared :class:`GroupResample` to use instead of drawing
                ``n_bootstrap`` draws here (e.g. FLP's joint draws over both stages). It
                must cover every group in ``groups``.
            init: ``(p,)`` or ``(k, p)`` warm starts tried first, before the grid (e.g. the
                same law fitted on more data, as FLP-M's ``auto`` does across its folds);
                clipped to the bounds. The grid starts still run (a warm start cannot make
                the fit worse), but the solver stops them early once the warm start is ahead.
                Ignored by laws solved in closed form.

        Raises:
            SchemaError: wrong shapes. FitError: degenerate data (NaN, too few points,
                constant inputs, non-positive targets of a log law) or every start failed;
                ``error.starts`` holds the per-start record.
        """
        t0 = time.perf_counter()
        self._check_settings()
        x, y, g, w = self._validate(x, y, groups, weights)
        law = self.law
        ss = np.random.SeedSequence(self.seed)
        start_seed, boot_seed = ss.spawn(2)

        design = law.design(x)
        if design is not None:
            theta, starts = self._fit_closed_form(x, y, w, design, np.random.default_rng(start_seed))
        else:
            grid = self._start_points(x, y, np.random.default_rng(start_seed))
            theta, starts = self._fit_multistart(x, y, w, self._with_init(grid, init))
        self.params_ = theta
        self.starts_ = starts
        obj_scaled = self._make_objective(x, y, w, False)(theta)
        self.objective_ = float(obj_scaled) * self._scale()

        # residual scale (rows with positive weight)
        use = w > 0
        with np.errstate(divide="ignore", invalid="ignore"):
            f = law.predict(x[use], theta)
            r = (np.log(y[use]) - np.log(f)) if law.log_space else (y[use] - f)
        n_eff, p = int(use.sum()), law.n_params
        mad = float(np.median(np.abs(r - np.median(r)))) * _MAD_TO_SD
        if n_eff > p:
            self.residual_scale_ = mad * math.sqrt(n_eff / (n_eff - p))
        else:
            self.residual_scale_ = 0.0
            logger.warning("law %r: %d points for %d parameters, residual scale cannot be estimated (set to 0).",
                           law.name, n_eff, p)
        self.n_samples_ = n_eff
        self.n_groups_ = int(np.unique(g[use]).shape[0])

        # bootstrap by group
        if resample is None and self.n_bootstrap > 0:
            resample = GroupResample.draw(g[use], int(self.n_bootstrap), np.random.default_rng(boot_seed))
        if resample is not None and resample.n_draws > 0:
            counts = resample.row_counts(g)
            self.bootstrap_params_ = self._bootstrap(x, y, w, counts, design)
        else:
            self.bootstrap_params_ = np.zeros((0, p))
        self.bootstrap_failed_ = int(np.sum(~np.isfinite(self.bootstrap_params_).all(axis=1)))
        if self.bootstrap_failed_:
            logger.info("law %r: %d of %d bootstrap draws could not be fitted (NaN rows).", law.name,
                        self.bootstrap_failed_, self.bootstrap_params_.shape[0])
        self.fit_seconds_ = time.perf_counter() - t0
        return self

    def _with_init(self, grid: np.ndarray, init: np.ndarray | None) -> np.ndarray:
        if init is None:
            return grid
        lo, hi = self.law.bounds
        warm = np.atleast_2d(np.asarray(init, dtype=np.float64))
        if warm.ndim != 2 or warm.shape[1] != self.law.n_params:
            raise SchemaError(f"init must have shape (p,) or (k, p) with p = {self.law.n_params} parameters "
                              f"{list(self.law.param_names)} of law {self.law.name!r}, got shape {np.shape(init)}.")
        warm = warm[np.all(np.isfinite(warm), axis=1)]
        return np.vstack([np.clip(warm, lo, hi), grid]) if warm.shape[0] else grid

    def _record(self, rows: list[dict[str, Any]]) -> pl.DataFrame:
        names = self.law.param_names
        schema: dict[str, Any] = {"start": pl.Int64, "method": pl.String}
        schema.update({f"init:{n}": pl.Float64 for n in names})
        schema.update({n: pl.Float64 for n in names})
        schema.update({"objective": pl.Float64, "converged": pl.Boolean, "message": pl.String, "n_iter": pl.Int64})
        return pl.DataFrame(rows, schema=schema, orient="row") if rows else pl.DataFrame(schema=schema)

    @staticmethod
    def _row(i: int, method: str, names: tuple[str, ...], init: np.ndarray, final: np.ndarray, obj: float,
             conv: bool, msg: str, nit: int) -> dict[str, Any]:
        row: dict[str, Any] = {"start": i, "method": method}
        row.update({f"init:{n}": float(v) for n, v in zip(names, init, strict=True)})
        row.update({n: float(v) for n, v in zip(names, final, strict=True)})
        row.update({"objective": obj, "converged": conv, "message": msg, "n_iter": nit})
        return row

    def _minimize(self, fun, x0: np.ndarray, analytic: bool):
        from scipy.optimize import minimize

        lo, hi = self.law.bounds
        bounds = [(None if not math.isfinite(a) else a, None if not math.isfinite(b) else b) for a, b in zip(lo, hi, strict=True)]
        return minimize(fun, x0, jac=analytic, method="L-BFGS-B", bounds=bounds,
                        options={"maxiter": int(self.maxiter), "ftol": 1e-14, "gtol": 1e-10, "maxcor": 10})

    def _data_text(self, x: np.ndarray, y: np.ndarray) -> str:
        return (f"{x.shape[0]} points, inputs {list(self.law.inputs)} in [{np.min(x, axis=0).tolist()}, "
                f"{np.max(x, axis=0).tolist()}], targets in [{float(np.min(y)):.4g}, {float(np.max(y)):.4g}]")

    def _fit_multistart(self, x: np.ndarray, y: np.ndarray, w: np.ndarray, starts: np.ndarray) -> tuple[np.ndarray, pl.DataFrame]:
        law = self.law
        if law.jacobian(x, starts[0]) is not None:
            rows, best, best_obj = self._multistart_lm(x, y, w, starts)
        else:
            rows, best, best_obj = self._multistart_lbfgsb(x, y, w, starts)
        table = self._record(rows)
        converged = bool(table["converged"].any()) if table.height else False
        capped = best is not None and not converged and int(table.sort("objective", nulls_last=True)["n_iter"][0]) >= int(self.maxiter)
        if capped and self.at_iteration_cap == "best":
            logger.info("law %r: every start reached the iteration cap of %d without convergence; keeping the best start "
                        "(objective %.6g) as asked (at_iteration_cap='best').", law.name, int(self.maxiter), best_obj)
        elif capped:
            raise FitError(
                f"Law {law.name!r} did not converge: every start reached the iteration cap of {self.maxiter} before any of "
                f"{len(starts)} starts converged, on {self._data_text(x, y)}. The data may not follow this law (e.g. a flat "
                "or non-monotone series); try a law with fewer parameters (e.g. a compute-only power law), more data, or a "
                "larger maxiter.",
                starts=table,
            )
        if best is None:
            raise FitError(
                f"Every one of {len(starts)} starts failed to fit law {law.name!r} (non-finite objective or error; first "
                f"message: {rows[0]['message'] if rows else 'none'}). The data may not follow this law or lie outside its "
                "bounds; inspect error.starts, try another law or more starts.",
                starts=table,
            )
        if not bool(table.filter(pl.col("objective") == table["objective"].min())["converged"].any()):
            logger.info("law %r: the best start stopped without convergence (%s).", law.name,
                        table.sort("objective", nulls_last=True)["message"][0])
        return best, table

    def _multistart_lm(self, x: np.ndarray, y: np.ndarray, w: np.ndarray,
                       starts: np.ndarray) -> tuple[list[dict[str, Any]], np.ndarray | None, float]:
        """All starts in one batched Levenberg-Marquardt run (:func:`mixopt.laws.solvers.batched_lm`)."""
        law = self.law
        gy = np.log(y) if law.log_space else y
        wb = np.broadcast_to(w, (starts.shape[0], w.shape[0]))
        res = batched_lm(law.evaluator(x), gy, wb, starts, law.bounds, self._rho_psi, log_space=law.log_space,
                         maxiter=int(self.maxiter), prune_every=PRUNE_EVERY if starts.shape[0] > 1 else 0)
        rows = []
        ok = np.all(np.isfinite(res.theta), axis=1) & np.isfinite(res.objective)
        for i, x0 in enumerate(starts):
            th, obj = res.theta[i], float(res.objective[i])
            rows.append(self._row(i, "lm", law.param_names, x0, th if ok[i] else np.full_like(x0, np.nan),
                                  obj if ok[i] else math.nan, bool(res.converged[i]) and bool(ok[i]),
                                  res.message(i, int(self.maxiter)), int(res.n_iter[i])))
        if not ok.any():
            return rows, None, math.inf
        # ties within rounding go to the first start, so the winner does not depend on the
        # order of the rows (a flat Huber optimum can be reached at points 1e-7 apart)
        low = float(np.min(res.objective[ok]))
        i = int(np.flatnonzero(ok & (res.objective <= low + TIE_RTOL * abs(low)))[0])
        return rows, res.theta[i].copy(), float(res.objective[i])

    def _multistart_lbfgsb(self, x: np.ndarray, y: np.ndarray, w: np.ndarray,
                           starts: np.ndarray) -> tuple[list[dict[str, Any]], np.ndarray | None, float]:
        """One L-BFGS-B fit per start (laws without an analytic Jacobian: finite differences)."""
        law = self.law
        fun = self._make_objective(x, y, w, False)
        scale = self._scale()
        rows = []
        best, best_obj = None, math.inf
        for i, x0 in enumerate(starts):
            try:
                res = self._minimize(fun, x0, False)
                th = np.asarray(res.x, dtype=np.float64)
                obj = float(res.fun) * scale
                ok = bool(np.all(np.isfinite(th))) and math.isfinite(obj) and obj < _PENALTY * scale
                rows.append(self._row(i, "lbfgsb", law.param_names, x0, th, obj if ok else math.nan, bool(res.success) and ok,
                                      str(res.message), int(res.nit)))
            except (ValueError, FloatingPointError, np.linalg.LinAlgError, OverflowError) as e:
                ok = False
                rows.append(self._row(i, "lbfgsb", law.param_names, x0, np.full_like(x0, np.nan), math.nan, False,
                                      f"{type(e).__name__}: {e}", 0))
            if ok and obj < best_obj:
                best, best_obj = th, obj
        return rows, best, best_obj

    def _fit_closed_form(self, x: np.ndarray, y: np.ndarray, w: np.ndarray, design: np.ndarray,
                         rng: np.random.Generator) -> tuple[np.ndarray, pl.DataFrame]:
        law = self.law
        z = np.log(y) if law.log_space else y
        theta0 = _wls(design, z, w[None, :])[0]
        if not np.all(np.isfinite(theta0)):
            raise FitError(
                f"Cannot fit law {law.name!r}: its least-squares system is singular (inputs carry no information "
                "on some parameter); provide inputs that vary.",
                starts=self._record([]),
            )
        if self.loss == "squared":
            theta, nit = theta0, 0
        else:
            theta, nit = _irls(design, z, w[None, :], float(self.huber_delta), theta0[None, :])
        theta = theta.reshape(-1)
        fun = self._make_objective(x, y, w, False)
        obj = float(fun(theta)) * self._scale()
        lo, hi = law.bounds
        tol = 1e-12 * (1 + np.abs(theta))
        if np.all(theta >= lo - tol) and np.all(theta <= hi + tol):
            theta = np.clip(theta, lo, hi)
            method = "closed_form" if self.loss == "squared" else "irls"
            row = self._row(0, method, law.param_names, theta0, theta, obj, True, "closed-form solution", nit)
            return theta, self._record([row])
        # the unconstrained optimum is outside the bounds: constrained fit from the grid
        logger.info("law %r: closed-form optimum %s is outside the bounds; refitting with L-BFGS-B.", law.name, theta)
        starts = np.vstack([np.clip(theta, lo, hi), self._start_points(x, y, rng)])
        return self._fit_multistart(x, y, w, starts)

    def _bootstrap(self, x: np.ndarray, y: np.ndarray, w: np.ndarray, counts: np.ndarray,
                   design: np.ndarray | None) -> np.ndarray:
        law = self.law
        p = law.n_params
        weights = counts * w[None, :]  # (B, n)
        n_draws = weights.shape[0]
        out = np.full((n_draws, p), np.nan)
        ok = _identifiable(x, weights, p)
        lo, hi = law.bounds
        if design is not None:
            z = np.log(y) if law.log_space else y
            th = np.full((n_draws, p), np.nan)
            if ok.any():
                th0 = _wls(design, z, weights[ok])
                if self.loss == "huber":
                    fin = np.all(np.isfinite(th0), axis=1)
                    th1 = th0.copy()
                    if fin.any():
                        th1[fin], _ = _irls(design, z, weights[ok][fin], float(self.huber_delta), th0[fin])
                    th0 = th1
                th[ok] = th0
            inside = np.all((th >= lo) & (th <= hi), axis=1)
            out[inside] = th[inside]
            redo = ok & ~inside & np.all(np.isfinite(th), axis=1)
            ok = redo  # refit out-of-bounds draws below with L-BFGS-B
        idx = np.flatnonzero(ok)
        if idx.size == 0:
            return out
        start = np.broadcast_to(self.params_, (idx.size, p)).copy()
        if design is not None:
            start = np.clip(th[idx], lo, hi)
        analytic = law.jacobian(x, self.params_) is not None
        done = np.zeros(idx.size, dtype=bool)
        if analytic:
            gy = np.log(y) if law.log_space else y
            res = batched_lm(law.evaluator(x), gy, weights[idx], start, law.bounds, self._rho_psi, log_space=law.log_space,
                             maxiter=BOOTSTRAP_MAXITER)
            # every accepted step lowers the objective from the warm start, so a finite
            # result is kept even when the iteration cap stopped it (a slow near-L1 crawl)
            done = np.all(np.isfinite(res.theta), axis=1) & np.isfinite(res.objective)
            out[idx[done]] = res.theta[done]
        # safety net: draws the batched solver could not fit get their own L-BFGS-B fit
        for j in np.flatnonzero(~done):
            b = idx[j]
            fun = self._make_objective(x, y, weights[b], analytic)
            try:
                res_b = self._minimize(fun, start[j], analytic)
            except (ValueError, FloatingPointError, np.linalg.LinAlgError, OverflowError):
                continue
            if np.all(np.isfinite(res_b.x)) and math.isfinite(res_b.fun) and res_b.fun < _PENALTY:
                out[b] = res_b.x
        return out

    # -- prediction --------------------------------------------------------------------------
    def _check_fitted(self) -> None:
        if not hasattr(self, "params_"):
            raise NotFittedError(f"This LawFitter({self.law!r}) is not fitted yet; call fit(x, y) before predicting.")

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Point prediction ``(n,)`` at ``x (n, q)`` with the best parameters."""
        self._check_fitted()
        return self.law.predict(self._as_inputs(x), self.params_)

    def predict_samples(self, x: np.ndarray) -> np.ndarray:
        """One prediction per bootstrap parameter vector: ``(B, n)`` (NaN rows for failed draws)."""
        self._check_fitted()
        x = self._as_inputs(x)
        if self.bootstrap_params_.shape[0] == 0:
            return np.zeros((0, x.shape[0]))
        with np.errstate(all="ignore"):
            return self.law.predict(x, self.bootstrap_params_)

    def predict_interval(self, x: np.ndarray, level: float = 0.9, include_noise: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """Central ``level`` prediction interval ``(lower (n,), upper (n,))``.

        Parameter uncertainty from the bootstrap draws, plus Gaussian residual noise of sd
        ``residual_scale_`` (in the law's residual space) when ``include_noise``; see
        :func:`combine_interval`.

        Raises:
            ConfigError: no bootstrap draws and ``include_noise=False`` (the interval would
                be a point); fit with ``n_bootstrap > 0`` or include the noise.
        """
        self._check_fitted()
        if self.bootstrap_params_.shape[0] == 0 and not include_noise:
            raise ConfigError(
                "predict_interval(include_noise=False) needs bootstrap draws, but this fitter has none; "
                "fit with n_bootstrap > 0 (e.g. 200) or pass include_noise=True."
            )
        point = self.predict(x)
        samples = self.predict_samples(x) if self.bootstrap_params_.shape[0] else None
        noise = self.residual_scale_ if include_noise else 0.0
        return combine_interval(point, samples, noise, level, log_space=self.law.log_space)


# -- linear algebra helpers ---------------------------------------------------------------------
def _wls(design: np.ndarray, z: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Weighted least squares for every row of ``weights (B, n)``: ``(B, p)``; NaN if singular."""
    p = design.shape[1]
    outer = (design[:, :, None] * design[:, None, :]).reshape(design.shape[0], p * p)
    a = (weights @ outer).reshape(-1, p, p)
    rhs = weights @ (design * z[:, None])
    out = np.full(rhs.shape, np.nan)
    # scale-invariant singularity check on the normalised normal matrix
    d = np.sqrt(np.maximum(np.einsum("bii->bi", a), 1e-300))
    an = a / (d[:, :, None] * d[:, None, :])
    with np.errstate(all="ignore"):
        cond = np.linalg.cond(an)
    good = np.isfinite(cond) & (cond < _MAX_COND)
    if good.any():
        out[good] = np.linalg.solve(a[good], rhs[good][..., None])[..., 0]
    return out


def _irls(design: np.ndarray, z: np.ndarray, weights: np.ndarray, delta: float, theta: np.ndarray) -> tuple[np.ndarray, int]:
    """Huber regression by iteratively reweighted least squares, batched over ``weights (B, n)``."""
    it = 0
    for it in range(1, _IRLS_MAXITER + 1):  # noqa: B007 - the count is read after the loop
        r = z[None, :] - theta @ design.T
        a = np.abs(r)
        u = np.where(a <= delta, 1.0, delta / np.maximum(a, 1e-300))
        new = _wls(design, z, weights * u)
        bad = ~np.all(np.isfinite(new), axis=1)
        new[bad] = theta[bad]
        step = np.max(np.abs(new - theta) / (1.0 + np.abs(theta)))
        theta = new
        if step <= _IRLS_TOL:
            break
    return theta, it


def _identifiable(x: np.ndarray, weights: np.ndarray, p: int) -> np.ndarray:
    """Per draw ``(B,)`` bool: at least ``p`` distinct inputs (so ``p`` rows) and every input column varying."""
    pos = weights > 0  # (B, n)
    enough = pos.sum(axis=1) >= p
    # distinct inputs: group equal input rows once, then count groups with positive weight
    _, inv = np.unique(x, axis=0, return_inverse=True)
    inv = inv.reshape(-1)
    order = np.argsort(inv, kind="stable")
    inv_sorted = inv[order]
    starts = np.flatnonzero(np.r_[True, inv_sorted[1:] != inv_sorted[:-1]])
    distinct = np.maximum.reduceat(pos[:, order], starts, axis=1).sum(axis=1)
    varying = np.ones(weights.shape[0], dtype=bool)
    for j in range(x.shape[1]):
        hi = np.where(pos, x[None, :, j], -np.inf).max(axis=1)
        lo = np.where(pos, x[None, :, j], np.inf).min(axis=1)
        varying &= hi > lo
    return enough & (distinct >= p) & varying


__all__ = ["DEFAULT_MAX_STARTS", "GroupResample", "LawFitter", "combine_interval", "predictive_std"]
