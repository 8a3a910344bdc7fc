"""A study's finished trials as a :class:`SearchResult`: tables, Pareto set, the decision.

:func:`build_result` turns the trials into the trial table and the Pareto set
(:mod:`mixopt.search.results`), re-predicts the best feasible trials jointly and ranks the
shortlist by the probability of being the best (:mod:`mixopt.search.decision`), and, when no
trial is feasible, says which constraint binds and how close the search came
(:func:`infeasibility`). Every table keeps its columns when it has no rows, so the files a
search writes always carry a header.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import numpy as np
import optuna
import polars as pl
from optuna.trial import FrozenTrial, TrialState

from mixopt.errors import SearchError
from mixopt.search import decision as D
from mixopt.search.objectives import Problem
from mixopt.search.results import SearchResult, default_reference, hypervolume, pareto_mask
from mixopt.search.shortlist import DEFAULT_SHORTLIST
from mixopt.search.space import Points

logger = logging.getLogger(__name__)


def _trial_arrays(problem: Problem, finished: list[FrozenTrial]) -> dict[str, np.ndarray]:
    names = list(problem.space.names)
    n, m, c = len(finished), len(problem.objectives), len(problem.constraint_names)
    u = np.array([[t.params.get(k, np.nan) for k in names] for t in finished], dtype=float).reshape(n, len(names))
    values = np.full((n, m), np.nan)
    cons = np.full((n, c), np.nan)
    complete = np.zeros(n, dtype=bool)
    for i, t in enumerate(finished):
        if t.state == TrialState.COMPLETE and t.values is not None:
            values[i] = t.values
            complete[i] = True
            tc = t.constraints
            cons[i] = [tc.get(k, np.nan) for k in problem.constraint_names]
    return {"u": u, "values": values, "cons": cons, "complete": complete,
            "number": np.array([t.number for t in finished], dtype=np.int64),
            "state": np.array([t.state.name for t in finished], dtype=object)}


def _trial_table(problem: Problem, a: dict[str, np.ndarray], pts: Points, feasible: np.ndarray) -> pl.DataFrame:
    space = problem.space
    cols: dict[str, Any] = {"trial": a["number"], "state": a["state"].astype(str)}
    for j, d in enumerate(space.domains):
        cols[f"mix:{d}"] = pts.mixture[:, j]
    cols.update(_phase_columns(space, pts))
    cols.update(flops=pts.flops, params=pts.params, tokens=pts.tokens)
    cols.update(_data_columns(space, pts))
    for j, name in enumerate(problem.objective_names):
        cols[f"obj:{name}"] = a["values"][:, j]
    for j, name in enumerate(problem.constraint_names):
        cols[f"con:{name}"] = a["cons"][:, j]
    cols["feasible"] = feasible
    cols["pareto"] = np.zeros(len(feasible), dtype=bool)
    return pl.DataFrame(cols)


def build_result(
    problem: Problem,
    study: optuna.Study,
    *,
    study_name: str,
    storage: str | None,
    sampler: str,
    seed: int,
    n_new: int,
    elapsed_s: float,
    executor: str,
    reference_point: Mapping[str, float] | None = None,
    weights: Mapping[str, float] | None = None,
    shortlist_size: int = DEFAULT_SHORTLIST,
    n_draws: int = D.DEFAULT_DRAWS,
    epsilon: float = D.DEFAULT_EPSILON,
) -> SearchResult:
    """Tables, Pareto set, hypervolume, the decision-ranked shortlist and ``best`` (= its rank 1)."""
    D.check_settings(n_draws, epsilon)
    space = problem.space
    finished = [t for t in study.get_trials(deepcopy=False) if t.state.is_finished()]
    a = _trial_arrays(problem, finished)
    n = len(finished)
    ok_u = np.all(np.isfinite(a["u"]), axis=1)
    pts = space.decode(np.where(ok_u[:, None], a["u"], 0.5)) if n else None
    feasible = a["complete"] & (np.all(a["cons"] <= 0, axis=1) if a["cons"].shape[1] else True)
    obj_names = problem.objective_names
    dirs = problem.directions
    trials_df = _trial_table(problem, a, pts, feasible) if pts is not None else pl.DataFrame()

    cand, front_idx = _pareto_candidates(a, feasible & ok_u, dirs)
    if trials_df.height:
        on_front = np.zeros(n, dtype=bool)
        on_front[front_idx] = True
        trials_df = trials_df.with_columns(pl.Series("pareto", on_front))

    notes: list[str] = []
    objectives = tuple(zip(obj_names, dirs, strict=True))
    w = dict(weights) if weights else {o: 1.0 for o in obj_names}
    wv = [float(w.get(o, 0.0)) for o in obj_names]
    if front_idx.size:
        assert pts is not None
        order = front_idx[np.argsort(-a["values"][front_idx, 0] if dirs[0] == "maximize" else a["values"][front_idx, 0], kind="stable")]
        pareto = _rows(problem, trials_df, pts, order, notes)
        front_vals = a["values"][order]
        ref = _reference(front_vals, reference_point, obj_names, dirs)
        hv = hypervolume(front_vals, ref, dirs)
        ref_map = {o: float(r) for o, r in zip(obj_names, ref, strict=True)}
        short, decision, cands = _decide(problem, trials_df, pts, a, cand, order, wv, shortlist_size, seed, n_draws, epsilon, notes)
    else:
        hv = 0.0
        ref_map = dict(reference_point or {})
        pareto, short, decision, cands = _no_front(problem, trials_df, pts, a, notes)
    best = _best_of(short, pareto, objectives, wv)
    return SearchResult(
        pareto=pareto,
        trials=trials_df,
        objectives=objectives,
        constraints=problem.constraint_names,
        domains=space.domains,
        hypervolume=float(hv),
        reference_point=ref_map,
        weights=w,
        best=best,
        level=problem.level,
        study_name=study_name,
        storage=storage,
        sampler=sampler,
        seed=seed,
        n_trials=n,
        n_new=n_new,
        n_complete=int(a["complete"].sum()),
        n_failed=int(np.sum(a["state"] == "FAIL")),
        n_feasible=int(feasible.sum()),
        elapsed_s=float(elapsed_s),
        executor=executor,
        notes=tuple(notes),
        shortlist=short,
        decision=decision,
        candidates=cands,
    )


def _pareto_candidates(a: dict[str, np.ndarray], usable: np.ndarray, dirs: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Feasible trials, one per distinct parameter vector (first kept), and those on the Pareto front."""
    cand = np.flatnonzero(usable)
    if not cand.size:
        return cand, np.zeros(0, dtype=int)
    _, first = np.unique(np.round(a["u"][cand], 12), axis=0, return_index=True)
    cand = cand[np.sort(first)]
    return cand, cand[pareto_mask(a["values"][cand], dirs)]


def _reference(front_vals: np.ndarray, reference_point: Mapping[str, float] | None, obj_names: tuple[str, ...],
               dirs: tuple[str, ...]) -> np.ndarray:
    """The hypervolume reference point: the given one (every objective) or the default from the front."""
    if reference_point is None:
        return default_reference(front_vals, dirs)
    missing = [o for o in obj_names if o not in reference_point]
    if missing:
        raise SearchError(f"reference_point lacks objective(s) {missing}; give a value for each of {list(obj_names)}.")
    return np.array([float(reference_point[o]) for o in obj_names])


def _no_front(problem: Problem, trials_df: pl.DataFrame, pts: Points | None, a: dict[str, np.ndarray],
              notes: list[str]) -> tuple[pl.DataFrame, pl.DataFrame, dict[str, Any], pl.DataFrame]:
    """No feasible trial: empty (headed) tables and a decision that says which constraint binds."""
    pareto = _empty_rows(problem, trials_df, pts)
    short = _with_decision_columns(pareto, problem).head(0)
    infeasible = infeasibility(problem, a, pts) if pts is not None else {
        "reason": "no trial finished", "binding": [], "closest": None}
    notes.append(infeasible["reason"])
    decision = {"infeasible": infeasible, "picks": [], "robust_region": None, "binding": infeasible["binding"],
                "extrapolation": D.extrapolation(problem, pts) if pts is not None else None}
    return pareto, short, decision, pl.DataFrame()


def _best_of(short: pl.DataFrame, pareto: pl.DataFrame, objectives: tuple[tuple[str, str], ...],
             w: list[float]) -> dict[str, Any] | None:
    """Shortlist rank 1, with ``scalarized`` = its weighted [0, 1]-scaled objectives over the front."""
    if short.height == 0:
        return None
    row = short.row(0, named=True)
    names = [n for n, _ in objectives]
    sign = np.array([1.0 if d == "maximize" else -1.0 for _, d in objectives])
    f = pareto.select([f"obj:{n}" for n in names]).to_numpy().astype(float) * sign
    lo, hi = f.min(axis=0), f.max(axis=0)
    v = np.array([float(row[f"obj:{n}"]) for n in names]) * sign
    s = np.where(hi > lo, (v - lo) / np.where(hi > lo, hi - lo, 1.0), 1.0)
    wa = np.asarray(w)
    row["scalarized"] = float(s @ wa / wa.sum())
    return row


def _decide(problem: Problem, trials_df: pl.DataFrame, pts: Points, a: dict[str, np.ndarray], cand: np.ndarray,
            order: np.ndarray, w: list[float], k: int, seed: int, n_draws: int, epsilon: float,
            notes: list[str]) -> tuple[pl.DataFrame, dict[str, Any], pl.DataFrame]:
    """The shortlist ranked on joint draws, and the decision summary (see :mod:`mixopt.search.decision`)."""
    dirs = problem.directions
    vals = a["values"]
    if len(dirs) == 1:  # one objective: its front is the best row; the pool is the top distinct mixtures by the objective
        ranked = cand[np.argsort(-vals[cand, 0] if dirs[0] == "maximize" else vals[cand, 0], kind="stable")]
        feats = np.round(pts.features()[ranked], 9)
        knee = ranked[np.sort(np.unique(feats, axis=0, return_index=True)[1])[:k]]
        pool, scale = knee, vals[knee]  # rank 1 from the pool; knee distances scaled over it
    else:
        knee = order[D.knee_region(vals[order], dirs, w, k)]
        ranked = cand[D.candidate_order(vals[cand], vals[order], dirs, w, np.flatnonzero(np.isin(cand, knee)), limit=cand.size)]
        pool, scale = order, vals[order]
    limit = D.MAX_CANDIDATES
    while True:  # widen the candidates while the robust region fills them (it must not be cut by the limit)
        sel = ranked[np.sort(np.concatenate([np.arange(min(limit, ranked.size)), np.flatnonzero(np.isin(ranked, knee))]))]
        sel = sel[np.sort(np.unique(sel, return_index=True)[1])]
        sub = _subset(pts, sel)
        stats = _draw_stats(problem, sub, vals[order], w, n_draws, seed, epsilon, notes)
        full = np.mean(stats.p_near >= D.ROBUST_P) > 0.8
        if not full or sel.size >= ranked.size or limit >= D.MAX_WIDENED:
            break
        limit *= 2
    if full and sel.size < ranked.size:
        notes.append(f"the robust region fills all {sel.size} candidates judged; it may reach further than reported")
    chance = [c for c in problem.constraints if c.probability is not None]
    if chance and stats.eligible.all():
        short_of = [j for j, c in enumerate(problem.constraints) if c.probability is not None
                    and not np.any(stats.p_constraint[:, j] >= c.probability)]
        if short_of:
            notes.append("no candidate meets " + "; ".join(repr(problem.constraints[j].name) for j in short_of)
                         + " with its probability on the joint draws (the search's normal bound let them through); "
                         "the picks are ranked anyway: read their P(feasible)")
    picks = D.pick_shortlist(stats, vals[sel], sub.features(), dirs, np.flatnonzero(np.isin(sel, knee)), np.isin(sel, pool), k)
    rows = _rows(problem, trials_df, pts, sel[picks], notes)
    on_front = np.isin(sel[picks], order)
    mean_knee = D._knee_against(vals[sel[picks]], scale, dirs, w)
    extra = {"rank": np.arange(1, len(picks) + 1, dtype=np.int64), "knee_distance": mean_knee,
             "p_best": stats.p_best[picks], "p_within_epsilon": stats.p_near[picks], "p_feasible": stats.p_feasible[picks]}
    for j, c in enumerate(problem.constraint_names):
        extra[f"p:{c}"] = stats.p_constraint[picks, j]
    extra["on_front"] = on_front
    short = pl.DataFrame(extra).hstack(rows)
    region = D.robust_region(stats, sub.mixture, sub.flops, problem.space.domains, phases=sub.phases, phase_end=sub.phase_end)
    n_near = int(np.sum((stats.p_near >= D.ROBUST_P) & stats.eligible))
    top = picks[0]
    decision: dict[str, Any] = {
        "draws": {"kind": stats.kind, "n": n_draws, "seed": seed},
        "epsilon": epsilon,
        "robust_p": D.ROBUST_P,
        "n_candidates": int(sel.size),
        "picks": [{"rank": r + 1, "trial": int(a["number"][sel[i]]), "p_best": float(stats.p_best[i]),
                   "p_within_epsilon": float(stats.p_near[i]), "p_feasible": float(stats.p_feasible[i]),
                   "constraints": {c: float(stats.p_constraint[i, j]) for j, c in enumerate(problem.constraint_names)},
                   "on_front": bool(on_front[r])} for r, i in enumerate(picks)],
        "p_beats": [[None if x == y else stats.beats(x, y) for y in picks] for x in picks],
        "p_best_shortlist": float(stats.p_best[picks].sum()),
        "indistinguishable": bool(stats.p_best[top] < 0.5 and n_near >= 2),
        "n_within_epsilon": n_near,
        "robust_region": region,
        "binding": D.binding(problem, stats, top, sub, top),
        "extrapolation": D.extrapolation(problem, _subset(sub, np.array([top]))),
        "infeasible": None,
    }
    if problem.space.schedule is not None:  # a search over schedules: is rank 1 worth more than the best constant mixture?
        from mixopt.search.phased import schedule_vs_constant

        svc = schedule_vs_constant(problem, pts, a["number"], cand, int(sel[top]), vals[order], w, n_draws=n_draws,
                                   seed=seed, epsilon=epsilon)
        if svc is not None:
            decision["schedule_vs_constant"] = svc
    cands = pl.DataFrame({"trial": a["number"][sel], **{f"mix:{d}": sub.mixture[:, j] for j, d in enumerate(problem.space.domains)},
                          **_phase_columns(problem.space, sub),
                          "flops": sub.flops, **{f"obj:{o}": vals[sel, j] for j, o in enumerate(problem.objective_names)},
                          "p_best": stats.p_best, "p_within_epsilon": stats.p_near, "p_feasible": stats.p_feasible,
                          "eligible": stats.eligible})
    return short, decision, cands


def _draw_stats(problem: Problem, sub: Points, front_vals: np.ndarray, w: list[float], n_draws: int, seed: int,
                epsilon: float, notes: list[str]) -> D.DrawStats:
    try:
        dv, dc, kind = D.draw_values(problem, sub, n_draws=n_draws, seed=seed)
    except Exception as e:  # noqa: BLE001 - a surrogate whose draws fail still gets a ranked shortlist
        notes.append(f"joint draws failed ({type(e).__name__}: {e}); comonotone draws from the intervals were used")
        pred = problem.surrogate.predict(problem.targets(sub), intervals=True, level=0.9)
        draws = D.comonotone_draws(pred, n_draws=n_draws, seed=seed)
        dv, dc = D.values_from_draws(problem, sub, draws, n_draws)
        kind = "comonotone"
    required = [c.probability for c in problem.constraints] + ([None] if problem.space.has_data_constraint else [])
    return D.draw_stats(dv, dc, problem.directions, scale_from=front_vals, weights=w, epsilon=epsilon,
                        required=required, kind=kind)


def _subset(pts: Points, idx: np.ndarray) -> Points:
    return pts.take(idx)


def infeasibility(problem: Problem, a: dict[str, np.ndarray], pts: Points) -> dict[str, Any]:
    """Why no trial is feasible: the constraint(s) that bind and how close the search came.

    Constraint values are as the sampler saw them (a chance constraint's ``p``-quantile, or
    the ``kappa`` bound). A constraint no completed trial meets binds on its own; when each
    is met by some trial but never all together, they bind jointly and the least-violating
    trial (smallest total violation) shows how close the search came.
    """
    done = np.flatnonzero(a["complete"])
    names = problem.constraint_names
    cons = {c.name: c for c in problem.constraints}
    if done.size == 0 or not names:
        return {"reason": "no trial completed: every evaluation failed (see the trials' mixopt:error)",
                "binding": [], "closest": None}
    c = a["cons"][done]
    per: list[dict[str, Any]] = []
    for j, name in enumerate(names):
        i = int(np.nanargmin(c[:, j]))
        entry: dict[str, Any] = {"constraint": name, "n_met": int(np.sum(c[:, j] <= 0)), "closest_trial": int(a["number"][done[i]]),
                                 "closest_margin": float(-c[i, j])}
        k = cons.get(name)
        if k is not None and k.target.quantities:
            entry["closest_value"] = k.threshold - float(c[i, j]) if k.op == ">=" else k.threshold + float(c[i, j])
            entry["threshold"] = k.threshold
            kap = k.effective_kappa(problem.kappa)
            entry["value_is"] = (f"the {k.probability:g}-quantile" if k.probability is not None else
                                 f"the mean {'-' if k.op == '>=' else '+'} {kap:g} std" if kap else "the predicted mean")
        per.append(entry)
    never = sorted((e for e in per if e["n_met"] == 0), key=lambda e: e["closest_margin"])
    viol = np.nansum(np.maximum(c, 0.0), axis=1)
    i = int(np.argmin(viol))
    row = done[i]
    closest = {"trial": int(a["number"][row]), "mixture": {d: float(pts.mixture[row, j]) for j, d in enumerate(problem.space.domains)},
               **({"phases": [{d: float(pts.phases[row, p, j]) for j, d in enumerate(problem.space.domains)}
                              for p in range(pts.phases.shape[1])],
                   "phase_end": [float(x) for x in np.asarray(pts.phase_end)[row]]} if pts.phases is not None else {}),
               "flops": float(pts.flops[row]), "total_violation": float(viol[i]),
               "violates": [names[j] for j in range(len(names)) if c[i, j] > 0]}
    if never:
        binding = never
        reason = "no mixture meets every constraint: " + "; ".join(_never_text(e) for e in never)
    else:
        binding = [e for e in per if e["constraint"] in closest["violates"]]
        reason = ("each constraint is met by some trial but never all together: "
                  + " and ".join(repr(e["constraint"]) for e in binding) + " bind jointly")
    mix = ", ".join(f"{d}={v:.3f}" for d, v in closest["mixture"].items())
    reason += f"; the closest trial {closest['trial']} ({mix}) misses by {closest['total_violation']:.4g} in total"
    return {"reason": reason, "binding": binding, "closest": closest}


def _never_text(e: Mapping[str, Any]) -> str:
    if "closest_value" in e:
        return (f"{e['constraint']!r} binds (no trial meets it; the closest, trial {e['closest_trial']}, reaches "
                f"{e['closest_value']:.4g} ({e['value_is']}) against {e['threshold']:.4g})")
    return f"{e['constraint']!r} binds (no trial meets it; the closest, trial {e['closest_trial']}, misses by {-e['closest_margin']:.4g})"


def _data_columns(space: Any, pts: Any) -> dict[str, Any]:
    """``tokens:<d>`` (tokens drawn from each domain) and ``epochs:<d>`` (passes over its unique
    tokens; null where the domain's supply is not limited)."""
    out: dict[str, Any] = {}
    tok = pts.mixture * pts.tokens[:, None]
    for j, d in enumerate(space.domains):
        out[f"tokens:{d}"] = tok[:, j]
    avail = space.data.available if space.data is not None else {}
    for j, d in enumerate(space.domains):
        out[f"epochs:{d}"] = pl.Series(f"epochs:{d}", tok[:, j] / avail[d] if d in avail else [None] * len(tok),
                                       dtype=pl.Float64)
    return out


def phase_column_names(space: Any) -> list[str]:
    """The schedule columns of a search's tables (:mod:`mixopt.data.phases`): ``mix@k:<d>`` for every
    phase, then ``phase_end@k`` for ``k = 1..K-1``; none without a schedule."""
    from mixopt.data.phases import phase_end_column, phase_mix_column

    sched = space.schedule
    if sched is None:
        return []
    K = sched.n_phases
    return [phase_mix_column(k, d) for k in range(1, K + 1) for d in space.domains] + [phase_end_column(k) for k in range(1, K)]


def _phase_columns(space: Any, pts: Points) -> dict[str, np.ndarray]:
    """The schedule columns of decoded points (empty without a schedule)."""
    names = phase_column_names(space)
    if not names or pts.phases is None:
        return {}
    P, E = pts.phases, np.asarray(pts.phase_end).reshape(len(pts), -1)
    vals = [P[:, k, j] for k in range(P.shape[1]) for j in range(P.shape[2])] + [E[:, k] for k in range(E.shape[1])]
    return dict(zip(names, vals, strict=True))


def _rows(problem: Problem, trials_df: pl.DataFrame, pts: Points, idx: np.ndarray, notes: list[str]) -> pl.DataFrame:
    """Trial rows ``idx`` in the Pareto table's format, with every prediction (one predict call)."""
    return _add_predictions(problem, trials_df[idx.tolist()].drop("state", "pareto"), pts, idx, notes)


def _empty_rows(problem: Problem, trials_df: pl.DataFrame, pts: Points | None) -> pl.DataFrame:
    """A Pareto table with every column and no rows (a header for the files)."""
    if pts is not None and trials_df.height:
        return _rows(problem, trials_df, pts, np.array([0]), []).head(0)
    space = problem.space
    cols = ["trial", *[f"mix:{d}" for d in space.domains], *phase_column_names(space), "flops", "params", "tokens",
            *[f"tokens:{d}" for d in space.domains], *[f"epochs:{d}" for d in space.domains],
            *[f"obj:{o}" for o in problem.objective_names], *[f"con:{c}" for c in problem.constraint_names]]
    schema: dict[str, Any] = {c: pl.Float64 for c in cols}
    schema["trial"] = pl.Int64
    schema["feasible"] = pl.Boolean
    return pl.DataFrame(schema=schema)


def _with_decision_columns(rows: pl.DataFrame, problem: Problem) -> pl.DataFrame:
    """``rows`` with the shortlist's decision columns first (typed, for an empty shortlist)."""
    schema: dict[str, Any] = {"rank": pl.Int64, "knee_distance": pl.Float64, "p_best": pl.Float64,
                              "p_within_epsilon": pl.Float64, "p_feasible": pl.Float64}
    schema.update({f"p:{c}": pl.Float64 for c in problem.constraint_names})
    schema["on_front"] = pl.Boolean
    return pl.DataFrame(schema=schema).hstack(rows.head(0)) if rows.height == 0 else rows


def _add_predictions(problem: Problem, pareto: pl.DataFrame, pts: Any, order: np.ndarray, notes: list[str]) -> pl.DataFrame:
    """Mean and interval of every predicted quantity for the front rows (one predict call)."""
    sub = _subset(pts, order)
    try:
        pred = problem.predict(sub, intervals=True)
    except Exception as e:  # noqa: BLE001 - intervals are optional; fall back to means
        notes.append(f"intervals unavailable ({type(e).__name__}: {e}); predicted means only")
        pred = problem.predict(sub, intervals=False)
    extra: dict[str, np.ndarray] = {}
    for j, q in enumerate(pred.names):
        extra[q] = pred.mean[:, j]
        if pred.lower is not None and pred.upper is not None:
            extra[f"{q}:lower"] = np.asarray(pred.lower)[:, j]
            extra[f"{q}:upper"] = np.asarray(pred.upper)[:, j]
    space = problem.space
    new = pl.DataFrame(extra)
    keep = [c for c in new.columns if c not in pareto.columns]
    front = pareto.hstack(new.select(keep))
    first = ["trial", *[f"mix:{d}" for d in space.domains], *phase_column_names(space), "flops", "params", "tokens",
             *[f"tokens:{d}" for d in space.domains], *[f"epochs:{d}" for d in space.domains],
             *[f"obj:{o}" for o in problem.objective_names]]
    rest = [c for c in front.columns if c not in first and c != "feasible"]
    return front.select([*first, *rest, "feasible"])


__all__ = ["build_result", "infeasibility"]
