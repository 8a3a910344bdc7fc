"""FLP-M's ``auto`` settings: choose the configuration by an internal backtest on the runs.

What is chosen (each setting left at ``"auto"``; a setting given explicitly is kept):

* ``stage1`` -- the stage-1 law form: the FLOPs forms ``flpm``, ``dml`` (fitted on final
  checkpoints) or the N,D forms ``flpm_nd``, ``dml_nd`` (every checkpoint; need several
  sizes); ``flpm_additive`` is reachable explicitly but left out: 3-6x slower to fit and
  never better on our benchmarks), and
* ``family`` -- ``law`` (the law alone) or ``hybrid`` (the law times a kernel-ridge
  correction over the mixture, :mod:`mixopt.surrogate.hybrid`),

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

The folds mimic the real extrapolation (:func:`mixopt.surrogate.select.size_folds`): fit
without the largest model size(s), predict them. When every run has one compute scale
(e.g. RegMix's 1M models) there is nothing to extrapolate in scale, and the folds leave
whole mixtures out instead (:func:`mixture_folds`). Scores: mean absolute log error for
losses, mean absolute error (score units) for scores -- absolute, because relative errors of
scores near zero (the foot of an emergence curve) are noise. A candidate that cannot be
fitted on some fold drops out with its reason. Every candidate's internal score is kept
in :class:`AutoChoice.table`, and the chosen configuration's held-out rows calibrate the
intervals (:mod:`mixopt.surrogate.calibrate`).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl

from mixopt.data.table import RunTable
from mixopt.surrogate.base import Targets
from mixopt.surrogate.select import DROP_ERRORS, Fold, fold_rows, size_folds

if TYPE_CHECKING:
    from mixopt.surrogate.flpm import FLPM

logger = logging.getLogger(__name__)

#: candidate values per choosable setting, in order of preference on ties
STAGE1_CANDIDATES: tuple[str, ...] = ("flpm", "dml", "flpm_nd", "dml_nd")
FAMILY_CANDIDATES: tuple[str, ...] = ("law", "hybrid")
STAGE2_CANDIDATES: tuple[tuple[str, str], ...] = (("logistic", "fitted"), ("net", "observed"), ("logistic", "observed"))
#: a candidate must beat the first (simplest) one by this relative margin to be chosen
TIE_MARGIN = 0.02
#: ``stage2="auto"`` fits the net candidate (torch) only on tables with more runs than this.
#: Measured (``benchmarks/bench_startup.py --sections net``): on the shipped example and on
#: seeded worlds of its kind (3 domains, 12 or 16 mixtures x 5 sizes = 60 or 80 runs) the net
#: was never chosen in the stage-2 step (on the 7 tables with a held-out score, its error was
#: 1.8-10x the chosen logistic's), while fitting it imported torch and cost most of the main
#: job's CPU. Larger tables keep the net in the race.
NET_MIN_RUNS = 80

TABLE_SCHEMA: dict[str, Any] = {
    "step": pl.String, "candidate": pl.String, "status": pl.String, "reason": pl.String,
    "score": pl.Float64, "n_points": pl.Int64, "seconds": pl.Float64,
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
    run trained on them), fits on the rest and predicts their final checkpoints.
    """
    final = runs.final()
    ids = final.run_ids().astype(str)
    mix = np.round(final.mixture(), 4)
    uniq, inverse = np.unique(mix, axis=0, return_inverse=True)
    inverse = np.asarray(inverse).reshape(-1)
    n_mix = uniq.shape[0]
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
        folds.append(Fold(index=k + 1, train=runs.select_runs(train), test=final.select_runs(sorted(test)),
                          description=f"fold {k + 1}: {chosen.size} of {n_mix} mixtures left out ({len(test)} runs)"))
    return folds


def make_folds(runs: RunTable, seed: int = 0) -> list[Fold]:
    """Size folds (largest size(s) out, two mixtures also left out) or, at one scale, mixture folds."""
    flops = runs.final().flops()
    if float(flops.max() / flops.min()) >= 2.0:
        folds = size_folds(runs, 2, min_train_sizes=3, holdout_mixtures=0, seed=seed)
        if folds:
            return folds
        return []
    return mixture_folds(runs, 1, seed=seed)


def _loss_error(model: FLPM, fold: Fold) -> tuple[float, int]:
    """Mean absolute log error of a stage-1-only fit's held-out final losses."""
    test = fold.test
    targets = Targets.from_runs(test).align(model.domains_)
    x = model._stage1_inputs(targets)
    L = model._stage1_mean(x) * np.exp(model._residual_correction(targets.mixture))
    A = test.losses(model.loss_domains_)
    ok = np.isfinite(A) & np.isfinite(L) & (A > 0) & (L > 0)
    if not ok.any():
        return math.nan, 0
    return float(np.mean(np.abs(np.log(L[ok] / A[ok])))), int(ok.sum())


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
    defaults = {"stage1": model._default_stage1 if model._default_stage1 != "auto" else "flpm", "family": "law",
                "stage2": "net", "stage2_inputs": "observed"}
    if not folds:
        for k, v in cfg.items():
            if v == "auto":
                cfg[k] = defaults[k]
        table.append({"step": "all", "candidate": str(cfg), "status": "chosen",
                      "reason": "no internal fold possible (fewer than 4 model sizes, or fewer than 8 mixtures at one scale); defaults used",
                      "score": None, "n_points": 0, "seconds": 0.0})
        return AutoChoice(config=cfg, table=pl.DataFrame(table, schema=TABLE_SCHEMA), rows=pl.DataFrame(), folds=())

    _choose_stage1(make, folds, cfg, defaults, table, warm_by)
    return _choose_stage2(make, folds, runs, cfg, table, need_rows, warm_by)


def _choose_stage1(make: Callable[[Mapping[str, Any]], FLPM], folds: Sequence[Fold], cfg: dict[str, str],
                   defaults: Mapping[str, str], table: list[dict[str, Any]], warm_by: dict[tuple[str, int], Any]) -> None:
    """Step 1: stage-1 form x family, on held-out losses (stage 1 only).

    Sets ``cfg``, appends to ``table`` and keeps each (form, fold) stage-1 fit in ``warm_by``.
    """
    s1 = STAGE1_CANDIDATES if cfg["stage1"] == "auto" else (cfg["stage1"],)
    fam = FAMILY_CANDIDATES if cfg["family"] == "auto" else (cfg["family"],)
    if len(s1) * len(fam) > 1:
        scored = []
        for form in s1:
            # one law fit per fold serves every family (the hybrid corrects the same law)
            t0 = time.perf_counter()
            errs: dict[str, list[float]] = {f: [] for f in fam}
            npts = dict.fromkeys(fam, 0)
            reason = ""
            try:
                for fold in folds:
                    m = make({"n_bootstrap": 0, "stage1": form})  # type: ignore[dict-item]
                    m._prepare(fold.train)
                    m.config_ = {"stage1": form, "family": "law", "stage2": "net", "stage2_inputs": "observed"}
                    m._fit_stage1(m._stage1_rows(fold.train))
                    warm_by[(form, fold.index)] = m.stage1_warm_entry()
                    for f in fam:
                        m.config_["family"] = f
                        m._fit_residual(fold.train)
                        e, n = _loss_error(m, fold)
                        errs[f].append(e * n)
                        npts[f] += n
            except DROP_ERRORS as e:
                reason = str(e).splitlines()[0]
            sec = (time.perf_counter() - t0) / len(fam)
            for f in fam:
                name = f"stage1={form}, family={f}"
                if reason or npts[f] == 0:
                    table.append({"step": "stage1", "candidate": name, "status": "failed", "reason": reason or "no held-out loss",
                                  "score": None, "n_points": npts[f], "seconds": sec})
                    continue
                score = float(np.sum(errs[f]) / npts[f])
                scored.append((score, form, f, len(table)))
                table.append({"step": "stage1", "candidate": name, "status": "scored", "reason": "", "score": score,
                              "n_points": npts[f], "seconds": sec})
        if scored:
            best = _pick(scored)
            cfg["stage1"], cfg["family"] = best[1], best[2]
            table[best[3]]["status"] = "chosen"
        else:
            cfg["stage1"] = cfg["stage1"] if cfg["stage1"] != "auto" else defaults["stage1"]
            cfg["family"] = cfg["family"] if cfg["family"] != "auto" else "law"
    else:
        cfg["stage1"], cfg["family"] = s1[0], fam[0]


def _choose_stage2(make: Callable[[Mapping[str, Any]], FLPM], folds: Sequence[Fold], runs: RunTable,
                   cfg: dict[str, str], table: list[dict[str, Any]], need_rows: bool,
                   warm_by: Mapping[tuple[str, int], Any]) -> AutoChoice:
    """Step 2: stage-2 model and inputs, on held-out scores (full fits, warm-started from ``warm_by``); the outcome."""
    s2, skipped = _stage2_candidates(cfg, runs)
    table += skipped
    if not s2:
        s2 = [(cfg["stage2"] if cfg["stage2"] != "auto" else "net", cfg["stage2_inputs"] if cfg["stage2_inputs"] != "auto" else "observed")]
    has_scores = bool(runs.benchmarks)
    if len(s2) == 1 and not need_rows:
        cfg["stage2"], cfg["stage2_inputs"] = s2[0]
        return AutoChoice(config=cfg, table=pl.DataFrame(table, schema=TABLE_SCHEMA), rows=pl.DataFrame(),
                          folds=tuple(f.description for f in folds),
                          warm={f: e for (f, k), e in warm_by.items() if k == folds[0].index})
    rows_by: dict[int, pl.DataFrame] = {}
    scored = []
    for kind, inputs in s2:
        settings = {**cfg, "stage2": kind, "stage2_inputs": inputs}
        name = f"stage2={kind}, inputs={inputs}"
        t0 = time.perf_counter()
        parts, reason = [], ""
        try:
            for fold in folds:
                m = make(settings)
                if (cfg["stage1"], fold.index) in warm_by:
                    m._stage1_warm = {cfg["stage1"]: warm_by[(cfg["stage1"], fold.index)]}
                m.fit(fold.train)
                parts.append(fold_rows(m, fold, level=0.9))
        except DROP_ERRORS as e:
            reason = str(e).splitlines()[0]
        sec = time.perf_counter() - t0
        if reason:
            table.append({"step": "stage2", "candidate": name, "status": "failed", "reason": reason, "score": None,
                          "n_points": 0, "seconds": sec})
            continue
        rows = pl.concat(parts, how="vertical") if parts else pl.DataFrame()
        score, npts = _score_error(rows) if has_scores else (0.0, 0)
        if not math.isfinite(score):
            score = math.inf
        rows_by[len(table)] = rows
        scored.append((score, kind, inputs, len(table)))
        table.append({"step": "stage2", "candidate": name, "status": "scored", "reason": "" if npts or not has_scores else
                      "no held-out score (no benchmark predictable on the folds)", "score": score if math.isfinite(score) else None,
                      "n_points": npts, "seconds": sec})
        if len(s2) == 1 or not has_scores or npts == 0:
            break  # nothing to compare on: keep the first (the measured-best default, see the module docstring)
    if scored:
        best = _pick(scored)
        cfg["stage2"], cfg["stage2_inputs"] = best[1], best[2]
        table[best[3]]["status"] = "chosen"
        chosen_rows = rows_by[best[3]]
    else:
        cfg["stage2"], cfg["stage2_inputs"] = s2[0]
        chosen_rows = pl.DataFrame()
    warm = {f: e for (f, k), e in warm_by.items() if k == folds[0].index}
    return AutoChoice(config=cfg, table=pl.DataFrame(table, schema=TABLE_SCHEMA), rows=chosen_rows,
                      folds=tuple(f.description for f in folds), warm=warm)


def _stage2_candidates(cfg: Mapping[str, str], runs: RunTable) -> tuple[list[tuple[str, str]], list[dict[str, Any]]]:
    """The stage-2 candidates allowed by ``cfg``, and table rows of those :data:`NET_MIN_RUNS` leaves out."""
    s2 = [c for c in STAGE2_CANDIDATES if cfg["stage2"] in ("auto", c[0]) and cfg["stage2_inputs"] in ("auto", c[1])]
    if cfg["stage2"] != "auto" or runs.n_runs > NET_MIN_RUNS:
        return s2, []
    why = (f"not fitted: {runs.n_runs} runs <= {NET_MIN_RUNS}, where the net never won on the measured worlds "
           "(NET_MIN_RUNS; set stage2='net' to fit it)")
    rows = [{"step": "stage2", "candidate": f"stage2={k}, inputs={i}", "status": "skipped", "reason": why, "score": None,
             "n_points": 0, "seconds": 0.0} for k, i in s2 if k == "net"]
    return [c for c in s2 if c[0] != "net"], rows


def _pick(scored: Sequence[tuple[float, str, str, int]]) -> tuple[float, str, str, int]:
    """Lowest score, but the first candidate (the simplest) unless beaten by :data:`TIE_MARGIN`."""
    first = scored[0]
    best = min(scored, key=lambda t: t[0])
    if math.isfinite(first[0]) and best[0] >= first[0] * (1 - TIE_MARGIN):
        return first
    return best


__all__ = ["NET_MIN_RUNS", "AutoChoice", "FAMILY_CANDIDATES", "STAGE1_CANDIDATES", "STAGE2_CANDIDATES", "choose", "make_folds", "mixture_folds"]
