"""FLP-M's ``auto`` settings: choose the configuration by an internal backtest on the runs.

What is chosen (each setting left at ``"auto"``; a setting given explicitly is kept):

* ``stage1`` -- the stage-1 law form: the FLOPs forms ``flpm``, ``dml`` (fitted on final
  checkpoints) or the N,D forms ``flpm_nd``, ``dml_nd`` (every checkpoint; need several
  sizes); ``flpm_additive`` is reachable explicitly but left out: 3-6x slower to fit and
  never better on our benchmarks), and
* ``family`` -- ``law`` (the law alone), ``hybrid`` (the law times a kernel-ridge
  correction over the mixture, :mod:`mixopt.surrogate.hybrid`) or ``average`` (the
  equal-weight model average of the two in log space; its loss intervals cover both),

  together, on the held-out runs' **losses** (cheap: stage 1 only), then

* ``stage2`` -- ``net`` (the paper's two-layer net ensemble) or ``logistic`` (a GLM,
  :mod:`mixopt.surrogate.logistic`), and ``stage2_inputs`` -- ``observed`` or ``fitted``
  losses as the stage-2 training inputs,

  on the held-out runs' **scores** (full FLP-M fits with the chosen stage 1). The first
  candidate, ``logistic`` on ``fitted`` losses, is kept when the folds hold no emerged
  score to compare on (common: the held-out size is often still at chance); it is the
  measured best over 10 synthetic worlds (``benchmarks/bench_flpm.py``: about 3x lower
  median score error than the net on observed losses, the paper's choice). On tables of at most
  :data:`NET_MIN_RUNS` runs the net is not fitted at all (measured never to win there; no torch).
  Larger tables keep it in the race, its members stopped one by one on their held-out runs
  (``NetConfig.stop="member"``, what a chosen net is trained with too), and it replaces the
  first candidate only when its paired held-out errors are lower beyond :data:`NOISE_T`
  standard errors (:func:`_net_within_noise`; ``selection_`` gives the steps its members
  trained and, when it is passed over, why).

The folds mimic the real extrapolation, and say what they can show (``Fold.kind``):

* ``scale`` -- with >= 4 model sizes, fit without the largest size(s) and predict them
  (:func:`mixopt.surrogate.select.size_folds`): errors and rankings out of range;
* ``transfer`` -- a few runs at a second, larger scale (a validation round, a handful of
  larger proxies: :func:`mixopt.surrogate.select.transfer_fold`): fit below, and rank those
  runs' mixtures (a model fitted at one scale cannot predict the larger compute, but the
  order of the mixtures is what transfers -- or not); one mixture fold is added for errors;
* ``mixture`` -- every run at one compute scale (e.g. RegMix's 1M models): whole mixtures
  left out (:func:`mixture_folds`), in range only.

The stage-1 step is **judged out of range** whenever every candidate has out-of-range
evidence (``scale`` / ``transfer`` folds): each candidate's mean absolute log error of the
held-out losses and its mean ``1 - ρ`` among the held-out mixtures at each held-out scale
(:mod:`mixopt.surrogate.decision`), each divided by the best candidate's and added; in-range
folds then only inform the table. A free residual (the ``hybrid`` family) is **not a
candidate** when every fold is in range: such folds cannot show that what the residual learns
at the proxies' scale carries to the target's (on RegMix it lifts the 1M held-out ρ and lowers
the 1.1B ρ; ``mixopt.testing.transfer`` is a world built that way). The ``average`` family
stays: where the evidence cannot tell the law from the hybrid at the target, the two are
averaged and the interval spans both, instead of one being picked. Scores: mean absolute
error (score units) for stage 2 -- absolute, because relative errors of scores near zero (the
foot of an emergence curve) are noise. A candidate that cannot be fitted on some fold drops
out with its reason. The folds (step ``folds``), every candidate's internal score and the
evidence it was judged on (``reason``) are kept in :class:`AutoChoice.table`
(``model.selection_``), and the chosen configuration's held-out rows calibrate the intervals
(:mod:`mixopt.surrogate.calibrate`; transfer folds, which cannot predict the larger compute,
give none).
"""

from __future__ import annotations

import logging
import math
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

from mixopt.data.table import RunTable
from mixopt.surrogate.base import Targets
from mixopt.surrogate.decision import MIN_MIXTURES, spearman
from mixopt.surrogate.schedule import SCHEDULE_CANDIDATES, SCHEDULE_OF, has_schedules, is_schedule_form, schedule_groups
from mixopt.surrogate.select import DROP_ERRORS, ROWS_SCHEMA, Fold, compute_scales, fold_rows, size_folds, transfer_fold

if TYPE_CHECKING:
    from mixopt.surrogate.flpm import FLPM

logger = logging.getLogger(__name__)

#: candidate values per choosable setting, in order of preference on ties
STAGE1_CANDIDATES: tuple[str, ...] = ("flpm", "dml", "flpm_nd", "dml_nd")
FAMILY_CANDIDATES: tuple[str, ...] = ("law", "hybrid", "average")
STAGE2_CANDIDATES: tuple[tuple[str, str], ...] = (("logistic", "fitted"), ("net", "observed"), ("logistic", "observed"))
#: a candidate must beat the first (simplest) one by this relative margin to be chosen
TIE_MARGIN = 0.02
#: smallest normaliser of ``1 - ρ`` when errors and rankings are combined (ρ >= 0.98 is about as good as rankings of
#: a few held-out mixtures can tell apart)
RANK_GAP_FLOOR = 0.02
#: ``stage2="auto"`` fits the net candidate (torch) only on tables with more runs than this.
#: Measured (``benchmarks/bench_startup.py --sections net``): on the shipped example and on
#: seeded worlds of its kind (3 domains, 12 or 16 mixtures x 5 sizes = 60 or 80 runs) the net
#: was never chosen in the stage-2 step (on the 7 tables with a held-out score, its error was
#: 1.8-10x the chosen logistic's), while fitting it imported torch and cost most of the main
#: job's CPU. Larger tables keep the net in the race.
NET_MIN_RUNS = 80
#: two candidates' paired held-out log errors within this many standard errors are "within noise"
NOISE_T = 2.0
#: paired bootstrap resamples of a domain's held-out mixtures for the standard error of its ``1 - ρ`` difference
RANK_BOOTSTRAP = 200
#: law forms are compared beyond the runs at this multiple of the largest run's compute (a typical target:
#: FLP-M's extrapolations are ~10x; the fit does not know the request's target)
DISAGREE_REACH = 10.0
#: calibration group of the held-out rows of benchmarks predicted on weak evidence (see :mod:`mixopt.surrogate.emergence`)
WEAK_GROUP = "weak"

TABLE_SCHEMA: dict[str, Any] = {
    "step": pl.String,
    "candidate": pl.String,
    "status": pl.String,
    "reason": pl.String,
    "score": pl.Float64,
    "n_points": pl.Int64,
    "seconds": pl.Float64,
}


@dataclass
class AutoChoice:
    """The outcome of a selection.

    Attributes:
        config: the chosen settings (``stage1``, ``family``, ``stage2``, ``stage2_inputs``).
        table: every candidate with its step (``stage1`` / ``stage2``), status (chosen,
            scored, failed, skipped), reason, internal score (lower is better), points and seconds.
        rows: held-out rows (:data:`mixopt.surrogate.select.ROWS_SCHEMA`) of the chosen
            configuration, for interval calibration; empty when no fold could be made.
        folds: descriptions of the folds used.
        warm: stage-1 warm starts for the final fit (see :meth:`FLPM._fit_stage1`).
    """

    config: dict[str, str]
    table: pl.DataFrame
    rows: pl.DataFrame
    folds: tuple[str, ...] = field(default_factory=tuple)
    #: stage-1 warm starts for the final fit, ``{form: FLPM.stage1_warm_entry()}`` of the largest fold
    warm: dict[str, Any] = field(default_factory=dict)


def mixture_folds(runs: RunTable, n_folds: int = 2, *, fraction: float = 0.25, seed: int = 0) -> list[Fold]:
    """Leave-mixtures-out folds for tables at one compute scale.

    Fold ``k`` holds out a seeded, disjoint ``fraction`` of the distinct mixtures (every
    run trained on them), fits on the rest and predicts their final checkpoints. On a phased
    table a "mixture" is a schedule (:func:`~mixopt.surrogate.schedule.schedule_groups`): two
    schedules with the same whole-run mixture are left out apart.
    """
    final = runs.final()
    ids = final.run_ids().astype(str)
    inverse, first = schedule_groups(final, 4)
    n_mix = first.size
    n_out = int(round(fraction * n_mix))
    if n_mix < 8 or n_out < 2:
        return []
    order = np.random.default_rng(np.random.SeedSequence([int(seed), 11])).permutation(n_mix)
    folds = []
    for k in range(n_folds):
        chosen = order[k * n_out : (k + 1) * n_out]
        if chosen.size < 2:
            break
        test = set(ids[np.isin(inverse, chosen)].tolist())
        train = [r for r in ids.tolist() if r not in test]
        folds.append(
            Fold(
                index=k + 1,
                train=runs.select_runs(train),
                test=final.select_runs(sorted(test)),
                description=f"fold {k + 1}: {chosen.size} of {n_mix} mixtures left out ({len(test)} runs)",
                kind="mixture",
            )
        )
    return folds


def make_folds(runs: RunTable, seed: int = 0) -> list[Fold]:
    """The internal folds, by what the runs allow (see the module docstring):

    * >= 4 model sizes: leave-largest-out size folds (kind ``scale``);
    * a few runs at a second, larger scale (a validation round, a handful of larger proxies):
      the transfer fold (fit below, rank them; kind ``transfer``) plus one mixture fold;
    * one compute scale: mixture folds (kind ``mixture``: in range only);
    * schedules at a few sizes that allow neither of the first two: mixture (schedule) folds,
      on which the schedule laws compete with the first form (constant tables: no folds, as before).
    """
    flops = runs.final().flops()
    if float(flops.max() / flops.min()) >= 2.0:
        folds = size_folds(runs, 2, min_train_sizes=3, holdout_mixtures=0, seed=seed)
        if folds:
            return folds
        tf = transfer_fold(runs)
        if tf is None:
            # schedules: in-range schedule folds still judge the recency weight (it reads which tokens count, not the scale)
            return mixture_folds(runs, 1, seed=seed) if has_schedules(runs) else []
        mf = [replace(f, index=f.index + 1, description=f.description.replace(f"fold {f.index}:", f"fold {f.index + 1}:", 1)) for f in mixture_folds(runs, 1, seed=seed)]
        return [tf, *mf]
    return mixture_folds(runs, 1, seed=seed)


@dataclass
class Evidence:
    """Held-out evidence of one stage-1 candidate on some folds: log errors and rankings."""

    err_sum: float = 0.0
    n_err: int = 0
    gaps: list[float] = field(default_factory=list)
    #: every held-out point's absolute log error, in fold order (paired across candidates: the same folds and runs)
    errs: list[float] = field(default_factory=list)
    #: the loss domain (column of ``model.loss_domains_``) of each entry of ``errs`` / ``gaps``
    err_domain: list[int] = field(default_factory=list)
    gap_domain: list[int] = field(default_factory=list)
    #: each ranking of ``gaps``: (predicted, actual) losses of its held-out mixtures (for the per-domain noise test)
    ranked: list[tuple[np.ndarray, np.ndarray]] = field(default_factory=list)

    @property
    def error(self) -> float:
        """Mean absolute log error of losses predicted at their own compute (NaN: none)."""
        return self.err_sum / self.n_err if self.n_err else math.nan

    @property
    def rank_gap(self) -> float:
        """Mean ``1 - ρ`` over (fold, held-out scale, loss domain) rankings of >= 3 mixtures (NaN: none)."""
        return float(np.mean(self.gaps)) if self.gaps else math.nan

    @property
    def n_points(self) -> int:
        return self.n_err + len(self.gaps)

    def domain(self, j: int) -> Evidence:
        """The part of this evidence on loss domain ``j``."""
        errs = [e for e, d in zip(self.errs, self.err_domain, strict=True) if d == j]
        keep = [i for i, d in enumerate(self.gap_domain) if d == j]
        return Evidence(
            err_sum=float(sum(errs)), n_err=len(errs), gaps=[self.gaps[i] for i in keep], errs=errs, err_domain=[j] * len(errs), gap_domain=[j] * len(keep), ranked=[self.ranked[i] for i in keep]
        )

    def describe(self) -> str:
        parts = [f"log error {self.error:.4g}" if self.n_err else "", f"mean 1-rho {self.rank_gap:.4g} over {len(self.gaps)} rankings" if self.gaps else ""]
        return ", ".join(p for p in parts if p)


@dataclass
class FoldScore:
    """A candidate's evidence, kept apart by what the folds can show.

    ``out``: folds beyond the fitted compute (``scale``, ``transfer``): what the choice is
    judged on whenever every candidate has some; ``within``: folds at the fitted scale
    (``mixture``), used only when there is nothing out of range.
    """

    out: Evidence = field(default_factory=Evidence)
    within: Evidence = field(default_factory=Evidence)

    @property
    def n_points(self) -> int:
        return self.out.n_points + self.within.n_points


def _fold_evidence(model: FLPM, fold: Fold, acc: FoldScore) -> None:
    """Add a stage-1-only fit's held-out losses on ``fold`` to ``acc``.

    A model fitted at one compute scale cannot predict a transfer fold's larger compute: it
    is asked at its own compute, and only the ranking of the held-out mixtures is scored.
    """
    ev = acc.out if fold.out_of_range else acc.within
    test = fold.test
    targets = Targets.from_runs(test).align(model.domains_)
    level_ok = model.vary_compute_ or fold.kind != "transfer"
    if not level_ok:
        c0 = math.sqrt(model.compute_range_[0] * model.compute_range_[1])
        targets = Targets(flops=np.full(test.n_runs, c0), mixture=None if targets.phases is not None else targets.mixture, domains=model.domains_, phases=targets.phases, phase_end=targets.phase_end)
    x = model._stage1_inputs(targets)
    L = model._stage1_mean(x) * np.exp(model._residual_correction(model._residual_inputs(targets), targets.flops))
    A = test.losses(model.loss_domains_)
    ok = np.isfinite(A) & np.isfinite(L) & (A > 0) & (L > 0)
    if level_ok and ok.any():
        e = np.abs(np.log(L[ok] / A[ok]))
        ev.err_sum += float(np.sum(e))
        ev.n_err += int(ok.sum())
        ev.errs.extend(e.tolist())
        ev.err_domain.extend(np.nonzero(ok)[1].tolist())
    scales = compute_scales(test.flops())
    for sc in np.unique(scales):
        at = scales == sc
        for j in range(A.shape[1]):
            good = at & ok[:, j]
            if good.sum() < MIN_MIXTURES:
                continue
            rho = spearman(L[good, j], A[good, j])
            if math.isfinite(rho):
                ev.gaps.append(1.0 - rho)
                ev.gap_domain.append(j)
                ev.ranked.append((L[good, j].copy(), A[good, j].copy()))


def _judged_on(ev: Sequence[FoldScore]) -> tuple[str, list[Evidence]]:
    """The evidence the choice rests on: out of range when every candidate has some, else within range."""
    if ev and all(e.out.n_points for e in ev):
        return "out of range", [e.out for e in ev]
    return "within range", [e.within for e in ev]


def _combined_scores(ev: Sequence[Evidence], seed: int = 0) -> list[float]:
    """One score per candidate (lower wins) from errors and rankings.

    Each available component (mean abs log error; mean ``1 - ρ``) is divided by its best
    value over the candidates (``1 - ρ`` by at least :data:`RANK_GAP_FLOOR`, so that rankings
    that are all near perfect do not outweigh the errors), and the two are added; a component
    some candidate lacks is left out; with one component the score is its raw value.

    With both components, a candidate whose ``1 - ρ`` is within noise of the best one's
    (:func:`_ranks_apart`) is scored as the best: the
    rankings of a fold's few held-out mixtures differ by a swapped pair, which divided by a
    small best ``1 - ρ`` outweighed a 1.7x larger log error (issue-11 world seed 6: ``dml_nd``
    chosen over ``flpm`` at 1 - ρ 0.017 vs 0.039, held-out score error 2.2% -> 11%).
    """
    comps = []
    for get, floor in ((lambda e: e.error, 0.0), (lambda e: e.rank_gap, RANK_GAP_FLOOR)):
        vals = [get(e) for e in ev]
        if all(math.isfinite(v) for v in vals):
            comps.append((vals, floor))
    if not comps:
        return [math.inf] * len(ev)
    if len(comps) == 1:
        return comps[0][0]
    gaps, floor = comps[1]
    ib = int(np.argmin(gaps))
    comps[1] = ([g if i == ib or _ranks_apart(ev[ib], e, seed) else gaps[ib] for i, (e, g) in enumerate(zip(ev, gaps, strict=True))], floor)
    out = [0.0] * len(ev)
    for vals, floor in comps:
        lo = max(min(vals), floor)
        for i, v in enumerate(vals):
            out[i] += v / lo if lo > 0 else (1.0 if v == lo else math.inf)
    return out


def _ranks_apart(a: Evidence, b: Evidence, seed: int) -> bool:
    """Whether two candidates' mean ``1 - ρ`` differ beyond noise: by at least :data:`RANK_GAP_FLOOR` and by
    more than :data:`NOISE_T` standard errors of a paired bootstrap of the held-out mixtures (:func:`_rank_gap_se`)."""
    gap = abs(b.rank_gap - a.rank_gap)
    return gap >= RANK_GAP_FLOOR and gap > NOISE_T * _rank_gap_se(a, b, seed)


def within_noise(a: Evidence, b: Evidence) -> tuple[bool, str]:
    """Whether two candidates' held-out evidence cannot tell them apart, and why.

    Errors: the paired difference of the points' absolute log errors (same folds, runs and
    domains) is within :data:`NOISE_T` standard errors of zero (or the mean errors are within
    :data:`TIE_MARGIN` of each other). Rankings: the mean ``1 - ρ`` differ by less than
    :data:`RANK_GAP_FLOOR`. Both must hold where both are measured.
    """
    why = []
    if a.n_err and b.n_err:
        if len(a.errs) == len(b.errs) and len(a.errs) >= 3:
            d = np.asarray(a.errs) - np.asarray(b.errs)
            se = float(d.std(ddof=1) / math.sqrt(d.size))
            t = abs(float(d.mean())) / se if se > 0 else (0.0 if d.mean() == 0 else math.inf)
            close = t <= NOISE_T or abs(a.error - b.error) <= TIE_MARGIN * max(a.error, b.error)
            why.append(f"log errors {a.error:.4g} vs {b.error:.4g} (paired t {t:.2f} over {d.size} points)")
        else:
            close = abs(a.error - b.error) <= TIE_MARGIN * max(a.error, b.error)
            why.append(f"log errors {a.error:.4g} vs {b.error:.4g}")
        if not close:
            return False, "; ".join(why)
    if a.gaps and b.gaps:
        gap = abs(a.rank_gap - b.rank_gap)
        why.append(f"mean 1-rho {a.rank_gap:.4g} vs {b.rank_gap:.4g}")
        if gap >= RANK_GAP_FLOOR:
            return False, "; ".join(why)
    return bool(why), "; ".join(why)


def _rank_gap_se(a: Evidence, b: Evidence, seed: int) -> float:
    """Standard error of the difference of two candidates' mean ``1 - ρ`` over their paired rankings
    (same folds, scales and domain): a seeded paired bootstrap of each ranking's held-out mixtures."""
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 23]))
    diffs = np.zeros(RANK_BOOTSTRAP)
    for (pa, act), (pb, act_b) in zip(a.ranked, b.ranked, strict=True):
        if act.shape != act_b.shape:
            return math.inf  # not paired: cannot be told apart
        idx = rng.integers(0, act.size, size=(RANK_BOOTSTRAP, act.size))
        r_act = _resample_ranks(act, idx)
        ra, rb = _rank_rho(_resample_ranks(pa, idx), r_act), _rank_rho(_resample_ranks(pb, idx), r_act)
        diffs += np.where(np.isfinite(ra) & np.isfinite(rb), rb - ra, 0.0)
    diffs /= max(len(a.ranked), 1)
    return float(diffs.std(ddof=1))


def _resample_ranks(v: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Average ranks (ties share theirs, as :func:`spearman`) within each resample ``v[idx[r]]`` ``(B, n)``:
    counted from ``v``'s distinct values, O(B n) for every resample at once."""
    _, dense = np.unique(v, return_inverse=True)
    k = int(dense.max()) + 1
    d = dense.reshape(-1)[idx]
    flat = (d + k * np.arange(d.shape[0])[:, None]).ravel()
    counts = np.bincount(flat, minlength=d.shape[0] * k).reshape(d.shape[0], k)
    c = np.take_along_axis(counts, d, axis=1)
    less = np.take_along_axis(np.cumsum(counts, axis=1), d, axis=1) - c
    return less + (c + 1) / 2.0


def _rank_rho(rp: np.ndarray, ra: np.ndarray) -> np.ndarray:
    """Pearson correlation of each row pair of rank matrices ``(B, n)``: Spearman ρ; NaN where a row is constant."""
    rp = rp - rp.mean(axis=1, keepdims=True)
    ra = ra - ra.mean(axis=1, keepdims=True)
    den = np.sqrt((rp * rp).sum(axis=1) * (ra * ra).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, (rp * ra).sum(axis=1) / np.where(den > 0, den, 1.0), np.nan)


def form_disagreement(a: FLPM, b: FLPM, runs: RunTable, reach: float = DISAGREE_REACH) -> tuple[float, float]:
    """How far two fitted stage-1 laws part beyond the runs, and the loss noise to compare it with.

    Per loss domain (:func:`form_disagreement_by_domain`): the median ``|log(L_a / L_b)|`` over the
    runs' mixtures at ``reach`` x the largest run's compute, against that domain's own loss noise;
    returns the gap and the noise of the domain where the ratio of the two is largest (so
    ``gap > noise`` when the forms part beyond the noise in some domain). Pooled -- the largest
    domain's gap against the median domain's noise -- one heteroscedastic domain made every domain
    average: RegMix's DM Mathematics, gap 0.117, its own noise 0.178, the median noise 0.038, while
    no domain parts beyond its own noise.
    """
    gaps, noise = form_disagreement_by_domain(a, b, runs, reach)
    k = _most_parting(gaps, noise)
    return (math.nan, math.nan) if k is None else (float(gaps[k]), float(noise[k]))


def _most_parting(gaps: np.ndarray, noise: np.ndarray) -> int | None:
    """The domain whose gap is largest for its noise (None when no domain's is finite)."""
    with np.errstate(all="ignore"):
        ratio = np.where(np.isfinite(gaps) & np.isfinite(noise) & (noise > 0), gaps / noise, np.nan)
    return int(np.nanargmax(ratio)) if np.isfinite(ratio).any() else None


def form_disagreement_by_domain(a: FLPM, b: FLPM, runs: RunTable, reach: float = DISAGREE_REACH) -> tuple[np.ndarray, np.ndarray]:
    """:func:`form_disagreement` per loss domain: the median ``|log(L_a / L_b)|`` ``(m,)`` (NaN where it
    cannot be computed) and each domain's loss noise, the larger of the two laws' residual scales ``(m,)``."""
    fin = runs.final()
    mix = fin.mixture(a.domains_)
    R = mix[np.unique(np.round(mix, 6), axis=0, return_index=True)[1]]
    c = float(fin.flops().max()) * (reach if a.vary_compute_ and b.vary_compute_ else 1.0)
    if not a.vary_compute_:
        c = math.sqrt(a.compute_range_[0] * a.compute_range_[1])
    t = Targets(flops=np.full(R.shape[0], c), mixture=R, domains=a.domains_)
    try:
        with np.errstate(all="ignore"):
            La = a._stage1_mean(a._stage1_inputs(t))
            Lb = b._stage1_mean(b._stage1_inputs(t))
    except DROP_ERRORS:
        return np.full(len(a.loss_domains_), np.nan), np.full(len(a.loss_domains_), np.nan)
    d = np.abs(np.log(La / Lb))
    d[~np.isfinite(d)] = np.nan
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a domain with no finite ratio: NaN
        gaps = np.nanmedian(d, axis=0)
    return gaps, np.maximum(np.asarray(a.stage1_residual_, dtype=float), np.asarray(b.stage1_residual_, dtype=float))


def _score_error(rows: pl.DataFrame) -> tuple[float, int]:
    s = rows.filter(pl.col("quantity").str.starts_with("score:") & pl.col("actual").is_finite() & pl.col("predicted").is_finite())
    if s.height == 0:
        return math.nan, 0
    return float((s["predicted"] - s["actual"]).abs().mean()), s.height


def choose(model: FLPM, runs: RunTable, fixed: Mapping[str, str], *, need_rows: bool = True) -> AutoChoice:
    """Resolve every ``"auto"`` in ``fixed`` by internal backtest (see the module docstring).

    Args:
        model: the FLP-M being fitted (its other settings are reused for the candidates).
        runs: the user's runs.
        fixed: ``stage1``, ``family``, ``stage2``, ``stage2_inputs`` (values or ``"auto"``).
        need_rows: run the stage-2 step even when stage 2 is fixed, for its held-out rows
            (interval calibration).
    """
    folds = make_folds(runs, seed=int(model.seed))
    table: list[dict[str, Any]] = []
    cfg = dict(fixed)
    base = {k: v for k, v in model.get_params().items() if k != "preset"}
    # fold fits are many: fewer bootstrap draws and law starts than the final fit (the 17-source
    # RegMix law costs ~11 s of CPU per domain and start set)
    base.update(intervals="raw", n_bootstrap=min(int(model.n_bootstrap), 10), n_starts=max(1, int(model.n_starts) // 2))

    def make(settings: Mapping[str, str]) -> FLPM:
        m = type(model)(**{**base, **settings})
        m._internal = True  # its warnings repeat the user's fit: logged at DEBUG
        return m

    # stage-1 fits of a form on a fold warm-start that fold's full fits (step 2) and, from the
    # first fold (the most runs), the final fit: same optima, a fraction of the iterations
    warm_by: dict[tuple[str, int], Any] = {}
    defaults = {"stage1": model._default_stage1 if model._default_stage1 != "auto" else "flpm", "family": "law", "stage2": "net", "stage2_inputs": "observed"}
    if not folds:
        for k, v in cfg.items():
            if v == "auto":
                cfg[k] = defaults[k]
        table.append(
            {
                "step": "all",
                "candidate": str(cfg),
                "status": "chosen",
                "reason": "no internal fold possible (fewer than 4 model sizes, no few runs at a second larger scale, or fewer than 8 mixtures at one scale); defaults used",
                "score": None,
                "n_points": 0,
                "seconds": 0.0,
            }
        )
        return AutoChoice(config=cfg, table=pl.DataFrame(table, schema=TABLE_SCHEMA), rows=pl.DataFrame(), folds=())

    for f in folds:  # what the choice rests on, first in the table
        table.append({"step": "folds", "candidate": f.kind, "status": "used", "reason": f.description, "score": None, "n_points": f.test.n_runs, "seconds": 0.0})
    _choose_stage1(make, folds, cfg, defaults, table, warm_by)
    choice = _choose_stage2(make, folds, runs, cfg, table, need_rows, warm_by)
    if fixed.get("family") == "auto" and choice.config.get("family") == "hybrid":
        _limit_residual_reach(choice, folds)
    return choice


def _limit_residual_reach(choice: AutoChoice, folds: Sequence[Fold]) -> None:
    """A hybrid chosen on out-of-range folds is trusted as far as they reached: the largest compute
    ratio of a fold's held-out runs to its fitted runs (``config["residual_reach"]``). Beyond that
    ratio (target compute / largest fitted compute) it predicts as the ``average`` family (RegMix,
    1M + 16 60M runs: the transfer fold, 57x, prefers the hybrid, which ranks the other 60M runs at
    rho 0.989 but the 1.1B models, 460x beyond, at 0.962 where the law reaches 0.988)."""
    ratios = [float(f.test.flops().max() / f.train.flops().max()) for f in folds if f.out_of_range and f.test.n_runs]
    if not ratios:
        return
    reach = max(ratios)
    choice.config["residual_reach"] = repr(reach)
    rows = choice.table.to_dicts()
    rows.append(
        {
            "step": "stage1",
            "candidate": f"family=hybrid up to {reach:.3g}x",
            "status": "chosen",
            "reason": f"the out-of-range folds checked the hybrid up to {reach:.3g}x their fitted compute; targets "
            "further beyond the fitted compute are predicted by the average of the law and the hybrid "
            "(its spread in the interval)",
            "score": None,
            "n_points": 0,
            "seconds": 0.0,
        }
    )
    choice.table = pl.DataFrame(rows, schema=TABLE_SCHEMA)


def _choose_stage1(
    make: Callable[[Mapping[str, Any]], FLPM], folds: Sequence[Fold], cfg: dict[str, str], defaults: Mapping[str, str], table: list[dict[str, Any]], warm_by: dict[tuple[str, int], Any]
) -> None:
    """Step 1: stage-1 form x family, on held-out losses and rankings (stage 1 only, :func:`_score_stage1`).

    Sets ``cfg``, appends to ``table`` and keeps each (form, fold) stage-1 fit in ``warm_by``.
    """
    s1 = STAGE1_CANDIDATES if cfg["stage1"] == "auto" else (cfg["stage1"],)
    if cfg["stage1"] == "auto" and has_schedules(folds[0].train):
        s1 = s1 + SCHEDULE_CANDIDATES  # schedules that differ from constant mixtures: the schedule laws compete
    fam = FAMILY_CANDIDATES if cfg["family"] == "auto" else (cfg["family"],)
    if len(s1) * len(fam) > 1:
        form, family, alt = _score_stage1(make, folds, s1, fam, table, explicit_family=cfg["family"] != "auto", warm_by=warm_by)
        cfg["stage1"] = form or (cfg["stage1"] if cfg["stage1"] != "auto" else defaults["stage1"])
        cfg["family"] = family or (cfg["family"] if cfg["family"] != "auto" else "law")
        if alt is not None:
            cfg["stage1_alt"], cfg["stage1_weight"] = alt[0], repr(float(alt[1]))
    else:
        cfg["stage1"], cfg["family"] = s1[0], fam[0]


def _score_stage1(
    make: Callable[[Mapping[str, Any]], FLPM],
    folds: Sequence[Fold],
    forms: Sequence[str],
    families: Sequence[str],
    table: list[dict[str, Any]],
    *,
    explicit_family: bool,
    warm_by: dict[tuple[str, int], Any] | None = None,
) -> tuple[str | None, str | None, tuple[str, float] | None]:
    """Score every (form, family) on the folds' held-out losses; append the rows to ``table``.

    Returns the winning form and family (or Nones) and, when a second law form of the same
    inputs is within noise of the winner on the folds but the two part beyond the runs, that
    form and its weight (see :func:`_form_average`), else None.

    The ``hybrid`` family (a free kernel residual over the mixture) is a candidate only when
    some fold predicts beyond the fitted compute (``scale`` or ``transfer``): folds at the
    fitted scale cannot show that what the residual learns there carries to a larger one
    (RegMix: it lifts the 1M held-out ρ and lowers the 1.1B ρ). Given explicitly it is kept.
    The ``average`` family (the law and the hybrid averaged, their disagreement in the
    interval) stays a candidate: it hedges instead of picking. For the same reason the law
    form is not chosen on in-range folds: the first form is kept (RegMix: in range ``dml``
    beats ``flpm``, at 1.1B it ranks Pile-CC at ρ 0.969 against 0.988).
    """
    transfer = any(f.out_of_range for f in folds)
    if not transfer and len(forms) > 1:
        # in-range errors cannot show which law form extrapolates: keep the first (the paper's pooled law) and its
        # schedule form, which differs from it only in which tokens the mixture is read from (in-range folds show that)
        keep = [forms[0], *([SCHEDULE_OF[forms[0]]] if SCHEDULE_OF.get(forms[0]) in forms else [])]
        for form in forms:
            if form in keep:
                continue
            table.append(
                {
                    "step": "stage1",
                    "candidate": f"stage1={form}",
                    "status": "excluded",
                    "reason": f"every internal fold is at the fitted compute scale: in-range errors cannot show which law "
                    f"form extrapolates; {' and '.join(map(repr, keep))} kept (the paper's form" + (" and its schedule form)" if len(keep) > 1 else ")"),
                    "score": None,
                    "n_points": 0,
                    "seconds": 0.0,
                }
            )
        forms = keep
    fam = [f for f in families if f != "hybrid" or transfer or explicit_family]
    for f in families:
        if f not in fam:
            table.append(
                {
                    "step": "stage1",
                    "candidate": f"family={f}",
                    "status": "excluded",
                    "reason": "every internal fold is at the fitted compute scale (mixtures left out): such folds cannot "
                    "show that a residual learned there transfers to a larger scale; the law alone or the "
                    "average of the law and the hybrid (its spread in the interval) is used",
                    "score": None,
                    "n_points": 0,
                    "seconds": 0.0,
                }
            )
    cands: list[tuple[str, str, FoldScore, float]] = []
    first_fit: dict[str, FLPM] = {}  # each form's law on the first fold (the most runs), to compare forms beyond the runs
    for form in forms:
        # one law fit per fold serves every family (the hybrid corrects the same law)
        t0 = time.perf_counter()
        acc = {f: FoldScore() for f in fam}
        reason = ""
        try:
            for fold in folds:
                m = make({"n_bootstrap": 0, "stage1": form})
                m._prepare(fold.train)
                m.config_ = {"stage1": form, "family": "law", "stage2": "net", "stage2_inputs": "observed"}
                m._fit_stage1(m._stage1_rows(fold.train))
                if warm_by is not None:
                    warm_by[(form, fold.index)] = m.stage1_warm_entry()
                if fold is folds[0]:
                    first_fit[form] = m
                for f in fam:
                    refit = f == "hybrid" or getattr(m, "residual_", None) is None  # the average reuses the hybrid's
                    m.config_["family"] = f
                    if refit:
                        m._fit_residual(fold.train)
                    _fold_evidence(m, fold, acc[f])
        except DROP_ERRORS as e:
            reason = str(e).splitlines()[0]
        sec = (time.perf_counter() - t0) / len(fam)
        for f in fam:
            name = f"stage1={form}, family={f}"
            if reason or acc[f].n_points == 0:
                table.append({"step": "stage1", "candidate": name, "status": "failed", "reason": reason or "no held-out loss", "score": None, "n_points": acc[f].n_points, "seconds": sec})
                continue
            cands.append((form, f, acc[f], sec))
    if not cands:
        return None, None, None
    basis, judged = _judged_on([c[2] for c in cands])
    scores = _combined_scores(judged, seed=int(next(iter(first_fit.values())).seed) if first_fit else 0)
    first = len(table)
    for (form, f, ev, sec), sc in zip(cands, scores, strict=True):
        reason = f"judged {basis}: " + (ev.out.describe() if basis == "out of range" else ev.within.describe())
        if basis == "out of range" and ev.within.n_points:
            reason += f" (within range, not judged: {ev.within.describe()})"
        table.append({"step": "stage1", "candidate": f"stage1={form}, family={f}", "status": "scored", "reason": reason, "score": sc, "n_points": ev.n_points, "seconds": sec})
    best = _pick([(sc, c[0], c[1], first + i) for i, (c, sc) in enumerate(zip(cands, scores, strict=True))])
    table[best[3]]["status"] = "chosen"
    alt = None
    if basis == "out of range":
        alt = _form_average(best, cands, judged, scores, first, first_fit, folds[0].train, table)
    return best[1], best[2], alt


def _form_average(
    best: tuple[float, str, str, int],
    cands: Sequence[tuple[str, str, FoldScore, float]],
    judged: Sequence[Evidence],
    scores: Sequence[float],
    first: int,
    first_fit: Mapping[str, FLPM],
    runs: RunTable,
    table: list[dict[str, Any]],
) -> tuple[str, float] | None:
    """Average the winning law form with another when the folds cannot tell them apart but they disagree beyond the runs.

    Candidates: the other forms with the winner's family and inputs (FLOPs or N,D), judged
    out of range. The best-scoring one whose evidence is :func:`within_noise` of the winner's
    is compared with it at :data:`DISAGREE_REACH` x the fold's largest compute
    (:func:`form_disagreement`); when in some loss domain they part by more than that domain's
    own loss noise, the two are averaged (log space, every domain) with weights inverse to their
    fold scores, recorded in ``table`` (the winner's and the partner's rows become ``averaged``,
    one ``chosen`` row names both). The third entry of the result (per-domain weights, which
    :class:`~mixopt.surrogate.flpm_predict.Stage1Alt` can carry) is None.

    Measured and not kept (2026-12-04): per-domain weights -- a domain whose forms agree within its
    noise, or whose own fold evidence separates the forms, using one form alone -- made the
    issue-11 worlds worse (median score error 0.098 -> 0.106 with both rules, seeds 1 and 9
    0.117 -> 0.138 and 0.062 -> 0.067 with the evidence rule alone; the average hedges a form
    choice the domains share) and never applied on RegMix (16 transfer mixtures per domain:
    no domain's evidence separated the forms).
    """
    from mixopt.surrogate.flpm import STAGE1_LAWS

    _, form, family, row = best
    i_best = row - first

    def inputs(f: str) -> str:  # forms average only with forms of the same inputs
        return "schedule" if is_schedule_form(f) else ("nd" if STAGE1_LAWS[f].uses_nd else "flops")

    others = sorted((scores[i], i) for i, c in enumerate(cands) if c[1] == family and c[0] != form and inputs(c[0]) == inputs(form) and math.isfinite(scores[i]))
    for sc, i in others:
        tied, why = within_noise(judged[i_best], judged[i])
        if not tied:
            continue
        alt = cands[i][0]
        if form not in first_fit or alt not in first_fit:
            return None
        gaps, noises = form_disagreement_by_domain(first_fit[form], first_fit[alt], runs)
        k = _most_parting(gaps, noises)  # each domain's gap against its own noise (form_disagreement)
        gap, noise = (math.nan, math.nan) if k is None else (float(gaps[k]), float(noises[k]))
        where = f"at {DISAGREE_REACH:g}x the largest fitted compute of fold 1" + (f" in {first_fit[form].loss_domains_[k]!r}" if k is not None else "")
        if not (math.isfinite(gap) and gap > noise):
            table.append(
                {
                    "step": "stage1",
                    "candidate": f"stage1={form}+{alt}, family={family}",
                    "status": "not needed",
                    "reason": f"{alt!r} is within noise of {form!r} on the folds ({why}), but in every loss domain the two "
                    f"agree beyond the runs within that domain's own loss noise (largest: median |log ratio| {gap:.3g} "
                    f"{where}, its own loss noise {noise:.3g}): {form!r} kept",
                    "score": None,
                    "n_points": 0,
                    "seconds": 0.0,
                }
            )
            return None
        w = float(scores[i_best] / (scores[i_best] + sc)) if scores[i_best] + sc > 0 else 0.5
        table[row]["status"] = "averaged"
        table[first + i]["status"] = "averaged"
        table.append(
            {
                "step": "stage1",
                "candidate": f"stage1={form} {1 - w:.2f} + {alt} {w:.2f}, family={family}",
                "status": "chosen",
                "score": None,
                "n_points": 0,
                "seconds": 0.0,
                "reason": f"the folds cannot tell {form!r} from {alt!r} ({why}) but the two disagree beyond the runs "
                f"(median |log ratio| {gap:.3g} {where}, its own loss noise {noise:.3g}): averaged in log space, "
                "weights inverse to the fold scores; intervals and joint draws carry both forms",
            }
        )
        return alt, w
    return None


def _choose_stage2(
    make: Callable[[Mapping[str, Any]], FLPM], folds: Sequence[Fold], runs: RunTable, cfg: dict[str, str], table: list[dict[str, Any]], need_rows: bool, warm_by: Mapping[tuple[str, int], Any]
) -> AutoChoice:
    """Step 2: stage-2 model and inputs, on held-out scores (full fits, warm-started from ``warm_by``); the outcome."""
    s2, skipped = _stage2_candidates(cfg, runs)
    table += skipped
    if not s2:
        s2 = [(cfg["stage2"] if cfg["stage2"] != "auto" else "net", cfg["stage2_inputs"] if cfg["stage2_inputs"] != "auto" else "observed")]
    has_scores = bool(runs.benchmarks)
    if len(s2) == 1 and not need_rows:
        cfg["stage2"], cfg["stage2_inputs"] = s2[0]
        return AutoChoice(
            config=cfg,
            table=pl.DataFrame(table, schema=TABLE_SCHEMA),
            rows=pl.DataFrame(),
            folds=tuple(f.description for f in folds),
            warm={f: e for (f, k), e in warm_by.items() if k == folds[0].index},
        )
    # a transfer fold fitted at one scale ranks a larger scale its model cannot reach: no errors or intervals there
    level_folds = [f for f in folds if f.kind != "transfer" or compute_scales(f.train.final().flops()).max() > 0]
    # every candidate's fit on a fold has the same stage 1 (and mixture correction): fitted once per fold
    shared: dict[int, dict[str, Any]] = {f.index: {} for f in level_folds}
    rows_by: dict[int, pl.DataFrame] = {}
    scored = []
    for kind, inputs in s2:
        settings = {**cfg, "stage2": kind, "stage2_inputs": inputs}
        name = f"stage2={kind}, inputs={inputs}"
        t0 = time.perf_counter()
        parts, reason, steps = [], "", []
        alt = settings.pop("stage1_alt", None), settings.pop("stage1_weight", None), settings.pop("stage1_weights", None)
        try:
            for fold in level_folds:
                m = make(settings)
                if alt[0] is not None:
                    m._stage1_alt_request = (alt[0], float(alt[1]), alt[2])
                if (cfg["stage1"], fold.index) in warm_by:
                    m._stage1_warm = {f: warm_by[(f, fold.index)] for f in (cfg["stage1"], alt[0]) if (f, fold.index) in warm_by}
                m._stage1_shared = shared[fold.index]
                m.fit(fold.train)
                if kind == "net" and getattr(m.nets_, "steps_", None) is not None and m.nets_.steps_.size:
                    steps.append((m.nets_.steps_, int(m.max_epochs)))
                # benchmarks this fold's model predicts on weak evidence calibrate their own (wide) intervals
                weak = list(getattr(m, "weak_", {}))
                parts.append(
                    fold_rows(m, fold, level=0.9).with_columns(
                        pl.when(pl.col("quantity").is_in(weak)).then(pl.lit(WEAK_GROUP)).otherwise(pl.col("quantity").str.split(":").list.first()).alias("group")
                    )
                )
        except DROP_ERRORS as e:
            reason = str(e).splitlines()[0]
        sec = time.perf_counter() - t0
        if reason:
            table.append({"step": "stage2", "candidate": name, "status": "failed", "reason": reason, "score": None, "n_points": 0, "seconds": sec})
            continue
        rows = pl.concat(parts, how="vertical") if parts else pl.DataFrame(schema=ROWS_SCHEMA)
        # judged on the benchmarks the fold models predict on their own evidence: weak-evidence rows (the chance-anchored
        # stage 2 from the foot of the curve) are calibrated apart and say little about the stage 2 of the others
        score, npts = _score_error(rows.filter(pl.col("group") != WEAK_GROUP)) if has_scores and rows.height else (0.0, 0)
        if not math.isfinite(score):
            score = math.inf
        rows_by[len(table)] = rows
        scored.append((score, kind, inputs, len(table)))
        why = "" if npts or not has_scores else "no held-out score (no benchmark predictable on the folds on its own evidence)"
        if steps:
            why = "; ".join(p for p in (why, _net_steps(steps)) if p)
        table.append({"step": "stage2", "candidate": name, "status": "scored", "reason": why, "score": score if math.isfinite(score) else None, "n_points": npts, "seconds": sec})
        if len(s2) == 1 or not has_scores or npts == 0:
            break  # nothing to compare on: keep the first (the measured-best default, see the module docstring)
    if scored:
        best = _pick(scored)
        if best[1] == "net" and best is not scored[0]:
            tied, why = _net_within_noise(rows_by[scored[0][3]], rows_by[best[3]])
            if tied:  # a win within noise is no evidence for the costlier, higher-variance candidate
                table[best[3]]["reason"] = "; ".join(p for p in (f"not chosen: its lower error is within noise of the first candidate's ({why}; NOISE_T {NOISE_T:g})", table[best[3]]["reason"]) if p)
                best = _pick([t for t in scored if t[1] != "net"])
        cfg["stage2"], cfg["stage2_inputs"] = best[1], best[2]
        table[best[3]]["status"] = "chosen"
        chosen_rows = rows_by[best[3]]
    else:
        cfg["stage2"], cfg["stage2_inputs"] = s2[0]
        chosen_rows = pl.DataFrame()
    warm = {f: e for (f, k), e in warm_by.items() if k == folds[0].index}
    return AutoChoice(config=cfg, table=pl.DataFrame(table, schema=TABLE_SCHEMA), rows=chosen_rows, folds=tuple(f.description for f in folds), warm=warm)


def _net_within_noise(first: pl.DataFrame, net: pl.DataFrame) -> tuple[bool, str]:
    """Whether the net's held-out score errors are lower than the first candidate's beyond noise, and why.

    The same held-out points (fold, run, score) are paired; the net's lower mean absolute error
    counts only when the paired difference is more than :data:`NOISE_T` standard errors below
    zero (as :func:`within_noise` judges stage-1 forms). Measured (``benchmarks/bench_stage2.py``):
    the net's fold error moves by up to 16 % with its early-stopping rule alone, and on a world
    where it won the folds by 3.5 % (paired t -0.7) its true error at 10x compute was 7x the
    logistic map's; where it won by 9.5 % (t -2.0) it was 0.7x.
    """
    keys = ["fold", "run", "quantity"]

    def err(rows: pl.DataFrame) -> pl.DataFrame:
        s = rows.filter(pl.col("quantity").str.starts_with("score:") & pl.col("actual").is_finite() & pl.col("predicted").is_finite())
        return s.select(*keys, (pl.col("predicted") - pl.col("actual")).abs().alias("e"))

    both = err(first).join(err(net), on=keys, how="inner", suffix="_net")
    if both.height < 3:
        return True, f"{both.height} paired points"
    d = (both["e_net"] - both["e"]).to_numpy()
    se = float(d.std(ddof=1) / math.sqrt(d.size))
    t = float(d.mean()) / se if se > 0 else (0.0 if d.mean() == 0 else -math.inf)
    return t > -NOISE_T, f"paired t {t:.2f} over {d.size} points"


def _net_steps(steps: Sequence[tuple[np.ndarray, int]]) -> str:
    """What the net candidate's fold fits trained: steps per member (``NetConfig.stop``: each on its own patience)."""
    allsteps = np.concatenate([s.ravel() for s, _ in steps])
    cap = max(c for _, c in steps)
    return f"net members trained {allsteps.min()}-{allsteps.max()} of at most {cap} steps (mean {allsteps.mean():.0f}) over {allsteps.size} member fits on {len(steps)} fold(s)"


def _stage2_candidates(cfg: Mapping[str, str], runs: RunTable) -> tuple[list[tuple[str, str]], list[dict[str, Any]]]:
    """The stage-2 candidates allowed by ``cfg``, and table rows of those :data:`NET_MIN_RUNS` leaves out."""
    s2 = [c for c in STAGE2_CANDIDATES if cfg["stage2"] in ("auto", c[0]) and cfg["stage2_inputs"] in ("auto", c[1])]
    if cfg["stage2"] != "auto" or runs.n_runs > NET_MIN_RUNS:
        return s2, []
    why = f"not fitted: {runs.n_runs} runs <= {NET_MIN_RUNS}, where the net never won on the measured worlds (NET_MIN_RUNS; set stage2='net' to fit it)"
    rows = [{"step": "stage2", "candidate": f"stage2={k}, inputs={i}", "status": "skipped", "reason": why, "score": None, "n_points": 0, "seconds": 0.0} for k, i in s2 if k == "net"]
    return [c for c in s2 if c[0] != "net"], rows


def _pick(scored: Sequence[tuple[float, str, str, int]]) -> tuple[float, str, str, int]:
    """Lowest score, but the first candidate (the simplest) unless beaten by :data:`TIE_MARGIN`."""
    first = scored[0]
    best = min(scored, key=lambda t: t[0])
    if math.isfinite(first[0]) and best[0] >= first[0] * (1 - TIE_MARGIN):
        return first
    return best


__all__ = [
    "DISAGREE_REACH",
    "NET_MIN_RUNS",
    "NOISE_T",
    "WEAK_GROUP",
    "AutoChoice",
    "FAMILY_CANDIDATES",
    "STAGE1_CANDIDATES",
    "STAGE2_CANDIDATES",
    "choose",
    "form_disagreement",
    "form_disagreement_by_domain",
    "make_folds",
    "mixture_folds",
    "within_noise",
]
