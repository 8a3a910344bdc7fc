"""Hybrid stage 1: a scale law times a learned correction over the mixture.

A mixture law (:mod:`mixopt.laws.mixture`) carries the scale: how a domain's loss falls
with compute (or N and D), which it extrapolates. What its few parameters cannot carry --
the exact shape of the loss over the simplex -- is learned from its residuals::

    log L_d(C, r) = log law_d(C, r) + f_d(r)

``f_d`` is the RegMix comparator's regressor (:mod:`mixopt.surrogate.baselines`: a linear
ridge plus an RBF kernel ridge on standardised ``[r_s, log(r_s + floor)]``, every
hyperparameter by exact leave-one-out) fitted to the law's log-space residuals of the
final checkpoints. It is a function of the mixture only, so the law alone decides how the
loss moves with scale, and where the residuals are noise the leave-one-out choice shrinks
``f_d`` to ~0 (the law is returned unchanged). This is FLP-M's "hybrid" family: as good as
the best regressor inside the sampled mixtures, with the law's extrapolation in scale.

**The law's own loss as a feature** (``own``): FLP-M passes each domain's law log loss at one
reference compute (a function of the mixture only), which enters ``f_d``'s linear part as one
more standardised column; it is kept for a domain only where it lowers that domain's exact
leave-one-out error by :data:`OWN_MIN_GAIN` or more (else the correction is the mixture-only fit above). A linear term in the
law's own prediction rescales how strongly the law's mixture index moves the loss, which the
ratio features reach only through many coefficients. Measured (RegMix, fit on the 512 1M runs,
Pile-CC, 4-fold mixture folds): internal ρ 0.984 -> 0.987; 11 of 13 domains keep it (docs/figures.md,
"Law feature in the kernel correction").

Shapes: ``n`` rows, ``k`` mixture domains, ``m`` loss domains.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Self

import numpy as np

from mixopt.errors import NotFittedError, SchemaError
from mixopt.laws.metric import sqdist
from mixopt.surrogate.baselines import _decompose, _fit_output

#: the ``log(r + floor)`` features' floor (RegMix ratios have 3 decimals)
LOG_FLOOR = 1e-3
#: the per-output feature is kept where it lowers the output's leave-one-out rms error by at least this fraction
#: (one more column must earn its place: on pure noise the error moves by ~0.1 %)
OWN_MIN_GAIN = 0.01
#: rows per block in :meth:`MixtureResidual.predict` (keeps the ``rows x train`` kernel in cache)
_BLOCK = 4096


class MixtureResidual:
    """Per-domain correction ``f_d(r)`` of a law's log losses over the mixture.

    Attributes (after fit):
        feat_mean_, feat_sd_: ``(2k,)`` feature standardisation.
        train_features_: ``(n, 2k)`` standardised training features.
        coef_: ``(m, 2k)``; intercept_: ``(m,)``; alpha_: ``(m, n)``; length_: ``(m,)``.
        own_coef_, own_center_: ``(m,)`` the linear term ``own_coef_·(own - own_center_)`` of the
            per-output feature (0 where the leave-one-out error did not drop with it).
        loo_rmse_: ``(m,)`` leave-one-out rms error of the correction (log units).
    """

    def _raw(self, R: np.ndarray) -> np.ndarray:
        """Raw features ``[R, log(R + LOG_FLOOR)]`` ``(n, 2k)`` (a new array)."""
        R = np.asarray(R, dtype=np.float64)
        if R.ndim != 2:
            return np.column_stack([R, np.log(R + LOG_FLOOR)])
        k = R.shape[1]
        out = np.empty((R.shape[0], 2 * k))
        out[:, :k] = R
        np.add(R, LOG_FLOOR, out=out[:, k:])
        np.log(out[:, k:], out=out[:, k:])
        return out

    def _own_used(self) -> np.ndarray:
        """Outputs whose correction reads the per-output feature (``own_coef_ != 0``), kept per ``own_coef_``."""
        oc = getattr(self, "own_coef_", None)
        if oc is None:
            return np.zeros(0, dtype=np.intp)
        hit = self.__dict__.get("_own_used_cache")
        if hit is None or hit[0] is not oc or hit[1] != oc.tobytes():
            hit = self.__dict__["_own_used_cache"] = (oc, oc.tobytes(), np.flatnonzero(oc))
        return hit[2]

    def fit(self, R: np.ndarray, resid: np.ndarray, own: np.ndarray | None = None) -> Self:
        """Fit on ratios ``R (n, k)`` and log-space residuals ``resid (n, m)`` (NaN = missing).

        ``own``: optional ``(n, m)`` per-output feature (FLP-M: each domain's law log loss at a
        reference compute), kept for an output where it lowers its leave-one-out error.
        """
        R = np.asarray(R, dtype=np.float64)
        resid = np.asarray(resid, dtype=np.float64)
        if R.ndim != 2 or resid.ndim != 2 or R.shape[0] != resid.shape[0]:
            raise SchemaError(f"R (n, k) and resid (n, m) must have the same rows; got {R.shape}, {resid.shape}.")
        if own is not None:
            own = np.asarray(own, dtype=np.float64)
            if own.shape != resid.shape:
                raise SchemaError(f"own (n, m) must have the shape of resid {resid.shape}; got {own.shape}.")
        self.__dict__.pop("_kernel_parts_cache", None)
        raw = self._raw(R)
        self.feat_mean_ = raw.mean(axis=0)
        sd = raw.std(axis=0)
        self.feat_sd_ = np.where(sd > 1e-12, sd, 1.0)
        Z = (raw - self.feat_mean_) / self.feat_sd_
        self.train_features_ = Z
        n, m = resid.shape
        q = Z.shape[1]
        self.coef_ = np.zeros((m, q))
        self.intercept_ = np.zeros(m)
        self.alpha_ = np.zeros((m, n))
        self.length_ = np.ones(m)
        self.loo_rmse_ = np.zeros(m)
        self.own_coef_ = np.zeros(m)
        self.own_center_ = np.zeros(m)
        cache: dict[bytes, dict[str, Any]] = {}
        for j in range(m):
            ok = np.isfinite(resid[:, j])
            if ok.sum() < 8:
                continue
            key = np.packbits(ok).tobytes()
            if key not in cache:
                cache[key] = _decompose(Z[ok])
            fit = _fit_output(Z[ok], resid[ok, j], cache[key])
            with_own = self._fit_with_own(Z[ok], resid[ok, j], own[ok, j], cache[key]) if own is not None else None
            if with_own is not None and with_own[0]["loo_rmse"] < (1.0 - OWN_MIN_GAIN) * fit["loo_rmse"]:
                fit, center, scale = with_own
                self.own_center_[j] = center
                self.own_coef_[j] = fit["coef"][-1] / scale
                fit["coef"] = fit["coef"][:-1]
            self.coef_[j] = fit["coef"]
            self.intercept_[j] = fit["intercept"]
            self.alpha_[j, ok] = fit["alpha"]
            self.length_[j] = fit["length"]
            self.loo_rmse_[j] = fit["loo_rmse"]
        return self

    @staticmethod
    def _fit_with_own(Z: np.ndarray, y: np.ndarray, o: np.ndarray, dec: Mapping[str, Any]) -> tuple[dict[str, Any], float, float] | None:
        """One output fitted with the per-output feature ``o`` as one more linear column (the kernel stays on
        the mixture features ``Z``): ``(fit, center, scale)`` of the standardised column, or None when it is
        not usable (not finite, or constant)."""
        if not np.isfinite(o).all():
            return None
        center, scale = float(o.mean()), float(o.std())
        if not scale > 1e-12:
            return None
        Zo = np.column_stack([Z, (o - center) / scale])
        return _fit_output(Zo, y, {"svd": np.linalg.svd(Zo, full_matrices=False), "eig": dec["eig"]}), center, scale

    @property
    def uses_own(self) -> bool:
        """Whether some output's correction reads the per-output feature (``predict`` then needs ``own``)."""
        return bool(self._own_used().size)

    def predict(self, R: np.ndarray, own: np.ndarray | None = None) -> np.ndarray:
        """Corrections ``(n, m)`` (log units) at ratios ``R (n, k)`` (and ``own (n, m)`` when :attr:`uses_own`).

        Kernel distances by one matrix product per block of rows (:func:`~mixopt.laws.metric.sqdist`):
        a row's corrections agree with the row predicted alone to ~1e-13 relative.
        """
        if not hasattr(self, "coef_"):
            raise NotFittedError("This MixtureResidual is not fitted yet; call fit(R, resid) first.")
        R = np.asarray(R, dtype=np.float64)
        used = self._own_used()
        if used.size and (own is None or np.shape(own) != (R.shape[0], self.coef_.shape[0])):
            raise SchemaError(f"this correction reads the law's own losses for outputs {used.tolist()}: pass own "
                              f"({R.shape[0]}, {self.coef_.shape[0]}); got {None if own is None else np.shape(own)}.")
        T = self.train_features_
        t_sq, groups = self._kernel_parts()
        out = np.empty((R.shape[0], self.coef_.shape[0]))
        K = None
        for s in range(0, R.shape[0], _BLOCK):
            Z = self._raw(R[s : s + _BLOCK])
            Z -= self.feat_mean_
            Z /= self.feat_sd_  # (raw - feat_mean_) / feat_sd_, in place
            blk = out[s : s + _BLOCK]
            np.dot(Z, self.coef_.T, out=blk)
            blk += self.intercept_
            if not groups:
                continue
            D = sqdist(Z, T, t_sq)
            K = np.empty_like(D) if K is None or K.shape != D.shape else K
            for cols, c, alpha_t in groups:
                np.multiply(D, c, out=K)
                np.exp(K, out=K)  # exp(D * c)
                blk[:, cols] += K @ alpha_t
        if used.size:
            out[:, used] += self.own_coef_[used] * (np.asarray(own, dtype=np.float64)[:, used] - self.own_center_[used])
        return out

    def _kernel_parts(self) -> tuple[np.ndarray, list[tuple[np.ndarray, float, np.ndarray]]]:
        """``(|T|² per training row, [(columns, -1/(2·l²·q), alpha^T)] per length scale)``: they depend on the
        fit only, so they are kept while the fitted arrays are the same objects."""
        T, length, alpha = self.train_features_, self.length_, self.alpha_
        hit = self.__dict__.get("_kernel_parts_cache")
        if hit is None or hit[0] is not T or hit[1] is not length or hit[2] is not alpha:
            q = max(T.shape[1], 1)
            t_sq = np.einsum("ij,ij->i", T, T)
            groups = [(np.flatnonzero(length == ls), -0.5 / (float(ls) ** 2 * q)) for ls in np.unique(length)]
            groups = [(cols, c, np.ascontiguousarray(alpha[cols].T)) for cols, c in groups if np.any(alpha[cols])]
            hit = self.__dict__["_kernel_parts_cache"] = (T, length, alpha, t_sq, groups)
        return hit[3], hit[4]

    def arrays(self) -> dict[str, np.ndarray]:
        out = {"feat_mean": self.feat_mean_, "feat_sd": self.feat_sd_, "train_features": self.train_features_,
               "coef": self.coef_, "intercept": self.intercept_, "alpha": self.alpha_, "length": self.length_,
               "loo_rmse": self.loo_rmse_}
        if self.uses_own:
            out.update(own_coef=self.own_coef_, own_center=self.own_center_)
        return out

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, np.ndarray]) -> MixtureResidual:
        out = cls()
        for k in ("feat_mean", "feat_sd", "train_features", "coef", "intercept", "alpha", "length", "loo_rmse"):
            setattr(out, k + "_", np.asarray(arrays[k], dtype=np.float64))
        m = out.coef_.shape[0]
        for k in ("own_coef", "own_center"):  # model files written before the law feature: none
            setattr(out, k + "_", np.asarray(arrays[k], dtype=np.float64) if k in arrays else np.zeros(m))
        return out


__all__ = ["LOG_FLOOR", "OWN_MIN_GAIN", "MixtureResidual"]
