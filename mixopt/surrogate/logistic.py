"""FLP-M stage 2, the parametric alternative: a logistic map from domain losses to a score.

For a benchmark with a chance level (``floor``)::

    score = floor + sign·span·sigmoid(a + Σ_d w_d·z_d),    z_d = (L_d - mu_d) / sd_d

a generalised linear model: the benchmark "sees" one weighted combination of the domain
losses and rises like a sigmoid from chance to a learned ceiling (``floor + span``) as
that combination falls. Without a chance level (e.g. bits-per-byte) it is a linear
regression ``score = a + Σ_d w_d·z_d``. It has ``m + 2`` parameters per benchmark, so it
extrapolates in the direction the data point to, where the two-layer net of
:mod:`mixopt.surrogate.nets` (weight decay, early stopping) flattens: on synthetic
3-domain worlds whose scores are sigmoids of a weighted loss (``mixopt simulate --world
mixture``), fitted on sizes 2e7-3e8 and predicting 1e9, it removes most of the nets'
systematic under-prediction (see ``benchmarks/bench_flpm.py``). It is one candidate of
FLP-M's ``stage2="auto"``, chosen by an internal backtest only where it predicts better.

Fitting: least squares from a small grid of starts (offset x ceiling), all of a
benchmark's starts in one batched Levenberg-Marquardt run with the analytic Jacobian
(:func:`mixopt.laws.solvers.batched_lm`; it reaches scipy's trust-region optimum from the
same starts, predictions within 1e-6, see ``tests/surrogate/test_logistic.py``); the ceiling
is bounded by the metric's scale (``span <= 1 - floor`` for 0-1 scores). Uncertainty:
``n_members`` refits on bootstrap resamples *by run* (the spread of predictions), all of a
benchmark's in one batched Levenberg-Marquardt run warm-started at the full-data fit, plus
the residual sd of the full-data fit (``noise_sd_``). The point prediction is the full-data fit.

The interface mirrors :class:`~mixopt.surrogate.nets.ScoreNetEnsemble` (``fit``,
``predict_mean``, ``predict_members``, ``predict_paired``, ``noise_sd_``, ``arrays`` /
``from_arrays``), so FLP-M uses either. Shapes: ``n`` rows, ``m`` domains, ``b``
benchmarks, ``E`` members.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from typing import Any, Self

import numpy as np

from mixopt._rowwise import apply_rows
from mixopt.errors import NotFittedError, SchemaError

logger = logging.getLogger(__name__)

#: starting logits of the sigmoid's offset ``a`` (the data usually sit in the foot: a < 0)
_A_STARTS = (-4.0, -1.5, 0.5)
#: starting ceilings, as fractions of the largest admissible span
_SPAN_STARTS = (0.35, 0.7, 1.0)
_BIG = 60.0
#: iterations between checks that stop point-fit starts which cannot win (as the law fitter does)
PRUNE_EVERY = 10


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))


class LogisticScoreMap:
    """Per-benchmark logistic (or linear) map from domain losses ``(n, m)`` to scores ``(n, b)``.

    Args:
        n_members: bootstrap-by-run refits per benchmark (interval spread); 0 = none.
        max_nfev: iterations per least-squares start (the point fit's and every bootstrap refit's).
        seed: seed of the bootstrap resamples.

    Attributes (after fit):
        coef_: ``(b, m + 2)`` ``[a, w_1..w_m, log_span]`` of the full-data fit (standardised inputs).
        members_: ``(b, E, m + 2)`` bootstrap refits (NaN rows = failed refits).
        mu_, sd_: ``(b, m)`` input standardisation per benchmark.
        link_: ``(b,)`` 1 = logistic, 0 = linear; ``floor_``, ``sign_``: ``(b,)``.
        noise_sd_: ``(b,)`` residual sd of the full-data fit (score units).
        n_rows_: ``(b,)`` training rows; ``input_range_``: ``(2, m)``.
    """

    def __init__(self, n_members: int = 20, max_nfev: int = 400, seed: int = 0) -> None:
        self.n_members = n_members
        self.max_nfev = max_nfev
        self.seed = seed

    # -- fitting -----------------------------------------------------------------------------
    def fit(self, X: np.ndarray, Y: np.ndarray, mask: np.ndarray, groups: Sequence[Any] | np.ndarray, *,
            chance: Sequence[float | None] | None = None, higher_is_better: Sequence[bool] | None = None) -> Self:
        """Fit every benchmark column on its masked rows (same arguments as the nets' ``fit``)."""
        X = np.asarray(X, dtype=np.float64)
        Y = np.asarray(Y, dtype=np.float64)
        mask = np.asarray(mask, dtype=bool)
        groups = np.asarray(groups)
        if X.ndim != 2 or Y.ndim != 2 or Y.shape[0] != X.shape[0] or mask.shape != Y.shape or groups.shape != (X.shape[0],):
            raise SchemaError(f"X (n, m), Y and mask (n, b), groups (n,) must agree; got {X.shape}, {Y.shape}, {mask.shape}, {groups.shape}.")
        n, m = X.shape
        b = Y.shape[1]
        chance = [None] * b if chance is None else list(chance)
        hib = [True] * b if higher_is_better is None else [bool(v) for v in higher_is_better]
        counts = mask.sum(axis=0)
        if b and counts.min() < m + 3:
            raise SchemaError(f"the logistic score map needs >= m + 3 = {m + 3} rows per benchmark, got {counts.tolist()}.")
        if not np.all(np.isfinite(X[mask.any(axis=1)])) or np.any(mask & ~np.isfinite(Y)):
            raise SchemaError("the logistic score map got NaN/inf on a selected row (losses or scores).")
        E = int(self.n_members)
        p = m + 2
        self.coef_ = np.zeros((b, p))
        self.members_ = np.full((b, E, p), np.nan)
        self.mu_ = np.zeros((b, m))
        self.sd_ = np.ones((b, m))
        self.link_ = np.zeros(b, dtype=np.int64)
        self.floor_ = np.zeros(b)
        self.sign_ = np.ones(b)
        self.noise_sd_ = np.zeros(b)
        self.n_rows_ = counts.astype(np.int64)
        self.input_range_ = np.stack([np.nanmin(X, axis=0), np.nanmax(X, axis=0)]) if n else np.zeros((2, m))
        self._table = None
        self.__dict__.pop("_mean_theta_cache", None)
        rng = np.random.default_rng(np.random.SeedSequence([int(self.seed), 7]))
        for j in range(b):
            rows = np.flatnonzero(mask[:, j])
            x, y, g = X[rows], Y[rows, j], groups[rows]
            self.mu_[j] = x.mean(axis=0)
            s = x.std(axis=0)
            self.sd_[j] = np.where(s > 1e-12, s, 1.0)
            z = (x - self.mu_[j]) / self.sd_[j]
            c = chance[j]
            if c is not None and math.isfinite(float(c)):
                self.link_[j] = 1
                self.floor_[j] = float(c)
                self.sign_[j] = 1.0 if hib[j] else -1.0
            hi_span = self._max_span(j, y)
            self.coef_[j] = self._fit_one(j, z, y, hi_span, None)
            resid = y - self._eval(j, z, self.coef_[j][None, :])[0]
            self.noise_sd_[j] = math.sqrt(float(np.sum(resid**2)) / max(y.size - p, 1))
            labels, inv = np.unique(g, return_inverse=True)
            use, weights = [], []
            for e in range(E):
                pick = rng.integers(0, labels.size, labels.size)
                w = np.bincount(pick, minlength=labels.size)[inv].astype(np.float64)
                if np.count_nonzero(w) < p + 1:
                    continue
                use.append(e)
                weights.append(w)
            if use:
                self.members_[j, use] = self._fit_members(j, z, y, hi_span, np.stack(weights), self.coef_[j])
        return self

    def _fit_members(self, j: int, z: np.ndarray, y: np.ndarray, hi_span: float, W: np.ndarray,
                     start: np.ndarray) -> np.ndarray:
        """Bootstrap refits ``(E', m + 2)`` of benchmark ``j`` for row weights ``W (E', n)`` (the counts), from ``start``.

        The linear link: closed form per refit. The logistic link: every refit in one batched
        Levenberg-Marquardt run (:func:`mixopt.laws.solvers.batched_lm`, squared loss, the
        same bounds, at most ``max_nfev`` iterations), warm-started at the full-data fit.
        """
        if not self.link_[j] or not np.all(np.isfinite(start)):
            return np.stack([self._fit_one(j, z, y, hi_span, w, start=start) for w in W])
        m = z.shape[1]
        lo, hi = self._bounds(m, hi_span)
        gap = self.sign_[j] * (y - self.floor_[j])
        theta0 = np.broadcast_to(np.clip(start, lo + 1e-9, hi - 1e-9), (W.shape[0], m + 2))
        theta, obj = self._batched_fit(z, gap, W, theta0, lo, hi)
        out = theta.copy()
        out[~(np.isfinite(obj) & np.isfinite(out).all(axis=1))] = np.nan
        return out

    def _max_span(self, j: int, y: np.ndarray) -> float:
        if not self.link_[j]:
            return 1.0
        gap = self.sign_[j] * (y - self.floor_[j])
        if self.sign_[j] > 0 and self.floor_[j] < 1.0 and y.max() <= 1.0:
            return 1.0 - self.floor_[j]  # a 0-1 score: the ceiling is at most 1
        return max(4.0 * float(gap.max()), 1e-6)

    def _fit_one(self, j: int, z: np.ndarray, y: np.ndarray, hi_span: float, w: np.ndarray | None,
                 start: np.ndarray | None = None) -> np.ndarray:
        """Least-squares parameters ``(m + 2,)`` of benchmark ``j`` (weights ``w`` = bootstrap counts).

        The linear link: weighted least squares in closed form. The logistic link: every start
        (``start``, or the grid offset x ceiling along the least-squares slope) in one batched
        Levenberg-Marquardt run (:func:`mixopt.laws.solvers.batched_lm`, squared loss, at most
        ``max_nfev`` iterations each); the start with the lowest objective wins (ties: the first).
        """
        m = z.shape[1]
        if not self.link_[j]:  # linear: weighted least squares in closed form
            sw = np.ones(y.size) if w is None else np.sqrt(w)
            A = np.column_stack([np.ones(y.size), z]) * sw[:, None]
            beta = np.linalg.lstsq(A, y * sw, rcond=None)[0]
            return np.concatenate([beta, [0.0]])
        lo, hi = self._bounds(m, hi_span)
        lo_span = 1e-4 * hi_span
        gap = self.sign_[j] * (y - self.floor_[j])
        starts = []
        if start is not None and np.all(np.isfinite(start)):
            starts.append(np.clip(start, lo + 1e-9, hi - 1e-9))
        else:
            # initial slopes: the direction in which the score rises (least squares on the gap)
            A = np.column_stack([np.ones(y.size), z])
            slope = np.linalg.lstsq(A, gap, rcond=None)[0][1:]
            nrm = float(np.linalg.norm(slope)) or 1.0
            for a0 in _A_STARTS:
                for f in _SPAN_STARTS:
                    sp = max(f * hi_span, 1.5 * lo_span)
                    starts.append(np.clip(np.concatenate([[a0], slope / nrm, [math.log(sp)]]), lo + 1e-9, hi - 1e-9))
        theta0 = np.stack(starts)
        W = np.broadcast_to(np.ones(y.size) if w is None else np.asarray(w, dtype=np.float64), (theta0.shape[0], y.size))
        theta, obj = self._batched_fit(z, gap, W, theta0, lo, hi, prune_every=PRUNE_EVERY if theta0.shape[0] > 1 else 0)
        ok = np.isfinite(obj) & np.isfinite(theta).all(axis=1)
        if not ok.any():
            return np.full(m + 2, np.nan)
        return theta[int(np.argmin(np.where(ok, obj, np.inf)))]

    @staticmethod
    def _bounds(m: int, hi_span: float) -> tuple[np.ndarray, np.ndarray]:
        """Bounds ``(lo, hi)`` of ``[a, w_1..w_m, log_span]``: ``span`` in ``[1e-4·hi_span, hi_span]``."""
        lo = np.concatenate([[-_BIG], np.full(m, -_BIG), [math.log(1e-4 * hi_span)]])
        hi = np.concatenate([[_BIG], np.full(m, _BIG), [math.log(hi_span)]])
        return lo, hi

    def _batched_fit(self, z: np.ndarray, gap: np.ndarray, W: np.ndarray, theta0: np.ndarray, lo: np.ndarray,
                     hi: np.ndarray, prune_every: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """``span·sigmoid(a + z·w) ≈ gap`` for every row of ``theta0 (B, m + 2)`` with row weights ``W (B, n)``.

        Returns ``(theta (B, m + 2), objective (B,))`` of one batched Levenberg-Marquardt run;
        ``prune_every > 0`` stops starts that cannot win (those of one fit, not bootstrap refits).
        """
        from mixopt.laws.solvers import batched_lm

        zt = z.T

        def evaluate(theta: np.ndarray, with_jacobian: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
            sp = np.exp(theta[:, -1:])
            sg = _sigmoid(theta[:, :1] + theta[:, 1:-1] @ zt)  # (b, n)
            f = sp * sg
            if not with_jacobian:
                return f, None
            d = f * (1.0 - sg)
            return f, np.concatenate([d[..., None], d[..., None] * z[None], f[..., None]], axis=2)

        res = batched_lm(evaluate, gap, W, theta0, (lo, hi), lambda r: (0.5 * r * r, r), log_space=False,
                         maxiter=int(self.max_nfev), prune_every=prune_every)
        return res.theta, res.objective

    # -- prediction ----------------------------------------------------------------------------
    def _eval(self, j: int, z: np.ndarray, theta: np.ndarray) -> np.ndarray:
        """Scores ``(T, n)`` for parameter rows ``theta (T, m + 2)`` at standardised ``z (n, m)``."""
        g = theta[:, :1] + theta[:, 1:-1] @ z.T
        if not self.link_[j]:
            return g
        return self.floor_[j] + self.sign_[j] * np.exp(theta[:, -1:]) * _sigmoid(g)

    def _check(self) -> None:
        if not hasattr(self, "coef_"):
            raise NotFittedError("This LogisticScoreMap is not fitted yet; call fit(X, Y, mask, groups) first.")

    @property
    def n_benchmarks(self) -> int:
        self._check()
        return int(self.coef_.shape[0])

    @property
    def n_members_fitted(self) -> int:
        self._check()
        return int(self.members_.shape[1])

    def _as_x(self, X: np.ndarray) -> np.ndarray:
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != self.mu_.shape[1]:
            raise SchemaError(f"X must be (n, {self.mu_.shape[1]}) domain losses, got shape {X.shape}.")
        return X

    def _raw_theta(self, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Parameters ``theta (..., b, m + 2)`` on standardised inputs -> on raw losses.

        ``a + Σ_d w_d·(x_d - mu_d)/sd_d = a' + Σ_d w'_d·x_d`` with ``w' = w/sd`` and
        ``a' = a - Σ_d w'_d·mu_d``, so every row, draw and benchmark is one contraction.

        Returns:
            ``(offset (..., b), weights (..., b, m), span (..., b))``.
        """
        w = theta[..., 1:-1] / self.sd_
        a = theta[..., 0] - np.sum(w * self.mu_, axis=-1)
        return a, w, np.exp(theta[..., -1])

    def _link(self, g: np.ndarray, span: np.ndarray) -> np.ndarray:
        """Scores from linear predictors ``g (..., b)`` (in place where the link is logistic).

        The sigmoid as ``1 / (1 + exp(-g))`` in place (``exp`` overflows to ``inf`` for very
        negative ``g``, giving exactly 0), about twice as fast as the ``tanh`` form.
        """
        kind = self._link_kind()
        if kind == "linear":
            return g
        if kind == "logistic":
            with np.errstate(over="ignore"):
                np.negative(g, out=g)
                np.exp(g, out=g)
            g += 1.0
            np.reciprocal(g, out=g)
            g *= self._signed_span(span)
            g += self.floor_
            return g
        sig = self.link_ == 1
        g[..., sig] = self.floor_[sig] + self.sign_[sig] * np.broadcast_to(span, g.shape)[..., sig] * _sigmoid(g[..., sig])
        return g

    def _link_kind(self) -> str:
        """``"linear"`` (no benchmark has the logistic link), ``"logistic"`` (all have it) or ``"mixed"``, kept per links."""
        key = self.link_.tobytes()
        hit = self.__dict__.get("_link_kind_cache")
        if hit is None or hit[0] != key:
            sig = self.link_ == 1
            hit = self.__dict__["_link_kind_cache"] = (key, "linear" if not sig.any() else "logistic" if sig.all() else "mixed")
        return hit[1]

    def _signed_span(self, span: np.ndarray) -> np.ndarray:
        """``sign_ * span``, kept for the full-data fit's span (:meth:`_mean_theta`, the same array every call)."""
        hit = self.__dict__.get("_signed_span_cache")
        if hit is None or hit[0] is not span or hit[1] is not self.sign_:
            if span is not self._mean_theta()[2]:
                return self.sign_ * span
            hit = self.__dict__["_signed_span_cache"] = (span, self.sign_, self.sign_ * span)
        return hit[2]

    def _theta_table(self) -> np.ndarray:
        """Member parameters ``(E, b, m + 2)``; a failed refit (NaN) is the full-data fit."""
        if getattr(self, "_table", None) is None:
            b, p = self.coef_.shape
            E = max(self.members_.shape[1], 1)
            t = self.members_.transpose(1, 0, 2).copy() if self.members_.shape[1] else self.coef_[None].copy()
            bad = ~np.isfinite(t).all(axis=2)
            t[bad] = np.broadcast_to(self.coef_[None], (E, b, p))[bad]
            self._table = t
        return self._table

    def predict_mean(self, X: np.ndarray) -> np.ndarray:
        """Point scores ``(n, b)`` (the full-data fit)."""
        self._check()
        X = self._as_x(X)
        a, w, span = self._mean_theta()
        return self._link(X @ w.T + a, span)

    def predict_mean_each(self, Xs: Sequence[np.ndarray]) -> np.ndarray:
        """``np.stack([predict_mean(X) for X in Xs])``: ``(k, n, b)`` for ``k`` inputs ``(n, m)`` of one shape,
        the same numbers. Each input keeps its own matrix product (a product's last bits depend on its
        shape, so stacking the rows would change them); the offsets and the link run once over all."""
        self._check()
        Xs = [self._as_x(X) for X in Xs]
        if len({X.shape for X in Xs}) > 1:
            raise SchemaError(f"predict_mean_each takes inputs of one shape, got {[X.shape for X in Xs]}.")
        a, w, span = self._mean_theta()
        g = np.empty((len(Xs), Xs[0].shape[0] if Xs else 0, w.shape[0]))
        for i, X in enumerate(Xs):
            np.matmul(X, w.T, out=g[i])
        g += a
        return self._link(g, span)

    def _mean_theta(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """:meth:`_raw_theta` of the full-data fit, kept while ``coef_`` is the same array."""
        hit = self.__dict__.get("_mean_theta_cache")
        if hit is None or hit[0] is not self.coef_:
            hit = self.__dict__["_mean_theta_cache"] = (self.coef_, self._raw_theta(self.coef_))
        return hit[1]

    def predict_members(self, X: np.ndarray) -> np.ndarray:
        """Every bootstrap member's scores ``(E, n, b)`` (the point fit if there are none)."""
        self._check()
        X = self._as_x(X)
        a, w, span = self._raw_theta(self._theta_table())  # (E, b), (E, b, m), (E, b)
        g = np.einsum("nm,ebm->enb", X, w) + a[:, None, :]
        return self._link(g, span[:, None, :])

    def predict_paired(self, Xs: np.ndarray) -> np.ndarray:
        """Input draws ``(S, n, m)`` -> score draws ``(S, n, b)``; draw ``s`` uses member ``s mod E``.

        One batched contraction over draws, rows and benchmarks (no Python loop).
        """
        self._check()
        Xs = np.asarray(Xs, dtype=np.float64)
        if Xs.ndim != 3:
            raise SchemaError(f"Xs must be (S, n, m) input draws, got shape {Xs.shape}.")
        a, wt, span = self._paired_theta(Xs.shape[0])
        if self._link_kind() != "logistic":
            g = np.matmul(Xs, wt)
            g += a
            return self._link(g, span)
        # every link logistic: the negated predictor straight from negated parameters (negation is
        # exact, so the same numbers as :meth:`_link`'s in-place ``-g``), the sign times span kept
        # the per-draw constants go over the rows through tiled views (:func:`mixopt._rowwise.apply_rows`:
        # the same operations on the same numbers, without numpy's 5-element inner broadcast loops)
        neg_a, neg_wt, sspan = self._paired_theta_neg(Xs.shape[0])
        tiles = self.__dict__.setdefault("_row_tiles", {})
        g = np.matmul(Xs, neg_wt)
        apply_rows(np.add, g, neg_a, tiles, out=g)
        with np.errstate(over="ignore"):
            np.exp(g, out=g)
        g += 1.0
        np.reciprocal(g, out=g)
        apply_rows(np.multiply, g, sspan, tiles, out=g)
        apply_rows(np.add, g, self.floor_, tiles, out=g)
        return g

    def _paired_theta_neg(self, S: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(-a, -w^T, sign·span)`` of :meth:`_paired_theta` (kept beside it, rebuilt with the fit)."""
        a, wt, span = self._paired_theta(S)
        cache = self.__dict__.setdefault("_paired_neg", {})
        hit = cache.get(S)
        if hit is None or hit[0] is not a:  # keyed like _paired_theta's entries, so rebuilt with them
            hit = cache[S] = (a, (-a, -wt, self.sign_ * span))
            if len(cache) > 64:
                cache.pop(next(iter(cache)))
        return hit[1]

    def _paired_theta(self, S: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Raw parameters of draws ``0..S-1`` (member ``s mod E``): ``(a (S, 1, b), w^T (S, m, b), span (S, 1, b))``.

        They depend on the fit only, so they are kept per ``S`` (the table is rebuilt with the fit).
        """
        table = self._theta_table()
        cache = self.__dict__.get("_paired_cache")
        if cache is None or cache[0] is not table:
            cache = self.__dict__["_paired_cache"] = (table, {})
        hit = cache[1].get(S)
        if hit is None:
            a, w, span = self._raw_theta(table[np.arange(S) % table.shape[0]])  # (S, b), (S, b, m), (S, b)
            hit = cache[1][S] = (a[:, None, :], w.transpose(0, 2, 1), span[:, None, :])
            if len(cache[1]) > 64:  # a bounded number of draw counts
                cache[1].pop(next(iter(cache[1])))
        return hit

    # -- export / import -------------------------------------------------------------------------
    def arrays(self) -> dict[str, np.ndarray]:
        """Fitted state as named float arrays (for model files)."""
        self._check()
        return {"coef": self.coef_, "members": self.members_, "mu": self.mu_, "sd": self.sd_,
                "link": self.link_.astype(np.float64), "floor": self.floor_, "sign": self.sign_,
                "noise_sd": self.noise_sd_, "n_rows": self.n_rows_.astype(np.float64), "input_range": self.input_range_}

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, np.ndarray], *, n_members: int = 20, seed: int = 0) -> LogisticScoreMap:
        """Rebuild a fitted map from :meth:`arrays` (identical predictions)."""
        out = cls(n_members=n_members, seed=seed)
        f = lambda k: np.asarray(arrays[k], dtype=np.float64)  # noqa: E731
        out.coef_, out.members_, out.mu_, out.sd_ = f("coef"), f("members"), f("mu"), f("sd")
        out.link_ = f("link").astype(np.int64)
        out.floor_, out.sign_, out.noise_sd_ = f("floor"), f("sign"), f("noise_sd")
        out.n_rows_ = f("n_rows").astype(np.int64)
        out.input_range_ = f("input_range")
        out._table = None
        b, p = out.coef_.shape
        if out.members_.shape[::2] != (b, p) or out.mu_.shape != (b, p - 2):
            raise SchemaError(f"logistic stage-2 arrays are inconsistent: coef {out.coef_.shape}, members {out.members_.shape}, mu {out.mu_.shape}.")
        return out


__all__ = ["LogisticScoreMap"]
