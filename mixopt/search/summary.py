"""The lines a person reads first, before any table: what to pick and how sure it is.

:func:`headline` turns a :class:`~mixopt.search.results.SearchResult` (its ``best`` = shortlist
rank 1 and its ``decision``, :mod:`mixopt.search.decision`) into plain sentences: the pick,
P(best) and P(feasible), whether the picks can be told apart, the robust region (what the
data decide), what binds, and how far the target lies beyond the sampling runs. With no
feasible mixture it says which constraint binds and how close the search came.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


def _p(x: Any) -> str:
    return "?" if x is None else f"{float(x):.2f}"


def _mix(row: Mapping[str, Any], domains: Sequence[str]) -> str:
    """The mixture of a result row; a schedule's phases (``mix@k:<d>``, ``phase_end@k``) after its whole-run mixture."""
    text = ", ".join(f"{d} {100 * float(row[f'mix:{d}']):.1f}%" for d in domains if row.get(f"mix:{d}") is not None)
    phases = schedule_text(row, domains)
    return f"{text} over the whole run; {phases}" if phases else text


def schedule_text(row: Mapping[str, Any], domains: Sequence[str]) -> str:
    """``"phase 1 (to 80%): web 70.0%, ...; phase 2 (to 100%): ..."`` for a row with schedule columns, else ``""``."""
    from mixopt.data.phases import phase_end_column, phase_mix_column

    parts, k, start = [], 1, 0.0
    while row.get(phase_mix_column(k, domains[0]) if domains else "") is not None:
        end = row.get(phase_end_column(k))
        end = 1.0 if end is None else float(end)
        mix = ", ".join(f"{d} {100 * float(row[phase_mix_column(k, d)]):.1f}%" for d in domains)
        parts.append(f"phase {k} ({100 * start:.0f}-{100 * end:.0f}% of tokens): {mix}")
        start, k = end, k + 1
    return "; ".join(parts) if len(parts) > 1 else ""


def headline(result: Any) -> list[str]:
    """Plain-text summary lines of a :class:`~mixopt.search.results.SearchResult` (see the module docstring)."""
    return headline_lines(result.decision or {}, result.best, result.domains, result.objectives, result.level,
                          infeasible=result.infeasible)


def headline_lines(dec: Mapping[str, Any], best: Mapping[str, Any] | None, domains: Sequence[str],
                   objectives: Sequence[Sequence[str]], level: float, *, infeasible: bool = False) -> list[str]:
    """:func:`headline` from the parts a written summary JSON holds (``decision``, ``best``, ...)."""
    if infeasible:
        return _infeasible_lines(dec)
    if best is None:
        return []
    lines = [f"PICK: trial {best['trial']} (shortlist rank 1): {_mix(best, domains)}; {float(best['flops']):.3g} FLOPs"]
    preds = []
    for n, *_ in objectives:
        if n != "compute" and best.get(n) is not None:
            lo, hi = best.get(f"{n}:lower"), best.get(f"{n}:upper")
            preds.append(f"{n} {float(best[n]):.4g}" + (f" [{float(lo):.4g}, {float(hi):.4g}]" if lo is not None and hi is not None else ""))
    if preds:
        lines.append(f"  predicted ({level:.0%} intervals): " + "; ".join(preds))
    picks = dec.get("picks") or []
    if picks:
        top = picks[0]
        draws = dec.get("draws") or {}
        kind = draws.get("kind")
        cons = "; ".join(f"{c} {_p(p)}" for c, p in (top.get("constraints") or {}).items())
        lines.append(f"  how sure: P(best) {_p(top['p_best'])} among {dec.get('n_candidates')} candidates, "
                     f"P(within {dec.get('epsilon')} of the best) {_p(top['p_within_epsilon'])}, "
                     f"P(feasible) {_p(top['p_feasible'])}" + (f" ({cons})" if cons else "")
                     + f" [{draws.get('n')} {kind} draws]")
        if kind == "comonotone":
            lines.append("  note: this surrogate gives no joint draws; comonotone draws move every mixture together, "
                         "so P(best) overstates how well the picks are told apart")
        if len(picks) > 1:
            rest = ", ".join(f"#{q['rank']} trial {q['trial']} P(best) {_p(q['p_best'])} P(feasible) {_p(q['p_feasible'])}"
                             for q in picks[1:])
            lines.append(f"  other picks: {rest}")
    region = dec.get("robust_region") or {}
    if dec.get("indistinguishable"):
        lines.append(f"  the picks are indistinguishable: {dec.get('n_within_epsilon')} candidates are within "
                     f"{dec.get('epsilon')} of the best with probability >= {dec.get('robust_p')}")
    if region.get("text"):
        lines.append(f"  robust region (what the data decide; {region.get('n')} mixtures within {dec.get('epsilon')} "
                     f"of the best with P >= {region.get('threshold'):.2g}): {region['text']}")
    lines.append("  binds: " + (_binding_text(dec.get("binding") or []) or "nothing (no constraint or bound is active at the pick)"))
    lines += _extrapolation_lines(dec.get("extrapolation"))
    lines += _schedule_lines(dec.get("schedule_vs_constant"), domains)
    return lines


def _schedule_lines(svc: Mapping[str, Any] | None, domains: Sequence[str]) -> list[str]:
    """The schedule-vs-constant decision of a search over schedules (:mod:`mixopt.search.phased`)."""
    if not svc:
        return []
    lines = [f"  SCHEDULE OR CONSTANT: {svc.get('text')}"]
    const = svc.get("constant")
    if const:
        mix = ", ".join(f"{d} {100 * float(const[f'mix:{d}']):.1f}%" for d in domains if const.get(f"mix:{d}") is not None)
        lines.append(f"  best constant mixture (from trial {const.get('source_trial')}): {mix}")
    return lines


def _binding_text(binding: Sequence[Mapping[str, Any]]) -> str:
    parts = []
    for b in binding:
        if "bound" in b:
            parts.append(f"{b['bound']} (at {float(b['value']):.3f})")
        elif "threshold" in b and "value" in b:
            req = f", needs {b['required']:g}" if b.get("required") is not None else ""
            parts.append(f"{b['constraint']} (P(met) {_p(b.get('p_met'))}{req}; predicted {float(b['value']):.4g} vs {b['threshold']:.4g})")
        else:
            parts.append(f"{b['constraint']} (P(met) {_p(b.get('p_met'))})")
    return "; ".join(parts)


def _extrapolation_lines(ex: Mapping[str, Any] | None) -> list[str]:
    if not ex:
        return []
    r = ex.get("compute_ratio")
    if r is None:
        return [f"  extrapolation: {ex.get('warning') or 'unknown'}"]
    reach = ex.get("calibrated_ratio")
    where = f"{r:.3g}x the compute of the largest sampling run" if r > 1 else f"inside the sampling runs' compute ({r:.3g}x the largest)"
    covered = f"; the internal backtests covered {reach:.3g}x" if reach is not None else "; no internal backtest measured the intervals that far"
    out = [f"  extrapolation: the target is {where}{covered if r > 1 else ''}"]
    if ex.get("warning"):
        out.append(f"  WARNING: {ex['warning']}")
    return out


def _infeasible_lines(dec: Mapping[str, Any]) -> list[str]:
    inf = dec.get("infeasible") or {}
    lines = [f"NO FEASIBLE MIXTURE: {inf.get('reason') or 'no trial meets every constraint'}"]
    for b in inf.get("binding") or []:
        if "closest_value" in b:
            lines.append(f"  binds: {b['constraint']}: met by {b['n_met']} trials; closest {b['closest_value']:.4g} "
                         f"({b.get('value_is', 'predicted')}; threshold {b['threshold']:.4g}, trial {b['closest_trial']})")
        else:
            lines.append(f"  binds: {b['constraint']}: met by {b['n_met']} trials; closest misses by {-b['closest_margin']:.4g}")
    lines.append("  relax the binding constraint (or its probability), widen the bounds, or raise the compute; "
                 "the result files are written with their headers and no rows")
    lines += _extrapolation_lines(dec.get("extrapolation"))
    return lines


__all__ = ["headline", "headline_lines"]
