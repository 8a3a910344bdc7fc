"""Backtests: hold out runs, fit on the rest, compare predictions with what happened.

A backtest answers "had we trusted this method at planning time, how wrong would we have
been?". Held-out runs are chosen by size (``holdout_min_params``: every run at least that
large, i.e. extrapolation in compute), by id, or by mixture (``holdout_mixtures``: whole
mixtures unseen in fitting, i.e. interpolation between mixtures). Each held-out run is
predicted at its **final checkpoint** and every quantity the method predicts that the table
observes is compared: relative error ``|pred - actual| / max(|actual|, REL_ERROR_FLOOR)``
and whether the ``level`` interval covers the actual value. The floor (0.01: one point on
a 0-100 score scale) keeps the error finite when the actual value is 0 (a score of 0 at
chance, say); for actual values above 0.01 in magnitude it is the plain relative error.

Comparing several methods on the same split (:func:`compare`) says which one wins per
quantity, so a direct law that beats FLP on some benchmark is reported, not hidden.

Beside errors, every backtest measures **decisions** (:meth:`BacktestResult.decisions`,
:mod:`mixopt.surrogate.decision`): per quantity and held-out scale with at least three
held-out mixtures, the Spearman ρ among them, the actual rank and regret of the mixture the
model would choose (loss: lowest predicted; score: highest) and the pairwise decision
accuracy. A model can be 1% off on every run and still pick the wrong mixture; these say so.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl

from mixopt.data.table import MIX_PREFIX, PARAMS, RUN, RunTable
from mixopt.errors import FitError, NotPredictableError, SchemaError
from mixopt.surrogate.base import Surrogate, Targets, make_surrogate
from mixopt.surrogate.decision import DECISION_SCHEMA, decision_metrics, directions
from mixopt.surrogate.schedule import schedule_groups

log = logging.getLogger(__name__)

#: Smallest denominator of the relative error (see the module docstring).
REL_ERROR_FLOOR = 0.01

_DECISION_SUMMARY: dict[str, Any] = {"spearman": pl.Float64, "pairwise_accuracy": pl.Float64, "regret": pl.Float64,
                                     "worst_chosen_rank": pl.Int64}


@dataclass(frozen=True)
class Split:
    """A train/held-out split of a run table by run id."""

    train: RunTable
    test: RunTable
    description: str


def make_split(
    runs: RunTable,
    *,
    holdout_min_params: float | None = None,
    holdout_runs: Iterable[str] | None = None,
    holdout_mixtures: int | Sequence[Mapping[str, float]] | None = None,
    seed: int = 0,
) -> Split:
    """Split ``runs`` into fitting runs and held-out runs.

    Args:
        runs: the full table.
        holdout_min_params: hold out every run with ``params >= holdout_min_params``.
        holdout_runs: hold out these run ids.
        holdout_mixtures: hold out whole mixtures: an int picks that many distinct
            mixtures at random (seeded); a sequence of ``{domain: ratio}`` names them
            (matched within 1e-3 per domain). Held-out mixtures leave fitting at every size.
        seed: seed of the random choice of mixtures.

    Several criteria combine: a run is held out if any one selects it.

    Raises:
        SchemaError: no criterion given, nothing selected, or nothing left to fit on.
    """
    if holdout_min_params is None and holdout_runs is None and holdout_mixtures is None:
        raise SchemaError(
            "A backtest needs held-out runs: give holdout_min_params (e.g. --holdout-min-params 1e9), "
            "holdout_runs, or holdout_mixtures."
        )
    held: set[str] = set()
    parts: list[str] = []
    final = runs.final()
    ids = final.run_ids()
    if holdout_min_params is not None:
        p = final.params()
        sel = set(ids[p >= float(holdout_min_params)].tolist())
        if not sel:
            raise SchemaError(
                f"No run has params >= {holdout_min_params:.4g}; the largest run has {p.max():.4g} parameters. "
                "Lower --holdout-min-params."
            )
        held |= sel
        parts.append(f"params >= {holdout_min_params:.3g} ({len(sel)} runs)")
    if holdout_runs is not None:
        hr = [str(r) for r in holdout_runs]
        runs.select_runs(hr)  # raises on unknown ids
        held |= set(hr)
        parts.append(f"named runs ({len(hr)})")
    if holdout_mixtures is not None:
        if not runs.domains:
            raise SchemaError("holdout_mixtures needs a table with mixture columns (mix:<domain>); this table has none.")
        # distinct mixtures; on a phased table distinct schedules (a named mixture is every schedule of that whole-run mixture)
        inverse, first = schedule_groups(final, 3)
        uniq = np.round(final.mixture(), 3)[first]
        if isinstance(holdout_mixtures, int):
            if not 0 < holdout_mixtures < len(uniq):
                raise SchemaError(
                    f"holdout_mixtures={holdout_mixtures} must be between 1 and {len(uniq) - 1} "
                    f"(the table has {len(uniq)} distinct mixtures)."
                )
            rng = np.random.default_rng(seed)
            chosen = rng.choice(len(uniq), size=holdout_mixtures, replace=False)
        else:
            chosen_list = []
            for m in holdout_mixtures:
                row = Targets.from_mapping(m, runs.domains)
                hit = np.flatnonzero(np.all(np.abs(uniq - row) <= 1e-3, axis=1))
                if hit.size == 0:
                    raise SchemaError(f"No run has mixture {dict(m)}; available mixtures e.g. {uniq[:3].tolist()} over {list(runs.domains)}.")
                chosen_list.extend(hit.tolist())
            chosen = np.asarray(chosen_list)
        sel = set(ids[np.isin(inverse, chosen)].tolist())
        held |= sel
        parts.append(f"{len(chosen)} held-out mixtures ({len(sel)} runs)")
    train_ids = [r for r in final.runs if r not in held]
    if not train_ids:
        raise SchemaError("Every run is held out; nothing is left to fit on. Hold out fewer runs.")
    return Split(train=runs.select_runs(train_ids), test=final.select_runs(sorted(held)), description="; ".join(parts))


@dataclass(frozen=True)
class BacktestResult:
    """Outcome of one backtest.

    Attributes:
        method: surrogate kind.
        split: description of the held-out runs.
        rows: one row per (held-out run, quantity): run, params, tokens, flops, mix:<d>,
            quantity, predicted, lower, upper, actual, rel_error, covered.
        unpredictable: quantity -> reason, for quantities the method could not predict.
        level: interval coverage.
        lower_better: quantities whose lower values are better beyond losses (BPB-like
            benchmarks, ``Benchmark(higher_is_better=False)``), for the decision metrics.
    """

    method: str
    split: str
    rows: pl.DataFrame
    unpredictable: Mapping[str, str]
    level: float
    lower_better: Mapping[str, bool] = field(default_factory=dict)

    def summary(self) -> pl.DataFrame:
        """Per quantity: n, median and mean relative error, interval coverage, and the decision metrics.

        ``spearman``, ``pairwise_accuracy`` and ``regret`` are means over the held-out scales with
        several mixtures (:meth:`decisions`), ``worst_chosen_rank`` the pick's worst actual rank;
        null when no held-out scale holds three or more mixtures.
        """
        if self.rows.height == 0:
            return pl.DataFrame(schema={"method": pl.String, "quantity": pl.String, "n": pl.UInt32,
                                        "median_rel_error": pl.Float64, "mean_rel_error": pl.Float64, "coverage": pl.Float64,
                                        **_DECISION_SUMMARY})
        errs = (
            self.rows.group_by("quantity", maintain_order=True)
            .agg(
                pl.len().alias("n"),
                pl.col("rel_error").median().alias("median_rel_error"),
                pl.col("rel_error").mean().alias("mean_rel_error"),
                pl.col("covered").cast(pl.Float64).mean().alias("coverage"),
            )
            .with_columns(pl.lit(self.method).alias("method"))
            .select("method", "quantity", "n", "median_rel_error", "mean_rel_error", "coverage")
        )
        dec = self.decisions().group_by("quantity").agg(
            pl.col("spearman").mean(), pl.col("pairwise_accuracy").mean(), pl.col("regret").mean(),
            pl.col("chosen_rank").max().alias("worst_chosen_rank"))
        return errs.join(dec.cast(_DECISION_SUMMARY), on="quantity", how="left", maintain_order="left")

    def decisions(self) -> pl.DataFrame:
        """Per quantity and held-out scale (``params``, ``tokens``) with >= 3 held-out mixtures: the decision
        metrics of :func:`mixopt.surrogate.decision.decision_metrics` (ρ, pairwise accuracy, the pick's
        actual rank and regret), with a ``method`` column first. Empty when no scale holds several mixtures."""
        if self.rows.height == 0:
            d = pl.DataFrame(schema=DECISION_SCHEMA)
        else:
            d = decision_metrics(self.rows, lower_better=self.lower_better)
        return d.select(pl.lit(self.method, dtype=pl.String).alias("method"), pl.all())

    @property
    def coverage(self) -> float:
        """Share of held-out (run, quantity) values inside their ``level`` interval (NaN if none)."""
        if self.rows.height == 0:
            return float("nan")
        return float(self.rows["covered"].cast(pl.Float64).mean())

    def to_json(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "split": self.split,
            "level": self.level,
            "coverage": self.coverage,
            "unpredictable": dict(self.unpredictable),
            "rows": self.rows.to_dicts(),
            "summary": self.summary().to_dicts(),
            "decisions": self.decisions().to_dicts(),
            "lower_is_better": dict(self.lower_better),
        }


def evaluate(model: Surrogate, test: RunTable, *, level: float = 0.9, method: str | None = None, split: str = "") -> BacktestResult:
    """Predict the final checkpoint of every run in ``test`` with a fitted ``model``."""
    final = test.final()
    pred = model.predict(Targets.from_runs(final), intervals=True, level=level)
    frames = []
    base = final.frame.select([RUN, PARAMS, "tokens", "flops", *[MIX_PREFIX + d for d in final.domains]])
    for j, q in enumerate(pred.names):
        if q in model.unpredictable_ or q not in final.frame.columns:
            continue
        actual = final.column(q)
        mean = pred.mean[:, j]
        lo = pred.lower[:, j] if pred.lower is not None else np.full_like(mean, np.nan)
        hi = pred.upper[:, j] if pred.upper is not None else np.full_like(mean, np.nan)
        ok = np.isfinite(actual)
        with np.errstate(divide="ignore", invalid="ignore"):
            rel = np.abs(mean - actual) / np.maximum(np.abs(actual), REL_ERROR_FLOOR)
        frames.append(
            base.with_columns(
                pl.lit(q).alias("quantity"),
                pl.Series("predicted", mean),
                pl.Series("lower", lo),
                pl.Series("upper", hi),
                pl.Series("actual", actual),
                pl.Series("rel_error", rel),
                pl.Series("covered", (lo <= actual) & (actual <= hi)),
            ).filter(pl.Series(ok))
        )
    rows = pl.concat(frames, how="vertical") if frames else pl.DataFrame()
    return BacktestResult(
        method=method or model.kind,
        split=split,
        rows=rows,
        unpredictable=dict(model.unpredictable_),
        level=level,
        lower_better=directions(final.benchmarks),
    )


def _takes_target(kind: str) -> bool:
    """Whether surrogate ``kind`` has a ``target_flops`` setting."""
    import inspect

    from mixopt.surrogate import base

    base._load_builtin()
    cls = base._REGISTRY.get(kind)
    return cls is not None and "target_flops" in inspect.signature(cls.__init__).parameters


def backtest(
    runs: RunTable,
    method: str | Surrogate = "flp",
    *,
    settings: Mapping[str, Any] | None = None,
    level: float = 0.9,
    split: Split | None = None,
    **split_args: Any,
) -> BacktestResult:
    """Fit ``method`` on the non-held-out runs and evaluate it on the held-out ones.

    Args:
        runs: full run table.
        method: a surrogate kind (``flp``, ``fp``, ``flpm``, ``dml``, ``regmix``) or an
            unfitted surrogate instance.
        settings: keyword settings for :func:`make_surrogate` when ``method`` is a kind.
        level: interval coverage.
        split: a ready split; otherwise ``split_args`` go to :func:`make_split`.
    """
    split = split or make_split(runs, **split_args)
    settings = dict(settings or {})
    if isinstance(method, str) and "target_flops" not in settings and _takes_target(method) and split.test.n_runs:
        # the target's compute is known before training it: model choice is judged at its distance
        settings["target_flops"] = float(np.median(split.test.final().flops()))
    model = make_surrogate(method, **settings) if isinstance(method, str) else method
    model.fit(split.train)
    return evaluate(model, split.test, level=level, split=split.description,
                    method=method if isinstance(method, str) else None)


def compare(
    runs: RunTable,
    methods: Sequence[str] = ("flp", "fp"),
    *,
    settings: Mapping[str, Mapping[str, Any]] | None = None,
    level: float = 0.9,
    **split_args: Any,
) -> tuple[list[BacktestResult], pl.DataFrame]:
    """Backtest several methods on the same split.

    Returns:
        The per-method results and a table with, per quantity, each method's median
        relative error, the winner, and each method's interval coverage
        (``coverage:<method>``). A method that fails to fit is logged and skipped.
    """
    split = make_split(runs, **split_args)
    results = []
    for m in methods:
        try:
            results.append(backtest(runs, m, settings=(settings or {}).get(m), level=level, split=split))
        except (FitError, SchemaError, NotPredictableError) as e:
            log.warning("method %s could not be backtested: %s", m, e)
    summ = pl.concat([r.summary() for r in results], how="vertical") if results else pl.DataFrame()
    if summ.height == 0:
        return results, summ
    wide = summ.pivot(on="method", index="quantity", values="median_rel_error")
    meth_cols = [c for c in wide.columns if c != "quantity"]
    winner = [
        min(((row[c], c) for c in meth_cols if row[c] is not None), default=(None, None))[1] for row in wide.iter_rows(named=True)
    ]
    wide = wide.with_columns(pl.Series("winner", winner, dtype=pl.String))
    cov = summ.pivot(on="method", index="quantity", values="coverage")
    cov = cov.rename({c: f"coverage:{c}" for c in cov.columns if c != "quantity"})
    wide = wide.join(cov, on="quantity", how="left")
    return results, wide


def compare_decisions(results: Sequence[BacktestResult]) -> pl.DataFrame:
    """Every result's :meth:`~BacktestResult.decisions`, stacked (one row per method, quantity and scale)."""
    frames = [r.decisions() for r in results]
    frames = [f for f in frames if f.height]
    if not frames:
        return pl.DataFrame(schema={"method": pl.String, **DECISION_SCHEMA})
    return pl.concat(frames, how="vertical")


__all__ = ["REL_ERROR_FLOOR", "BacktestResult", "Split", "backtest", "compare", "compare_decisions", "evaluate", "make_split"]
