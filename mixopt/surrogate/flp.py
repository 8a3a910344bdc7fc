"""FLP (FLOPs -> loss -> score, Chen et al. 2024); the FP baseline (FLOPs -> score) is in :mod:`mixopt.surrogate.fp`.

**FLP** (kind ``"flp"``), exactly the paper's two stages:

1. *FLOPs -> loss* on the **final checkpoint of every run** (:meth:`RunTable.final`; with
   ``checkpoints="usable"`` also the intermediate checkpoints of WSD/constant-schedule runs).
   Form ``stage1``: ``"auto"`` (default, see below), ``"power_offset"`` (``L = E + A·C^-alpha``),
   ``"pure_power"`` (the paper's ``L = (C / C_N)^alpha_N``), ``"chinchilla"`` (``L(N, D)``) or
   ``"chinchilla_tied"`` (``L(N, D)`` with one exponent, Gadre et al.'s form); the N,D forms need
   ``params`` and ``tokens`` in the targets. Fitted in log space; rows whose loss is missing
   (null) are skipped.
2. *loss -> score*, one law per benchmark, on the **emerged checkpoints of all runs**
   (every checkpoint counts, not only final ones): ``stage2="linear"`` (the paper,
   ``P = w0 + w1·L``, least squares in closed form) or ``"sigmoid"`` (the reviewers'
   suggestion, chance floor to a ceiling; fitted on *all* checkpoints by default because its
   floor models the non-emerged ones, see ``stage2_points``).

Prediction ``P = stage2(stage1(C))``. Linear stage-2 predictions are not clipped to the
metric's range (the paper does not clip): far beyond the sampling runs a linear map can pass
1.0 or fall below chance, which is the cue to try ``stage2="sigmoid"``. Intervals come from a **bootstrap by run**: draw
``b`` refits stage 1 on the runs resampled with replacement and every stage-2 law on the runs
reweighted by one Bayesian-bootstrap draw (``stage2_bootstrap="bayesian"``, default: every run
keeps a positive weight, :meth:`~mixopt.laws.uncertainty.GroupResample.dirichlet`); the
prediction of draw ``b`` is ``stage2_b(stage1_b(C))``. Stage 2 keeps every run because a
sigmoid's ceiling rests on the few largest runs: a by-run resample of 6 runs leaves the largest
out of a third of the draws, whose refits put the ceiling anywhere, and on the synthetic worlds
those draws made the score intervals 3x wider than the errors at the median (normalised error
0.12 where a calibrated Gaussian interval gives 0.41; docs/figures.md). ``stage2_bootstrap="runs"``
(and ``preset="paper"``) refits both stages on the same by-run resample. Residual noise is added (when
``include_noise``): stage 2's residual sd, plus stage 1's log-loss residual sd carried to
the score by the delta method (``|dP/dL|·L·sd1``) — a new model's loss also misses the law.
The loss output's own noise sd is at least the measurement noise its checkpoints show
(``loss_noise_sd_``, where the stage-1 fit has more points than parameters; not under
``preset="paper"``): a residual sd from a few final checkpoints can come out near 0.

**Emergence** (paper: score >= chance + 5 points): see :mod:`mixopt.surrogate.emergence`
(``emergence_margin``, ``emergence="checkpoint"`` or ``"first_crossing"``).

**Weak evidence.** A benchmark with fewer than ``min_emerged`` (default 3) emerged
checkpoints, or emerged checkpoints from fewer than ``min_runs`` (default 2) distinct runs,
is still predicted when it has a chance level, at least ``min_emerged`` evaluated
checkpoints from ``min_runs`` runs (:func:`~mixopt.surrogate.emergence.weak_evidence_predictable`,
the rule FLP-M follows too) and a signal: its scores follow the loss
(:func:`~mixopt.surrogate.emergence.score_signal` >= :data:`~mixopt.surrogate.emergence.SIGNAL_Z`). Its stage 2 is the chance-anchored sigmoid fitted on every
evaluated checkpoint (the foot of its emergence curve), and its intervals are calibrated in a
group of their own (``"weak"``: held-out rows of benchmarks the fold's model predicted on
weak evidence), so they come out wide. It is listed in ``weak_`` and in ``selection_``
(status ``weak``) with the evidence it rests on. ``preset="paper"`` and a fixed link other
than ``"sigmoid"`` drop it as the paper does.

**Not predictable** (never extrapolated silently): a benchmark with too few emerged
checkpoints and no chance level, too few evaluated checkpoints, or no signal at all (scores
that do not follow the loss: noise around chance, nothing to extrapolate), or whose fit
fails. It is listed in ``unpredictable_`` with the
reason, and its predictions are NaN.

**Loss column** (``loss_column``): None uses the overall ``loss`` column; a table with only
per-domain ``loss:<d>`` columns is an error listing them — FLP models *one* loss, and silently
picking a domain would change what is being predicted; pass e.g. ``loss_column="loss:web"``.

**Choosing by the data** (``"auto"``, the default of ``stage1``, ``stage2`` and
``checkpoints``; ``calibrate=True``). Choices come from internal backtests on the runs given to
``fit`` (:mod:`mixopt.surrogate.select`; the choosing code is
:mod:`mixopt.surrogate.flp_choice`), never from the held-out runs of an outer backtest:

* stage-1 form (``power_offset``, ``pure_power``, ``chinchilla``, ``chinchilla_tied``) and
  stage-1 points (``final``; ``usable`` = also intermediate checkpoints of ``wsd``/``constant``
  runs, or, with no schedule given, of runs whose checkpoints lie on the final checkpoints' compute
  law within their noise, :mod:`mixopt.surrogate.onlaw`, for the compute forms only): leave-largest-out folds (fold k fits without the k largest sizes and predicts their
  final checkpoints); lowest mean relative loss error wins. A candidate that cannot be fitted
  (e.g. N and D collinear, or a fit whose every start reaches the iteration cap) drops out with its
  reason. Budgets count iterations, never seconds, so the choice does not depend on the machine.
* stage-2 link per benchmark (``linear``, ``sigmoid`` with the floor at chance, ``sigmoid_free``
  with a learned floor): loss-threshold folds (hold out every checkpoint with a loss below the
  best final loss of the 2nd/3rd largest size, scored at the held-out rows' stage-2 x); links are
  compared on the folds they all scored, and the lowest mean absolute score error wins unless
  :data:`~mixopt.surrogate.flp_choice.DEFAULT_STAGE2` (the sigmoid) is within noise of it
  (:meth:`~mixopt.surrogate.flp_choice._FLPChoice._link_choice`); a benchmark no fold can score
  gets the default.
* intervals: the chosen configuration is re-run on the size folds and
  :class:`~mixopt.surrogate.calibrate.IntervalCalibrator` scales the intervals by the
  extrapolation distance (decades of compute beyond the largest fitted run).
* stage 2's x (``stage2_loss_x="pooled"``, default): each checkpoint's loss with the noise the
  checkpoints themselves show removed (:func:`denoise_run_losses` with ``law_rows``: each run's
  deviation curve from the stage-1 law shrunk onto the law by as much as the noise explains; the
  observed loss where a run has too few checkpoints to tell, e.g. one per run).

Every choice and every candidate's internal score is in ``selection_``. ``preset="paper"``
reproduces the paper exactly (pure power law on final checkpoints, linear stage 2 on emerged
checkpoints regressed on the observed loss, uncalibrated intervals).

**FP** (kind ``"fp"``, the paper's baseline) is :class:`mixopt.surrogate.fp.FP`; it shares
:class:`~mixopt.surrogate.compute._ComputeSurrogate` (bootstrap, predictability, state) with FLP.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from collections.abc import Mapping
from typing import Any, ClassVar, Literal

import numpy as np
import polars as pl

from mixopt.data.table import LOSS, LOSS_PREFIX, PARAMS, RUN, SCORE_PREFIX, TOKENS, Benchmark, RunTable
from mixopt.errors import ConfigError, FitError, SchemaError
from mixopt.laws.base import Law, reference_for
from mixopt.laws.fitter import GroupResample, LawFitter, combine_interval, predictive_std
from mixopt.laws.forms import ChinchillaLaw, ChinchillaTiedLaw, Linear, PowerLawWithOffset, PurePowerLaw, Sigmoid
from mixopt.surrogate.base import Prediction, Targets, register
from mixopt.surrogate.calibrate import IntervalCalibrator, extrapolation_distance
from mixopt.surrogate.compute import _ComputeSurrogate
from mixopt.surrogate.draws import draw_rng
from mixopt.surrogate.emergence import EMERGENCE_MODES, SIGNAL_Z, emerged_mask, score_signal, weak_evidence_predictable
from mixopt.surrogate.fitted import _REPORT_SCHEMA, FittedLaw, _chunks, _report_row
from mixopt.surrogate.flp_choice import (
    DEFAULT_STAGE2,
    MIN_POINTS_PER_PARAM,
    ND_FORMS,
    SELECTION_SCHEMA,
    STAGE1_FORMS,
    STAGE2_FORMS,
    _FLPChoice,
    _sel_row,
)
from mixopt.surrogate.fp import FP
from mixopt.surrogate.onlaw import checkpoints_on_law
from mixopt.surrogate.select import size_folds

logger = logging.getLogger(__name__)

Stage1 = Literal["auto", "power_offset", "pure_power", "chinchilla", "chinchilla_tied"]
Stage2 = Literal["auto", "linear", "sigmoid", "sigmoid_free"]
#: stage-1 points: final checkpoints only, or also the usable intermediate ones
CHECKPOINT_MODES: tuple[str, ...] = ("final", "usable")
#: learning-rate schedules; intermediate checkpoints of the USABLE ones count as finished runs
SCHEDULES: tuple[str, ...] = ("cosine", "wsd", "constant")
USABLE_SCHEDULES: tuple[str, ...] = ("wsd", "constant")
#: name of the optional per-run schedule column of a run table
SCHEDULE_COLUMN = "schedule"
PRESETS: tuple[str | None, ...] = (None, "paper")
#: separates the loss name from an averaged stage-1 member's candidate in ``laws_`` keys
MEMBER_SEP = "|"
#: calibration group of the held-out rows of benchmarks predicted on weak evidence
WEAK_GROUP = "weak"
#: which folds judge the stage-1 form (``selection_at``)
SELECTION_AT: tuple[str, ...] = ("auto", "target", "largest")


#: what stage 2 regresses scores on (``stage2_loss_x``)
STAGE2_LOSS_X: tuple[str, ...] = ("observed", "smoothed", "law", "denoised", "pooled")
#: how the stage-2 laws' bootstrap weighs the runs (``stage2_bootstrap``)
STAGE2_BOOTSTRAP: tuple[str, ...] = ("bayesian", "runs")
#: median of a chi-square variable with one degree of freedom (a squared standard normal): turns the median of
#: squared pseudo-residuals into a variance estimate that one rough checkpoint cannot inflate
_CHI2_1_MEDIAN = 0.454936423119572
#: fewest finite losses a run needs for its loss curve to be smoothed (the quadratic has 3 coefficients)
SMOOTH_MIN_POINTS = 5


def smooth_run_losses(run_ids: np.ndarray, tokens: np.ndarray, loss: np.ndarray, anchor: Mapping[str, tuple[float, float]] | None = None) -> np.ndarray:
    """Each run's loss curve smoothed: ``log L`` fitted by a quadratic in ``log tokens`` over its checkpoints.

    Stage 2 regresses scores on the observed loss; a loss measured with noise flattens that
    regression (errors in variables: the fitted slope shrinks by ``var(L) / (var(L) + noise²)``),
    and the flattened link then under-predicts scores far beyond the runs. The scores depend on
    the model, not on the noise of its loss evaluation, so the regressor is the smooth curve
    through the run's losses. Runs with fewer than :data:`SMOOTH_MIN_POINTS` finite losses keep
    their observed values; missing losses stay missing.

    ``anchor`` (``{run: (final tokens, loss)}``, ``stage2_loss_x="law"``): each smoothed curve is
    shifted (in log loss) to pass through the given loss at the run's final tokens, the stage-1
    law's prediction there, which pools the runs (the law is fitted on all of them) the way the
    target's loss is predicted.
    """
    out = np.array(loss, dtype=np.float64, copy=True)
    ids = np.asarray(run_ids)
    lt = np.log(np.maximum(np.asarray(tokens, dtype=np.float64), 1e-300))
    ok_all = np.isfinite(out) & (out > 0) & np.isfinite(lt)
    _, inverse = np.unique(ids.astype(str), return_inverse=True)
    for g in range(int(inverse.max()) + 1 if inverse.size else 0):
        rows = np.flatnonzero((inverse == g) & ok_all)
        if rows.size < SMOOTH_MIN_POINTS or np.ptp(lt[rows]) <= 0:
            continue
        x = lt[rows] - lt[rows].mean()
        design = np.column_stack([np.ones_like(x), x, x * x])
        coef, *_ = np.linalg.lstsq(design, np.log(out[rows]), rcond=None)
        fitted = design @ coef
        run = str(ids[rows[0]])
        if anchor is not None and run in anchor:
            t_end, l_end = anchor[run]
            xe = math.log(t_end) - lt[rows].mean()
            fitted = fitted + (math.log(l_end) - (coef[0] + coef[1] * xe + coef[2] * xe * xe))
        out[rows] = np.exp(fitted)
    return out


def loss_noise_sd(run_ids: np.ndarray, tokens: np.ndarray, loss: np.ndarray) -> float:
    """Measurement noise sd of the log loss, pooled over the runs' checkpoints (NaN: too few).

    Gasser, Sroka and Jennen-Steinmetz's (1986) difference-based estimator, which needs no model
    of the curve: each interior checkpoint's pseudo-residual is its log loss minus the straight
    line (in log tokens) through its two neighbours; for independent noise of sd ``s`` its
    variance is ``s²·(1 + w² + (1 − w)²)`` (``w`` the interpolation weight). A smooth curve
    contributes only its local curvature. Robust: the median of the normalised squares over every
    run, divided by the median of a chi-square with one degree of freedom."""
    ids = np.asarray(run_ids).astype(str)
    lt = np.log(np.maximum(np.asarray(tokens, dtype=np.float64), 1e-300))
    y_all = np.asarray(loss, dtype=np.float64)
    ok = np.isfinite(y_all) & (y_all > 0) & np.isfinite(lt)
    sq: list[np.ndarray] = []
    for run in np.unique(ids[ok]):
        rows = np.flatnonzero(ok & (ids == run))
        rows = rows[np.argsort(lt[rows], kind="stable")]
        x, y = lt[rows], np.log(y_all[rows])
        if x.size < 3:
            continue
        span = x[2:] - x[:-2]
        good = span > 0
        w = np.where(good, (x[2:] - x[1:-1]) / np.where(good, span, 1.0), 0.5)
        e = y[1:-1] - (w * y[:-2] + (1.0 - w) * y[2:])
        sq.append((e * e / (1.0 + w * w + (1.0 - w) ** 2))[good])
    allsq = np.concatenate(sq) if sq else np.empty(0)
    return float(np.sqrt(np.median(allsq) / _CHI2_1_MEDIAN)) if allsq.size >= SMOOTH_MIN_POINTS else math.nan


@dataclasses.dataclass(frozen=True)
class DenoiseSummary:
    """What :func:`denoise_run_losses` did: the noise it estimated and how far it moved each part."""

    noise_sd: float
    n_runs: int
    keep_median: float
    law_share_median: float
    between_sd: float
    whole_curve: bool = False
    shape_share_median: float = math.nan
    shape_sd: float = math.nan

    def describe(self) -> str:
        if self.n_runs == 0:
            return f"observed loss kept: no run has >= {SMOOTH_MIN_POINTS} checkpoints with a loss, so nothing to estimate the loss noise from"
        return (
            f"log-loss noise sd {self.noise_sd:.3g} (difference-based, pooled over {self.n_runs} runs' checkpoints); "
            f"each run's curve = smooth quadratic + {self.keep_median:.2f} (median over runs) of its residual, "
            f"the share of the residual the noise cannot explain; run offsets from the stage-1 law moved "
            f"{self.law_share_median:.2f} (median) of the way to the law, real between-run sd {self.between_sd:.3g}"
            + (
                f"; each run's shape along the law (its deviation curve relative to its last checkpoint) moved {self.shape_share_median:.2f} (median) onto the law's, real shape sd {self.shape_sd:.3g}"
                if self.whole_curve
                else ""
            )
        )


def denoise_run_losses(
    run_ids: np.ndarray,
    tokens: np.ndarray,
    loss: np.ndarray,
    anchor: Mapping[str, tuple[float, float]] | None = None,
    law_rows: np.ndarray | None = None,
    law_in_range: np.ndarray | None = None,
) -> tuple[np.ndarray, DenoiseSummary]:
    """Each checkpoint's loss with its measurement noise shrunk away, by as much as the data say is noise.

    Stage 2 regresses scores on the loss; noise in that loss flattens the fitted link (errors in
    variables). How much of what is observed is noise is estimated, not assumed:

    1. the noise sd ``s`` of the log loss, from the checkpoints themselves (:func:`loss_noise_sd`);
    2. within a run: ``log L`` is fitted by a quadratic in ``log tokens`` (:func:`smooth_run_losses`)
       and the run keeps the share ``λ = max(0, 1 − s²/r²)`` of its residuals (``r²`` their variance per
       degree of freedom; positive-part James-Stein): residuals the noise explains are removed (a
       synthetic world: the curve is smoothed), residuals far beyond it are the curve's own shape
       (a real run whose early checkpoints a quadratic does not follow: ``λ ≈ 1``, the loss observed);
    3. between runs (``anchor`` given: the stage-1 law's loss at each run's final tokens): each run's
       offset ``d`` from the law at its last checkpoint is shrunk towards the law by ``v / (v + τ²)``
       (empirical Bayes): ``v`` the offset's noise variance (from ``s``, ``λ`` and the endpoint's
       leverage), ``τ²`` the between-run variance the noise cannot explain (the offsets' mean square
       minus their mean noise variance; no degrees of freedom are taken off for the law: with the
       handful of runs of a ladder that correction more than doubles ``τ²`` and left noise offsets
       in place, measured on the synthetic worlds: median 1.42x -> 1.19x the oracle without it). Runs
       that sit off the law by more than their noise keep their offset (a real model difference);
       offsets that are noise move onto the law, which pools all runs as the target's loss is pooled.

    ``law_rows`` (``stage2_loss_x="pooled"``: the stage-1 law's loss at every row's own compute, in
    place of ``anchor``): step 3 shrinks each run's whole deviation curve from the law, in two parts,
    each by its own empirical-Bayes share: the **offset** ``a`` at the run's last checkpoint (as above,
    ``τ_a²`` over the runs' offsets) and the **shape** ``δ_t − a`` (the deviation at checkpoint ``t``
    relative to the last one; its noise variance from the quadratic's noise covariance
    ``s²·((1 − λ²)·H + λ²·I)``, ``H`` its hat matrix), ``τ_s²`` = the shapes' mean square minus their
    mean noise variance over the checkpoints inside the compute range the law was fitted on
    (``law_in_range``, row mask; all rows when None): beyond it the law extrapolates, and its own error
    there is common to every run, not a difference between runs (measured on the synthetic worlds: over
    every checkpoint, the early checkpoints of the smallest runs, a decade below the law's range, made
    ``τ`` 0.004-0.008 from noise alone). Run ``r`` moves ``v_a/(v_a + τ_a²)`` of its offset and
    ``v̄_s/(v̄_s + τ_s²)`` of its shape onto the law. Why the shape too: moving only the offset leaves
    every run's own noisy quadratic shape in the regressor (errors in variables flatten the link again,
    one run at a time); where the shapes are noise (the synthetic worlds) the regressor becomes the
    law's loss at each checkpoint's compute, exactly how the target's loss is predicted (the
    information-limit oracle regresses on it too); where they are real (Pythia's early checkpoints far
    above the law: shape sd 0.2 against noise 0.02) they are kept, and the offsets are treated as above.

    Runs with fewer than :data:`SMOOTH_MIN_POINTS` finite losses keep their observed values (and take
    no part in 3); missing losses stay missing. Returns the losses and a :class:`DenoiseSummary`.
    """
    out = np.array(loss, dtype=np.float64, copy=True)
    ids = np.asarray(run_ids).astype(str)
    lt = np.log(np.maximum(np.asarray(tokens, dtype=np.float64), 1e-300))
    ok_all = np.isfinite(out) & (out > 0) & np.isfinite(lt)
    s = loss_noise_sd(ids, tokens, loss)
    if not math.isfinite(s):
        return out, DenoiseSummary(math.nan, 0, 1.0, 0.0, math.nan)
    s2 = s * s
    keep: list[float] = []
    offsets: list[tuple[np.ndarray, float, float]] = []  # (rows, offset d at the last checkpoint, its noise variance)
    # (rows, offset from the law at the last checkpoint, its noise variance, shape = deviation minus that offset,
    #  the shape's noise variance, rows inside the law's fitted compute range)
    curves: list[tuple[np.ndarray, float, float, np.ndarray, np.ndarray, np.ndarray]] = []
    law_log = None
    if law_rows is not None:
        law_arr = np.asarray(law_rows, dtype=np.float64)
        if law_arr.shape != out.shape:
            raise SchemaError(f"law_rows must hold one stage-1 loss per row ({out.shape[0]}), got shape {law_arr.shape}.")
        with np.errstate(all="ignore"):
            law_log = np.where(np.isfinite(law_arr) & (law_arr > 0), np.log(np.where(law_arr > 0, law_arr, 1.0)), np.nan)
    for run in np.unique(ids[ok_all]):
        rows = np.flatnonzero(ok_all & (ids == run))
        if rows.size < SMOOTH_MIN_POINTS or np.ptp(lt[rows]) <= 0:
            continue
        x = lt[rows] - lt[rows].mean()
        design = np.column_stack([np.ones_like(x), x, x * x])
        y = np.log(out[rows])
        coef, *_ = np.linalg.lstsq(design, y, rcond=None)
        fitted = design @ coef
        resid = y - fitted
        r2 = float(np.sum(resid * resid)) / max(rows.size - 3, 1)
        lam = max(0.0, 1.0 - s2 / r2) if r2 > 0 else 0.0
        keep.append(lam)
        den = fitted + lam * resid
        out[rows] = np.exp(den)
        if law_log is not None:
            if np.all(np.isfinite(law_log[rows])):
                hat = design @ np.linalg.pinv(design.T @ design) @ design.T
                cov = s2 * ((1.0 - lam * lam) * hat + lam * lam * np.eye(rows.size))  # noise covariance of den
                last = int(np.argmax(lt[rows]))
                dev = den - law_log[rows]
                inside = np.ones(rows.size, dtype=bool) if law_in_range is None else np.asarray(law_in_range, dtype=bool)[rows]
                inside[last] = False  # the shape is 0 there by construction
                v_shape = np.diag(cov) + cov[last, last] - 2.0 * cov[:, last]
                curves.append((rows, float(dev[last]), float(cov[last, last]), dev - dev[last], v_shape, inside))
            continue
        if anchor is None or run not in anchor:
            continue
        t_end, l_end = anchor[run]
        last = int(np.argmax(lt[rows]))
        if not (l_end > 0 and math.isclose(lt[rows][last], math.log(t_end), rel_tol=0, abs_tol=1e-9)):
            continue
        pinv = np.linalg.pinv(design.T @ design)
        h = float(design[last] @ pinv @ design[last])  # leverage of the last checkpoint
        v = s2 * (h * (1.0 - lam * lam) + lam * lam)  # var((1 - λ)·fit + λ·observed) at the last checkpoint
        offsets.append((rows, float(den[last] - math.log(l_end)), v))
    law_share: list[float] = []
    tau2 = math.nan
    shape_share: list[float] = []
    tau2_shape = math.nan
    if curves:
        # offsets at each run's last checkpoint, as in step 3, and shapes relative to it, each shrunk by its own share
        a = np.array([c[1] for c in curves])
        va = np.array([c[2] for c in curves])
        tau2 = max(0.0, float(np.mean(a * a)) - float(np.mean(va)))
        inside = np.concatenate([c[5] for c in curves])
        sh = np.concatenate([c[3] for c in curves])
        vs = np.concatenate([c[4] for c in curves])
        if inside.any():
            tau2_shape = max(0.0, float(np.mean(sh[inside] ** 2)) - float(np.mean(vs[inside])))
        for rows, ai, vai, shi, vsi, ins in curves:
            share_a = vai / (vai + tau2) if vai + tau2 > 0 else 0.0
            law_share.append(share_a)
            use = ins if ins.any() else np.ones(ins.size, dtype=bool)
            vbar = float(np.mean(vsi[use]))
            share_s = vbar / (vbar + tau2_shape) if math.isfinite(tau2_shape) and vbar + tau2_shape > 0 else 0.0
            shape_share.append(share_s)
            out[rows] = np.exp(np.log(out[rows]) - share_a * ai - share_s * shi)
    if offsets:
        d = np.array([o[1] for o in offsets])
        v = np.array([o[2] for o in offsets])
        tau2 = max(0.0, float(np.mean(d * d)) - float(np.mean(v)))
        for rows, di, vi in offsets:
            share = vi / (vi + tau2) if vi + tau2 > 0 else 0.0
            law_share.append(share)
            out[rows] = out[rows] * math.exp(-share * di)
    summary = DenoiseSummary(
        s,
        len(keep),
        float(np.median(keep)) if keep else 1.0,
        float(np.median(law_share)) if law_share else 0.0,
        math.sqrt(tau2) if math.isfinite(tau2) else math.nan,
        bool(curves),
        float(np.median(shape_share)) if shape_share else math.nan,
        math.sqrt(tau2_shape) if math.isfinite(tau2_shape) else math.nan,
    )
    return out, summary


def _run_schedules(runs: RunTable, schedule: str) -> np.ndarray:
    """``(len(runs),)`` schedule of every row: the ``schedule`` setting, or the table's column."""
    n = len(runs)
    if schedule != "auto":
        return np.full(n, schedule, dtype=object)
    if SCHEDULE_COLUMN not in runs.frame.columns:
        return np.full(n, "cosine", dtype=object)
    col = runs.frame[SCHEDULE_COLUMN].cast(pl.String).str.to_lowercase().fill_null("cosine").to_numpy()
    bad = sorted(set(col.tolist()) - set(SCHEDULES))
    if bad:
        raise SchemaError(f"Column {SCHEDULE_COLUMN!r} must hold one of {list(SCHEDULES)} per run, got {bad[:5]}; fix the column or pass FLP(schedule=...) for all runs.")
    return col.astype(object)


# -- FLP -----------------------------------------------------------------------------------------------
@register
class FLP(_FLPChoice, _ComputeSurrogate):
    """FLP: FLOPs -> loss -> score (Chen et al. 2024), with by-run bootstrap intervals.

    By default (``"auto"``) the stage-1 form, the stage-1 checkpoints, the stage-2 link of
    every benchmark and the interval calibration are decided by an internal backtest on the
    runs given to :meth:`fit` (see "Choosing by the data" in the module docstring);
    ``preset="paper"`` reproduces the paper exactly.

    Args:
        loss_column: loss to model: ``"loss"`` or ``"loss:<domain>"``; None = the overall
            ``loss`` column (error if the table only has per-domain losses).
        stage1: ``"auto"`` (default: chosen by internal backtest), ``"power_offset"``
            (``L = E + A·C^-alpha``), ``"pure_power"`` (paper, ``L = (C/C_N)^alpha_N``) or
            ``"chinchilla"`` (``L(N, D)``, targets need params and tokens).
        stage2: ``"auto"`` (default: chosen per benchmark), ``"linear"`` (paper),
            ``"sigmoid"`` (floor at chance, learned ceiling) or ``"sigmoid_free"``
            (learned floor and ceiling).
        checkpoints: stage-1 points: ``"final"`` (the paper: final checkpoint of every
            run), ``"usable"`` (also the intermediate checkpoints of runs whose schedule
            makes them comparable to a finished run: ``wsd``/``constant``) or ``"auto"``.
        schedule: learning-rate schedule of the runs, deciding which checkpoints are
            usable: ``"auto"`` (a ``schedule`` column of the table if present, else
            ``"cosine"`` unless the checkpoints pass :func:`~mixopt.surrogate.onlaw.checkpoints_on_law`), ``"cosine"`` (only final checkpoints are usable: a cosine run's
            intermediate checkpoints have not cooled down), ``"wsd"`` or ``"constant"``.
        preset: None, or ``"paper"``: pure power law stage 1 on final checkpoints, linear
            stage 2 on emerged checkpoints regressed on the observed loss, no calibration
            (overrides stage1, stage2, checkpoints, stage2_points, stage2_loss_x and calibrate).
        calibrate: scale the intervals by extrapolation distance from the internal
            leave-largest-out backtest (:mod:`mixopt.surrogate.calibrate`).
        selection_folds: internal folds (fold k holds out the k largest sizes).
        target_flops: compute of the decision's target (FLOPs), or None. With it, the
            stage-1 form is judged on ratio-matched folds (:func:`~mixopt.surrogate.select.ratio_folds`:
            fit on the smaller runs, score runs about ``target_flops / largest fitted compute``
            beyond them), and forms within noise of the best there are averaged (see
            "Choosing by the data"). :func:`mixopt.backtest.backtest` sets it to the held-out
            runs' median compute when the settings leave it out.
        selection_at: folds that judge the stage-1 form: ``"auto"`` (ratio-matched when
            ``target_flops`` is set, else leave-largest-out), ``"target"`` (ratio-matched; needs
            ``target_flops``) or ``"largest"`` (leave-largest-out, the choice before ratio
            matching, kept for comparisons).
        emergence_margin: distance from chance for a checkpoint to count as emerged (0.05).
        emergence: ``"checkpoint"`` (paper) or ``"first_crossing"``.
        min_emerged: fewest emerged checkpoints for a benchmark to be predictable (3).
        min_runs: fewest distinct runs among them (2).
        stage2_points: ``"emerged"``, ``"all"`` (every evaluated checkpoint) or ``"auto"``
            (emerged for linear, all for the sigmoids).
        stage2_loss_x: the loss stage 2 regresses scores on: ``"pooled"`` (default,
            :func:`denoise_run_losses` with ``law_rows``: only as much smoothing and law-pooling as the
            estimated loss noise explains, a noisy loss flattens the fitted link (errors in variables);
            each run's whole deviation curve from the stage-1 law is shrunk, so where the deviations
            are noise the x is the law's loss at each checkpoint's compute, as the target's loss is
            predicted; a table with one checkpoint per run keeps its observed loss; reported in
            ``selection_`` stage ``stage2_x``), ``"denoised"`` (the default before: only each run's
            offset at its last checkpoint shrunk onto the law, its own quadratic shape kept),
            ``"observed"`` (the paper; ``preset="paper"`` sets it), ``"smoothed"``
            (each run's loss curve smoothed, :func:`smooth_run_losses`) or ``"law"`` (smoothed, and
            each run's curve shifted through the stage-1 law's loss at its final compute).
        stage2_bootstrap: how the stage-2 laws' bootstrap draws weigh the runs: ``"bayesian"``
            (default: each draw weighs every run by ``G·Dirichlet(1, ..., 1)``, the Bayesian bootstrap,
            so no draw loses the largest runs a sigmoid's ceiling rests on) or ``"runs"`` (the same
            by-run resample with replacement as stage 1's draw; ``preset="paper"`` sets it).
        stage1_loss: ``"huber"`` (Epoch's practice, default) or ``"squared"``.
        stage2_loss: ``"squared"`` (paper: least squares, default) or ``"huber"``.
        huber_delta: Huber threshold of stage 1, log-loss units (1e-3).
        stage2_huber_delta: Huber threshold of stage 2, score units (0.01).
        flops_reference: reference compute of the stage-1 law, FLOPs; None = power of ten
            nearest the training FLOPs' geometric mean (conditioning only).
        n_starts: multi-start points for nonlinear laws (None: the law's grid, up to 64).
        n_bootstrap: bootstrap draws by run (200; 0 = noise-only intervals), one refit of both stages each.
        seed: seed of the draws and start order.
        include_noise: add residual noise to the intervals (predictive intervals); False
            gives parameter-uncertainty intervals.

    Attributes (after fit):
        loss_name_: the loss column modelled (the first output).
        stage1_: the stage-1 form used; checkpoints_: the stage-1 points used.
        stage2_: ``{"score:<b>": link}`` for every fitted benchmark.
        laws_: ``{output name: FittedLaw}`` for every fitted quantity.
        selection_: polars frame of the ``auto`` choices: ``stage``, ``quantity``,
            ``candidate``, ``status`` (chosen / scored / failed / skipped / fixed), ``reason``,
            ``score`` (internal backtest error: mean relative loss error for stage 1, mean
            absolute score error for stage 2), ``n_points``.
        calibrator_: the fitted :class:`~mixopt.surrogate.calibrate.IntervalCalibrator`, or None.
        loss_noise_sd_: log-loss measurement noise sd of the checkpoints (:func:`loss_noise_sd`), the floor of the
            loss output's noise; NaN when not estimable, when stage 1 has no points to spare, or under the paper preset.
        fit_flops_max_: largest compute among the fitted final checkpoints (distance origin).
        fit_report_: polars frame, one row per output (law, status, reason, points, runs,
            parameters as JSON, residual scale, failed bootstrap draws).
        unpredictable_: ``{"score:<b>": reason}``.
        weak_: ``{"score:<b>": evidence}`` of the benchmarks predicted on weak evidence.
    """

    kind: ClassVar[str] = "flp"

    def __init__(
        self,
        *,
        loss_column: str | None = None,
        stage1: str = "auto",
        stage2: str = "auto",
        checkpoints: str = "auto",
        schedule: str = "auto",
        preset: str | None = None,
        calibrate: bool = True,
        selection_folds: int = 2,
        target_flops: float | None = None,
        selection_at: str = "auto",
        emergence_margin: float = 0.05,
        emergence: str = "checkpoint",
        min_emerged: int = 3,
        min_runs: int = 2,
        stage2_points: str = "auto",
        stage2_loss_x: str = "pooled",
        stage2_bootstrap: str = "bayesian",
        stage1_loss: str = "huber",
        stage2_loss: str = "squared",
        huber_delta: float = 1e-3,
        stage2_huber_delta: float = 0.01,
        flops_reference: float | None = None,
        n_starts: int | None = None,
        n_bootstrap: int = 200,
        seed: int = 0,
        include_noise: bool = True,
    ) -> None:
        self.loss_column = loss_column
        self.stage1 = stage1
        self.stage2 = stage2
        self.checkpoints = checkpoints
        self.schedule = schedule
        self.preset = preset
        self.calibrate = calibrate
        self.selection_folds = selection_folds
        self.target_flops = target_flops
        self.selection_at = selection_at
        self.emergence_margin = emergence_margin
        self.emergence = emergence
        self.min_emerged = min_emerged
        self.min_runs = min_runs
        self.stage2_points = stage2_points
        self.stage2_loss_x = stage2_loss_x
        self.stage2_bootstrap = stage2_bootstrap
        self.stage1_loss = stage1_loss
        self.stage2_loss = stage2_loss
        self.huber_delta = huber_delta
        self.stage2_huber_delta = stage2_huber_delta
        self.flops_reference = flops_reference
        self.n_starts = n_starts
        self.n_bootstrap = n_bootstrap
        self.seed = seed
        self.include_noise = include_noise

    # -- settings ------------------------------------------------------------------------------
    def _effective(self) -> dict[str, Any]:
        """Settings after the preset: stage1, stage2, checkpoints, stage2_points, calibrate, stage2_loss_x, stage2_bootstrap."""
        eff = {
            "stage1": self.stage1,
            "stage2": self.stage2,
            "checkpoints": self.checkpoints,
            "stage2_points": self.stage2_points,
            "calibrate": bool(self.calibrate),
            "stage2_loss_x": self.stage2_loss_x,
            "stage2_bootstrap": getattr(self, "stage2_bootstrap", "runs"),
        }
        if self.preset == "paper":
            eff.update(stage1="pure_power", stage2="linear", checkpoints="final", stage2_points="emerged", calibrate=False, stage2_loss_x="observed", stage2_bootstrap="runs")
        return eff

    def _loss_x(self) -> str:
        """What stage 2 regresses on after the preset (``"observed"`` under ``preset="paper"``)."""
        return "observed" if getattr(self, "preset", None) == "paper" else str(getattr(self, "stage2_loss_x", "observed"))

    def _check_settings(self) -> None:
        problems = self._check_common()
        if self.stage1 not in ("auto", *STAGE1_FORMS):
            problems.append(f"stage1 must be one of {['auto', *STAGE1_FORMS]}, got {self.stage1!r}")
        if self.stage2 not in ("auto", *STAGE2_FORMS):
            problems.append(f"stage2 must be one of {['auto', *STAGE2_FORMS]}, got {self.stage2!r}")
        if self.checkpoints not in ("auto", *CHECKPOINT_MODES):
            problems.append(f"checkpoints must be one of {['auto', *CHECKPOINT_MODES]}, got {self.checkpoints!r}")
        if self.schedule not in ("auto", *SCHEDULES):
            problems.append(f"schedule must be one of {['auto', *SCHEDULES]}, got {self.schedule!r}")
        if self.preset not in PRESETS:
            problems.append(f"preset must be one of {list(PRESETS)}, got {self.preset!r}")
        if not isinstance(self.calibrate, bool):
            problems.append(f"calibrate must be true or false, got {self.calibrate!r}")
        if not isinstance(self.selection_folds, (int, np.integer)) or isinstance(self.selection_folds, bool) or self.selection_folds < 1:
            problems.append(f"selection_folds must be an integer >= 1, got {self.selection_folds!r}")
        if self.target_flops is not None and not (
            isinstance(self.target_flops, (int, float)) and not isinstance(self.target_flops, bool) and math.isfinite(self.target_flops) and self.target_flops > 0
        ):
            problems.append(f"target_flops must be None or a positive number of FLOPs, got {self.target_flops!r}")
        if self.selection_at not in SELECTION_AT:
            problems.append(f"selection_at must be one of {list(SELECTION_AT)}, got {self.selection_at!r}")
        elif self.selection_at == "target" and self.target_flops is None:
            problems.append("selection_at='target' needs target_flops (the compute of the target, FLOPs)")
        if self.stage2_loss_x not in STAGE2_LOSS_X:
            problems.append(f"stage2_loss_x must be one of {list(STAGE2_LOSS_X)}, got {self.stage2_loss_x!r}")
        if self.stage2_bootstrap not in STAGE2_BOOTSTRAP:
            problems.append(f"stage2_bootstrap must be one of {list(STAGE2_BOOTSTRAP)}, got {self.stage2_bootstrap!r}")
        if self.stage2_points not in ("auto", "emerged", "all"):
            problems.append(f"stage2_points must be 'auto', 'emerged' or 'all', got {self.stage2_points!r}")
        for name in ("stage1_loss", "stage2_loss"):
            if getattr(self, name) not in ("huber", "squared"):
                problems.append(f"{name} must be 'huber' or 'squared', got {getattr(self, name)!r}")
        if self.flops_reference is not None and not (isinstance(self.flops_reference, (int, float)) and math.isfinite(self.flops_reference) and self.flops_reference > 0):
            problems.append(f"flops_reference must be None or a positive number of FLOPs, got {self.flops_reference!r}")
        if problems:
            raise ConfigError("Invalid FLP settings: " + "; ".join(problems) + ".")

    # -- fit ---------------------------------------------------------------------------------
    def _resolve_loss(self, runs: RunTable) -> str:
        options = ([LOSS] if runs.has_overall_loss else []) + [LOSS_PREFIX + d for d in runs.loss_domains]
        if self.loss_column is not None:
            if self.loss_column not in options:
                raise SchemaError(f"loss_column={self.loss_column!r} is not a loss column of this table; its loss columns are {options or 'none'}. Pick one of those.")
            return self.loss_column
        if runs.has_overall_loss:
            return LOSS
        if options:
            raise SchemaError(
                f"FLP models one loss, and the table has no overall '{LOSS}' column but per-domain losses {options}. "
                f"Pass loss_column= one of them (e.g. FLP(loss_column={options[0]!r})), or use FLP-M (kind 'flpm') "
                "to model every domain."
            )
        raise SchemaError(
            "FLP needs a validation loss (column 'loss' or 'loss:<domain>'), and the table has none. Add losses, or use the FP baseline (kind 'fp'), which maps FLOPs straight to scores."
        )

    def _stage1_law(self, runs: RunTable, form: str) -> Law:
        ref = self.flops_reference if self.flops_reference is not None else reference_for(runs.flops())
        if form == "power_offset":
            return PowerLawWithOffset(reference=ref)
        if form == "pure_power":
            return PurePowerLaw(reference=ref)
        cls = ChinchillaLaw if form == "chinchilla" else ChinchillaTiedLaw
        return cls(params_reference=reference_for(runs.params()), tokens_reference=reference_for(runs.tokens()))

    @staticmethod
    def _stage1_x_for(form: str, flops: np.ndarray, params: np.ndarray | None, tokens: np.ndarray | None) -> np.ndarray:
        if form in ND_FORMS:
            if params is None or tokens is None:
                raise SchemaError(f"FLP(stage1={form!r}) predicts loss from parameters and tokens, but the targets give only compute. Build them with Targets.from_params_tokens(params, tokens).")
            return np.column_stack([params, tokens])
        return np.asarray(flops, dtype=np.float64)[:, None]

    def _stage1_x(self, flops: np.ndarray, params: np.ndarray | None, tokens: np.ndarray | None) -> np.ndarray:
        return self._stage1_x_for(getattr(self, "stage1_", self.stage1), flops, params, tokens)

    @staticmethod
    def _metric_range(scores: np.ndarray) -> tuple[float, float]:
        """The range a metric's values can take, read off its observed scores: ``[0, 1]`` for
        fractions, ``[0, 100]`` for percentages, unbounded on a side the scores pass."""
        fin = scores[np.isfinite(scores)]
        top = float(np.max(fin)) if fin.size else 1.0
        bottom = float(np.min(fin)) if fin.size else 0.0
        scale_hi = 1.0 if top <= 1.0 else (100.0 if top <= 100.0 else math.inf)
        scale_lo = 0.0 if bottom >= 0.0 else -math.inf
        return scale_lo, scale_hi

    def _stage2_law(self, b: Benchmark, scores: np.ndarray, link: str) -> Law:
        if link == "linear":
            return Linear()
        scale_lo, scale_hi = self._metric_range(scores)
        if b.chance is None or link == "sigmoid_free":
            return Sigmoid(floor=None, ceiling_bounds=(scale_lo, scale_hi) if scale_lo < scale_hi else (-math.inf, math.inf))
        c = float(b.chance)
        bounds = (c, max(scale_hi, c + 1e-6)) if b.higher_is_better else (min(scale_lo, c - 1e-6), c)
        return Sigmoid(floor=c, ceiling_bounds=bounds)

    def _usable_rows(self, runs: RunTable, mode: str) -> np.ndarray:
        """``(len(runs),)`` bool: rows stage 1 may use (final rows always; see ``checkpoints``)."""
        frame = runs.frame
        last = np.asarray(frame.select(pl.col(TOKENS) == pl.col(TOKENS).max().over(RUN)).to_series().to_numpy(), dtype=bool)
        if mode == "final":
            return last
        if self.__dict__.get("_on_law"):
            # no schedule given, and the checkpoints were shown to lie on the finals' compute law (:mod:`.onlaw`)
            return np.ones(len(runs), dtype=bool)
        sched = _run_schedules(runs, self.schedule)
        return last | np.isin(sched, USABLE_SCHEDULES)

    def _schedule_untold(self, runs: RunTable) -> bool:
        """Whether nothing says which schedule the runs follow (``schedule="auto"`` and no ``schedule`` column)."""
        return self.schedule == "auto" and SCHEDULE_COLUMN not in runs.frame.columns

    def _test_on_law(self, runs: RunTable, loss_name: str, eff: Mapping[str, Any]) -> list[dict[str, Any]]:
        """Decide ``_on_law`` for this fit (:func:`~mixopt.surrogate.onlaw.checkpoints_on_law`) where the schedule is
        untold and intermediate checkpoints could count; a ``selection_`` row with the evidence. Internal copies
        inherit the parent's verdict (``_on_law_given``) so every fold judges the same points."""
        given = self.__dict__.get("_on_law_given")
        if given is not None:
            self.__dict__["_on_law"] = bool(given)
            return []
        self.__dict__["_on_law"] = False
        if eff["checkpoints"] == "final" or self.preset == "paper" or not self._schedule_untold(runs):
            return []
        if bool(np.all(self._usable_rows(runs, "final"))):
            return []  # one checkpoint per run: nothing to judge
        loss = runs.column(loss_name)
        test = checkpoints_on_law(runs.run_ids(), runs.tokens(), runs.flops(), loss, loss_noise_sd(runs.run_ids(), runs.tokens(), loss), seed=self.seed)
        self.__dict__["_on_law"] = test.passed
        return [_sel_row("stage1", loss_name, "checkpoints", "fixed", "no schedule given; " + test.describe(), None, test.n_points)]

    def _stage2_resample(self, resample: GroupResample | None, how: str) -> GroupResample | None:
        """The stage-2 laws' draws: stage 1's by-run resample (``"runs"``), or as many Bayesian-bootstrap draws over the
        same runs (``"bayesian"``), one for every benchmark's law so that draw ``b`` is one refit of all of them."""
        if resample is None or how == "runs" or resample.n_draws == 0:
            return resample
        return GroupResample.dirichlet(resample.labels, resample.n_draws, np.random.default_rng(np.random.SeedSequence([int(self.seed), 2])))

    def _fit_stage1(self, runs: RunTable, loss_name: str, form: str, mode: str, resample: GroupResample | None) -> tuple[LawFitter, Law, int]:
        use = self._usable_rows(runs, mode)
        y_all = runs.column(loss_name)
        use &= np.isfinite(y_all)  # tables may leave the loss blank at some checkpoints
        sub = runs.frame.filter(pl.Series(use))
        law = self._stage1_law(runs, form)
        x1 = self._stage1_x_for(form, sub["flops"].to_numpy(), sub[PARAMS].to_numpy(), sub[TOKENS].to_numpy())
        fitter = LawFitter(law, loss=self.stage1_loss, huber_delta=self.huber_delta, n_starts=self.n_starts, n_bootstrap=0, seed=self.seed)
        n_runs = sub[RUN].n_unique()
        try:
            fitter.fit(x1, y_all[use], groups=self._group_ids(sub[RUN].to_numpy()), resample=resample)
        except FitError as e:
            pts = "final checkpoints" if mode == "final" else "usable checkpoints"
            raise FitError(f"FLP stage 1 ({form}: compute -> {loss_name}) failed on the {pts} of {n_runs} run(s): {e}", starts=e.starts) from None
        return fitter, law, int(use.sum())

    def _fit_stage2_one(
        self, runs: RunTable, j: int, b: Benchmark, link: str, loss_name: str, resample: GroupResample | None, points: str, min_points_per_param: int = 0
    ) -> tuple[FittedLaw | None, dict[str, Any], str | None]:
        """Fit benchmark ``j``'s loss -> score law. Returns (law or None, report row, reason).

        ``min_points_per_param`` > 0 (``auto`` only) refuses a link with fewer points than
        that many per parameter (a 3-parameter sigmoid on 5 points is noise)."""
        name = SCORE_PREFIX + b.name
        run_ids, scores, loss_all = self._arrays(runs, loss_name)
        s = scores[:, j]
        evaluated = np.isfinite(s) & np.isfinite(loss_all)
        emerged = emerged_mask(s, b, float(self.emergence_margin), run_ids=run_ids, mode=self.emergence) & np.isfinite(loss_all)
        reason = self._predictability(b, emerged, run_ids, int(evaluated.sum()))
        weak = None
        if reason is not None and self._weak_allowed():
            n_ev_runs = int(np.unique(run_ids[evaluated]).shape[0]) if evaluated.any() else 0
            z = score_signal(s[evaluated], loss_all[evaluated], b)
            if not weak_evidence_predictable(b, int(evaluated.sum()), n_ev_runs, anchored=True, min_points=int(self.min_emerged), min_runs=int(self.min_runs)):
                pass
            elif z < SIGNAL_Z:
                reason += f" No signal for weak evidence either: the scores do not follow the loss (rank-correlation z {z:.2f} < {SIGNAL_Z:g}), so there is no emergence curve to extrapolate."
            else:
                n_em = int(emerged.sum())
                n_em_runs = int(np.unique(run_ids[emerged]).shape[0]) if n_em else 0
                weak = (
                    f"predicted on weak evidence: {n_em} emerged checkpoint(s) from {n_em_runs} run(s) (fewer than "
                    f"min_emerged {self.min_emerged} from {self.min_runs} runs); the chance-anchored sigmoid is fitted "
                    f"on all {int(evaluated.sum())} evaluated checkpoints of {n_ev_runs} runs, its interval is "
                    "calibrated on its own (group 'weak') and is wide"
                )
                link, points, reason, min_points_per_param = "sigmoid", "all", None, 0
                weak += f" (score follows the loss: rank-correlation z {z:.1f})"
        if reason is None:
            use_all = points == "all" or (points == "auto" and link != "linear")
            rows = evaluated if use_all else emerged
            law2 = self._stage2_law(b, s[rows], link)
            need = min_points_per_param * law2.n_params
            if need and int(rows.sum()) < need:
                reason = f"not fitted: {int(rows.sum())} point(s) for a {law2.n_params}-parameter {link} link, `auto` needs >= {need} ({min_points_per_param} per parameter)"
                row = _report_row(name, link, "unpredictable", reason, int(rows.sum()), int(np.unique(run_ids[rows]).shape[0]) if rows.any() else 0)
                return None, row, reason
            fitter2 = LawFitter(law2, loss=self.stage2_loss, huber_delta=self.stage2_huber_delta, n_starts=self.n_starts, n_bootstrap=0, seed=self.seed)
            try:
                fitter2.fit(loss_all[rows], s[rows], groups=run_ids[rows], resample=resample)
            except FitError as e:
                reason = f"not predictable: the {link} loss -> score fit failed: {e}"
            else:
                note = ""
                if link == "linear":
                    slope = float(fitter2.params_[1])
                    if slope != 0 and (slope > 0) == b.higher_is_better:
                        note = f"note: the score improves as loss grows (slope {slope:.3g} per nat/token); the emerged points carry no usable trend"
                        logger.info("FLP: %s %s", name, note)
                if weak is not None:
                    self.__dict__.setdefault("_weak", {})[name] = weak
                    note = "; ".join(x for x in (weak, note) if x)
                row = _report_row(
                    name,
                    law2.name if link != "sigmoid_free" else "sigmoid_free",
                    "fitted",
                    note,
                    fitter2.n_samples_,
                    fitter2.n_groups_,
                    law2.as_dict(fitter2.params_),
                    fitter2.residual_scale_,
                    fitter2.bootstrap_failed_,
                )
                return FittedLaw.from_fitter(fitter2), row, None
        row = _report_row(name, link, "unpredictable", reason or "", int(emerged.sum()), int(np.unique(run_ids[emerged]).shape[0]) if emerged.any() else 0)
        return None, row, reason

    def _weak_allowed(self) -> bool:
        """Whether a benchmark with too few emerged checkpoints may be predicted on weak evidence
        (:func:`~mixopt.surrogate.emergence.weak_evidence_predictable`): not under ``preset="paper"``
        (which drops it), nor when the settings fix a link other than the chance-anchored sigmoid, nor
        inside the stage-2 link choice (its folds score links on emerged evidence)."""
        if self.preset == "paper" or getattr(self, "_no_weak", False):
            return False
        return self.stage2 in ("auto", "sigmoid") or getattr(self, "_stage2_map", None) is not None

    def _final_anchor(self, runs: RunTable, fitter1: LawFitter, form: str) -> dict[str, tuple[float, float]]:
        """``{run: (final tokens, stage-1 law's loss at the run's final compute)}`` (``stage2_loss_x="law"``)."""
        final = runs.final()
        x = self._stage1_x_for(form, final.flops(), final.params(), final.tokens())
        with np.errstate(all="ignore"):
            pred = fitter1.law.predict(x, np.asarray(fitter1.params_, dtype=np.float64))
        return {str(r): (float(t), float(v)) for r, t, v in zip(final.run_ids(), final.tokens(), pred, strict=True) if np.isfinite(v) and v > 0}

    def _law_rows(self, runs: RunTable) -> tuple[np.ndarray | None, np.ndarray | None]:
        """``stage2_loss_x="pooled"``: the stage-1 law's loss at every row's own compute and whether the row lies
        inside the compute range the law was fitted on ((None, None) before stage 1 is fitted)."""
        law = self.__dict__.get("_loss_law")
        if law is None:
            return None, None
        fitted, form, lo, hi = law
        fl = runs.flops()
        x = self._stage1_x_for(form, fl, runs.params(), runs.tokens())
        with np.errstate(all="ignore"):
            pred = np.asarray(fitted.law.predict(x, np.asarray(fitted.params_, dtype=np.float64)), dtype=np.float64)
        return pred, (fl >= lo * (1 - 1e-9)) & (fl <= hi * (1 + 1e-9))

    def _denoised(self, runs: RunTable, loss: np.ndarray, mode_x: str) -> tuple[np.ndarray, DenoiseSummary]:
        """:func:`denoise_run_losses` of ``loss`` for ``stage2_loss_x`` ``"denoised"`` (this fit's final-checkpoint
        anchor) or ``"pooled"`` (the stage-1 law at every row, :meth:`_law_rows`)."""
        if mode_x == "pooled":
            law_rows, inside = self._law_rows(runs)
            return denoise_run_losses(runs.run_ids(), runs.tokens(), loss, law_rows=law_rows, law_in_range=inside)
        return denoise_run_losses(runs.run_ids(), runs.tokens(), loss, anchor=self.__dict__.get("_loss_anchor"))

    def _arrays(self, runs: RunTable, loss_name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(run ids, scores (n, b), loss (n,)) of a table, cached for the duration of one fit."""
        cache = self.__dict__.setdefault("_array_cache", {})
        key = (id(runs), loss_name)
        hit = cache.get(key)
        if hit is None or hit[0] is not runs:
            loss = runs.column(loss_name)
            mode_x = self._loss_x()
            if mode_x in ("smoothed", "law"):
                loss = smooth_run_losses(runs.run_ids(), runs.tokens(), loss, anchor=self.__dict__.get("_loss_anchor") if mode_x == "law" else None)
            elif mode_x in ("denoised", "pooled"):
                loss, _ = self._denoised(runs, loss, mode_x)
            hit = (runs, (self._group_ids(runs.run_ids()), runs.scores(), loss))
            cache[key] = hit
        return hit[1]

    def _internal(self, **overrides: Any) -> FLP:
        """A fixed-form copy for internal backtests (no selection, no calibration)."""
        settings = {**self._settings(), "preset": None, "calibrate": False, **overrides}
        m = FLP(**settings)
        m._on_law_given = bool(self.__dict__.get("_on_law", False))
        return m

    def _fit(self, runs: RunTable) -> None:
        t0 = time.perf_counter()
        self.__dict__.pop("_array_cache", None)
        self.__dict__.pop("_loss_anchor", None)
        self.__dict__.pop("_loss_law", None)
        self.__dict__.pop("_weak", None)
        self._check_settings()
        eff = self._effective()
        loss_name = self._resolve_loss(runs)
        stage1_only = bool(getattr(self, "_stage1_only", False))
        fixed_links: Mapping[str, str] | None = getattr(self, "_stage2_map", None)
        needs_folds = eff["stage1"] == "auto" or eff["checkpoints"] == "auto" or (eff["stage2"] == "auto" and fixed_links is None and not stage1_only) or eff["calibrate"]
        folds = size_folds(runs, int(self.selection_folds)) if needs_folds else []
        selection: list[dict[str, Any]] = self._test_on_law(runs, loss_name, eff)
        judged = needs_folds and (eff["stage1"] == "auto" or eff["checkpoints"] == "auto")
        folds1, rows0 = self._stage1_folds(runs, folds) if judged else (folds, [])
        selection += rows0
        form, mode, rows1, average = self._choose_stage1(runs, loss_name, eff, folds1)
        selection += rows1
        resample = self._resample(runs)
        resample2 = self._stage2_resample(resample, eff["stage2_bootstrap"])
        fitter1, law1, n1 = self._fit_stage1(runs, loss_name, form, mode, resample)
        loss_x = eff["stage2_loss_x"]
        if loss_x in ("law", "denoised") and not stage1_only:
            self.__dict__.pop("_array_cache", None)
            self.__dict__["_loss_anchor"] = self._final_anchor(runs, fitter1, form)
        elif loss_x == "pooled" and not stage1_only:
            self.__dict__.pop("_array_cache", None)
            used = self._usable_rows(runs, mode) & np.isfinite(runs.column(loss_name))
            self.__dict__["_loss_law"] = (fitter1, form, float(np.min(runs.flops()[used])), float(np.max(runs.flops()[used])))
        if fixed_links is not None:
            links = dict(fixed_links)
        elif stage1_only:
            links = {}
        else:
            links, rows2 = self._choose_stage2(runs, loss_name, eff, folds)
            selection += rows2

        final = runs.final()
        laws: dict[str, FittedLaw] = {loss_name: FittedLaw.from_fitter(fitter1)}
        members: dict[str, float] = {}
        if len(average) > 1:
            for cand, w in average.items():
                f_k, m_k = cand.split("+")
                if (f_k, m_k) == (form, mode):
                    members[loss_name] = w
                    continue
                try:
                    fk, _, _ = self._fit_stage1(runs, loss_name, f_k, m_k, resample)
                except FitError as e:  # a member that fails on all runs drops out of the average
                    logger.info("FLP: averaged stage-1 member %s dropped: %s", cand, e)
                    continue
                laws[MEMBER_SEP.join((loss_name, cand))] = FittedLaw.from_fitter(fk)
                members[MEMBER_SEP.join((loss_name, cand))] = w
            if len(members) < 2:
                members = {}
            else:
                tot = sum(members.values())
                members = {k: v / tot for k, v in members.items()}
        report = [
            _report_row(
                loss_name,
                law1.name,
                "fitted",
                "" if mode == "final" else f"{n1} usable checkpoints",
                fitter1.n_samples_,
                fitter1.n_groups_,
                law1.as_dict(fitter1.params_),
                fitter1.residual_scale_,
                fitter1.bootstrap_failed_,
            )
        ]
        unpredictable: dict[str, str] = {}
        stage2: dict[str, str] = {}
        for j, b in enumerate(runs.benchmarks):
            name = SCORE_PREFIX + b.name
            if stage1_only:
                unpredictable[name] = "not fitted: stage-1-only internal fit"
                continue
            link = links.get(name, DEFAULT_STAGE2 if eff["stage2"] == "auto" else str(eff["stage2"]))
            auto2 = eff["stage2"] == "auto" and fixed_links is None
            fl, row, reason = self._fit_stage2_one(runs, j, b, link, loss_name, resample2, eff["stage2_points"], MIN_POINTS_PER_PARAM if auto2 else 0)
            if fl is None and link != "linear" and auto2 and reason and ("fit failed" in reason or "not fitted" in reason):
                logger.info("FLP: %s: %s; falling back to the linear link", name, reason)
                link = "linear"
                fl, row, reason = self._fit_stage2_one(runs, j, b, link, loss_name, resample2, eff["stage2_points"])
            report.append(row)
            if fl is None:
                unpredictable[name] = reason or "not predictable"
                logger.info("FLP: %s %s", name, reason)
            else:
                laws[name] = fl
                stage2[name] = link
        if len(unpredictable) == len(runs.benchmarks) and runs.benchmarks and not stage1_only:
            logger.warning("FLP: no benchmark is predictable from these runs; only %s is predicted.", loss_name)

        self.loss_name_ = loss_name
        self.stage1_ = form
        self.checkpoints_ = mode
        self.stage1_average_ = members
        self.stage2_ = stage2
        self.laws_ = laws
        self.fit_report_ = pl.DataFrame(report, schema=_REPORT_SCHEMA, orient="row")
        self.outputs_ = (loss_name, *(SCORE_PREFIX + b.name for b in runs.benchmarks))
        self.domains_ = ()
        self.benchmarks_ = tuple(runs.benchmarks)
        self.unpredictable_ = unpredictable
        self.weak_ = {q: why for q, why in self.__dict__.pop("_weak", {}).items() if q in laws}
        sc_all = runs.scores()
        self.score_range_ = {SCORE_PREFIX + b.name: self._metric_range(sc_all[:, j]) for j, b in enumerate(runs.benchmarks)}
        if loss_x != "observed" and not stage1_only:
            # the summary of the whole table (the link folds saw parts of it)
            den = self._denoised(runs, runs.column(loss_name), loss_x)[1] if loss_x in ("denoised", "pooled") else None
            why = (
                den.describe()
                if den is not None
                else {
                    "smoothed": "each run's loss curve smoothed (quadratic in log tokens)",
                    "law": "each run's smoothed loss curve shifted through the stage-1 law's loss at its final compute",
                }[loss_x]
            )
            selection.append(_sel_row("stage2_x", loss_name, loss_x, "fixed", why))
        for q, why in self.weak_.items():
            selection.append(_sel_row("stage2", q, "sigmoid", "weak", why))
            logger.info("FLP: %s %s", q, why)
        self.fit_flops_max_ = float(np.max(final.flops()))
        # the loss noise the checkpoints show (NaN: too few checkpoints per run, e.g. one): floor of stage 1's residual
        # sd where that sd is an estimate at all (more points than parameters; with none to spare the fit says nothing
        # about its own error, and a floor would let such a fold's interval into the calibration as if it did)
        spare = int(fitter1.n_samples_) > int(law1.n_params)
        self.loss_noise_sd_ = loss_noise_sd(runs.run_ids(), runs.tokens(), runs.column(loss_name)) if self.preset != "paper" and spare else math.nan
        self.calibrator_ = None
        if eff["calibrate"] and not stage1_only:
            self.calibrator_, cal_rows = self._fit_calibrator(runs, folds, form, mode, stage2)
            selection += cal_rows
        self.selection_ = pl.DataFrame(selection, schema=SELECTION_SCHEMA, orient="row")
        self.__dict__.pop("_array_cache", None)
        self.__dict__.pop("_loss_anchor", None)
        self.__dict__.pop("_loss_law", None)
        self.fit_seconds_ = time.perf_counter() - t0
        logger.debug("FLP fit on %d runs / %d checkpoints in %.3fs", runs.n_runs, len(runs), self.fit_seconds_)

    # -- predict ---------------------------------------------------------------------------------
    def _predict(self, targets: Targets, *, intervals: bool, level: float) -> Prediction:
        pred = self._predict_calibrated(targets, intervals=intervals, level=level)
        return self._clip_to_range(pred) if intervals else pred

    def _clip_to_range(self, pred: Prediction) -> Prediction:
        """Score intervals cut to the metric's range (``score_range_``): a 0-1 accuracy's interval
        past 1 or below 0 says nothing more than one ending there."""
        rng = getattr(self, "score_range_", {}) or {}
        if pred.lower is None or pred.upper is None or not rng:
            return pred
        lower, upper = pred.lower.copy(), pred.upper.copy()
        for j, nm in enumerate(pred.names):
            if nm in rng:
                lo, hi = rng[nm]
                lower[:, j] = np.clip(lower[:, j], lo, hi)
                upper[:, j] = np.clip(upper[:, j], lo, hi)
        return dataclasses.replace(pred, lower=lower, upper=upper)

    def _predict_calibrated(self, targets: Targets, *, intervals: bool, level: float) -> Prediction:
        cal: IntervalCalibrator | None = getattr(self, "calibrator_", None)
        if not intervals or cal is None:
            return self._predict_raw(targets, intervals=intervals, level=level)
        raw = self._predict_raw(targets, intervals=True, level=float(cal.level))
        d = extrapolation_distance(targets.flops, self.fit_flops_max_)
        lower, upper, std = raw.lower.copy(), raw.upper.copy(), raw.std.copy()  # type: ignore[union-attr]
        groups = np.array([self._calibration_group(name, cal) for name in raw.names])
        for group in np.unique(groups):
            cols = np.flatnonzero(groups == group)
            mu, lo, hi = raw.mean[:, cols], lower[:, cols], upper[:, cols]
            f = cal.factor(d, str(group), level)[:, None]
            if group == "loss":  # the loss interval is log-space: scaled there, it stays positive
                with np.errstate(all="ignore"):
                    lower[:, cols] = mu * (lo / mu) ** f
                    upper[:, cols] = mu * (hi / mu) ** f
            else:
                lower[:, cols] = mu - f * (mu - lo)
                upper[:, cols] = mu + f * (hi - mu)
            std[:, cols] = std[:, cols] * cal.factor(d, str(group))[:, None]
        pred = Prediction(names=raw.names, mean=raw.mean, lower=lower, upper=upper, std=std, level=level, unpredictable=dict(self.unpredictable_))
        return self._widen_to(pred, self._member_envelope(targets, pred.names))

    def _calibration_group(self, name: str, cal: IntervalCalibrator | None = None) -> str:
        """Calibration group of an output: ``"loss"``, ``"score"``, or ``"weak"`` for a benchmark predicted on
        weak evidence (the scores' factor when the calibration saw no weak-evidence rows)."""
        if name.startswith("loss"):
            return "loss"
        if name in getattr(self, "weak_", {}) and (cal is None or WEAK_GROUP in cal.params_):
            return WEAK_GROUP
        return "score"

    # -- averaged stage 1 ----------------------------------------------------------------------------
    def _members(self) -> list[tuple[float, FittedLaw, str]]:
        """Stage-1 laws ``(weight, law, form)``: the chosen one, or every averaged member."""
        avg: Mapping[str, float] = getattr(self, "stage1_average_", {}) or {}
        if not avg:
            return [(1.0, self.laws_[self.loss_name_], self.stage1_)]
        out = []
        for key, w in avg.items():
            form = self.stage1_ if key == self.loss_name_ else key.split(MEMBER_SEP, 1)[1].split("+")[0]
            out.append((float(w), self.laws_[key], form))
        return out

    @staticmethod
    def _member_assign(weights: np.ndarray, n_draws: int) -> np.ndarray:
        """``(n_draws,)`` member of every bootstrap draw: member k takes about ``weights[k]·n_draws`` draws (deterministic)."""
        cum = np.cumsum(weights) / np.sum(weights)
        return np.minimum(np.searchsorted(cum, (np.arange(n_draws) + 0.5) / max(n_draws, 1)), len(weights) - 1)

    def _stage1_mean_draws(self, members: list[tuple[float, FittedLaw, str]], targets: Targets, sl: slice, boot_rows: np.ndarray | None) -> tuple[np.ndarray, np.ndarray | None, np.ndarray, float]:
        """Loss of the targets ``sl``: (the chosen member's mean, draws (S, n) or None, member means (K, n), residual sd).

        The point prediction stays the chosen form's (the best on the folds; averaging the means moved
        it towards the worse form on the synthetic ladders); draw ``s`` is member ``assign[s]``'s
        bootstrap refit ``boot_rows[s]``, so the draws and intervals carry the members' spread."""
        w = np.array([m[0] for m in members])
        chosen = next((k for k, m in enumerate(members) if m[1] is self.laws_[self.loss_name_]), 0)
        means, draws = [], []
        for _, fl, form in members:
            x = self._stage1_x_for(form, targets.flops[sl], None if targets.params is None else targets.params[sl], None if targets.tokens is None else targets.tokens[sl])
            with np.errstate(all="ignore"):
                means.append(fl.law.predict(x, fl.params))
                if boot_rows is not None:
                    draws.append(fl.law.predict(x, fl.boot[boot_rows]))
        mm = np.vstack(means)
        mean = mm[chosen]
        scale = float(np.sqrt(np.sum(w * np.array([m[1].scale for m in members]) ** 2)))
        if boot_rows is None:
            return mean, None, mm, scale
        if len(members) == 1:
            return mean, draws[0], mm, scale
        assign = self._member_assign(w, boot_rows.shape[0])
        stack = np.stack(draws)  # (K, S, n)
        return mean, stack[assign, np.arange(boot_rows.shape[0])], mm, scale

    def _member_envelope(self, targets: Targets, names: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray] | None:
        """``(lo, hi)`` (n, outputs): the smallest and largest of the averaged members' means (None: no average)."""
        members = self._members()
        if len(members) < 2:
            return None
        n = len(targets)
        _, _, mm, _ = self._stage1_mean_draws(members, targets, slice(0, n), None)
        lo = np.full((n, len(names)), np.nan)
        hi = np.full((n, len(names)), np.nan)
        for j, nm in enumerate(names):
            if nm == self.loss_name_:
                vals = mm
            elif nm in self.laws_:
                s2 = self.laws_[nm]
                with np.errstate(all="ignore"):
                    vals = np.vstack([s2.law.predict(mm[k][:, None], s2.params) for k in range(mm.shape[0])])
            else:
                continue
            lo[:, j] = np.min(vals, axis=0)
            hi[:, j] = np.max(vals, axis=0)
        return lo, hi

    @staticmethod
    def _widen_to(pred: Prediction, env: tuple[np.ndarray, np.ndarray] | None) -> Prediction:
        """The prediction with every interval stretched to hold the averaged members' means."""
        if env is None or pred.lower is None or pred.upper is None:
            return pred
        lo, hi = env
        lower = np.where(np.isfinite(lo), np.fmin(pred.lower, lo), pred.lower)
        upper = np.where(np.isfinite(hi), np.fmax(pred.upper, hi), pred.upper)
        return dataclasses.replace(pred, lower=lower, upper=upper)

    def _predict_raw(self, targets: Targets, *, intervals: bool, level: float) -> Prediction:
        pred = self._predict_raw_members(targets, intervals=intervals, level=level)
        return self._widen_to(pred, self._member_envelope(targets, pred.names)) if intervals else pred

    def _predict_raw_members(self, targets: Targets, *, intervals: bool, level: float) -> Prediction:
        n = len(targets)
        members = self._members()
        s1 = self.laws_[self.loss_name_]
        names = list(self.outputs_)
        score_laws = [(nm, self.laws_[nm]) for nm in names[1:] if nm in self.laws_]
        fitted = [names[0]] + [nm for nm, _ in score_laws]
        out: dict[str, list[np.ndarray]] = {nm: [np.empty(n) for _ in range(4)] for nm in fitted}
        n_draws = s1.boot.shape[0] if intervals else 0
        for sl in _chunks(n, n_draws):
            loss, loss_b, _, scale1 = self._stage1_mean_draws(members, targets, sl, np.arange(n_draws) if n_draws else None)
            noise1 = self._loss_noise(scale1) if self.include_noise else 0.0
            col = out[names[0]]
            col[0][sl] = loss
            if intervals:
                col[1][sl], col[2][sl] = combine_interval(loss, loss_b, noise1, level, log_space=True)
                col[3][sl] = predictive_std(loss, loss_b, noise1, log_space=True)
            for nm, s2 in score_laws:
                with np.errstate(all="ignore"):
                    p = s2.law.predict(loss[:, None], s2.params)
                col = out[nm]
                col[0][sl] = p
                if not intervals:
                    continue
                with np.errstate(all="ignore"):
                    p_b = s2.law.predict(loss_b[..., None], s2.boot) if loss_b is not None else None
                noise = 0.0
                if self.include_noise:
                    h = 1e-4 * np.maximum(np.abs(loss), 1.0)
                    up = s2.law.predict((loss + h)[:, None], s2.params)
                    down = s2.law.predict((loss - h)[:, None], s2.params)
                    slope = (up - down) / (2 * h)  # dP/dL, score per nat/token
                    noise = np.sqrt(s2.scale**2 + (slope * loss * scale1) ** 2)
                col[1][sl], col[2][sl] = combine_interval(p, p_b, noise, level, log_space=False)
                col[3][sl] = predictive_std(p, p_b, noise, log_space=False)
        cols = {nm: tuple(v) for nm, v in out.items()}
        return self._finish(names, cols, n, intervals, level)

    def _loss_noise(self, scale1: float) -> float:
        """Log-loss noise sd of a new run's observed loss: stage 1's residual sd, at least the measurement noise the
        checkpoints show (``loss_noise_sd_``). A residual sd from a few final checkpoints (4 runs, 3 parameters: one
        degree of freedom) can come out near 0, and the internal folds' loss intervals with it (measured on the
        synthetic worlds: half-widths of 0.01-0.03 % for errors of 1-2 %, calibration factors 12-33 and loss
        intervals up to 160 nats wide). Only the loss output takes the floor: a score follows the model, not the
        noise of its loss evaluation, so the delta-method term of the scores keeps the residual sd."""
        floor = float(getattr(self, "loss_noise_sd_", math.nan))
        return max(scale1, floor) if math.isfinite(floor) else scale1

    def _extrapolation_reference(self) -> tuple[float | None, float | None]:
        cal = getattr(self, "calibrator_", None)
        return self.fit_flops_max_, (cal.calibrated_ratio if cal is not None else None)

    def _raw_draws(self, targets: Targets, n_draws: int, seed: int) -> dict[str, np.ndarray]:
        """Draw ``s``: bootstrap refit ``b_s`` of stage 1 and of every stage-2 law (one by-run
        resample), the loss's log residual ``eps[s]·sd``, each score's residual ``eta[s]·sd``."""
        s1 = self.laws_[self.loss_name_]
        rng = draw_rng(seed, 2)
        names = list(self.outputs_)
        idx = self._draw_index(s1.boot.shape[0], n_draws, rng)
        eps = rng.standard_normal((n_draws, len(names))) * float(self.include_noise)
        members = self._members()
        mean1, loss_b, _, scale1 = self._stage1_mean_draws(members, targets, slice(0, len(targets)), idx)
        if loss_b is None:
            loss_b = np.broadcast_to(mean1, (n_draws, len(targets)))
        with np.errstate(all="ignore"):
            loss = loss_b * np.exp(eps[:, :1] * scale1)  # (S, n)
            loss_out = loss_b * np.exp(eps[:, :1] * self._loss_noise(scale1))  # the loss output's own noise (floored)
        out = {names[0]: loss_out}
        for j, nm in enumerate(names[1:], start=1):
            s2 = self.laws_.get(nm)
            if s2 is None:
                continue
            use = idx is not None and s2.boot.shape[0] == s1.boot.shape[0]
            th2 = s2.boot[idx] if use else np.broadcast_to(s2.params, (n_draws, s2.params.shape[0]))
            with np.errstate(all="ignore"):
                out[nm] = s2.law.predict(loss[..., None], th2) + eps[:, j : j + 1] * s2.scale
        return out

    # -- state ---------------------------------------------------------------------------------
    def _get_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        state, arrays = self._laws_state()
        state["loss_name"] = self.loss_name_
        state["stage1"] = self.stage1_
        state["stage1_average"] = dict(getattr(self, "stage1_average_", {}) or {})
        state["checkpoints"] = self.checkpoints_
        state["stage2"] = dict(self.stage2_)
        state["fit_flops_max"] = self.fit_flops_max_
        state["loss_noise_sd"] = float(getattr(self, "loss_noise_sd_", math.nan))
        state["selection"] = self.selection_.to_dicts()
        state["calibrator"] = self.calibrator_.state() if self.calibrator_ is not None else None
        state["weak"] = dict(getattr(self, "weak_", {}))
        state["score_range"] = {k: [float(v[0]), float(v[1])] for k, v in (getattr(self, "score_range_", {}) or {}).items()}
        return state, arrays

    def _set_state(self, state: dict[str, Any], arrays: Mapping[str, np.ndarray]) -> None:
        self._set_laws_state(state, arrays)
        self.loss_name_ = str(state["loss_name"])
        self.stage1_ = str(state.get("stage1", self.stage1))
        self.stage1_average_ = {str(k): float(v) for k, v in dict(state.get("stage1_average", {})).items()}
        self.checkpoints_ = str(state.get("checkpoints", "final"))
        self.weak_ = {str(k): str(v) for k, v in dict(state.get("weak", {})).items()}
        self.score_range_ = {str(k): (float(v[0]), float(v[1])) for k, v in dict(state.get("score_range", {})).items()}
        self.stage2_ = dict(state.get("stage2", {}))
        self.fit_flops_max_ = float(state.get("fit_flops_max", math.nan))
        self.loss_noise_sd_ = float(state.get("loss_noise_sd", math.nan))
        rows = [{**r, "score": None if r.get("score") in (None, "nan") else float(r["score"])} for r in state.get("selection", [])]
        self.selection_ = pl.DataFrame(rows, schema=SELECTION_SCHEMA, orient="row")
        cal = state.get("calibrator")
        self.calibrator_ = IntervalCalibrator.from_state(cal) if cal else None


__all__ = ["EMERGENCE_MODES", "FLP", "FP", "STAGE1_FORMS", "STAGE2_FORMS", "FittedLaw", "emerged_mask"]
