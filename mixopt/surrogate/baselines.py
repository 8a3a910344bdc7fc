"""Comparators behind the surrogate interface: RegMix-style direct regression.

**RegMixRegression** (kind ``"regmix"``; Liu et al. 2025, "RegMix: Data Mixture as
Regression") regresses every output -- each domain loss ``loss:<d>`` and each benchmark score
``score:<b>`` -- directly on the mixture ratios (plus ``log`` compute when compute varies),
with no scaling law in between. RegMix uses LightGBM, which mixopt does not depend on; the
regressor here is chosen by backtest on RegMix's own data (fit on the 512 ``train_1m``
mixtures, predict the 256 held-out ``test_1m`` mixtures; Spearman ρ of Pile-CC loss, mean
over the 13 domains):

=====================================================  =============  ==========
regressor                                              ρ Pile-CC      mean ρ
=====================================================  =============  ==========
ridge on ratios (RegMix's "linear regression")          0.906          0.843
ridge on ratios + pairwise products                     0.927          0.869
ridge on ratios + log ratios                            0.984          0.977
**kernel ridge (RBF) on ratios + log ratios**           **0.992**      **0.984**
=====================================================  =============  ==========

(RegMix reports ρ ≈ 0.99 for LightGBM on the same split.) So the model is a **linear
ridge + RBF kernel ridge on the residuals**, i.e. a Gaussian process with an explicit linear
mean, on standardised features ``[r_s, log(r_s + floor), log C]``: the ``log(r + floor)``
features capture the steep fall of a domain's loss with its first few percent of data; the
linear part carries trends the RBF kernel alone would revert to the mean beyond the data
(e.g. ``log C``). Every hyperparameter (ridge penalty; kernel length-scale and noise) is
picked per output by **exact leave-one-out** error (closed form), so fitting is
deterministic and takes well under a second for hundreds of runs. Intervals are the
Gaussian-process predictive distribution (kernel amplitude by maximum likelihood; noise
included), in the fitted units.

**Transform** (``transform``). With ``"log"`` (the recipe before 2026-12-04) losses are
regressed in log space, scores linearly. With ``"auto"`` (the default) and one compute scale
(a swarm), each output ``v`` is fitted as ``log(v - c·min v)`` for the ``c`` in
:data:`SHIFTS` (``c = 0``: the plain log; a score may also stay linear, and only stays linear
when it takes a value ≤ 0) whose exact leave-one-out predictions, mapped back to ``v``, have
the smallest squared relative error; predictions are softly clipped, in the fitted units, to
the training range widened by :data:`CLIP_SPAN` of it on each side (beyond it they grow
logarithmically: rankings are kept). It is Olmix's law form
(``v = exp(c) + exp(Σ t_d r_d)``: a floor plus an exponential in the mixture) with the floor
from a grid instead of a non-convex fit. Measured (fit on the runs outside a fixed 20 %
holdout, mean relative error over the 110 task BPBs of Olmix's 64-domain swarm): 2.30 % vs
2.91 % for ``"log"`` with 410 runs, and with 128 random runs 2.94 % vs 3.64 % (docs/figures.md,
"Planning"); on RegMix (Pile-CC ρ, 128 random 1M runs) 0.977 vs 0.969 at 60M, 0.944 vs 0.906
at 1.1B. With compute varying, ``"auto"`` is ``"log"``: a floor from the runs' minimum would
stop a loss falling at larger compute.

**Scales and kernel** (``scale``, ``kernel``; 2026-12-05). With ``transform="auto"`` on a swarm
the features are not each standardised: each is divided by ``sqrt(sd · g)``, ``g`` the root mean
square sd of its block (``r``, ``log r``), so a domain present in few runs (small sd) is shrunk
more by the ridge than a common one (``scale="partial"``); and the kernel's distances are
weighted per output by ``|coef|`` of its linear part over their root mean square
(``kernel="ard"``, a cheap automatic relevance: an isotropic RBF on 128 features is flat), the
transform then chosen by the linear stage's leave-one-out error and the kernel fitted for it
alone. ``scale="feature"``, ``kernel="iso"`` is the recipe before (and ``transform="log"``'s).
Measured (same protocols as above, random runs, docs/figures.md "Planning"): Olmix held-out
error 4.55 / 3.69 / 2.74 / 2.07 % at 32 / 64 / 128 / 410 runs vs 5.12 / 3.97 / 2.94 / 2.30 %;
RegMix Pile-CC ρ at 60M 0.948 / 0.969 / 0.982 / 0.991 (32 / 64 / 128 / 512) vs 0.903 / 0.966 /
0.977 / 0.988, at 1.1B 0.923 / 0.949 / 0.954 / 0.959 vs 0.844 / 0.942 / 0.944 / 0.963.

Rows: the final checkpoint of each run (``rows="final"``, RegMix's setting) or every
checkpoint (``rows="all"``; more points in compute, but intermediate checkpoints of a cosine
schedule are not fully trained models). At most :data:`MAX_TRAIN_ROWS` rows are used (a
seeded subsample beyond that, with a warning) because the kernel is dense.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np

from mixopt.data.table import LOSS_PREFIX, SCORE_PREFIX, RunTable
from mixopt.errors import ConfigError, SchemaError
from mixopt.laws.metric import sqdist
from mixopt.surrogate.base import Prediction, Surrogate, Targets, check_single_scale, gaussian_interval, register

logger = logging.getLogger(__name__)

#: the kernel is dense (rows x rows): beyond this many training rows a seeded subsample is used
MAX_TRAIN_ROWS = 3000
#: RBF length-scales tried, in units of sqrt(number of features) standard deviations
LENGTH_SCALES: tuple[float, ...] = (0.5, 1.0, 2.0, 4.0, 8.0, 16.0)
#: kernel-ridge noise ratios tried (noise variance / kernel amplitude)
NOISE_RATIOS: tuple[float, ...] = tuple(float(v) for v in np.logspace(-4, 1, 11))
#: ridge penalties tried for the linear part (on standardised features)
RIDGE_PENALTIES: tuple[float, ...] = tuple(float(v) for v in np.logspace(-3, 4, 22))
#: compute must span this factor for log C to be a feature (below it, one compute scale)
MIN_COMPUTE_SPAN = 2.0
_PREDICT_CHUNK = 4096
#: kernel inverses kept per training design for the outputs that share a (length, noise) choice
KINV_CACHE_BYTES = 1 << 28
#: ``transform="auto"``: an output is fitted as ``log(v - c·min v)`` for the ``c`` (of these) with
#: the smallest leave-one-out error (a score may also stay ``v``); ``c = 0`` is the plain log
SHIFTS: tuple[float, ...] = (0.0, 0.5, 0.8, 0.9, 0.95)
#: ``transform="auto"``: predictions are softly clipped, in the fitted units, to the training range
#: widened by this share of it on each side (an exponentiated extrapolation otherwise explodes)
CLIP_SPAN = 0.25
#: beyond those bounds predictions grow logarithmically, on this share of the widening as scale
SOFT_SCALE = 0.25
#: ``transform`` values: ``"auto"`` (default) and ``"log"`` (the recipe before 2026-12-04)
TRANSFORMS: tuple[str, ...] = ("auto", "log")
#: ``scale`` values: ``"partial"`` (each feature divided by ``sqrt(sd · g)``, ``g`` the root mean square
#: of its block's standard deviations) and ``"feature"`` (each by its own ``sd``, the recipe before)
SCALES: tuple[str, ...] = ("partial", "feature")
#: ``kernel`` values: ``"ard"`` (distances weighted per output by its linear part's coefficients) and
#: ``"iso"`` (one isotropic length-scale, the recipe before)
KERNELS: tuple[str, ...] = ("ard", "iso")


def _decompose(Z: np.ndarray, *, kernel: bool = True) -> dict[str, Any]:
    """Factorisations of one training design shared by every output fitted on it (:func:`_fit_output`
    adds to it what depends on the design only: the ridge hat diagonals, the kernel stage's
    leave-one-out diagonals and the kernel inverses, so each is computed once per design).
    ``kernel=False``: the SVD only (``kernel="ard"``: every output's kernel is its own, so the
    design's eigendecompositions would go unused)."""
    return {"svd": np.linalg.svd(Z, full_matrices=False), **(_decompose_kernel(Z) if kernel else {})}


def _decompose_kernel(Z: np.ndarray) -> dict[str, Any]:
    """``{"eig": {length: (eigenvalues, eigenvectors)}}`` of the RBF kernel on ``Z`` per length-scale."""
    D = sqdist(Z, Z) / max(Z.shape[1], 1)
    eig = {}
    for ls in LENGTH_SCALES:
        w, V = np.linalg.eigh(np.exp(-D / (2.0 * ls**2)))
        eig[ls] = (np.maximum(w, 0.0), V)
    return {"eig": eig}


def _ridge(Z: np.ndarray, y: np.ndarray, dec: dict[str, Any]) -> tuple[float, np.ndarray, float, float, np.ndarray]:
    """The linear ridge stage of :func:`_fit_output`: ``(intercept, coef, penalty, its LOO mean
    squared error, the exact LOO residuals)``, the penalty by exact leave-one-out (hat matrix via SVD)."""
    n = Z.shape[0]
    ym = float(y.mean())
    yc = y - ym
    U, s, Vt = dec["svd"]
    Uty = U.T @ yc
    best = (math.inf, 0.0)
    hats = dec.setdefault("hat", {})  # what depends on the design only, shared by every output fitted on it
    for lam in RIDGE_PENALTIES:
        d = s**2 / (s**2 + lam)
        fit = U @ (d * Uty)
        if lam not in hats:
            hats[lam] = np.einsum("ij,j,ij->i", U, d, U) + 1.0 / n
        h = hats[lam]
        r = (yc - fit) / np.maximum(1.0 - h, 1e-9)
        e = float(np.mean(r**2))
        if e < best[0]:
            best = (e, lam, r)
    lam = best[1]
    coef = Vt.T @ ((s / (s**2 + lam)) * Uty)
    return ym, coef, lam, best[0], best[2]


def _ard_weights(coef: np.ndarray) -> np.ndarray:
    """``kernel="ard"``: the kernel's per-feature weights, ``|coef|`` over its root mean square (ones
    when every coefficient is zero): features the linear part found irrelevant do not spread the
    kernel's distances (an isotropic RBF in many features sees every mixture as far from every other)."""
    rms = math.sqrt(float(np.mean(coef**2)))
    return np.abs(coef) / rms if rms > 1e-300 else np.ones_like(coef)


def _fit_output(Z: np.ndarray, y: np.ndarray, dec: dict[str, Any], *, ard: bool = False) -> dict[str, Any]:
    """Fit one output on standardised features ``Z (n, q)`` and targets ``y (n,)``.

    Args:
        dec: :func:`_decompose` of ``Z``.
        ard: the kernel's distances on ``Z · w`` (:func:`_ard_weights` of the linear part's
            coefficients; kept as ``kweights``) instead of ``Z``: its eigendecompositions are this
            output's own (``eig``), not the design's.

    Returns:
        ``coef (q,)``, ``intercept``, ``alpha (n,)``, ``length``, ``noise``, ``amplitude``,
        ``kinv (n, n)`` (the inverse of ``K + noise·I``) and ``loo_rmse``.
    """
    n = Z.shape[0]
    ym, coef, lam, ridge_mse, _ = _ridge(Z, y, dec)
    res = y - ym - Z @ coef
    # kernel ridge on the residuals: length-scale and noise by exact LOO
    choice = (math.inf, LENGTH_SCALES[0], NOISE_RATIOS[0])
    own: dict[str, Any] = {}
    if ard:
        kw = _ard_weights(coef)
        own = _decompose_kernel(Z * kw)
    kdec = own if ard else dec
    diags = kdec.setdefault("inv_diag", {})
    for ls in LENGTH_SCALES:
        w, V = kdec["eig"][ls]
        Vr = V.T @ res
        V2 = None  # V**2, once per length-scale for the noise ratios whose diagonals are not kept yet
        for nz in NOISE_RATIOS:
            if (ls, nz) not in diags:
                if V2 is None:
                    V2 = V**2
                diags[(ls, nz)] = V2 @ (1.0 / (w + nz))
            inv_diag = diags[(ls, nz)]
            a = V @ (Vr / (w + nz))
            e = float(np.mean((a / inv_diag) ** 2))
            if e < choice[0]:
                choice = (e, ls, nz)
    _, ls, nz = choice
    kinvs = kdec.setdefault("kinv", {})
    kinv = kinvs.get((ls, nz))
    if kinv is None:
        w, V = kdec["eig"][ls]
        kinv = (V / (w + nz)) @ V.T
        if not ard and (len(kinvs) + 1) * kinv.nbytes <= KINV_CACHE_BYTES:
            kinvs[(ls, nz)] = kinv  # shared, read-only, by the outputs that choose (ls, nz)
    alpha = kinv @ res
    amplitude = max(float(res @ alpha) / n, 1e-300)  # ML estimate of the kernel amplitude
    fit = {"coef": coef, "intercept": ym, "alpha": alpha, "length": ls, "noise": nz, "amplitude": amplitude, "kinv": kinv, "loo_rmse": math.sqrt(choice[0]), "ridge": lam, "ridge_mse": ridge_mse}
    if ard:
        fit["kweights"] = kw
        fit["_kdec"] = own  # transient (not saved): for _loo_residuals
    return fit


def _loo_residuals(Z: np.ndarray, z: np.ndarray, dec: dict[str, Any], fit: dict[str, Any]) -> np.ndarray:
    """Exact leave-one-out residuals of the kernel stage of ``fit`` (the linear part held fixed)."""
    dec = fit.get("_kdec", dec)  # kernel="ard": the output's own decompositions
    w, V = dec["eig"][fit["length"]]
    nz = fit["noise"]
    res = z - fit["intercept"] - Z @ fit["coef"]
    inv_diag = dec.get("inv_diag", {}).get((fit["length"], nz))  # kept by _fit_output for the chosen (length, noise)
    if inv_diag is None:
        inv_diag = (V**2) @ (1.0 / (w + nz))
    return (V @ ((V.T @ res) / (w + nz))) / inv_diag


def _soft_clip(z: np.ndarray, bounds: tuple[float, float]) -> np.ndarray:
    """``z`` unchanged within ``bounds`` (the training range widened by :data:`CLIP_SPAN` of it on
    each side), beyond them growing only logarithmically (scale: :data:`SOFT_SCALE` of that
    widening): continuous, strictly increasing (so it keeps every ranking: a search over mixtures
    meets no plateau of ties), and an exponentiated extrapolation stays tame."""
    lo, hi = bounds
    w = max(SOFT_SCALE * (hi - lo) * CLIP_SPAN / (1.0 + 2.0 * CLIP_SPAN), 1e-12)
    z = np.asarray(z, dtype=np.float64)
    below, above = z < lo, z > hi
    if not (below.any() or above.any()):
        return z
    out = z.copy()
    out[below] = lo - w * np.log1p((lo - z[below]) / w)
    out[above] = hi + w * np.log1p((z[above] - hi) / w)
    return out


def _fit_transformed(Z: np.ndarray, v: np.ndarray, dec: dict[str, Any], *, loss: bool, auto: bool, ard: bool = False) -> dict[str, Any]:
    """Fit one output's values ``v (n,)`` in its best transform (:data:`SHIFTS`, module docstring).

    ``auto=False`` is the fixed recipe: ``log v`` for a loss, ``v`` for a score. ``auto=True``
    tries ``log(v - c·min v)`` for every ``c`` in :data:`SHIFTS` (and ``v`` itself for a
    score; the shifted logs only when every value is > 0) and keeps the transform whose exact
    leave-one-out predictions, mapped back to ``v``'s units, have the smallest squared relative error.
    The returned fit has ``shift`` (``None``: ``v`` itself; a number ``s``: the fit is of
    ``log(v - s)``) and ``zclip`` (``None`` or the range predictions are softly clipped to in the
    fitted units).

    With ``ard`` (``kernel="ard"``: the kernel is the output's own, one eigendecomposition per
    length-scale) the transform is chosen by the linear stage's exact leave-one-out predictions
    alone, and the kernel is fitted for the chosen transform only.
    """
    cands: list[float | None] = [0.0] if loss else [None]
    if auto and float(v.min()) > 0:
        cands += [c * float(v.min()) for c in SHIFTS if c > 0 or not loss]
    if ard:
        return _fit_transformed_ard(Z, v, dec, cands)
    best: tuple[float, dict[str, Any] | None] = (math.inf, None)
    for s in cands:
        z = v if s is None else np.log(v - s)
        fit = _fit_output(Z, z, dec)
        fit["shift"] = s
        fit["zclip"] = None
        if len(cands) == 1:
            return fit
        lo, hi = float(z.min()), float(z.max())
        span = hi - lo
        fit["zclip"] = (lo - CLIP_SPAN * span, hi + CLIP_SPAN * span)
        z_loo = _soft_clip(z - _loo_residuals(Z, z, dec, fit), fit["zclip"])
        v_loo = z_loo if s is None else np.exp(z_loo) + s
        e = float(np.mean(((v_loo - v) / v) ** 2))  # every v > 0 where there is a choice
        if e < best[0]:
            best = (e, fit)
    assert best[1] is not None
    return best[1]


def _zclip(z: np.ndarray) -> tuple[float, float]:
    lo, hi = float(z.min()), float(z.max())
    return lo - CLIP_SPAN * (hi - lo), hi + CLIP_SPAN * (hi - lo)


def _fit_transformed_ard(Z: np.ndarray, v: np.ndarray, dec: dict[str, Any], cands: list[float | None]) -> dict[str, Any]:
    """:func:`_fit_transformed` with ``kernel="ard"``: the transform (of ``cands``) by the linear
    stage's exact leave-one-out relative error, then the full fit for that transform."""
    best: tuple[float, float | None] = (math.inf, cands[0])
    if len(cands) > 1:
        for s in cands:
            z = v if s is None else np.log(v - s)
            r = _ridge(Z, z, dec)[4]
            z_loo = _soft_clip(z - r, _zclip(z))
            e = float(np.mean((((z_loo if s is None else np.exp(z_loo) + s) - v) / v) ** 2))
            if e < best[0]:
                best = (e, s)
    s = best[1]
    z = v if s is None else np.log(v - s)
    fit = _fit_output(Z, z, dec, ard=True)
    fit["shift"] = s
    fit["zclip"] = _zclip(z) if len(cands) > 1 else None
    return fit


def _scales(sd: np.ndarray, n_domains: int, *, partial: bool) -> np.ndarray:
    """The features' divisors from their standard deviations ``sd`` (blocks: ``r``, ``log r``,
    then ``log C`` if present, ``n_domains`` columns each but the last). ``partial``: ``sqrt(sd ·
    g)``, ``g`` the block's root mean square sd (a domain in few runs, small sd, is not blown up
    to the scale of a common one, so the ridge shrinks it more); else ``sd``. Constant features: 1."""
    ok = sd > 1e-12
    if not partial:
        return np.where(ok, sd, 1.0)
    out = np.ones_like(sd)
    for lo in range(0, sd.size, n_domains):
        blk = slice(lo, min(lo + n_domains, sd.size))
        s, k = sd[blk], ok[blk]
        if k.any():
            g = math.sqrt(float(np.mean(s[k] ** 2)))
            out[blk] = np.where(k, np.sqrt(s * g), 1.0)
    return out


@register
class RegMixRegression(Surrogate):
    """RegMix-style regression from mixture ratios (and log compute) to every output.

    Args:
        rows: ``"final"`` (the final checkpoint of each run, default) or ``"all"``.
        log_floor: floor ``ε`` of the ``log(r + ε)`` features (RegMix ratios have 3 decimals).
        min_rows: fewest rows with a finite value for an output to be predictable.
        fixed_compute_tolerance: with one compute scale in training, targets within this
            relative distance are predicted at it; others raise NotPredictableError.
        seed: seeds the subsample when there are more than :data:`MAX_TRAIN_ROWS` rows.
        transform: ``"auto"`` (default): with one compute scale (a swarm), each output fitted
            as ``log(v - c·min v)`` with ``c`` by leave-one-out (:data:`SHIFTS`; a score may
            also stay linear), predictions softly clipped near the training range; with compute
            varying, as ``"log"``: losses in log, scores linear, no clipping (the recipe
            before 2026-12-04, every table).
        scale: the features' scales (module docstring, **Scales and kernel**): ``"partial"``
            (each feature divided by ``sqrt(sd · g)``, ``g`` its block's root mean square sd) or
            ``"feature"`` (each by its own sd); ``None`` (default): ``"partial"`` with
            ``transform="auto"`` and one compute scale, else ``"feature"`` (the recipe before).
        kernel: ``"ard"`` (the kernel's distances weighted per output by its linear part's
            coefficients) or ``"iso"`` (one isotropic length-scale); ``None`` (default):
            ``"ard"`` where ``scale`` resolves to ``"partial"``, else ``"iso"``.

    Attributes (after fit):
        outputs_: ``loss:<d>`` per loss domain, then ``score:<b>`` per benchmark.
        unpredictable_: outputs with fewer than ``min_rows`` values, with the reason.
        vary_compute_: whether ``log C`` is a feature.
        scale_, kernel_: the resolved ``scale`` and ``kernel``.
    """

    kind: ClassVar[str] = "regmix"
    uses_mixture: ClassVar[bool] = True

    def __init__(
        self,
        *,
        rows: str = "final",
        log_floor: float = 1e-3,
        min_rows: int = 8,
        fixed_compute_tolerance: float = 0.25,
        seed: int = 0,
        transform: str = "auto",
        scale: str | None = None,
        kernel: str | None = None,
    ) -> None:
        self.rows = rows
        self.log_floor = log_floor
        self.min_rows = min_rows
        self.fixed_compute_tolerance = fixed_compute_tolerance
        self.seed = seed
        self.transform = transform
        self.scale = scale
        self.kernel = kernel

    def _check_settings(self) -> None:
        problems = []
        if self.rows not in ("final", "all"):
            problems.append(f"rows must be 'final' or 'all', got {self.rows!r}")
        if not isinstance(self.log_floor, (int, float)) or not (0 < self.log_floor < 1):
            problems.append(f"log_floor must be in (0, 1), got {self.log_floor!r}")
        if not isinstance(self.min_rows, (int, np.integer)) or self.min_rows < 3:
            problems.append(f"min_rows must be an integer >= 3, got {self.min_rows!r}")
        if not isinstance(self.fixed_compute_tolerance, (int, float)) or not self.fixed_compute_tolerance > 0:
            problems.append(f"fixed_compute_tolerance must be > 0, got {self.fixed_compute_tolerance!r}")
        if not isinstance(self.seed, (int, np.integer)):
            problems.append(f"seed must be an integer, got {self.seed!r}")
        if self.transform not in TRANSFORMS:
            problems.append(f"transform must be one of {list(TRANSFORMS)}, got {self.transform!r}")
        if self.scale is not None and self.scale not in SCALES:
            problems.append(f"scale must be one of {list(SCALES)} or None (the transform's default), got {self.scale!r}")
        if self.kernel is not None and self.kernel not in KERNELS:
            problems.append(f"kernel must be one of {list(KERNELS)} or None (the transform's default), got {self.kernel!r}")
        if problems:
            raise ConfigError("Invalid RegMixRegression settings: " + "; ".join(problems) + ".")

    # -- features -------------------------------------------------------------------------------
    def _raw_features(self, flops: np.ndarray, R: np.ndarray) -> np.ndarray:
        cols = [R, np.log(R + float(self.log_floor))]
        if self.vary_compute_:
            cols.append(np.log(flops)[:, None])
        return np.column_stack(cols)

    def _features(self, flops: np.ndarray, R: np.ndarray) -> np.ndarray:
        return (self._raw_features(flops, R) - self.feat_mean_) / self.feat_sd_

    # -- fit -----------------------------------------------------------------------------------
    def _fit(self, runs: RunTable) -> None:
        self._check_settings()
        if not runs.domains:
            raise SchemaError("RegMixRegression needs mixture columns (mix:<domain>); the run table has none.")
        table = runs.final() if self.rows == "final" else runs
        flops = table.flops()
        R = table.mixture()
        span = float(flops.max() / flops.min())
        self.vary_compute_ = span >= MIN_COMPUTE_SPAN
        self.compute_range_ = (float(flops.min()), float(flops.max()))
        if not self.vary_compute_:
            logger.info("RegMixRegression: one compute scale (span %.3g); regressing on the mixture only.", span)
        n = flops.shape[0]
        if n > MAX_TRAIN_ROWS:
            logger.warning("RegMixRegression: %d rows; using a seeded subsample of %d (dense kernel).", n, MAX_TRAIN_ROWS)
            keep = np.sort(np.random.default_rng(self.seed).choice(n, MAX_TRAIN_ROWS, replace=False))
        else:
            keep = np.arange(n)
        self.domains_ = tuple(runs.domains)
        self.benchmarks_ = tuple(runs.benchmarks)
        raw = self._raw_features(flops[keep], R[keep])
        # a shifted log puts a floor under the output: sound within one compute scale (a swarm),
        # not when extrapolating in compute (losses keep falling below the runs' minimum)
        auto = self.transform == "auto" and not self.vary_compute_
        self.scale_ = self.scale or ("partial" if auto else "feature")
        self.kernel_ = self.kernel or ("ard" if self.scale_ == "partial" and auto else "iso")
        self.feat_mean_ = raw.mean(axis=0)
        self.feat_sd_ = _scales(raw.std(axis=0), len(self.domains_), partial=self.scale_ == "partial")
        Z = (raw - self.feat_mean_) / self.feat_sd_
        names = [LOSS_PREFIX + d for d in runs.loss_domains] + [SCORE_PREFIX + b for b in runs.benchmark_names]
        values = np.column_stack([table.losses(runs.loss_domains), table.scores()]) if names else np.zeros((n, 0))
        values = values[keep]
        self.outputs_ = tuple(names)
        self.log_outputs_ = tuple(q.startswith(LOSS_PREFIX) for q in names)
        self.unpredictable_ = {}
        self.train_features_ = Z
        self.fits_: dict[str, dict[str, Any]] = {}
        cache: dict[bytes, dict[str, Any]] = {}  # factorisations per set of training rows
        for j, q in enumerate(names):
            v = values[:, j]
            ok = np.isfinite(v)
            if int(ok.sum()) < self.min_rows:
                self.unpredictable_[q] = f"not predictable: {int(ok.sum())} row(s) with a value; RegMix regression needs >= {self.min_rows}. Evaluate more runs or lower min_rows."
                continue
            key = np.packbits(ok).tobytes()
            if key not in cache:
                cache[key] = _decompose(Z[ok], kernel=self.kernel_ != "ard")
            fit = _fit_transformed(Z[ok], v[ok], cache[key], loss=self.log_outputs_[j], auto=auto, ard=self.kernel_ == "ard")
            fit.pop("_kdec", None)
            fit["rows"] = np.flatnonzero(ok).astype(np.float64)
            self.fits_[q] = fit

    # -- predict -------------------------------------------------------------------------------
    def _predict(self, targets: Targets, *, intervals: bool, level: float) -> Prediction:
        C = targets.flops
        R = targets.mixture
        assert R is not None
        if not self.vary_compute_:
            check_single_scale(C, self.compute_range_, self.fixed_compute_tolerance, "RegMixRegression")
        n = len(targets)
        names = list(self.outputs_)
        mean = np.full((n, len(names)), np.nan)
        lower = upper = std = None
        if intervals:
            lower, upper, std = (np.full((n, len(names)), np.nan) for _ in range(3))
        for s in range(0, n, _PREDICT_CHUNK):
            Zt = self._features(C[s : s + _PREDICT_CHUNK], R[s : s + _PREDICT_CHUNK])
            dist: dict[bytes, np.ndarray] = {}  # distances per set of training rows
            for j, q in enumerate(names):
                fit = self.fits_.get(q)
                if fit is None:
                    continue
                kw = fit.get("kweights")
                key = fit["rows"].tobytes()
                if kw is not None:  # kernel="ard": this output's own distances
                    Zr = self.train_features_[fit["rows"].astype(np.int64)]
                    d2 = sqdist(Zt * kw, Zr * kw) / max(Zr.shape[1], 1)
                else:
                    if key not in dist:
                        Zr = self.train_features_[fit["rows"].astype(np.int64)]
                        dist[key] = sqdist(Zt, Zr) / max(Zr.shape[1], 1)
                    d2 = dist[key]
                Kt = np.exp(d2 * (-0.5 / fit["length"] ** 2))
                mu = self._clip(fit, fit["intercept"] + Zt @ fit["coef"] + Kt @ fit["alpha"])
                shift = self._shift(j, fit)
                if intervals:
                    var_f = np.maximum(1.0 - ((Kt @ fit["kinv"]) * Kt).sum(axis=1), 0.0)
                    sd = np.sqrt(fit["amplitude"] * (var_f + fit["noise"]))
                    lo, hi = gaussian_interval(mu, sd, level)
                    if shift is not None:
                        lower[s : s + _PREDICT_CHUNK, j], upper[s : s + _PREDICT_CHUNK, j] = np.exp(lo) + shift, np.exp(hi) + shift  # type: ignore[index]
                        std[s : s + _PREDICT_CHUNK, j] = np.exp(mu) * sd  # type: ignore[index]
                    else:
                        lower[s : s + _PREDICT_CHUNK, j], upper[s : s + _PREDICT_CHUNK, j] = lo, hi  # type: ignore[index]
                        std[s : s + _PREDICT_CHUNK, j] = sd  # type: ignore[index]
                mean[s : s + _PREDICT_CHUNK, j] = mu if shift is None else np.exp(mu) + shift
        return Prediction(names=tuple(names), mean=mean, lower=lower, upper=upper, std=std, level=level, unpredictable=dict(self.unpredictable_))

    def _shift(self, j: int, fit: dict[str, Any]) -> float | None:
        """Output ``j``'s fitted transform: ``None`` (the values themselves) or ``s`` (``log(v - s)``)."""
        if "shift" in fit:
            return fit["shift"]
        return 0.0 if self.log_outputs_[j] else None  # a fit from before transform="auto"

    @staticmethod
    def _clip(fit: dict[str, Any], z: np.ndarray) -> np.ndarray:
        """``z`` (fitted units) softly clipped (:func:`_soft_clip`) to the fit's ``zclip`` range, where it has one."""
        return z if fit.get("zclip") is None else _soft_clip(z, fit["zclip"])

    def _untransform(self, j: int, fit: dict[str, Any], z: np.ndarray) -> np.ndarray:
        """Values in output units from (clipped) fitted units."""
        z = self._clip(fit, z)
        shift = self._shift(j, fit)
        return z if shift is None else np.exp(z) + shift

    def _extrapolation_reference(self) -> tuple[float | None, float | None]:
        return float(self.compute_range_[1]), None

    def _predict_draws(self, targets: Targets, *, n_draws: int, seed: int) -> dict[str, np.ndarray]:
        """Joint draws: each output's kernel ridge refitted to its training values plus one
        seeded noise draw per training run (the same for every target, so nearby mixtures
        move together), marginals matched to the Gaussian-process interval
        (:func:`~mixopt.surrogate.draws.calibrated_draws`); targets far from every training
        run (no kernel weight) get the comonotone default."""
        from mixopt.surrogate.draws import DRAW_LEVEL, calibrated_draws, draw_rng

        pred = self._predict(targets, intervals=True, level=DRAW_LEVEL)
        rng = draw_rng(seed, 2)
        Zt = self._features(targets.flops, targets.mixture)  # type: ignore[arg-type]
        raw: dict[str, np.ndarray] = {}
        for j, q in enumerate(self.outputs_):
            fit = self.fits_.get(q)
            if fit is None:
                continue
            rows = fit["rows"].astype(np.int64)
            delta = rng.standard_normal((n_draws, rows.size)) * math.sqrt(fit["amplitude"] * fit["noise"])
            Zr = self.train_features_[rows]
            kw = fit.get("kweights", 1.0)
            Kt = np.exp(sqdist(Zt * kw, Zr * kw) * (-0.5 / (max(Zr.shape[1], 1) * fit["length"] ** 2)))
            mu = fit["intercept"] + Zt @ fit["coef"] + Kt @ fit["alpha"]
            # (S, n): the cheaper association (the kernel inverse is n_train x n_train)
            if n_draws <= Kt.shape[0]:
                f = mu[None, :] + (delta @ fit["kinv"]) @ Kt.T
            else:
                f = mu[None, :] + delta @ (Kt @ fit["kinv"]).T
            raw[q] = self._untransform(j, fit, f)
        return calibrated_draws(
            raw,
            pred.mean,
            pred.lower,
            pred.upper,
            pred.names,  # type: ignore[arg-type]
            n_draws=n_draws,
            seed=seed,
        )

    def predict_posterior_draws(self, targets: Targets, *, n_draws: int, seed: int, names: tuple[str, ...] | None = None) -> dict[str, np.ndarray]:
        """Function-space draws ``{name: (n_draws, n)}`` from the Gaussian process's joint
        posterior over the ``n`` rows of ``targets`` (one call: rows are jointly drawn only
        within it). Unlike :meth:`predict_draws` (the fit's response to noise at the training
        runs, near zero far from them), the covariance is ``amplitude · (k(x, x') -
        k(x)ᵀ (K + noise·I)⁻¹ k(x'))`` plus the linear part's (Bayesian ridge: ``s² · (zᵀ (ZᵀZ +
        λI)⁻¹ z' + 1/n)``, ``s²`` the ridge's leave-one-out error, ``λ`` its penalty; without it
        a fit whose kernel amplitude is ~0, as at a few runs, draws almost nothing where
        the linear coefficients are most uncertain): large where no run is near, and shared between
        nearby rows, so it says what measuring one mixture would teach about another
        (used by :mod:`mixopt.search.plan`). Latent function only (no measurement noise);
        losses are drawn in log space and exponentiated. ``names``: only these outputs
        (default: every output)."""
        from mixopt.surrogate.draws import check_draw_args, draw_rng

        self._check_fitted()
        n_draws, seed = check_draw_args(n_draws, seed)
        targets = targets.align(self.domains_)
        Zt = self._features(targets.flops, targets.mixture)  # type: ignore[arg-type]
        n = Zt.shape[0]
        rng = draw_rng(seed, 3)
        Ktt = np.exp(sqdist(Zt, Zt) * (-0.5 / (max(Zt.shape[1], 1))))
        out: dict[str, np.ndarray] = {}
        for j, q in enumerate(self.outputs_):
            if names is not None and q not in names:
                continue
            fit = self.fits_.get(q)
            if fit is None:
                out[q] = np.full((n_draws, n), np.nan)
                continue
            Zr = self.train_features_[fit["rows"].astype(np.int64)]
            inv_l2 = 1.0 / fit["length"] ** 2
            kw = fit.get("kweights")
            if kw is None:
                Kt = np.exp(sqdist(Zt, Zr) * (-0.5 / (max(Zr.shape[1], 1) * fit["length"] ** 2)))
                Kself = Ktt**inv_l2
            else:  # kernel="ard": this output's own distances
                Kt = np.exp(sqdist(Zt * kw, Zr * kw) * (-0.5 / (max(Zr.shape[1], 1) * fit["length"] ** 2)))
                Kself = np.exp(sqdist(Zt * kw, Zt * kw) * (-0.5 / (max(Zt.shape[1], 1) * fit["length"] ** 2)))
            mu = fit["intercept"] + Zt @ fit["coef"] + Kt @ fit["alpha"]
            cov = fit["amplitude"] * (Kself - Kt @ fit["kinv"] @ Kt.T)
            if "ridge" in fit:  # the linear part's posterior (Bayesian ridge: coef ~ N(coef, s2 (ZᵀZ + λI)⁻¹), intercept s2/n)
                _, sv, Vt = np.linalg.svd(Zr, full_matrices=False)
                A = (Zt @ Vt.T) / np.sqrt(sv**2 + fit["ridge"])[None, :]
                cov = cov + fit["ridge_mse"] * (A @ A.T + 1.0 / Zr.shape[0])
            w, V = np.linalg.eigh(0.5 * (cov + cov.T))
            z = rng.standard_normal((n_draws, n))
            f = mu[None, :] + (z * np.sqrt(np.clip(w, 0.0, None))[None, :]) @ V.T
            out[q] = self._untransform(j, fit, f)
        return out

    def design_size(self, names: tuple[str, ...] | None = None) -> tuple[int, int] | None:
        """``(runs, parameters)``: the fewest training rows among the fits of ``names`` (default: every
        fitted output) and the linear part's parameters (features + intercept); None when none of
        them is fitted. With fewer runs than parameters the linear part is underdetermined (its
        leave-one-out choice of the penalty can then pick a near-interpolation), which
        :mod:`mixopt.search.plan` reads as "the posterior is not yet informative" (``[plan] fill``)."""
        self._check_fitted()
        fits = [f for q, f in self.fits_.items() if names is None or q in names]
        if not fits:
            return None
        return min(int(f["rows"].size) for f in fits), int(self.train_features_.shape[1]) + 1

    # -- state ---------------------------------------------------------------------------------
    def _get_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        state: dict[str, Any] = {
            "vary_compute": bool(self.vary_compute_),
            "compute_range": list(self.compute_range_),
            "log_outputs": list(self.log_outputs_),
            "scale": self.scale_,
            "kernel": self.kernel_,
            "fits": {},
        }
        arrays: dict[str, np.ndarray] = {"feat_mean": self.feat_mean_, "feat_sd": self.feat_sd_, "train_features": self.train_features_}
        for i, (q, fit) in enumerate(self.fits_.items()):
            state["fits"][q] = {
                "index": i,
                "intercept": fit["intercept"],
                "length": fit["length"],
                "noise": fit["noise"],
                "amplitude": fit["amplitude"],
                "loo_rmse": fit["loo_rmse"],
                **{k: fit[k] for k in ("ridge", "ridge_mse") if k in fit},
                "shift": self._shift(self.outputs_.index(q), fit),
                "zclip": None if fit.get("zclip") is None else [float(x) for x in fit["zclip"]],
            }
            for key in ("coef", "alpha", "kinv", "rows", "kweights"):
                if key in fit:  # kweights: kernel="ard" only
                    arrays[f"fit{i}.{key}"] = fit[key]
        return state, arrays

    def _set_state(self, state: dict[str, Any], arrays: Mapping[str, np.ndarray]) -> None:
        self.vary_compute_ = bool(state["vary_compute"])
        self.compute_range_ = (float(state["compute_range"][0]), float(state["compute_range"][1]))
        self.log_outputs_ = tuple(bool(v) for v in state["log_outputs"])
        self.scale_ = str(state.get("scale", "feature"))  # absent from models saved before scale / kernel
        self.kernel_ = str(state.get("kernel", "iso"))
        self.feat_mean_ = np.asarray(arrays["feat_mean"], dtype=np.float64)
        self.feat_sd_ = np.asarray(arrays["feat_sd"], dtype=np.float64)
        self.train_features_ = np.asarray(arrays["train_features"], dtype=np.float64)
        self.fits_ = {}
        for q, st in dict(state["fits"]).items():
            i = int(st["index"])
            fit = {
                k: float(st[k]) for k in ("intercept", "length", "noise", "amplitude", "loo_rmse", "ridge", "ridge_mse") if k in st
            }  # ridge, ridge_mse: absent from models saved before the linear part's posterior
            if "shift" in st:  # absent from models saved before transform="auto" (their shift follows log_outputs)
                fit["shift"] = None if st["shift"] is None else float(st["shift"])
                fit["zclip"] = None if st.get("zclip") is None else (float(st["zclip"][0]), float(st["zclip"][1]))
            for key in ("coef", "alpha", "kinv", "rows", "kweights"):
                if f"fit{i}.{key}" in arrays:  # kweights: kernel="ard" only
                    fit[key] = np.asarray(arrays[f"fit{i}.{key}"], dtype=np.float64)
            self.fits_[q] = fit


__all__ = ["CLIP_SPAN", "KERNELS", "MAX_TRAIN_ROWS", "SCALES", "SHIFTS", "SOFT_SCALE", "TRANSFORMS", "RegMixRegression"]
