"""Choosing a method by an internal backtest on the user's own runs.

The best law depends on the data (on Gadre et al. a Chinchilla stage 1 beats the
FLOPs-only law; on the synthetic world a sigmoid stage 2 beats the linear one), so
mixopt's ``auto`` settings are decided by the runs themselves: every candidate is fitted on
the runs *without* the largest model size(s) and scored on how well it predicts them, which
mimics the real use (fit small, predict large). The same held-out predictions calibrate
the intervals (:mod:`mixopt.surrogate.calibrate`).

Pieces (generic: FLP and FLP-M both use them):

* :func:`size_folds` -- the internal splits: fold ``k`` holds out the ``k`` largest
  distinct model sizes (optionally also whole mixtures), as long as at least
  ``min_train_sizes`` sizes remain to fit on.
* :func:`internal_backtest` -- fit one candidate on every fold, predict the held-out runs'
  final checkpoints; rows with the error, the interval and the extrapolation distance.
* :func:`select` -- run every :class:`Candidate`, drop the ones that cannot be fitted (with
  their reason), score the others on the quantities they all predict, pick the lowest.
  :class:`Selection` keeps the per-candidate table (``table``), the per-quantity errors
  (:meth:`Selection.per_quantity`) and the held-out rows (``rows``) for calibration.

Example::

    from mixopt.surrogate.select import Candidate, select
    cands = [Candidate("offset", {"stage1": "power_offset"}), Candidate("chinchilla", {"stage1": "chinchilla"})]
    sel = select(runs, cands, lambda s: FLP(**s, n_bootstrap=50))
    sel.chosen          # "chinchilla"
    sel.table           # candidate, status, reason, score, n_points, ...
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl

from mixopt.data.table import PARAMS, RUN, RunTable
from mixopt.errors import ConfigError, FitError, MixoptError, NotPredictableError, SchemaError
from mixopt.surrogate.base import Surrogate, Targets
from mixopt.surrogate.calibrate import extrapolation_distance
from mixopt.surrogate.schedule import schedule_groups

logger = logging.getLogger(__name__)

#: errors that make a candidate drop out of a selection (anything else is a bug and propagates)
DROP_ERRORS: tuple[type[BaseException], ...] = (FitError, NotPredictableError, SchemaError, ConfigError, MixoptError)

ROWS_SCHEMA: dict[str, Any] = {
    "fold": pl.Int64,
    RUN: pl.String,
    PARAMS: pl.Float64,
    "flops": pl.Float64,
    "quantity": pl.String,
    "predicted": pl.Float64,
    "lower": pl.Float64,
    "upper": pl.Float64,
    "actual": pl.Float64,
    "rel_error": pl.Float64,
    "covered": pl.Boolean,
    "distance": pl.Float64,
}

TABLE_SCHEMA: dict[str, Any] = {
    "candidate": pl.String,
    "status": pl.String,
    "reason": pl.String,
    "score": pl.Float64,
    "n_points": pl.Int64,
    "n_quantities": pl.Int64,
    "median_rel_error": pl.Float64,
    "coverage": pl.Float64,
    "seconds": pl.Float64,
}


#: fold kinds, see :class:`Fold`
FOLD_KINDS: tuple[str, ...] = ("scale", "transfer", "mixture")

#: compute scales closer than this many decades are one scale (transfer folds)
SCALE_DECADES = 0.15


@dataclass(frozen=True)
class Fold:
    """One internal split.

    Attributes:
        index: fold number (1 = the largest size held out).
        train: runs to fit on (all checkpoints).
        test: held-out runs (final checkpoints).
        description: what was held out.
        kind: what the fold can show (:data:`FOLD_KINDS`): ``"scale"`` (fit small, predict
            the larger sizes: errors and rankings out of range), ``"transfer"`` (fit on the
            smaller scale(s), rank the few runs of a larger one: a ranking can transfer even
            when the fitted model cannot predict that compute), ``"mixture"`` (mixtures left
            out at the fitted scale: in range only, cannot show transfer to a larger scale).
    """

    index: int
    train: RunTable
    test: RunTable
    description: str
    kind: str = "scale"

    @property
    def out_of_range(self) -> bool:
        """Whether the fold predicts beyond the fitted compute (it can show transfer)."""
        return self.kind in ("scale", "transfer")


@dataclass(frozen=True)
class Candidate:
    """One method configuration to try.

    Attributes:
        name: short label shown in tables (e.g. ``"stage1=chinchilla"``).
        settings: keyword settings handed to the selection's factory.
    """

    name: str
    settings: Mapping[str, Any] = field(default_factory=dict)


def size_folds(
    runs: RunTable,
    n_folds: int = 2,
    *,
    min_train_sizes: int = 3,
    holdout_mixtures: int = 0,
    seed: int = 0,
) -> list[Fold]:
    """Leave-largest-out folds: fold ``k`` holds out every run of the ``k`` largest sizes.

    Args:
        runs: the user's runs (all checkpoints).
        n_folds: at most this many folds (fewer when too few sizes remain).
        min_train_sizes: fewest distinct model sizes (``params``) left to fit on.
        holdout_mixtures: if > 0 (mixture tables), also hold out that many whole mixtures
            (seeded) from fitting, at every size; their runs at the held-out sizes are
            predicted as well (extrapolation in scale and in mixture at once).
        seed: seed of the mixture choice.

    Returns:
        The folds, possibly empty (then selection cannot run: too few sizes).
    """
    if n_folds < 1:
        raise ConfigError(f"n_folds must be >= 1, got {n_folds}.")
    final = runs.final()
    ids = final.run_ids().astype(str)
    p = final.params()
    sizes = np.unique(p)
    held_mix: set[str] = set()
    if holdout_mixtures > 0 and runs.domains:
        inverse, first = schedule_groups(final, 3)
        if len(first) > holdout_mixtures:
            chosen = np.random.default_rng(seed).choice(len(first), size=holdout_mixtures, replace=False)
            held_mix = set(ids[np.isin(inverse, chosen)].tolist())
    folds = []
    for k in range(1, n_folds + 1):
        if sizes.size - k < min_train_sizes:
            break
        cut = sizes[-k]
        test_ids = set(ids[p >= cut].tolist())
        train_ids = [r for r in ids.tolist() if r not in test_ids and r not in held_mix]
        if not train_ids or np.unique(p[np.isin(ids, train_ids)]).size < min_train_sizes:
            break
        desc = f"fold {k}: fit on params < {cut:.3g} ({len(train_ids)} runs), predict params >= {cut:.3g} ({len(test_ids)} runs)"
        if held_mix:
            desc += f", {holdout_mixtures} mixture(s) left out of fitting"
        folds.append(Fold(index=k, train=runs.select_runs(train_ids), test=final.select_runs(sorted(test_ids)), description=desc))
    return folds


#: a ratio-matched fold scores only held-out runs at least this share of the way (in log-compute) to the request
RATIO_WINDOW = 0.5


def ratio_folds(
    runs: RunTable,
    ratio: float,
    n_folds: int = 2,
    *,
    min_train_sizes: int = 3,
) -> list[Fold]:
    """Ratio-matched folds: fit on the smallest runs, score the ones as far beyond them as the request lies.

    A request for a target ``ratio`` times the largest fitted compute is judged on folds that
    extrapolate about as far: every cut ``c`` at a distinct final compute gives a candidate
    fold (fit on the runs whose final compute is ``<= c``, score the final checkpoints of the
    runs beyond ``c``); a fold needs ``min_train_sizes`` distinct sizes to fit on. Its
    *reach* is the largest held-out compute over ``c``. The folds reaching the request with the
    most runs to fit on come first, then (when none reaches it) the ones reaching furthest; at
    most ``n_folds`` folds, no two alike. Each fold scores only the held-out runs at least
    :data:`RATIO_WINDOW` of the way to ``min(ratio, reach)`` in log-compute (the runs just
    beyond the cut say little about a 10x extrapolation).

    Args:
        runs: the user's runs (all checkpoints).
        ratio: the request's compute ratio (target compute / largest fitted final compute), > 1.
        n_folds: at most this many folds.
        min_train_sizes: fewest distinct model sizes (``params``) to fit on.

    Returns:
        The folds (``kind="scale"``), possibly empty. Their descriptions state fit range, held-out
        runs and the ratio they extrapolate.
    """
    if n_folds < 1:
        raise ConfigError(f"n_folds must be >= 1, got {n_folds}.")
    if not (math.isfinite(ratio) and ratio > 0):
        raise ConfigError(f"ratio must be a finite positive number (target compute / largest fitted compute), got {ratio!r}.")
    final = runs.final()
    ids = final.run_ids().astype(str)
    p = final.params()
    fl = final.flops()
    cuts = np.unique(fl)
    cand: list[tuple[float, float, list[str], list[str]]] = []
    want = max(float(ratio), 1.0 + 1e-9)
    for c in cuts[:-1]:
        tr = fl <= c * (1 + 1e-9)
        if np.unique(p[tr]).size < min_train_sizes:
            continue
        te = ~tr
        reach = float(fl[te].max() / c)
        goal = min(want, reach)
        keep = te & (np.log(fl / c) >= RATIO_WINDOW * math.log(goal))
        if not keep.any():
            continue
        cand.append((reach, float(c), ids[tr].tolist(), ids[keep].tolist()))
    reaching = sorted((x for x in cand if x[0] >= want), key=lambda x: -x[1])
    short = sorted((x for x in cand if x[0] < want), key=lambda x: -x[0])
    folds: list[Fold] = []
    seen: set[tuple[str, ...]] = set()
    for _reach, c, train_ids, test_ids in reaching + short:
        key = tuple(sorted(test_ids))
        if key in seen:
            continue
        seen.add(key)
        k = len(folds) + 1
        t_fl = fl[np.isin(ids, test_ids)]
        desc = (f"ratio fold {k}: fit on final compute <= {c:.3g} ({len(train_ids)} runs), predict {len(test_ids)} run(s) at "
                f"{t_fl.min() / c:.3g}-{t_fl.max() / c:.3g}x (request {ratio:.3g}x)")
        folds.append(Fold(index=k, train=runs.select_runs(train_ids), test=final.select_runs(sorted(test_ids)),
                          description=desc))
        if len(folds) >= n_folds:
            break
    return folds


def fold_ratio(fold: Fold) -> float:
    """Largest held-out final compute over the largest fitted final compute."""
    return float(np.max(fold.test.final().flops()) / np.max(fold.train.final().flops()))


def compute_scales(flops: np.ndarray, decades: float = SCALE_DECADES) -> np.ndarray:
    """Integer scale label per run: runs whose compute lies within ``decades`` of the previous (sorted) run share one."""
    lf = np.log10(np.asarray(flops, dtype=np.float64))
    order = np.argsort(lf, kind="stable")
    lab = np.zeros(lf.size, dtype=np.int64)
    cur = 0
    for a, b in zip(order[:-1], order[1:], strict=True):
        if lf[b] - lf[a] > decades:
            cur += 1
        lab[b] = cur
    return lab


def transfer_fold(runs: RunTable, *, min_mixtures: int = 3) -> Fold | None:
    """Fit on every scale below the largest, rank the largest scale's runs (a validation round, a few larger proxies).

    Made when the table holds at least two compute scales (:func:`compute_scales`) and the
    largest has at least ``min_mixtures`` distinct mixtures and fewer runs than the rest.
    None otherwise.
    """
    final = runs.final()
    if final.n_runs < 2 * min_mixtures:
        return None
    lab = compute_scales(final.flops())
    top = int(lab.max())
    if top == 0:
        return None
    ids = final.run_ids().astype(str)
    big = lab == top
    if runs.domains:
        n_mix = np.unique(schedule_groups(final, 4)[0][big]).size
    else:
        n_mix = 0
    if n_mix < min_mixtures or big.sum() >= (~big).sum():
        return None
    test_ids = ids[big].tolist()
    train_ids = ids[~big].tolist()
    fl = final.flops()
    desc = (f"transfer fold: fit on {len(train_ids)} runs at <= {fl[~big].max():.3g} FLOPs, rank the {len(test_ids)} runs "
            f"({n_mix} mixtures) at {np.median(fl[big]):.3g} FLOPs ({np.median(fl[big]) / fl[~big].max():.3g}x)")
    return Fold(index=1, train=runs.select_runs(train_ids), test=final.select_runs(sorted(test_ids)), description=desc,
                kind="transfer")


def fold_rows(model: Surrogate, fold: Fold, *, level: float = 0.9, distance_of: Callable[[RunTable, RunTable], np.ndarray] | None = None) -> pl.DataFrame:
    """Held-out rows of one fitted model on one fold (schema :data:`ROWS_SCHEMA`).

    Args:
        model: a surrogate already fitted on ``fold.train``.
        fold: the fold.
        level: interval level.
        distance_of: ``(train, test_final) -> (n_test,)`` extrapolation distances; default
            decades of compute beyond the largest fitted final checkpoint.
    """
    test = fold.test.final()
    pred = model.predict(Targets.from_runs(test), intervals=True, level=level)
    if distance_of is None:
        dist = extrapolation_distance(test.flops(), float(np.max(fold.train.final().flops())))
    else:
        dist = np.asarray(distance_of(fold.train, test), dtype=np.float64)
    frames = []
    unpred = getattr(model, "unpredictable_", {})
    for j, q in enumerate(pred.names):
        if q in unpred or q not in test.frame.columns:
            continue
        actual = test.column(q)
        mean = pred.mean[:, j]
        lo = pred.lower[:, j] if pred.lower is not None else np.full_like(mean, np.nan)
        hi = pred.upper[:, j] if pred.upper is not None else np.full_like(mean, np.nan)
        ok = np.isfinite(actual) & np.isfinite(mean)
        with np.errstate(divide="ignore", invalid="ignore"):
            rel = np.abs(mean - actual) / np.abs(actual)
        frames.append(pl.DataFrame({
            "fold": np.full(ok.sum(), fold.index, dtype=np.int64),
            RUN: test.run_ids().astype(str)[ok],
            PARAMS: test.params()[ok],
            "flops": test.flops()[ok],
            "quantity": np.full(ok.sum(), q, dtype=object).astype(str),
            "predicted": mean[ok],
            "lower": lo[ok],
            "upper": hi[ok],
            "actual": actual[ok],
            "rel_error": rel[ok],
            "covered": ((lo <= actual) & (actual <= hi))[ok],
            "distance": dist[ok],
        }, schema=ROWS_SCHEMA))
    return pl.concat(frames, how="vertical") if frames else pl.DataFrame(schema=ROWS_SCHEMA)


def internal_backtest(
    folds: Sequence[Fold],
    factory: Callable[[], Surrogate],
    *,
    level: float = 0.9,
    distance_of: Callable[[RunTable, RunTable], np.ndarray] | None = None,
    spy: Callable[[Fold, Surrogate], None] | None = None,
) -> pl.DataFrame:
    """Fit a fresh ``factory()`` surrogate on every fold's train runs and predict its test runs.

    Args:
        folds: from :func:`size_folds`.
        factory: builds an unfitted surrogate.
        level: interval level.
        distance_of: see :func:`fold_rows`.
        spy: called with ``(fold, fitted model)`` after each fit (tests, diagnostics).

    Returns:
        Rows of every fold (:data:`ROWS_SCHEMA`).

    Raises:
        Whatever the fit raises (a candidate that cannot be fitted on some fold fails).
    """
    frames = []
    for fold in folds:
        model = factory()
        model.fit(fold.train)
        if spy is not None:
            spy(fold, model)
        frames.append(fold_rows(model, fold, level=level, distance_of=distance_of))
    return pl.concat(frames, how="vertical") if frames else pl.DataFrame(schema=ROWS_SCHEMA)


def default_score(rows: pl.DataFrame) -> float:
    """Mean over quantities of each quantity's mean relative error (lower is better)."""
    if rows.height == 0:
        return math.inf
    per_q = rows.group_by("quantity").agg(pl.col("rel_error").mean())
    return float(per_q["rel_error"].mean())


@dataclass
class Selection:
    """Outcome of :func:`select`.

    Attributes:
        chosen: name of the winning candidate, or None when none could be scored.
        table: one row per candidate (:data:`TABLE_SCHEMA`): status ``"chosen"``,
            ``"scored"``, ``"failed"`` (reason says why) or ``"skipped"`` (time budget).
        rows: held-out rows per scored candidate name.
        folds: descriptions of the folds used.
        reason: why nothing was chosen (empty when something was).
    """

    chosen: str | None
    table: pl.DataFrame
    rows: dict[str, pl.DataFrame]
    folds: tuple[str, ...] = ()
    reason: str = ""

    def per_quantity(self, quantities: Sequence[str] | None = None) -> pl.DataFrame:
        """Mean relative error per (candidate, quantity): long frame ``candidate, quantity, n, mean_rel_error``."""
        frames = []
        for name, r in self.rows.items():
            if r.height == 0:
                continue
            sub = r if quantities is None else r.filter(pl.col("quantity").is_in(list(quantities)))
            frames.append(sub.group_by("quantity", maintain_order=True).agg(
                pl.len().alias("n"), pl.col("rel_error").mean().alias("mean_rel_error")
            ).with_columns(pl.lit(name).alias("candidate")).select("candidate", "quantity", "n", "mean_rel_error"))
        if not frames:
            return pl.DataFrame(schema={"candidate": pl.String, "quantity": pl.String, "n": pl.UInt32, "mean_rel_error": pl.Float64})
        return pl.concat(frames, how="vertical")

    def best_per_quantity(self, quantities: Sequence[str], candidates: Sequence[str] | None = None) -> dict[str, str]:
        """For each quantity, the candidate with the lowest mean relative error (ties: earlier candidate)."""
        pq = self.per_quantity(quantities)
        order = {n: i for i, n in enumerate(candidates if candidates is not None else list(self.rows))}
        out: dict[str, str] = {}
        for q in quantities:
            sub = [(r["mean_rel_error"], order.get(r["candidate"], 1 << 30), r["candidate"])
                   for r in pq.filter(pl.col("quantity") == q).iter_rows(named=True)
                   if r["candidate"] in order and r["mean_rel_error"] is not None and math.isfinite(r["mean_rel_error"])]
            if sub:
                out[q] = min(sub)[2]
        return out


def select(
    runs: RunTable,
    candidates: Sequence[Candidate],
    factory: Callable[[Mapping[str, Any]], Surrogate],
    *,
    folds: Sequence[Fold] | None = None,
    n_folds: int = 2,
    min_train_sizes: int = 3,
    level: float = 0.9,
    score: Callable[[pl.DataFrame], float] = default_score,
    quantities: Sequence[str] | None = None,
    distance_of: Callable[[RunTable, RunTable], np.ndarray] | None = None,
) -> Selection:
    """Score every candidate by an internal leave-largest-out backtest and pick the best.

    Args:
        runs: the user's runs.
        candidates: configurations to try, in order of preference (ties go to the earlier).
        factory: ``settings -> unfitted surrogate``.
        folds: ready folds; default :func:`size_folds` (``n_folds``, ``min_train_sizes``).
        level: interval level of the held-out rows.
        score: ``rows -> float`` (lower is better), applied to each candidate's rows
            restricted to the quantities every scored candidate predicts.
        quantities: score only these quantities (None: all).
        distance_of: see :func:`fold_rows`.

    Returns:
        A :class:`Selection`. A candidate whose fit raises a mixopt error on any fold is
        ``"failed"`` with the error text as reason; nothing chosen (``chosen=None``) when
        there are no folds or every candidate failed.
    """
    if not candidates:
        raise ConfigError("select needs at least one candidate.")
    names = [c.name for c in candidates]
    if len(set(names)) != len(names):
        raise ConfigError(f"candidate names must be unique, got {names}.")
    if folds is None:
        folds = size_folds(runs, n_folds, min_train_sizes=min_train_sizes)
    fold_desc = tuple(f.description for f in folds)
    table: list[dict[str, Any]] = []
    rows: dict[str, pl.DataFrame] = {}
    if not folds:
        n_sizes = int(np.unique(runs.final().params()).size)
        reason = (f"no internal backtest: {n_sizes} distinct model size(s), need >= {min_train_sizes + 1} (fit on "
                  f">= {min_train_sizes}, predict the largest)")
        for c in candidates:
            table.append(_table_row(c.name, "skipped", reason))
        return Selection(chosen=None, table=pl.DataFrame(table, schema=TABLE_SCHEMA, orient="row"), rows={},
                         folds=(), reason=reason)
    for c in candidates:
        t0 = time.perf_counter()
        try:
            r = internal_backtest(folds, lambda c=c: factory(c.settings), level=level, distance_of=distance_of)
        except DROP_ERRORS as e:
            msg = str(e).splitlines()[0][:300]
            logger.info("selection: candidate %s dropped: %s", c.name, msg)
            table.append(_table_row(c.name, "failed", msg, seconds=time.perf_counter() - t0))
            continue
        if quantities is not None:
            r = r.filter(pl.col("quantity").is_in(list(quantities)))
        if r.height == 0:
            table.append(_table_row(c.name, "failed", "predicted none of the held-out quantities",
                                    seconds=time.perf_counter() - t0))
            continue
        rows[c.name] = r
        table.append(_table_row(c.name, "scored", "", seconds=time.perf_counter() - t0))
    common: set[str] | None = None
    for r in rows.values():
        qs = set(r["quantity"].unique().to_list())
        common = qs if common is None else common & qs
    chosen, best = None, math.inf
    for row in table:
        r = rows.get(row["candidate"])
        if r is None:
            continue
        sub = r.filter(pl.col("quantity").is_in(sorted(common))) if common else r
        s = float(score(sub))
        row.update(score=s, n_points=sub.height, n_quantities=sub["quantity"].n_unique(),
                   median_rel_error=float(sub["rel_error"].median()) if sub.height else None,
                   coverage=float(sub["covered"].cast(pl.Float64).mean()) if sub.height else None)
        if s < best:
            chosen, best = row["candidate"], s
    reason = ""
    if chosen is None:
        reason = "every candidate failed: " + "; ".join(f"{r['candidate']}: {r['reason']}" for r in table)
    for row in table:
        if row["candidate"] == chosen:
            row["status"] = "chosen"
    return Selection(chosen=chosen, table=pl.DataFrame(table, schema=TABLE_SCHEMA, orient="row"), rows=rows,
                     folds=fold_desc, reason=reason)


def _table_row(name: str, status: str, reason: str, *, seconds: float = math.nan) -> dict[str, Any]:
    return {"candidate": name, "status": status, "reason": reason, "score": None, "n_points": 0, "n_quantities": 0,
            "median_rel_error": None, "coverage": None, "seconds": seconds}


__all__ = [
    "DROP_ERRORS",
    "FOLD_KINDS",
    "RATIO_WINDOW",
    "ROWS_SCHEMA",
    "TABLE_SCHEMA",
    "Candidate",
    "Fold",
    "Selection",
    "compute_scales",
    "default_score",
    "fold_ratio",
    "fold_rows",
    "internal_backtest",
    "ratio_folds",
    "select",
    "size_folds",
    "transfer_fold",
]
