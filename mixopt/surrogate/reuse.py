"""A joint fit over old (mapped) and new runs, with a learned offset for the changed parts.

After a domain-set change (:mod:`mixopt.data.changes`) the old runs mapped into the new
domain space are evidence of uneven quality: an added domain at 0 or a removed one a run never
used is exact, but a split at assumed proportions, a re-filtered domain or a merge whose
internal mix differs describes the run's data only approximately. :class:`ReuseRegression`
(kind ``"reuse"``) is the RegMix-style regression (:class:`~mixopt.surrogate.baselines.RegMixRegression`:
linear ridge + RBF kernel ridge on ``[r, log(r + ε)]``, every hyperparameter by exact
leave-one-out) with one **indicator feature per assumed change** in the training rows
(``split~``, ``refiltered~``, ``merged~``, ``removed~``, read from the ``evidence`` column;
``offset_mapped=True`` adds one for every mapped row):

* its linear coefficient is a **learned offset** of the assumed rows (what the change did to
  their outcome, beyond what their mapped mixture explains), fitted jointly with the mixture
  effects, its size set by the same leave-one-out ridge penalty;
* in the kernel it is one more coordinate, so an assumed row is farther from a new row with the
  same mixture than another new row is: the kernel **discounts** it by a learned amount (the
  length-scale picked by leave-one-out).

Predictions are made with every indicator at 0: as for a run trained on the new domain set.
Exact mapped rows (``added``, ``removed`` at ~0, ``merged`` within tolerance) enter like new
runs.

**Which evidence to use** (``select=True``, default). An offset and a kernel distance cannot
repair every bad mapping (a merged block whose internal mix is unknown and differs from every
old run's describes other data altogether). So the fit chooses between *all rows* and *the rows
without an assumption* (new runs and exact mapped runs, which are measurements of mixtures of the
new space and are always kept) by ``folds``-fold cross-validation
**on the new runs** (the only rows that are evidence about the new domain set without an
assumption): each candidate is refitted without a fold's new runs and scored on them (squared
error in the fitted units, each output scaled by the variance of its new values, averaged). The
smallest error wins; a tie goes to the larger set. With fewer than ``folds`` new runs (or none)
every row is used. ``evidence_used_`` says which set won, ``evidence_cv_`` the errors. A table
without an ``evidence`` column fits exactly as ``regmix`` does.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
import polars as pl

from mixopt.data.changes import ASSUMED, approximate, evidence, mapped
from mixopt.data.table import RunTable
from mixopt.errors import ConfigError
from mixopt.surrogate.base import Targets, register
from mixopt.surrogate.baselines import MAX_TRAIN_ROWS, RegMixRegression

#: Changes whose assumed rows get their own indicator feature.
ASSUMED_KINDS = ("split", "refiltered", "merged", "removed")
#: Name of the indicator of every mapped row (``offset_mapped=True``).
MAPPED_INDICATOR = "mapped"


def indicators(values: np.ndarray, *, offset_mapped: bool = False) -> tuple[tuple[str, ...], np.ndarray]:
    """Indicator names and matrix ``(n, j)`` of ``evidence`` values: one column per assumed change
    kind present (and ``mapped`` with ``offset_mapped``); kinds absent from every row are left out."""
    names: list[str] = []
    cols: list[np.ndarray] = []
    text = [str(v) for v in values]
    for kind in ASSUMED_KINDS:
        col = np.asarray([(kind + ASSUMED) in t for t in text], dtype=np.float64)
        if col.any():
            names.append(kind)
            cols.append(col)
    if offset_mapped:
        col = mapped(values).astype(np.float64)
        if col.any() and not col.all():
            names.append(MAPPED_INDICATOR)
            cols.append(col)
    z = np.column_stack(cols) if cols else np.zeros((len(text), 0))
    return tuple(names), z


@register
class ReuseRegression(RegMixRegression):
    """RegMix regression with a learned offset and discount for assumed (mapped) evidence.

    Args:
        offset_mapped: also give every mapped (old) row an indicator, so a shift between the
            old and the new runs as a whole (another code base, evaluation drift) is learned.
        select: choose the evidence set by cross-validation on the new runs (module docstring).
        folds: folds of that cross-validation (and the fewest new runs it needs).
        rows, log_floor, min_rows, fixed_compute_tolerance, seed: as for ``regmix``.
        transform: as for ``regmix``, but default ``"log"`` (losses in log, scores linear), the
            units ``offsets_`` are reported in; ``"auto"`` picks a shifted log per output.

    Attributes (after fit, besides ``regmix``'s):
        indicators_: the indicator features, in order (empty: a plain ``regmix`` fit).
        offsets_: ``{output: {indicator: offset}}``, each in the output's fitted units (log
            nats for losses, score units for scores), from the linear part.
        evidence_counts_: rows per ``evidence`` value in the table given.
        evidence_used_: ``"all"`` or ``"exact"`` (assumed rows left out).
        evidence_cv_: ``{set: cross-validated error}`` of the candidates (empty without selection).
    """

    kind: ClassVar[str] = "reuse"

    def __init__(self, *, offset_mapped: bool = False, select: bool = True, folds: int = 5, rows: str = "final",
                 log_floor: float = 1e-3, min_rows: int = 8, fixed_compute_tolerance: float = 0.25, seed: int = 0,
                 transform: str = "log") -> None:
        super().__init__(rows=rows, log_floor=log_floor, min_rows=min_rows,
                         fixed_compute_tolerance=fixed_compute_tolerance, seed=seed, transform=transform)
        self.offset_mapped = offset_mapped
        self.select = select
        self.folds = folds

    def _raw_features(self, flops: np.ndarray, R: np.ndarray) -> np.ndarray:
        base = super()._raw_features(flops, R)
        z = getattr(self, "_train_z", None)
        if z is None or z.shape[0] != base.shape[0]:
            z = np.zeros((base.shape[0], len(getattr(self, "indicators_", ()))))
        return np.column_stack([base, z])

    def _fit(self, runs: RunTable) -> None:
        if not isinstance(self.folds, (int, np.integer)) or isinstance(self.folds, bool) or self.folds < 2:
            raise ConfigError(f"ReuseRegression folds must be an integer >= 2, got {self.folds!r}.")
        ev_all = evidence(runs)
        self.evidence_counts_ = {str(k): int(c) for k, c in
                                 zip(*np.unique(evidence(runs.final()).astype(str), return_counts=True), strict=True)}
        self.evidence_used_, self.evidence_cv_ = "all", {}
        if self.select:
            self.evidence_used_, self.evidence_cv_ = self._choose(runs, ev_all)
            if self.evidence_used_ != "all":
                runs = runs.filter(pl.Series(_members(ev_all, self.evidence_used_)))
        self._fit_rows(runs)

    def _choose(self, runs: RunTable, ev: np.ndarray) -> tuple[str, dict[str, float]]:
        """The evidence set with the smallest cross-validated error on the new runs."""
        new_ids = list(dict.fromkeys(runs.run_ids()[~mapped(ev)].tolist()))
        if len(new_ids) < self.folds or len(new_ids) == runs.n_runs:
            return "all", {}
        cands = []
        for name in ("all", "exact"):
            keep = _members(ev, name)
            if not cands or keep.sum() != cands[-1][1].sum():
                cands.append((name, keep))
        if len(cands) == 1:
            return "all", {}
        order = np.random.default_rng([int(self.seed), 0x6376]).permutation(len(new_ids))
        folds = [set(new_ids[i] for i in order[f :: self.folds]) for f in range(self.folds)]
        ids = runs.run_ids()
        errs: dict[str, float] = {}
        new_vals = runs.filter(pl.Series(~mapped(ev))).final()
        scale = {}
        for q in self._output_names(runs):  # each output's spread over the new runs, in the fitted units (log for losses)
            v = new_vals.column(q)
            scale[q] = max(float(np.nanvar(np.log(v) if q.startswith("loss:") else v)), 1e-12)
        for name, keep in cands:
            sq: list[np.ndarray] = []
            for held in folds:
                test = np.isin(ids, list(held))
                model = ReuseRegression(**{**self.get_params(), "select": False}).fit(runs.filter(pl.Series(keep & ~test)))
                t = runs.filter(pl.Series(test)).final()
                pred = model.predict(Targets(flops=t.flops(), mixture=t.mixture(model.domains_), domains=model.domains_),
                                     intervals=False)
                for j, q in enumerate(model.outputs_):
                    if q not in pred.names or q not in scale:
                        continue
                    y, p = t.column(q), pred.get(q)
                    if model.log_outputs_[j]:
                        y, p = np.log(y), np.log(np.maximum(p, 1e-300))
                    sq.append((y - p) ** 2 / scale[q])
            if sq:
                errs[name] = float(np.nanmean(np.concatenate(sq)))
        if not errs:
            return "all", {}
        best = min(errs.values())
        # a tie goes to the larger set (candidates are in order of decreasing size)
        name = next(n for n, _ in cands if n in errs and errs[n] <= best * (1 + 1e-9))
        return name, errs

    @staticmethod
    def _output_names(runs: RunTable) -> list[str]:
        return [f"loss:{d}" for d in runs.loss_domains] + [f"score:{b}" for b in runs.benchmark_names]

    def _fit_rows(self, runs: RunTable) -> None:
        table = runs.final() if self.rows == "final" else runs
        ev = evidence(table)
        names, z = indicators(ev, offset_mapped=bool(self.offset_mapped))
        n = z.shape[0]
        if n > MAX_TRAIN_ROWS:  # the same seeded subsample as RegMixRegression._fit
            z = z[np.sort(np.random.default_rng(self.seed).choice(n, MAX_TRAIN_ROWS, replace=False))]
        self.indicators_ = names
        self._train_z = z
        try:
            super()._fit(runs)
        finally:
            self._train_z = None
        j = len(names)
        self.offsets_ = {}
        if j:
            for q, fit in self.fits_.items():  # linear coefficient on the standardised indicator, in raw units
                coef = fit["coef"][-j:] / self.feat_sd_[-j:]
                self.offsets_[q] = {nm: float(c) for nm, c in zip(names, coef, strict=True)}

    def _get_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        state, arrays = super()._get_state()
        state["indicators"] = list(self.indicators_)
        state["offsets"] = self.offsets_
        state["evidence_counts"] = self.evidence_counts_
        state["evidence_used"] = self.evidence_used_
        state["evidence_cv"] = self.evidence_cv_
        return state, arrays

    def _set_state(self, state: dict[str, Any], arrays: Mapping[str, np.ndarray]) -> None:
        super()._set_state(state, arrays)
        self.indicators_ = tuple(state.get("indicators", ()))
        self.offsets_ = dict(state.get("offsets", {}))
        self.evidence_counts_ = dict(state.get("evidence_counts", {}))
        self.evidence_used_ = str(state.get("evidence_used", "all"))
        self.evidence_cv_ = dict(state.get("evidence_cv", {}))


def _members(ev: np.ndarray, name: str) -> np.ndarray:
    """Rows of the evidence set ``name``: ``"all"`` or ``"exact"`` (no assumed rows)."""
    if name == "all":
        return np.ones(len(ev), dtype=bool)
    return ~approximate(ev)


__all__ = ["ASSUMED_KINDS", "MAPPED_INDICATOR", "ReuseRegression", "indicators"]
