"""Mixture laws fitted directly to many task metrics at once (metric-only tables).

A *metric-only* table (the Olmix swarms: 64-512 runs, 22-64 domains, ~110 task metrics
in bits-per-byte, no per-domain losses) has no ``loss:<d>`` columns for FLP-M's stage 1.
Its metrics are themselves loss-like (lower is better, no chance floor), so the mixture
law is fitted to each metric ``y_m`` directly. Two forms, FLP-M's and DML's, at one
compute scale or with a compute term (``u = log(C / C_ref)``, when compute varies):

``"dml"`` (Data Mixing Laws; Olmix's ``y = exp(c) + exp(Σ_d t_d·r_d)`` is this form)::

    y_m = E_m + exp(b_m + Σ_d t_md·(r_d - r̄_d) - alpha_m·u)

``"flpm"`` (FLP-M's pooled effective compute, ``C_s = r_s·C``)::

    y_m = E_m + (exp(u)·(b_m + Σ_d v_md·(r_d - r̄_d)))^(-alpha_m)

**Fitting: closed form per transform, all metrics at once.** For a fixed floor ``E`` (and
exponent ``alpha`` for ``flpm``) both laws are *linear* after a transform of ``y``:
``log(y - E)`` for ``dml``, ``(y - E)^(-1/alpha)·exp(-u)`` for ``flpm``. So for every
point of a small grid (``E = f·min(y_m)`` with ``f`` in :data:`FLOOR_FRACTIONS`,
``alpha`` in :data:`FLPM_EXPONENTS`, ridge penalty ``lam`` in :data:`RIDGE_PENALTIES`) the
coefficients of **every metric** come from one SVD of the shared design ``(r - r̄)``,
and the exact leave-one-out prediction of every run follows from the hat matrix. Each
metric keeps the grid point with the smallest leave-one-out *relative squared error on
the metric's own scale*. 110 metrics x 64 domains x 512 runs take well under a second.

**Regularisation.** The ridge penalty acts on the centred coefficients ``t_md`` (``v_md``),
in raw ratio units, and not on the intercept ``b_m``. Because ``Σ_d r_d = 1``, shrinking
``t_md`` to 0 shrinks every domain's effect toward the common level ``b_m``: a domain seen
in only one or two runs (a column with almost no variance) gets almost no coefficient of
its own, instead of the unconstrained value an unregularised fit gives it (the instability
the issue reports for Olmix's law on the reuse swarm). Penalties are chosen per metric by
leave-one-out, so well-covered domains keep their full effect. (A prior toward the
natural mixture was not tried; the ridge alone beats Olmix's unregularised law on all
three swarms, see ``benchmarks/real_olmix.py``.)

**Learned residual.** On top of the law, a kernel ridge (RBF) on standardised features
``[r, log(r + 1e-3), u]`` models what the law misses, in log space: ``log y = log law +
g(r)``. Its length-scale and noise ratio are picked per metric by exact leave-one-out from
:data:`KERNEL_LENGTHS` x :data:`KERNEL_NOISES`; the largest noise ratios shrink ``g`` to
~0, so a metric the law already explains keeps the pure law. Measured on the Olmix swarms
(fixed 20 % holdout): the residual lowers the mean relative error on ``dclm`` and
``full_recomputation`` and leaves ``reuse`` unchanged (``benchmarks/real_olmix.py``).

The leave-one-out root-mean-square error in log space (``loo_log_rmse_``) is the per-metric
predictive spread used for intervals.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from mixopt.errors import ConfigError, FitError

#: floors tried: ``E_m = f·min(y_m)`` (0 = pure exponential / power law)
FLOOR_FRACTIONS: tuple[float, ...] = (0.0, 0.3, 0.5, 0.7, 0.8, 0.9, 0.95, 0.98)
#: exponents ``alpha`` tried for the ``flpm`` form
FLPM_EXPONENTS: tuple[float, ...] = (0.25, 0.5, 1.0, 2.0)
#: ridge penalties tried (raw ratio units; the design is ``r - r̄``)
RIDGE_PENALTIES: tuple[float, ...] = tuple(float(v) for v in np.logspace(-5, 1, 13))
#: RBF length-scales of the residual kernel (units: sqrt(#features) standard deviations)
KERNEL_LENGTHS: tuple[float, ...] = (0.5, 1.0, 2.0, 4.0, 8.0)
#: noise ratios of the residual kernel (the largest switch the residual off in effect)
KERNEL_NOISES: tuple[float, ...] = tuple(float(v) for v in np.logspace(-3, 3, 13))
#: floor of the ``log(r + floor)`` residual features
LOG_FLOOR = 1e-3
#: scale of the compute column in the design, so the ridge barely penalises its coefficient
_U_SCALE = 100.0
FORMS = ("dml", "flpm")


@dataclass
class MetricLaws:
    """Fitted mixture laws for ``M`` metrics over ``k`` domains (see the module docstring).

    Attributes:
        form: ``"dml"`` or ``"flpm"``.
        r_mean: ``(k,)`` training mean of the ratios (the design is centred on it).
        floor: ``(M,)`` floors ``E_m`` (metric units).
        alpha: ``(M,)`` exponents (``flpm``: of the pooled compute; ``dml``: 1, unused).
        intercept: ``(M,)`` ``b_m``.
        coef: ``(M, k)`` centred ratio coefficients; ``coef_u``: ``(M,)`` compute coefficient.
        penalty: ``(M,)`` chosen ridge penalties.
        loo_log_rmse: ``(M,)`` leave-one-out rms error of ``log y`` (law + residual).
        base_floor: ``(M,)`` (``flpm``) smallest admissible pooled compute, for clipping.
        residual: kernel-ridge state or None (``features_mean/sd (q,)``, ``train (n, q)``,
            ``weights (n, M)``, ``length (M,)``).
    """

    form: str
    r_mean: np.ndarray
    floor: np.ndarray
    alpha: np.ndarray
    intercept: np.ndarray
    coef: np.ndarray
    coef_u: np.ndarray
    penalty: np.ndarray
    loo_log_rmse: np.ndarray
    base_floor: np.ndarray
    vary_compute: bool
    residual: dict[str, np.ndarray] | None = field(default=None)

    # -- prediction -----------------------------------------------------------------------------
    def law(self, R: np.ndarray, u: np.ndarray | None = None) -> np.ndarray:
        """The law's values ``(n, M)`` at ratios ``R (n, k)`` and log-compute ``u (n,)``."""
        X = np.asarray(R, dtype=np.float64) - self.r_mean
        z = self.intercept[None, :] + X @ self.coef.T
        uu = np.zeros(X.shape[0]) if (u is None or not self.vary_compute) else np.asarray(u, dtype=np.float64)
        with np.errstate(over="ignore"):
            if self.form == "dml":
                return self.floor + np.exp(np.minimum(z + uu[:, None] * self.coef_u[None, :] * _U_SCALE, 700.0))
            base = np.maximum(z, self.base_floor[None, :]) * np.exp(uu)[:, None]
            return self.floor + base ** (-self.alpha[None, :])

    def predict(self, R: np.ndarray, u: np.ndarray | None = None) -> np.ndarray:
        """Law times the learned residual: ``(n, M)`` predicted metric values."""
        y = self.law(R, u)
        if self.residual is None:
            return y
        F = (_features(R, u if self.vary_compute else None) - self.residual["features_mean"]) / self.residual["features_sd"]
        g = np.zeros_like(y)
        train = self.residual["train"]
        W = self.residual["weights"]
        lengths = self.residual["length"]
        for ls in np.unique(lengths):
            cols = np.flatnonzero(lengths == ls)
            K = np.exp(-sqdist(F, train) / max(train.shape[1], 1) / (2.0 * ls**2))
            g[:, cols] = K @ W[:, cols]
        return y * np.exp(g)

    # -- state ----------------------------------------------------------------------------------
    def arrays(self) -> dict[str, np.ndarray]:
        out = {k: getattr(self, k) for k in ("r_mean", "floor", "alpha", "intercept", "coef", "coef_u", "penalty",
                                             "loo_log_rmse", "base_floor")}
        if self.residual is not None:
            out.update({f"residual.{k}": v for k, v in self.residual.items()})
        return out

    @classmethod
    def from_arrays(cls, form: str, vary_compute: bool, arrays: dict[str, np.ndarray]) -> MetricLaws:
        res = {k[len("residual."):]: np.asarray(v, dtype=np.float64) for k, v in arrays.items() if k.startswith("residual.")}
        kw = {k: np.asarray(arrays[k], dtype=np.float64) for k in ("r_mean", "floor", "alpha", "intercept", "coef", "coef_u",
                                                                    "penalty", "loo_log_rmse", "base_floor")}
        return cls(form=form, vary_compute=bool(vary_compute), residual=res or None, **kw)


# -- fitting ------------------------------------------------------------------------------------
def _features(R: np.ndarray, u: np.ndarray | None) -> np.ndarray:
    cols = [R, np.log(R + LOG_FLOOR)]
    if u is not None:
        cols.append(np.asarray(u, dtype=np.float64)[:, None])
    return np.column_stack(cols)


def sqdist(a: np.ndarray, b: np.ndarray, b_sq: np.ndarray | None = None) -> np.ndarray:
    """Squared Euclidean distances ``(n_a, n_b)`` by one matrix product: ``|a|² + |b|² - 2·a·bᵀ``, clipped at 0.

    Args:
        a: ``(n_a, q)``; b: ``(n_b, q)``.
        b_sq: ``(n_b,)`` precomputed ``|b|²`` (rows of a fixed training design), or None.

    Accuracy and batch independence: the expansion cancels where points are close, so an
    entry is exact to about ``1e-15·(|a|² + |b|²)`` absolute (for standardised features,
    ``|a|²`` is of the order of ``q``), and a row's distances can differ in the last bits
    with the batch it is in (BLAS blocks the product by batch size). Both stay within
    :data:`SQDIST_ATOL` ``·(|a|² + |b|²)``, tested against the difference form in
    ``tests/laws/test_metric_laws.py``; through ``exp(-D / (2·l²·q))`` that is a relative
    error below ``1e-13`` of a kernel weight.
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    a_sq = np.einsum("ij,ij->i", a, a)
    if b_sq is None:
        b_sq = np.einsum("ij,ij->i", b, b)
    out = a @ b.T
    out *= -2.0
    out += a_sq[:, None]
    out += b_sq[None, :]
    return np.maximum(out, 0.0, out=out)


#: absolute tolerance of :func:`sqdist`, in units of ``|a|² + |b|²``
SQDIST_ATOL = 1e-13


def fit_metric_laws(
    R: np.ndarray,
    Y: np.ndarray,
    *,
    form: str = "flpm",
    u: np.ndarray | None = None,
    residual: bool = True,
) -> MetricLaws:
    """Fit one mixture law per metric, all metrics at once.

    Args:
        R: ``(n, k)`` mixture ratios of the ``n`` training runs (final checkpoints).
        Y: ``(n, M)`` metric values (> 0, lower is better); NaN = not evaluated.
        form: ``"flpm"`` or ``"dml"`` (module docstring).
        u: ``(n,)`` log-compute ``log(C / C_ref)`` when compute varies, else None.
        residual: add the learned kernel-ridge residual (picked per metric by LOO).

    Returns:
        The fitted :class:`MetricLaws`.

    Raises:
        ConfigError: unknown form.
        FitError: fewer than 4 runs, a metric with too few values, or non-positive values.
    """
    if form not in FORMS:
        raise ConfigError(f"form must be one of {list(FORMS)}, got {form!r}.")
    R, Y, weight = _check_metric_inputs(R, Y)
    n, k = R.shape
    r_mean = R.mean(axis=0)
    X = R - r_mean
    vary = u is not None
    uu = np.asarray(u, dtype=np.float64) if vary else np.zeros(n)
    if vary and form == "dml":
        X = np.column_stack([X, (uu - uu.mean()) * _U_SCALE])
    svd = np.linalg.svd(X, full_matrices=False)
    ymin = Y.min(axis=0)
    best, pick = _grid_search(form, Y, weight, svd, uu)
    floor = pick[:, 0] * ymin
    alpha = pick[:, 1]
    intercept, coef, coef_u, base_floor = _final_coefficients(form, Y, pick, floor, svd, uu, k, vary)
    laws = MetricLaws(form=form, r_mean=r_mean, floor=floor, alpha=alpha, intercept=intercept, coef=coef, coef_u=coef_u,
                      penalty=pick[:, 2], loo_log_rmse=np.sqrt(best / n), base_floor=base_floor, vary_compute=vary)
    if residual and n >= 8:
        _fit_residual(laws, R, Y, weight, uu if vary else None)
    return laws


def _check_metric_inputs(R: np.ndarray, Y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(R, Y, weight)``: float arrays, missing metric values imputed (weight 0) or a FitError."""
    R = np.asarray(R, dtype=np.float64)
    Y = np.asarray(Y, dtype=np.float64)
    n, _ = R.shape
    if n < 4:
        raise FitError(f"A metric law needs at least 4 runs (final checkpoints), got {n}. Add runs.")
    if np.any(Y[np.isfinite(Y)] <= 0):
        raise FitError("Metric values must be > 0 (bits-per-byte or a loss); got values <= 0. Use a lower-is-better positive metric.")
    # metrics with missing values: impute from the column median for the shared design, then
    # give those rows zero weight through the selection (rare in practice: swarms are complete)
    miss = ~np.isfinite(Y)
    if miss.any():
        few = np.flatnonzero((~miss).sum(axis=0) < 4)
        if few.size:
            raise FitError(f"metric column(s) {few[:5].tolist()} have fewer than 4 values; drop them or evaluate more runs.")
        Y = np.where(miss, np.nanmedian(Y, axis=0), Y)
    return R, Y, (~miss).astype(np.float64)


def _grid_search(
    form: str, Y: np.ndarray, weight: np.ndarray, svd: tuple[np.ndarray, np.ndarray, np.ndarray], uu: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Per metric the (floor fraction, exponent, ridge penalty) of least leave-one-out error.

    Returns ``best (M,)`` (sum of squared relative LOO errors) and ``pick (M, 3)`` (f, alpha, lam).
    """
    U, s, _ = svd
    n, M = Y.shape
    ymin = Y.min(axis=0)
    alphas = FLPM_EXPONENTS if form == "flpm" else (1.0,)
    best = np.full(M, np.inf)
    pick = np.zeros((M, 3))  # f, alpha, lam
    for f in FLOOR_FRACTIONS:
        E = f * ymin
        gap = Y - E
        for a in alphas:
            if form == "dml":
                Z = np.log(gap)
            else:
                Z = gap ** (-1.0 / a) * np.exp(-uu)[:, None]
            zm = Z.mean(axis=0)
            Zc = Z - zm
            UtZ = U.T @ Zc
            for lam in RIDGE_PENALTIES:
                d = s**2 / (s**2 + lam)
                fit = U @ (d[:, None] * UtZ)
                h = np.einsum("ij,j,ij->i", U, d, U) + 1.0 / n
                loo = Z - (Zc - fit) / np.maximum(1.0 - h, 1e-9)[:, None]
                yl = _inverse(form, loo, E, a, uu)
                with np.errstate(invalid="ignore", over="ignore"):
                    err = np.sum(weight * ((yl - Y) / Y) ** 2, axis=0)
                err = np.where(np.isfinite(err), err, np.inf)
                better = err < best
                if better.any():
                    best[better] = err[better]
                    pick[better] = (f, a, lam)
    if not np.all(np.isfinite(best)):
        bad = np.flatnonzero(~np.isfinite(best))
        raise FitError(f"No admissible {form!r} law for metric column(s) {bad[:5].tolist()} (every grid point diverged).")
    return best, pick


def _final_coefficients(
    form: str, Y: np.ndarray, pick: np.ndarray, floor: np.ndarray, svd: tuple[np.ndarray, np.ndarray, np.ndarray],
    uu: np.ndarray, k: int, vary: bool,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Final coefficients per chosen grid point (grouped to share solves): intercept, coef, coef_u, base_floor."""
    U, s, Vt = svd
    M = Y.shape[1]
    intercept = np.empty(M)
    coef = np.zeros((M, k))
    coef_u = np.zeros(M)
    base_floor = np.zeros(M)
    for key in {tuple(row) for row in pick.tolist()}:
        cols = np.flatnonzero(np.all(pick == np.asarray(key), axis=1))
        f, a, lam = key
        E = floor[cols]
        Z = np.log(Y[:, cols] - E) if form == "dml" else (Y[:, cols] - E) ** (-1.0 / a) * np.exp(-uu)[:, None]
        zm = Z.mean(axis=0)
        beta = Vt.T @ ((s / (s**2 + lam))[:, None] * (U.T @ (Z - zm)))  # (p, c)
        coef[cols] = beta[:k].T
        if vary and form == "dml":
            coef_u[cols] = beta[k]
            zm = zm - beta[k] * uu.mean() * _U_SCALE
        intercept[cols] = zm
        if form == "flpm":
            base_floor[cols] = 0.5 * np.maximum((Z).min(axis=0), 1e-12)
    return intercept, coef, coef_u, base_floor


def _inverse(form: str, Z: np.ndarray, E: np.ndarray, a: float, u: np.ndarray) -> np.ndarray:
    """Metric values from transformed values ``Z (n, M)`` (NaN where inadmissible)."""
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        if form == "dml":
            return E + np.exp(np.minimum(Z, 700.0))
        base = Z * np.exp(u)[:, None]
        return np.where(base > 0, E + np.abs(base) ** (-a), np.nan)


def _fit_residual(laws: MetricLaws, R: np.ndarray, Y: np.ndarray, weight: np.ndarray, u: np.ndarray | None) -> None:
    """Kernel ridge on ``log y - log law``, hyperparameters per metric by exact LOO."""
    F = _features(R, u)
    mu = F.mean(axis=0)
    sd = F.std(axis=0)
    sd = np.where(sd > 1e-12, sd, 1.0)
    A = (F - mu) / sd
    with np.errstate(divide="ignore", invalid="ignore"):
        res = np.log(Y) - np.log(laws.law(R, u))
    res = np.where(np.isfinite(res) & (weight > 0), res, 0.0)
    n, M = res.shape
    D = sqdist(A, A) / max(A.shape[1], 1)
    best = np.full(M, np.inf)
    length = np.full(M, KERNEL_LENGTHS[0])
    Wt = np.zeros((n, M))
    for ls in KERNEL_LENGTHS:
        w, V = np.linalg.eigh(np.exp(-D / (2.0 * ls**2)))
        w = np.maximum(w, 0.0)
        VR = V.T @ res
        V2 = V**2
        for nz in KERNEL_NOISES:
            inv_diag = V2 @ (1.0 / (w + nz))
            a = V @ (VR / (w + nz)[:, None])
            e = np.mean((a / inv_diag[:, None]) ** 2, axis=0)
            better = e < best
            if better.any():
                best[better] = e[better]
                length[better] = ls
                Wt[:, better] = a[:, better]
    # the law alone (no residual) is a candidate too: keep it where its LOO error is lower
    law_only = laws.loo_log_rmse**2
    use = best < law_only
    Wt[:, ~use] = 0.0
    laws.loo_log_rmse = np.sqrt(np.where(use, best, law_only))
    if not use.any():
        return
    laws.residual = {"features_mean": mu, "features_sd": sd, "train": A, "weights": Wt, "length": length}


__all__ = ["FLOOR_FRACTIONS", "FLPM_EXPONENTS", "FORMS", "KERNEL_LENGTHS", "KERNEL_NOISES", "RIDGE_PENALTIES",
           "SQDIST_ATOL", "MetricLaws", "fit_metric_laws", "sqdist"]
