"""A schedule against the best constant mixture: recommend the schedule only when the surrogate says it wins.

A search over schedules (``[phases]``) always finds *some* schedule at the top of its front,
even when its surrogate cannot tell schedules apart. After the decision ranks the picks
(:mod:`mixopt.search.decision`), :func:`schedule_vs_constant` asks whether rank 1 is worth
training as a schedule:

1. **The best constant mixture** under the same constraints. A constant mixture is a schedule
   whose phases are equal. Its candidates are the whole-run mixtures of the search's
   feasible trials, each run constant with the trial's phase ends. A candidate counts only if
   every phase meets its own floors and caps. The whole-run data limits are unchanged,
   because the whole-run mixture is unchanged. The constraints must hold at the predicted
   means. The best candidate has the smallest knee distance, with the front's scaling (one
   objective: the best value).
2. **Joint draws** of the two (the same fitted-parameter draw for both). P(schedule better) is
   the share of draws in which the schedule is closer to the draw's ideal point
   (:meth:`~mixopt.search.decision.DrawStats.beats`). Each objective's difference is reported
   as schedule minus constant, with its mean and a 90 % interval over the draws.
3. **A recency law?** The surrogate's stage-1 law must read *when* a domain's tokens come
   (``flpm_recency``, ``dml_recency``, :mod:`mixopt.laws.recency`). A model with a
   configured stage 1 (FLP-M) answers this from its configuration. Any other surrogate is
   tested: does it predict the schedule differently from the constant run with the same
   whole-run mixture? A law on the whole-run mixture alone cannot tell two such runs apart,
   so any advantage it shows comes from the whole-run mixture or from residual features,
   and is no evidence for the schedule.

The schedule is recommended only when the law reads schedules **and** P(schedule better) >=
:data:`P_SCHEDULE`. Otherwise the constant mixture is recommended, with the reason
(``no_recency_law`` or ``within_noise``). If no constant mixture meets the constraints, the
schedule is recommended (``no_feasible_constant``). The result lands in
``decision["schedule_vs_constant"]``, which the terminal summary, the summary JSON, the
report and :attr:`SearchResult.recommended <mixopt.search.results.SearchResult>` read.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mixopt.search import decision as D
from mixopt.search.objectives import Problem
from mixopt.search.space import Points

#: P(schedule better than the best constant mixture) needed to recommend the schedule.
P_SCHEDULE = 0.9
#: Level of the reported difference interval (central quantiles of the joint draws).
DIFF_LEVEL = 0.9
#: Relative change in a prediction that counts as "reads the schedule" (surrogates without a stage-1 form).
_READS_RTOL = 1e-9


def recommend(reads_schedule: bool, p_schedule_better: float) -> tuple[str, str]:
    """``(recommended, reason)``: ``("schedule", "schedule_better")`` only with a law that reads
    schedules and P(schedule better) >= :data:`P_SCHEDULE`; else the constant mixture, with
    ``"no_recency_law"`` or ``"within_noise"``."""
    if not reads_schedule:
        return "constant", "no_recency_law"
    if p_schedule_better < P_SCHEDULE:
        return "constant", "within_noise"
    return "schedule", "schedule_better"


def constant_points(pts: Points) -> Points:
    """The same runs with every phase set to the run's whole-run mixture (the phase ends kept)."""
    assert pts.phases is not None
    K = pts.phases.shape[1]
    P = np.repeat(pts.mixture[:, None, :], K, axis=1)
    return Points(mixture=pts.mixture.copy(), flops=pts.flops, params=pts.params, tokens=pts.tokens, phases=P,
                  phase_end=pts.phase_end)


def schedule_law(problem: Problem, top: Points) -> tuple[bool, str | None]:
    """(does the surrogate read when tokens come, the law's name or None)."""
    from mixopt.laws.recency import SCHEDULE_LAWS

    s = problem.surrogate
    for obj in (s, getattr(s, "model_", None), getattr(s, "model", None)):
        cfg = getattr(obj, "config_", None)
        if isinstance(cfg, dict) and cfg.get("stage1") is not None:
            form = str(cfg["stage1"])
            return form in SCHEDULE_LAWS, form
    a = problem.predict(top, intervals=False).mean
    b = problem.predict(constant_points(top), intervals=False).mean
    ok = np.isfinite(a) & np.isfinite(b)
    reads = bool(np.any(np.abs(a[ok] - b[ok]) > _READS_RTOL * np.maximum(1.0, np.abs(b[ok]))))
    return reads, None


def _row(problem: Problem, pts: Points, i: int, trial: int, values: np.ndarray) -> dict[str, Any]:
    from mixopt.search.assemble import _phase_columns

    row: dict[str, Any] = {"source_trial": int(trial)}
    row.update({f"mix:{d}": float(pts.mixture[i, j]) for j, d in enumerate(problem.space.domains)})
    row.update({c: float(np.asarray(v)[i]) for c, v in _phase_columns(problem.space, pts).items()})
    row.update({"flops": float(pts.flops[i]), "params": float(pts.params[i]), "tokens": float(pts.tokens[i])})
    row.update({f"obj:{o}": float(values[j]) for j, o in enumerate(problem.objective_names)})
    return row


def schedule_vs_constant(problem: Problem, pts: Points, numbers: np.ndarray, cand: np.ndarray, top: int,
                         front_vals: np.ndarray, w: list[float], *, n_draws: int, seed: int,
                         epsilon: float) -> dict[str, Any] | None:
    """The comparison of ``decision["schedule_vs_constant"]`` (see the module docstring).

    Args:
        pts: every trial's decoded point; ``numbers`` their trial numbers.
        cand: indices of the feasible distinct trials; ``top``: index of shortlist rank 1.
        front_vals: the front's objective values at the means (the knee distances' scaling).
        w: the objectives' scalarisation weights.
    """
    space = problem.space
    sched = space.schedule
    if sched is None or pts.phases is None or not cand.size:
        return None
    dirs = problem.directions
    const = constant_points(pts.take(cand))
    inside = sched.contains(const.phases, const.phase_end)
    ev = problem.evaluate_points(const)
    ok = inside & ev.ok & (np.all(ev.constraints <= 0, axis=1) if ev.constraints.shape[1] else True)
    top_pt = pts.take(np.array([top]))
    reads, form = schedule_law(problem, top_pt)
    out: dict[str, Any] = {"recency_law": form if reads else None, "stage1": form, "reads_schedule": reads,
                           "threshold": P_SCHEDULE, "level": DIFF_LEVEL, "schedule": {"trial": int(numbers[top])}}
    if not ok.any():
        out.update(recommended="schedule", reason="no_feasible_constant", constant=None, p_schedule_better=None,
                   difference={}, text="no constant mixture meets the constraints (each phase's bounds, the "
                                       "constraints at the means): the schedule is the only choice found")
        return out
    idx = np.flatnonzero(ok)
    if len(dirs) == 1:
        best = idx[np.argmax(ev.values[idx, 0] if dirs[0] == "maximize" else -ev.values[idx, 0])]
    else:
        best = idx[np.argmin(D._knee_against(ev.values[idx], front_vals, dirs, w))]
    pair = Points(mixture=np.vstack([top_pt.mixture, const.mixture[[best]]]), flops=np.r_[top_pt.flops, const.flops[best]],
                  params=np.r_[top_pt.params, const.params[best]], tokens=np.r_[top_pt.tokens, const.tokens[best]],
                  phases=np.concatenate([top_pt.phases, const.phases[[best]]]),
                  phase_end=np.concatenate([top_pt.phase_end, const.phase_end[[best]]]))
    dv, dc, kind = D.draw_values(problem, pair, n_draws=n_draws, seed=seed)
    required = [c.probability for c in problem.constraints] + ([None] if space.has_data_constraint else [])
    stats = D.draw_stats(dv, dc, dirs, scale_from=front_vals, weights=w, epsilon=epsilon, required=required, kind=kind)
    p = stats.beats(0, 1)
    q = (1 - DIFF_LEVEL) / 2
    diff = {}
    for j, o in enumerate(problem.objective_names):
        d = dv[:, 0, j] - dv[:, 1, j]
        d = d[np.isfinite(d)]
        if d.size:
            diff[o] = {"mean": float(d.mean()), "lower": float(np.quantile(d, q)), "upper": float(np.quantile(d, 1 - q)),
                       "better_if": "higher" if dirs[j] == "maximize" else "lower"}
    shown = "; ".join(f"{o} {v['mean']:+.4g} [{v['lower']:+.4g}, {v['upper']:+.4g}] ({v['better_if']} is better)"
                      for o, v in diff.items())
    rec, reason = recommend(reads, p)
    if reason == "no_recency_law":
        why = (f"the surrogate's law ({form or 'this surrogate'}) reads only the whole-run mixture, so it cannot tell "
               "schedules with the same whole-run mixture apart: the schedule's predicted advantage is no evidence")
    elif reason == "within_noise":
        why = f"P(schedule better) {p:.2f} < {P_SCHEDULE:g}: the difference is within the surrogate's noise"
    else:
        why = f"P(schedule better) {p:.2f} >= {P_SCHEDULE:g} with a recency law ({form or 'reads the schedule'})"
    out.update(recommended=rec, reason=reason, p_schedule_better=p, difference=diff, draws={"kind": kind, "n": n_draws},
               constant=_row(problem, const, int(best), int(numbers[cand[best]]), ev.values[best]),
               n_constant_candidates=int(ok.sum()),
               text=f"recommend the {'schedule' if rec == 'schedule' else 'constant mixture'}: {why}; "
                    f"schedule - constant ({DIFF_LEVEL:.0%} interval of {n_draws} {kind} draws): {shown}")
    return out


__all__ = ["DIFF_LEVEL", "P_SCHEDULE", "constant_points", "recommend", "schedule_law", "schedule_vs_constant"]
