"""Assemble a :class:`~mixopt.report.document.Report` from whatever results are at hand.

:func:`build_report` takes any combination of a fitted surrogate with its sampling runs, a
backtest, a search, a validation table and a loop's rounds, and renders the sections those inputs support;
sections with no input are left out, and a missing optional piece (no intervals, no
optimisation history, an unpredictable benchmark) is said in the report instead of
failing it.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import math
import platform
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from mixopt.data.table import RunTable
from mixopt.errors import MixoptError, SchemaError
from mixopt.report import figures as F
from mixopt.report.document import FigureItem, Note, Report, Section, TableItem
from mixopt.report.inputs import (
    BacktestData,
    SearchData,
    comparison_table,
    file_record,
    normalise_validation,
    read_backtest,
    read_search,
    read_validation,
)
from mixopt.report.loop import LoopData, loop_section, read_loop

logger = logging.getLogger(__name__)


def _as_backtest(b: Any) -> BacktestData | None:
    if b is None or isinstance(b, BacktestData):
        return b
    if isinstance(b, (str, Path)):
        return read_backtest(b)
    if isinstance(b, tuple) and len(b) == 2 and isinstance(b[1], pl.DataFrame):  # compare()'s (results, table)
        return BacktestData.from_results(b[0], comparison=b[1])
    return BacktestData.from_results(list(b))


def _as_search(s: Any) -> SearchData | None:
    if s is None or isinstance(s, SearchData):
        return s
    if isinstance(s, (str, Path)):
        return read_search(s)
    return SearchData.from_result(s)


def _as_validation(v: Any) -> pl.DataFrame | None:
    if v is None:
        return None
    if isinstance(v, (str, Path)):
        return read_validation(v)
    return normalise_validation(v)


def target_from_search(search: SearchData, model: Any = None) -> F.Target | None:
    """The search's best row (shortlist rank 1) as the report's target, or None."""
    b = search.best
    if not b or b.get("flops") is None:
        return None
    domains = tuple(getattr(model, "domains_", ()) or search.domains) if model is not None else search.domains
    mix = {d: float(b[f"mix:{d}"]) for d in domains if f"mix:{d}" in b} or None
    if mix:
        s = sum(mix.values())
        mix = {d: v / s for d, v in mix.items()}
    return F.Target(flops=float(b["flops"]), mixture=mix, params=_pos(b.get("params")), tokens=_pos(b.get("tokens")),
                    label=f"best mixture of the search (trial {b.get('trial')})")


def _pos(v: Any) -> float | None:
    try:
        x = float(v)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) and x > 0 else None


def provenance(
    *,
    files: Mapping[str, str | Path | None] | None = None,
    model: Any = None,
    search: SearchData | None = None,
    backtest: BacktestData | None = None,
    settings: Mapping[str, Any] | None = None,
    command: Sequence[str] | None = None,
) -> dict[str, Any]:
    """mixopt version, time, platform, command, settings, seeds and SHA-256 of the data files."""
    from mixopt import __version__

    recs = []
    for role, p in (files or {}).items():
        if p is None:
            continue
        r = file_record(p, role)
        recs.extend(r["files"] if "files" in r else [r])
    seeds: dict[str, Any] = {}
    msettings = None
    if model is not None:
        try:
            msettings = model.get_params()
        except Exception:  # noqa: BLE001 - provenance is best effort for foreign models
            msettings = None
        if isinstance(msettings, Mapping) and "seed" in msettings:
            seeds["surrogate"] = msettings["seed"]
    if search is not None and "seed" in search.summary:
        seeds["search"] = search.summary.get("seed")
    out: dict[str, Any] = {
        "mixopt_version": __version__,
        "generated_at": _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
        "python": sys.version.split()[0],
        "platform": platform.platform(terse=True),
        "command": " ".join(command) if command else None,
        "surrogate": getattr(model, "kind", None),
        "surrogate_settings": msettings,
        "seeds": seeds,
        "files": recs,
    }
    if search is not None:
        out["search"] = {k: search.summary.get(k) for k in ("study_name", "storage", "sampler", "seed", "n_trials", "n_feasible",
                                                             "hypervolume", "reference_point", "weights", "executor") if k in search.summary}
    if backtest is not None:
        out["backtest"] = {"methods": list(backtest.methods), "split": backtest.split, "level": backtest.level}
    if settings:
        out["settings"] = dict(settings)
    return out


# -- sections ----------------------------------------------------------------------------------
def _summary_section(model: Any, runs: RunTable | None, target: F.Target | None, search: SearchData | None,
                     backtest: BacktestData | None, level: float, target_is_best: bool = False) -> Section:
    sec = Section("summary", "Summary", "The numbers to carry into a plan; every figure below shows where they come from.")
    if search is not None and search.best:
        b = search.best
        rows = [{"item": "compute", "value": F.fmt(b.get("flops"), 3) + " FLOPs"}]
        if b.get("params") is not None and b.get("tokens") is not None:
            rows.append({"item": "model size / tokens", "value": f"N = {F.fmt(b.get('params'), 3)}, D = {F.fmt(b.get('tokens'), 3)}"})
        for d in search.domains:
            if f"mix:{d}" in b:
                rows.append({"item": f"share of {d}", "value": f"{float(b[f'mix:{d}']):.3f}"})
        if model is None or not target_is_best:  # else the target table below shows the same predictions
            for q in [c for c in b if (c.startswith("score:") or c.startswith("loss")) and ":" in c and not c.endswith((":lower", ":upper"))]:
                lo, hi = b.get(f"{q}:lower"), b.get(f"{q}:upper")
                rows.append({"item": f"predicted {q}", "value": F._interval_text(float(b[q]), _f(lo), _f(hi)) if b[q] is not None else "-"})
        w = search.summary.get("weights") or {}
        shown_here = model is None or not target_is_best
        sec.items.append(TableItem("best", f"Recommended mixture (shortlist rank 1, weights {', '.join(f'{k}={v:g}' for k, v in w.items()) or 'equal'})",
                                   pl.DataFrame(rows), caption=("Predictions with their central interval in brackets." if shown_here
                                                                else "Its predictions are the target predictions below.")))
        sec.items += _decision_notes(search)
    if model is not None and target is not None:
        try:
            pred = model.predict(F._targets(model, np.array([target.flops]), target), level=level)
            rows = []
            for j, q in enumerate(pred.names):
                rows.append({"quantity": q, "predicted": float(pred.mean[0, j]),
                             "lower": float(pred.lower[0, j]) if pred.lower is not None else None,
                             "upper": float(pred.upper[0, j]) if pred.upper is not None else None,
                             "note": model.unpredictable_.get(q, "")})
            sec.items.append(TableItem("target", f"Predictions at the target: {target.label}", pl.DataFrame(rows, orient="row"),
                                       caption=f"Target: {target.describe()}. {level:.0%} central intervals."))
        except MixoptError as e:
            sec.items.append(Note(f"No prediction at the target ({target.describe()}): {e}", "warn"))
    if backtest is not None:
        comp = comparison_table(backtest)
        if comp.height and "winner" in comp.columns:
            wins = comp["winner"].drop_nulls().value_counts(sort=True)
            if wins.height:
                lead = ", ".join(f"{r[0]} ({r[1]} of {comp.height})" for r in wins.iter_rows())
                sec.items.append(Note(f"Backtest ({backtest.split or 'held-out runs'}): lowest median error per quantity: {lead}."))
    if not sec.items:
        sec.items.append(Note("Nothing to summarise: give a model, a backtest or a search."))
    return sec


def _evidence_section(model: Any, runs: RunTable | None) -> Section | None:
    """Old runs mapped across a domain-set change (``evidence`` column, :mod:`mixopt.data.changes`):
    which rows are new, mapped exactly or mapped on an assumption, and the offsets a reuse fit learned."""
    from mixopt.data.changes import EVIDENCE, approximate, evidence, mapped

    offsets = {q: o for q, o in (getattr(model, "offsets_", None) or {}).items() if o}
    has_rows = runs is not None and EVIDENCE in runs.frame.columns and bool(mapped(evidence(runs)).any())
    if not has_rows and not offsets:
        return None
    sec = Section("evidence", "Evidence across the domain-set change",
                  "Old runs trained on the earlier domain set, mapped into the new one ([domains.changes]); "
                  "rows marked assumed rest on a stated or learned split, a re-filtered domain or an approximate merge.")
    if has_rows:
        assert runs is not None
        ev = evidence(runs.final()).astype(str)
        vals, counts = np.unique(ev, return_counts=True)
        kind = ["mapped, assumed" if approximate(v) else "mapped exactly" if mapped(v) else "new" for v in vals]
        sec.items.append(TableItem("evidence_rows", "Runs by evidence",
                                   pl.DataFrame({"evidence": vals.tolist(), "kind": kind, "runs": counts.tolist()}),
                                   caption=f"{int(mapped(ev).sum())} of {len(ev)} runs are old runs mapped into the new domain set."))
    used = getattr(model, "evidence_used_", None)
    if used is not None and getattr(model, "evidence_cv_", None):
        cv = ", ".join(f"{k} {v:.4g}" for k, v in model.evidence_cv_.items())
        sec.items.append(Note(f"The fit used the {used!r} evidence set (cross-validated error on the new runs: {cv})."))
    if offsets:
        rows = [{"quantity": q, "indicator": nm, "offset": float(c)} for q, o in offsets.items() for nm, c in o.items()]
        sec.items.append(TableItem("evidence_offsets", "Learned offsets of the mapped rows", pl.DataFrame(rows, orient="row"),
                                   caption="Linear coefficient of each evidence indicator, in the quantity's fitted units."))
    return sec


def _f(v: Any) -> float | None:
    try:
        x = float(v)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def _fit_sections(model: Any, runs: RunTable, target: F.Target, level: float) -> list[Section]:
    out = []
    fit = Section("fits", "Scaling-law fits: compute to loss",
                  "Each point is a sampling run at its final checkpoint (the points the law is fitted on); light grey points are earlier "
                  "checkpoints. The line is the fitted law, solid over the sampling compute and dashed where it extrapolates, with its "
                  f"{level:.0%} interval band; the diamond is the prediction at the target with its interval.")
    r = F._fit_curves(model, runs, target, level=level)
    if r is not None:
        fit.items.append(FigureItem("fit_curves", "Compute → loss per domain", r[0], r[1],
                                    caption=f"Target: {target.label} ({target.describe()})."))
    else:
        fit.items.append(Note(f"This {model.kind} model predicts no loss column of the run table, so there is no compute → loss law to draw."))
    for attr, title in (("fit_report_", "Fitted laws"), ("selection_", "Law selection (internal backtest)")):
        t = getattr(model, attr, None)
        if isinstance(t, pl.DataFrame) and t.height:
            fit.items.append(TableItem(attr.strip("_"), title, t, wrap=True))
    cal = getattr(getattr(model, "calibrator_", None), "table_", None)
    if isinstance(cal, pl.DataFrame) and cal.height:
        fit.items.append(TableItem("calibration", "Interval calibration (conformal, by extrapolation distance)", cal,
                                   caption="Intervals are widened by q·(1 + g·d) at d decades of compute beyond the fitted runs."))
    out.append(fit)
    sc = Section("benchmarks", "Benchmarks: loss to score",
                 "Every evaluated checkpoint: filled points have emerged above chance (the paper's threshold: chance + 5 points), hollow "
                 "points have not. The dashed line is chance, the dotted one the emergence threshold. The fitted map follows the model's "
                 "predicted (loss, score) pairs along compute up to the target; benchmarks the data cannot predict say why.")
    r = F._score_maps(model, runs, target, level=level)
    if r is not None:
        sc.items.append(FigureItem("score_maps", "Loss → score per benchmark", r[0], r[1]))
    un = dict(getattr(model, "unpredictable_", {}) or {})
    if un:
        sc.items.append(TableItem("unpredictable", "Not predictable", pl.DataFrame({"quantity": list(un), "reason": list(un.values())}),
                                  caption="Never extrapolated: these benchmarks need larger sampling runs or looser emergence settings."))
    if sc.items:
        out.append(sc)
    return out


def _backtest_section(bt: BacktestData) -> Section:
    sec = Section("backtests", "Backtests: predicted vs actual",
                  f"Runs held out of fitting ({bt.split or 'see the rows'}) and predicted at their final checkpoint. Points on the dashed "
                  f"diagonal are exact; error bars are the {bt.level:.0%} intervals, which should cover about {bt.level:.0%} of the "
                  "held-out values.")
    r = F._parity(bt)
    if r is not None:
        sec.items.append(FigureItem("parity", "Parity per method", r[0], r[1]))
    comp = comparison_table(bt)
    if comp.height:
        pct = [c for c in comp.columns if c not in ("quantity", "winner")]
        sec.items.append(TableItem("comparison", "Per quantity: median relative error of each method, and the winner (lowest)", comp,
                                   percent=pct, caption="Columns coverage:<method>, when present, are the methods' interval coverage."
                                   if any(c.startswith("coverage:") for c in comp.columns) else ""))
    dec = bt.decisions()
    if dec.height:
        sec.items.append(TableItem(
            "decisions", "Decisions among held-out mixtures, per method, quantity and scale", dec.drop("best_run"),
            caption="Would the model pick the right mixture? spearman: rank correlation of predicted and actual values among the "
                    "held-out mixtures at that scale; pairwise_accuracy: share of mixture pairs ordered right; chosen_run / "
                    "chosen_rank: the model's pick (lowest predicted loss, highest predicted score) and its actual rank (1 = the "
                    "true best); regret: how much worse the pick actually is than the best, in the quantity's units."))
    r = F._coverage(bt)
    if r is not None:
        sec.items.append(FigureItem("coverage", "Interval coverage", r[0], r[1]))
    s = bt.summary()
    if s.height:
        sec.items.append(TableItem("errors", "Errors and coverage per method and quantity", s,
                                   percent=("median_rel_error", "mean_rel_error", "coverage")))
    for m, un in bt.unpredictable.items():
        for q, why in un.items():
            sec.items.append(Note(f"{m}: {q} not predictable: {why}", "warn"))
    if not sec.items:
        sec.items.append(Note("The backtest has no rows (no held-out quantity was predicted).", "warn"))
    return sec


def _decision_notes(search: SearchData) -> list[Note]:
    """How sure the pick is, the robust region, what binds and how far it extrapolates
    (the headline of :mod:`mixopt.search.summary`, from the summary's ``decision``)."""
    from mixopt.search.summary import headline_lines

    dec = search.summary.get("decision") or {}
    if not dec:
        return []
    lines = headline_lines(dec, search.best, search.domains, search.objectives, float(search.summary.get("level") or 0.9),
                           infeasible=bool(search.summary.get("infeasible")))
    return [Note(x.strip().removeprefix("WARNING: "), "warn" if x.strip().startswith(("WARNING", "NO FEASIBLE")) else "info")
            for x in lines[1:] if x.strip()]


def _search_section(s: SearchData) -> Section:
    n_obj = len(s.objectives)
    sec = Section("search", "Mixture search",
                  f"The Pareto set of {s.pareto.height} mixtures over {n_obj} objective(s) "
                  f"({', '.join(F._obj_label(n, d) for n, d in s.objectives)}); "
                  + (f"constraints: {'; '.join(s.summary.get('constraints') or [])}. " if s.summary.get("constraints") else "")
                  + ("The shortlist is the search's own, ranked by the probability of being the best on the surrogate's joint draws "
                     "(rank 1 is the recommended mixture). " if s.shortlist is not None else
                     "The shortlist is the best row for the search's weights, the best row of each objective, then the next best by "
                     "the weighted score."))
    if s.pareto.height == 0:
        notes = s.summary.get("notes") or []
        sec.items.append(Note("No feasible mixture was found: relax the constraints or the bounds, or run more trials. "
                              + " ".join(str(n) for n in notes), "warn"))
        sec.items += _decision_notes(s)
        return sec
    r = F._shortlist(s)
    if r is not None:
        sec.items.append(FigureItem("shortlist", "Shortlisted mixtures and their predicted scores", r[0], r[1]))
        sec.items.append(TableItem("shortlist_table", "Shortlist", _shortlist_table(s),
                                   caption=f"Predicted values with their {s.level:.0%} intervals in brackets."))
    r = F._pareto_front(s)
    if r is not None:
        sec.items.append(FigureItem("pareto_front", "Pareto front (2-D projections)", r[0], r[1],
                                    caption="Orange circles mark the shortlist, the star its rank 1 (the recommended mixture); grey points "
                                            "are the other feasible trials (when the trials are known)."))
    r = F._parallel(s)
    if r is not None:
        sec.items.append(FigureItem("parallel_coordinates", "Pareto set in parallel coordinates", r[0], r[1]))
    r = F._hv_history(s)
    if r is not None:
        sec.items.append(FigureItem("hypervolume", "Hypervolume vs trials", r[0], r[1],
                                    caption="Hypervolume of the feasible front found so far, with the search's final reference point. "
                                            "A curve that has flattened means more trials would change little."))
    else:
        sec.items.append(Note("No optimisation history: the trials are not available (write the report with "
                              "`mixopt optimize CONFIG --report FILE`, or keep the study in a SQLite storage).", "info"))
    return sec


def _shortlist_table(s: SearchData) -> pl.DataFrame:
    rows = F.shortlist_rows(s)
    out: dict[str, list[Any]] = {"#": list(range(1, rows.height + 1))}
    if "trial" in rows.columns:
        out["trial"] = rows["trial"].to_list()
    for d in s.domains:
        if f"mix:{d}" in rows.columns:
            out[d] = [round(float(v), 3) for v in rows[f"mix:{d}"].to_list()]
    for c, name in (("flops", "FLOPs"), ("params", "N"), ("tokens", "D")):
        if c in rows.columns:
            out[name] = [F.fmt(v, 3) for v in rows[c].to_list()]
    for c, name in (("p_best", "P(best)"), ("p_within_epsilon", "P(within eps)"), ("p_feasible", "P(feasible)")):
        if c in rows.columns:
            out[name] = [None if v is None else round(float(v), 3) for v in rows[c].to_list()]
    named = [n for n, _ in s.objectives] + [str(c).split()[0] for c in (s.summary.get("constraints") or [])]
    qs = [q for q in F._score_quantities(s) if q in named] or F._score_quantities(s)[:3]
    for q in qs:
        m, lo, hi = rows[q].to_list(), rows[f"{q}:lower"].to_list(), rows[f"{q}:upper"].to_list()
        out[q] = [F._interval_text(float(a), _f(b), _f(c), 3) if a is not None else "-" for a, b, c in zip(m, lo, hi, strict=True)]
    return pl.DataFrame(out)


def _validation_section(v: pl.DataFrame) -> Section:
    sec = Section("validation", "Validation: predicted vs measured",
                  "Mixtures that were trained after the search, compared with what the surrogate predicted for them.")
    r = F._validation(v)
    if r is not None:
        sec.items.append(FigureItem("validation", "Predicted vs measured", r[0], r[1]))
        t = v.with_columns(((pl.col("predicted") - pl.col("measured")).abs() / pl.col("measured").abs()).alias("rel_error"),
                           ((pl.col("lower") <= pl.col("measured")) & (pl.col("measured") <= pl.col("upper"))).alias("covered"))
        sec.items.append(TableItem("validation_table", "Validation runs", t, percent=("rel_error",)))
    else:
        sec.items.append(Note("The validation table is empty.", "warn"))
    return sec


def _flat(v: Any) -> str:
    """A setting as short ``key=value`` text (nested mappings flattened with dots)."""
    if isinstance(v, str):
        return v
    if isinstance(v, Mapping):
        parts = []
        for k, x in v.items():
            if isinstance(x, Mapping):
                parts += [f"{k}.{kk}={json.dumps(xx, default=str)}" for kk, xx in x.items()]
            else:
                parts.append(f"{k}={json.dumps(x, default=str)}")
        return ", ".join(parts)
    return json.dumps(v, default=str)


def _provenance_section(prov: Mapping[str, Any]) -> Section:
    sec = Section("provenance", "Provenance", "What produced this report, so it can be reproduced and checked.")
    rows = [{"item": k, "value": _flat(v)} for k, v in prov.items() if k != "files" and v not in (None, {}, [])]
    sec.items.append(TableItem("provenance_table", "Versions, settings and seeds",
                               pl.DataFrame(rows, schema={"item": pl.String, "value": pl.String}), wrap=True))
    files = prov.get("files") or []
    if files:
        sec.items.append(TableItem("files", "Data files (SHA-256)",
                                   pl.DataFrame([{"role": f["role"], "path": f["path"], "bytes": f.get("bytes"), "sha256": f.get("sha256")}
                                                 for f in files])))
    return sec


# -- entry point ---------------------------------------------------------------------------------
def build_report(
    *,
    model: Any = None,
    runs: RunTable | None = None,
    target: F.Target | None = None,
    backtest: Any = None,
    search: Any = None,
    validation: Any = None,
    loop: Any = None,
    level: float = 0.9,
    title: str = "mixopt report",
    files: Mapping[str, str | Path | None] | None = None,
    settings: Mapping[str, Any] | None = None,
    command: Sequence[str] | None = None,
) -> Report:
    """Build a report from whatever is given.

    Args:
        model: a fitted surrogate (fit and benchmark sections, predictions at the target).
        runs: the sampling runs the model was fitted on (needed for the fit figures).
        target: where to extrapolate; default: the search's best row, else 10x the largest
            sampling run at the mean sampling mixture.
        backtest: :class:`BacktestData`, ``compare()``'s ``(results, table)``, a list of
            ``BacktestResult``, or a results file.
        search: :class:`SearchData`, a ``SearchResult`` or a Pareto-table file.
        validation: a predicted-vs-measured frame or file.
        loop: a loop's :class:`~mixopt.report.loop.LoopData`, or its ``[validate] output`` folder
            (``round_<r>/round.json``): the round-by-round section.
        level: interval coverage for the model's predictions.
        title: report title.
        files: ``{role: path}`` of input files to hash in the provenance.
        settings: extra settings to record (e.g. the search config).
        command: the command line that produced the report.

    Raises:
        SchemaError: nothing to report, or unreadable inputs.
    """
    if model is None and backtest is None and search is None and validation is None and loop is None:
        raise SchemaError("Nothing to report: give a model (with its runs), a backtest, a search, a validation table or a loop folder.")
    if not 0 < level < 1:
        raise SchemaError(f"level must be in (0, 1), got {level}.")
    if model is not None:
        model._check_fitted()
    bt = _as_backtest(backtest)
    sr = _as_search(search)
    val = _as_validation(validation)
    lp = loop if loop is None or isinstance(loop, LoopData) else read_loop(loop)
    target_is_best = False
    if target is None and sr is not None:
        target = target_from_search(sr, model)
        if target is not None and model is not None and model.uses_mixture and not target.mixture:
            target = None
        target_is_best = target is not None
    if target is None and model is not None and runs is not None:
        target = F.default_target(model, runs)
    sections = [_summary_section(model, runs, target, sr, bt, level, target_is_best)]
    ev_sec = _evidence_section(model, runs)
    if ev_sec is not None:
        sections.append(ev_sec)
    if model is not None:
        if runs is not None and target is not None:
            sections += _fit_sections(model, runs, target, level)
        else:
            sections.append(Section("fits", "Scaling-law fits", items=[Note("Give the sampling runs (--runs) to draw the fitted laws "
                                                                              "through their points.", "warn")]))
    if bt is not None:
        sections.append(_backtest_section(bt))
    if sr is not None:
        sections.append(_search_section(sr))
    if val is not None:
        sections.append(_validation_section(val))
    if lp is not None:
        sections.append(loop_section(lp))
    prov = provenance(files=files, model=model, search=sr, backtest=bt, settings=settings, command=command)
    sections.append(_provenance_section(prov))
    what = [w for w, x in (("fits", model), ("backtest", bt), ("search", sr), ("validation", val), ("loop", lp)) if x is not None]
    sub = f"{', '.join(what)}" + (f" · surrogate {model.kind}" if model is not None else "") + f" · generated {prov['generated_at']}"
    return Report(title=title, subtitle=sub, sections=sections, provenance=prov)


__all__ = ["build_report", "provenance", "target_from_search"]
