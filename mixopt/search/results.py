"""Search results: the Pareto set, hypervolume, the single best mixture, files.

Pareto set
----------
Among *completed, feasible* trials (every constraint value ``<= 0``), the trials whose
objective values (as the sampler saw them: risk-adjusted when ``kappa > 0``) no other
trial dominates. Trials with identical parameters are listed once.

Hypervolume
-----------
The volume of objective space dominated by the front and bounded by a reference point,
computed on objectives turned into minimisation (maximised objectives are negated).
:func:`hypervolume` is exact for 1-3 objectives (sweeps), exact by recursive slicing for
more objectives on small fronts, and a seeded Monte-Carlo estimate beyond that
(``max_exact_work``). Optuna 5 has no public hypervolume function (only the private
``optuna._hypervolume``), so mixopt has its own; the tests check it against known fronts.

**Reference point.** Hypervolumes are comparable only under the same reference point.
Give one (``reference_point``, in each objective's own units and direction). Otherwise
the front's nadir (worst value of each objective over the front) moved outwards by 10 %
of the front's range in that objective (or by 10 % of its magnitude, when the range is
0) is used. A persistent study fixes its reference point on its first run and stores it
(study user attribute ``mixopt:reference_point``), so every later run of the study is
measured against the same point and the recorded history
(:attr:`SearchResult.hypervolume_history`, attribute ``mixopt:hv_history``) never falls;
an in-memory search uses its own front (``reference_source = "front"``).

Best mixture
------------
:attr:`SearchResult.best` is rank 1 of the shortlist: the candidate most often the best on
the surrogate's joint draws (:mod:`mixopt.search.decision`), the same row in the terminal,
the summary JSON, the report and the API. :meth:`SearchResult.best_for` is the plain
scalarisation of the front at the means (each objective scaled to [0, 1] over the front,
1 = best, times its weight, summed; the largest sum wins), for other weights.

Decision
--------
:attr:`SearchResult.decision` holds what a person reads first (:meth:`SearchResult.headline`):
each pick's P(best), P(within epsilon of the best), P(feasible) and per-constraint
probabilities, pairwise P(A beats B), whether the picks are indistinguishable, the robust
region, what binds, how far the target extrapolates beyond the sampling runs, and, when no
trial is feasible, ``infeasible`` (the binding constraint and how close the search came).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from mixopt._files import atomic_path, write_text
from mixopt._json import jsonable
from mixopt._terminal import format_table
from mixopt.errors import SearchError

#: Margin of the default reference point, as a fraction of the front's range.
REFERENCE_MARGIN = 0.1


# -- Pareto -------------------------------------------------------------------------------
def pareto_mask(values: np.ndarray, directions: Sequence[str] | None = None) -> np.ndarray:
    """Which rows are non-dominated.

    Args:
        values: ``(n, m)`` objective values (finite).
        directions: ``m`` of ``"minimize"``/``"maximize"`` (default: all minimised).

    Returns:
        ``(n,)`` bool mask; rows with equal values are all kept.
    """
    y = _to_min(values, directions)
    n = y.shape[0]
    if n == 0:
        return np.zeros(0, dtype=bool)
    order = np.lexsort(y.T[::-1])
    ys = y[order]
    alive = np.ones(n, dtype=bool)
    # walk in lexicographic order: the first alive point is non-dominated; drop what it dominates
    for i in range(n):
        if not alive[i]:
            continue
        rest = alive.copy()
        rest[: i + 1] = False
        idx = np.flatnonzero(rest)
        if idx.size:
            d = np.all(ys[i] <= ys[idx], axis=1) & np.any(ys[i] < ys[idx], axis=1)
            alive[idx[d]] = False
    mask = np.zeros(n, dtype=bool)
    mask[order[alive]] = True
    return mask


def _to_min(values: np.ndarray, directions: Sequence[str] | None) -> np.ndarray:
    y = np.asarray(values, dtype=np.float64)
    if y.ndim != 2:
        raise SearchError(f"objective values must be (n, m), got shape {y.shape}.")
    if directions is None:
        return y.copy()
    if len(directions) != y.shape[1]:
        raise SearchError(f"{y.shape[1]} objectives but {len(directions)} directions.")
    for d in directions:
        if d not in ("minimize", "maximize"):
            raise SearchError(f"direction must be 'minimize' or 'maximize', got {d!r}.")
    sign = np.array([-1.0 if d == "maximize" else 1.0 for d in directions])
    return y * sign


# -- hypervolume --------------------------------------------------------------------------
def _hv2(y: np.ndarray, ref: np.ndarray) -> float:
    """Exact 2-D hypervolume of minimisation points already strictly below ``ref``."""
    order = np.lexsort((y[:, 1], y[:, 0]))
    ys = y[order]
    best = np.minimum.accumulate(ys[:, 1])  # running min of the 2nd objective
    keep = np.concatenate([[True], ys[1:, 1] < best[:-1]])
    f = ys[keep]  # x ascending, y strictly descending
    xs = np.append(f[:, 0], ref[0])
    return float(np.sum((xs[1:] - xs[:-1]) * (ref[1] - f[:, 1])))


def _hv_slices(y: np.ndarray, ref: np.ndarray) -> float:
    """Exact hypervolume by slicing along the last objective (recursive for m >= 3)."""
    m = y.shape[1]
    if m == 1:
        return float(ref[0] - y[:, 0].min())
    if m == 2:
        return _hv2(y, ref)
    order = np.argsort(y[:, -1], kind="stable")
    ys = y[order]
    z = np.append(ys[:, -1], ref[-1])
    total = 0.0
    for i in range(ys.shape[0]):
        dz = z[i + 1] - z[i]
        if dz <= 0:
            continue
        prefix = ys[: i + 1, :-1]
        if m - 1 > 2 and prefix.shape[0] > 1:
            prefix = prefix[pareto_mask(prefix)]
        total += dz * _hv_slices(prefix, ref[:-1])
    return total


def hypervolume(
    values: np.ndarray,
    reference: Sequence[float] | np.ndarray,
    directions: Sequence[str] | None = None,
    *,
    max_exact_work: float = 5e6,
    n_samples: int = 1_000_000,
    seed: int = 0,
) -> float:
    """Hypervolume dominated by ``values`` and bounded by ``reference``.

    Args:
        values: ``(n, m)`` objective values.
        reference: ``(m,)`` reference point in the same units and directions; points that
            do not strictly dominate it add nothing.
        directions: ``m`` of ``"minimize"``/``"maximize"`` (default all minimised).
        max_exact_work: above ``n_front^(m-1)`` of this, 4+ objectives use Monte Carlo.
        n_samples: Monte-Carlo samples (seeded by ``seed``).

    Returns:
        The hypervolume (0 for an empty front), in the product of the objectives' units.
    """
    y = _to_min(values, directions)
    ref = np.asarray(reference, dtype=np.float64).ravel()
    if directions is not None:
        ref = ref * np.array([-1.0 if d == "maximize" else 1.0 for d in directions])
    if ref.shape[0] != y.shape[1]:
        raise SearchError(f"reference point has {ref.shape[0]} values for {y.shape[1]} objectives.")
    if not np.all(np.isfinite(ref)):
        raise SearchError(f"reference point must be finite, got {ref.tolist()}.")
    y = y[np.all(np.isfinite(y), axis=1) & np.all(y < ref, axis=1)]
    if y.shape[0] == 0:
        return 0.0
    m = y.shape[1]
    if m > 2:
        y = y[pareto_mask(y)]
    if m <= 3 or float(y.shape[0]) ** (m - 1) <= max_exact_work:
        return _hv_slices(y, ref)
    rng = np.random.default_rng(seed)
    lo = y.min(axis=0)
    box = float(np.prod(ref - lo))
    hits = 0
    done = 0
    while done < n_samples:
        k = min(20_000, n_samples - done)
        s = lo + rng.random((k, m)) * (ref - lo)
        dominated = np.zeros(k, dtype=bool)
        for p in y:
            dominated |= np.all(p <= s, axis=1)
        hits += int(dominated.sum())
        done += k
    return box * hits / n_samples


# -- the result ---------------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class SearchResult:
    """What a search returns.

    Attributes:
        pareto: the Pareto set, one row per mixture (see :func:`build_tables`): ``trial``,
            ``mix:<d>`` (of a schedule: the whole run's mixture, then each phase's ``mix@k:<d>`` and
            the boundaries ``phase_end@k``), ``flops``, ``params``, ``tokens``, ``obj:<objective>`` (the value
            the sampler optimised), ``<quantity>``/``<quantity>:lower``/``<quantity>:upper``
            for every predicted quantity (mean and central interval), ``epochs:<d>`` for
            domains with a token limit, ``con:<constraint>`` and ``feasible``.
        trials: every finished trial: ``trial``, ``state``, the model columns,
            ``obj:<objective>``, ``con:<constraint>``, ``feasible``, ``pareto``.
        objectives: ``(name, direction)`` per objective.
        constraints: constraint names (``data`` is the token-availability constraint).
        domains: mixture domains.
        hypervolume: hypervolume of the front w.r.t. ``reference_point``.
        reference_point: ``{objective: value}``, in each objective's units and direction.
        weights: ``{objective: weight}`` of the scalarisation behind ``best``.
        best: the best front row for ``weights`` (a dict), None if the front is empty.
        level: central coverage of the intervals.
        study_name: the Optuna study.
        storage: where the study lives (None: in memory only).
        sampler: sampler name.
        seed: search seed.
        n_trials: finished trials in the study (this run and earlier runs).
        n_new: trials finished by this run.
        n_complete: completed trials.
        n_failed: failed trials.
        n_feasible: completed trials that satisfy every constraint.
        elapsed_s: wall time of this run, seconds.
        executor: executor description.
        notes: remarks for the reader (e.g. why the front is empty).
        shortlist: ``k`` diverse knee-region rows of the front (:mod:`mixopt.search.shortlist`),
            the ``pareto`` columns plus ``rank`` and ``knee_distance``.
        hypervolume_history: one dict per run of the study that added trials,
            ``{"run", "n_trials", "n_new", "hypervolume", "finished_at"}``, all against
            ``reference_point`` (so it never falls).
        reference_source: ``"config"`` (given), ``"study"`` (fixed on the study's first run)
            or ``"front"`` (this front's nadir + margin; in-memory searches).
        decision: the joint-draw summary (see the module docstring and
            :mod:`mixopt.search.decision`); ``decision["infeasible"]`` is set when no trial
            is feasible.
        candidates: every candidate the decision judged on joint draws (``trial``,
            ``mix:<d>``, ``flops``, ``obj:<objective>``, ``p_best``, ``p_within_epsilon``,
            ``p_feasible``, ``eligible``), by knee distance at the means; not written to files.
    """

    pareto: pl.DataFrame
    trials: pl.DataFrame
    objectives: tuple[tuple[str, str], ...]
    constraints: tuple[str, ...]
    domains: tuple[str, ...]
    hypervolume: float
    reference_point: Mapping[str, float]
    weights: Mapping[str, float]
    best: Mapping[str, Any] | None
    level: float = 0.9
    study_name: str = ""
    storage: str | None = None
    sampler: str = ""
    seed: int = 0
    n_trials: int = 0
    n_new: int = 0
    n_complete: int = 0
    n_failed: int = 0
    n_feasible: int = 0
    elapsed_s: float = 0.0
    executor: str = ""
    notes: tuple[str, ...] = field(default_factory=tuple)
    shortlist: pl.DataFrame = field(default_factory=pl.DataFrame)
    hypervolume_history: tuple[Mapping[str, Any], ...] = field(default_factory=tuple)
    reference_source: str = "front"
    decision: Mapping[str, Any] = field(default_factory=dict)
    candidates: pl.DataFrame = field(default_factory=pl.DataFrame)

    @property
    def infeasible(self) -> bool:
        """No feasible mixture: ``decision["infeasible"]`` says which constraint binds."""
        return bool(self.decision.get("infeasible")) or (self.pareto.height == 0 and self.n_trials > 0)

    @property
    def schedule_vs_constant(self) -> Mapping[str, Any] | None:
        """A search over schedules: rank 1 against the best constant mixture, and which one is
        recommended (``recommended``: ``"schedule"`` or ``"constant"``, ``reason``, ``p_schedule_better``,
        ``difference``, ``constant``; :mod:`mixopt.search.phased`). None for constant searches."""
        return self.decision.get("schedule_vs_constant")

    @property
    def trials_per_s(self) -> float:
        """Trials finished per second of this run's wall time."""
        return self.n_new / self.elapsed_s if self.elapsed_s > 0 else float("nan")

    def best_for(self, weights: Mapping[str, float] | None = None) -> dict[str, Any] | None:
        """The front row maximising the weighted sum of [0, 1]-scaled objectives.

        Args:
            weights: ``{objective: weight >= 0}``; objectives not named get 0 when any is
                named, all get 1 when None.

        Raises:
            SearchError: a weight for an unknown objective, or negative weights.
        """
        return best_row(self.pareto, self.objectives, weights)

    def headline(self) -> list[str]:
        """What to pick, how sure it is, what binds, how far it extrapolates (:mod:`mixopt.search.summary`)."""
        from mixopt.search.summary import headline

        return headline(self)

    def hypervolume_at(self, reference_point: Mapping[str, float]) -> float:
        """Hypervolume of this front for another reference point."""
        names = [n for n, _ in self.objectives]
        missing = [n for n in names if n not in reference_point]
        if missing:
            raise SearchError(f"reference point lacks objective(s) {missing}.")
        if self.pareto.height == 0:
            return 0.0
        vals = self.pareto.select([f"obj:{n}" for n in names]).to_numpy()
        return hypervolume(vals, [float(reference_point[n]) for n in names], [d for _, d in self.objectives])

    # -- output -----------------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        """A JSON-able summary plus the Pareto rows."""
        return jsonable({
            "study_name": self.study_name,
            "storage": self.storage,
            "sampler": self.sampler,
            "seed": self.seed,
            "executor": self.executor,
            "objectives": [{"name": n, "direction": d} for n, d in self.objectives],
            "constraints": list(self.constraints),
            "domains": list(self.domains),
            "n_trials": self.n_trials,
            "n_new": self.n_new,
            "n_complete": self.n_complete,
            "n_failed": self.n_failed,
            "n_feasible": self.n_feasible,
            "elapsed_s": self.elapsed_s,
            "trials_per_s": self.trials_per_s,
            "hypervolume": self.hypervolume,
            "reference_point": dict(self.reference_point),
            "reference_source": self.reference_source,
            "hypervolume_history": [dict(h) for h in self.hypervolume_history],
            "weights": dict(self.weights),
            "best": dict(self.best) if self.best is not None else None,
            "level": self.level,
            "notes": list(self.notes),
            "infeasible": self.infeasible,
            "reason": (self.decision.get("infeasible") or {}).get("reason") if self.infeasible else None,
            "binding": list(self.decision.get("binding") or []),
            "decision": dict(self.decision),
            "pareto": self.pareto.to_dicts(),
            "shortlist": self.shortlist.to_dicts(),
        })

    def write(self, path: str | Path, *, trials: bool = False) -> list[Path]:
        """Write the Pareto table and a JSON summary.

        Args:
            path: the Pareto table file; ``.parquet``, ``.csv`` or ``.json`` (rows as a
                list of objects). The summary goes next to it as ``<stem>.summary.json``
                and the shortlist as ``<stem>.shortlist.<ext>``.
            trials: also write every trial as ``<stem>.trials.<ext>``.

        Returns:
            The paths written.
        """
        path = Path(path)
        ext = path.suffix.lower()
        if ext not in (".parquet", ".csv", ".json"):
            raise SearchError(f"Output file must end in .parquet, .csv or .json, got {path.name!r}.")
        path.parent.mkdir(parents=True, exist_ok=True)
        written = [_write_frame(self.pareto, path)]
        written.append(_write_frame(self.shortlist, path.with_name(f"{path.stem}.shortlist{ext}")))
        if trials:
            written.append(_write_frame(self.trials, path.with_name(f"{path.stem}.trials{ext}")))
        summary = self.to_json()
        summary.pop("pareto")
        summary["pareto_file"] = path.name
        summary["shortlist_file"] = f"{path.stem}.shortlist{ext}"
        sp = path.with_name(f"{path.stem}.summary.json")
        written.append(write_text(sp, json.dumps(summary, indent=1) + "\n", what="search summary"))
        return written

    @property
    def phase_columns(self) -> list[str]:
        """The schedule columns of the Pareto table (``mix@k:<d>``, ``phase_end@k``); empty for constant mixtures."""
        from mixopt.data.phases import is_phase_column

        return [c for c in self.pareto.columns if is_phase_column(c)]

    def report(self, max_rows: int = 20) -> str:
        """A human-readable summary: counts, hypervolume, the shortlist, the front's first rows.

        Compute is shown in FLOPs (``flops``); ``obj:compute`` in the tables is log10(FLOPs).
        The :meth:`headline` comes first, before any table.
        """
        lines = [*self.headline(), "",
            f"study {self.study_name!r} ({self.storage or 'in memory'}), sampler {self.sampler}, seed {self.seed}, {self.executor}",
            f"trials: {self.n_trials} finished ({self.n_new} new by this run in {self.elapsed_s:.1f} s"
            + (f", {self.trials_per_s:.0f}/s" if self.n_new else "") + f"); "
            f"{self.n_complete} complete, {self.n_failed} failed, {self.n_feasible} feasible",
            "objectives: " + ", ".join(
                f"{n} ({'max' if d == 'maximize' else 'min'}{', log10 FLOPs' if n == 'compute' else ''})" for n, d in self.objectives),
        ]
        if self.constraints:
            lines.append("constraints (con:* <= 0 means satisfied): " + "; ".join(
                "data (no domain repeated more than max_epochs)" if c == "data" else c for c in self.constraints))
        lines += list(self.notes)
        if self.pareto.height == 0:
            lines.append("no feasible mixture found: relax the constraints or the bounds, or run more trials")
            return "\n".join(lines)
        ref = ", ".join(f"{k}={v:.4g}" for k, v in self.reference_point.items())
        lines.append(f"Pareto set: {self.pareto.height} mixtures; hypervolume {self.hypervolume:.6g} = the part of "
                     "objective space the front dominates, measured from a reference point (higher is better; compare "
                     f"it only between runs of this study: it grows as trials improve the front) (reference {ref}; "
                     f"{self.reference_source})")
        if len(self.hypervolume_history) > 1:
            hist = " -> ".join(f"{h['hypervolume']:.6g} @ {h['n_trials']}" for h in self.hypervolume_history[-5:])
            lines.append(f"hypervolume history (same reference): {hist}")
        if self.best is not None:
            mix = ", ".join(f"{d}={self.best[f'mix:{d}']:.3f}" for d in self.domains)
            from mixopt.search.summary import schedule_text

            if schedule_text(self.best, self.domains):
                mix += f" (whole run; {schedule_text(self.best, self.domains)})"
            vals = ", ".join(f"{n}={self.best[f'obj:{n}']:.4g}" for n, _ in self.objectives if n != "compute")
            w = ", ".join(f"{k}={v:g}" for k, v in self.weights.items())
            lines.append(f"best = shortlist rank 1 (weights {w}): trial {self.best['trial']}: {mix}; {self.best['flops']:.3g} FLOPs; {vals}")
        objs = [f"obj:{n}" for n, _ in self.objectives if n != "compute"]
        if self.shortlist.height:
            cols = ["rank", "trial", *[f"mix:{d}" for d in self.domains], *self.phase_columns, "flops", *objs, "p_best", "p_within_epsilon",
                    "p_feasible", "knee_distance"]
            lines.append(f"shortlist: {self.shortlist.height} mixtures ranked by P(best) on joint draws (see mixopt.search.decision):")
            lines.append(format_table(self.shortlist.select([c for c in cols if c in self.shortlist.columns]), max_rows=max_rows))
        cols = ["trial", *[f"mix:{d}" for d in self.domains], *self.phase_columns, "flops", *objs, "feasible"]
        shown = self.pareto.select([c for c in cols if c in self.pareto.columns]).head(max_rows)
        lines.append(f"Pareto set (first {min(max_rows, self.pareto.height)} of {self.pareto.height} rows; flops in FLOPs):")
        lines.append(format_table(shown, max_rows=max_rows))
        if self.pareto.height > max_rows:
            lines.append(f"... {self.pareto.height - max_rows} more rows in the written table")
        return "\n".join(lines)


def _write_frame(frame: pl.DataFrame, path: Path) -> Path:
    """Write ``frame`` whole or not at all (a full disk leaves no partial table at ``path``)."""
    ext = path.suffix.lower()
    with atomic_path(path, what="search table") as tmp:
        if ext == ".parquet":
            frame.write_parquet(tmp)
        elif ext == ".csv":
            frame.write_csv(tmp)
        else:
            tmp.write_text(json.dumps(jsonable(frame.to_dicts()), indent=1) + "\n")
    return path


def default_reference(front: np.ndarray, directions: Sequence[str], margin: float = REFERENCE_MARGIN) -> np.ndarray:
    """Nadir of ``front`` moved outwards by :data:`REFERENCE_MARGIN` of its range (per objective)."""
    y = _to_min(front, directions)
    worst, best = y.max(axis=0), y.min(axis=0)
    span = worst - best
    pad = np.where(span > 0, margin * span, margin * np.maximum(np.abs(worst), 1e-12))
    ref = worst + pad
    sign = np.array([-1.0 if d == "maximize" else 1.0 for d in directions])
    return ref * sign


def best_row(pareto: pl.DataFrame, objectives: Sequence[tuple[str, str]],
             weights: Mapping[str, float] | None = None) -> dict[str, Any] | None:
    """See :meth:`SearchResult.best_for`."""
    names = [n for n, _ in objectives]
    if weights:
        unknown = sorted(set(weights) - set(names))
        if unknown:
            raise SearchError(f"weights name unknown objective(s) {unknown}; objectives are {names}.")
        w = np.array([float(weights.get(n, 0.0)) for n in names])
    else:
        w = np.ones(len(names))
    if np.any(~np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
        raise SearchError(f"weights must be >= 0 with a positive sum, got {dict(zip(names, w.tolist(), strict=True))}.")
    if pareto.height == 0:
        return None
    vals = pareto.select([f"obj:{n}" for n in names]).to_numpy().astype(float)
    up = -_to_min(vals, [d for _, d in objectives])  # larger is better
    lo, hi = up.min(axis=0), up.max(axis=0)
    span = np.where(hi > lo, hi - lo, 1.0)
    scaled = np.where(hi > lo, (up - lo) / span, 1.0)
    score = scaled @ w
    i = int(np.argmax(score))
    row = pareto.row(i, named=True)
    row["scalarized"] = float(score[i] / w.sum())
    return row


__all__ = ["REFERENCE_MARGIN", "SearchResult", "best_row", "default_reference", "hypervolume", "pareto_mask"]
