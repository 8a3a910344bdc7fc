"""How sure the search is: joint draws, P(best), P(feasible), the robust region, what binds.

A Pareto front of predicted means looks decisive even when the surrogate cannot tell its
rows apart. After the search, the best feasible trials are re-predicted *jointly* (the
same fitted-parameter draw for every mixture, :meth:`Surrogate.predict_draws`) and every
statement a person acts on is measured on those draws.

Candidates
----------
The search-feasible distinct trials, ordered by their knee distance at the predicted means
(:func:`mixopt.search.shortlist.knee_distance`, objectives scaled over the front), the first
:data:`MAX_CANDIDATES` of them plus every row of the front's knee region; while more than
80 % of them are in the robust region (below) the set doubles, up to :data:`MAX_WIDENED`,
so the region is not cut short by the number judged. A candidate whose
measured probability of meeting a chance constraint (``... @ p``) falls short of ``p`` is
*not eligible* to be recommended.

Per draw
--------
Each draw ``s`` gives every candidate its objective values ``v[s, i, j]`` and constraint
values. The shortlist's scalarisation is applied to the draw: objectives scaled with the
front's fixed affine map (1 = the front's best at the means), the ideal point = the best
scaled value over the eligible candidates *in that draw*, and the weighted distance to it
(``[objectives] weights``). Then:

* **P(best)** of a candidate: the share of draws in which it has the smallest distance
  among the eligible candidates (objectives only; feasibility is reported apart).
* **P(A beats B)**: the share of draws in which A's distance is smaller than B's.
* **P(within ε)**: the share of draws in which no objective of the candidate is worse than
  that draw's best candidate by more than ``epsilon`` (in each objective's own units:
  score points on the 0-1 scale, nats for losses, decades for ``compute``; default
  :data:`DEFAULT_EPSILON` = half a score point; ``[objectives] epsilon``, ``--epsilon``).
* **P(feasible)**: the share of draws in which every constraint holds (the data limit is
  exact); **P(<constraint>)** the same for each constraint alone.

**Shortlist.** Rows of the front only. Rank 1 is the eligible front row with the largest
P(best) (its probability of being the best of *all* candidates; ties: the smaller knee
distance at the means). The other picks are diverse (greedy farthest point on mixture
ratios and scaled objectives, as :func:`~mixopt.search.shortlist.shortlist`) among the
eligible rows of the front's knee region, then ordered by P(best). ``best`` of a result
*is* rank 1. The robust region below is what says how far the alternatives reach. With a
single objective the front is its best row, so the candidates are ordered by the objective's
mean and the shortlist is the top ``k`` distinct mixtures by it, ranked by P(best) (rank 1:
the largest P(best) among them).

**Robust region.** The eligible candidates within ε of the best with probability >=
:data:`ROBUST_P`: per domain the range of their ratios is what the data decide. The picks
are called *indistinguishable* when rank 1's P(best) is below 0.5 and at least two
candidates are in the robust region.

**Draws.** ``predict_draws`` where the surrogate has it. Otherwise (and for surrogates that
only inherit the default) *comonotone* draws: one standard normal per draw and quantity,
shared by every row, through each row's interval. Comonotone draws move every mixture
together, so they cannot show that two mixtures are hard to tell apart: P(best) from them
overstates certainty; the result says which kind was used (``decision.draws.kind``).

Every draw is seeded (the search seed); nothing reads a clock.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from mixopt.errors import SearchError
from mixopt.search.objectives import ComputeCost, Problem
from mixopt.search.shortlist import KNEE_FRACTION, knee_distance, scaled_objectives
from mixopt.search.space import Points
from mixopt.surrogate.base import Prediction, Surrogate

#: Joint draws per candidate.
DEFAULT_DRAWS = 256
#: Tolerance of "within ε of the best", in each objective's units (0.005 = half a score point).
DEFAULT_EPSILON = 0.005
#: Probability of being within ε of the best that puts a candidate in the robust region.
ROBUST_P = 0.5
#: Candidates re-predicted jointly at first (the best by knee distance, plus the knee region).
MAX_CANDIDATES = 300
#: Most candidates: the set doubles while more than 80 % of it is in the robust region.
MAX_WIDENED = 2400
#: Quantile level of the fallback's interval (the draws' marginals match it).
_DRAW_LEVEL = 0.9


# -- draws ------------------------------------------------------------------------------------
def draws_kind(surrogate: Surrogate) -> str:
    """``"joint"`` when the surrogate draws its own fitted parameters, else ``"comonotone"``."""
    own = getattr(type(surrogate), "_predict_draws", None)
    base = getattr(Surrogate, "_predict_draws", None)
    if callable(getattr(surrogate, "predict_draws", None)) and own is not None and own is not base:
        return "joint"
    return "comonotone"


def comonotone_draws(pred: Prediction, *, n_draws: int, seed: int) -> dict[str, np.ndarray]:
    """``{quantity: (n_draws, n)}``: one standard normal per draw and quantity, shared by every
    row, scaled by each row's predictive std (from ``std`` or the interval); a quantity with
    no uncertainty repeats its mean. The normals are stratified (the ``n_draws`` quantiles
    ``(i + 0.5) / n_draws``, in a seeded order per quantity), so a row's draws average to
    its mean exactly."""
    from mixopt._normal import ndtri

    rng = np.random.default_rng([int(seed), 0x6D69])
    strata = ndtri((np.arange(n_draws) + 0.5) / n_draws)  # stratified: mean 0 and exact quantiles for any n_draws
    z = np.column_stack([rng.permutation(strata) for _ in pred.names]) if pred.names else np.zeros((n_draws, 0))
    out: dict[str, np.ndarray] = {}
    for j, q in enumerate(pred.names):
        mean = pred.mean[:, j]
        if pred.std is not None:
            std = np.asarray(pred.std)[:, j]
        elif pred.lower is not None and pred.upper is not None:
            from mixopt._normal import ndtri

            std = (np.asarray(pred.upper)[:, j] - np.asarray(pred.lower)[:, j]) / (2 * float(ndtri(0.5 + pred.level / 2)))
        else:
            std = np.zeros_like(mean)
        out[q] = mean[None, :] + z[:, j, None] * np.nan_to_num(std)[None, :]
    return out


def joint_draws(problem: Problem, points: Points, *, n_draws: int, seed: int) -> tuple[dict[str, np.ndarray], str]:
    """Joint draws of every predicted quantity for decoded points, and their kind."""
    surrogate = problem.surrogate
    targets = problem.targets(points)
    kind = draws_kind(surrogate)
    if kind == "joint":
        raw = surrogate.predict_draws(targets, n_draws=n_draws, seed=seed)  # type: ignore[attr-defined]
        return {k: np.asarray(v, dtype=np.float64).reshape(n_draws, len(points)) for k, v in raw.items()}, kind
    pred = surrogate.predict(targets, intervals=True, level=_DRAW_LEVEL)
    return comonotone_draws(pred, n_draws=n_draws, seed=seed), kind


def _stacked(draws: Mapping[str, np.ndarray], names: Sequence[str], points: Points, s: int) -> tuple[Prediction, Points]:
    """The ``s`` draws of ``n`` rows as one prediction of ``s*n`` rows (draw-major), and the tiled points."""
    n = len(points)
    cols = [np.asarray(draws[q]).reshape(-1) if q in draws else np.full(s * n, np.nan) for q in names]
    pred = Prediction(names=tuple(names), mean=np.column_stack(cols) if cols else np.zeros((s * n, 0)))
    tiled = points.tile(s)
    return pred, tiled


def draw_values(problem: Problem, points: Points, *, n_draws: int, seed: int) -> tuple[np.ndarray, np.ndarray, str]:
    """Objective values ``(S, n, m)`` and constraint values ``(S, n, c)`` (``<= 0`` met;
    columns in :attr:`Problem.constraint_names` order, the data limit exact) per joint draw."""
    draws, kind = joint_draws(problem, points, n_draws=n_draws, seed=seed)
    vals, cons = values_from_draws(problem, points, draws, n_draws)
    return vals, cons, kind


def values_from_draws(problem: Problem, points: Points, draws: Mapping[str, np.ndarray],
                      n_draws: int) -> tuple[np.ndarray, np.ndarray]:
    """Objective values ``(S, n, m)`` and constraint values ``(S, n, c)`` of given draws."""
    names = tuple(dict.fromkeys([*problem.info.outputs, *draws]))
    pred, tiled = _stacked(draws, names, points, n_draws)
    n = len(points)
    vals = np.empty((n_draws, n, len(problem.objectives)))
    for j, o in enumerate(problem.objectives):
        vals[:, :, j] = np.asarray(o.compute(pred, tiled)[0]).reshape(n_draws, n)
    cons = np.empty((n_draws, n, len(problem.constraint_names)))
    for j, c in enumerate(problem.constraints):
        cons[:, :, j] = c.margin(pred, tiled).reshape(n_draws, n)
    if problem.space.has_data_constraint:
        cons[:, :, -1] = problem.space.data_violation(points)[None, :]
    return vals, cons


# -- statistics ---------------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class DrawStats:
    """What the joint draws say about ``n`` candidates.

    Attributes:
        kind: ``"joint"`` or ``"comonotone"`` (see the module docstring).
        distance: ``(S, n)`` knee distance per draw (inf where not eligible).
        p_best: ``(n,)`` share of draws in which the row is the best eligible candidate.
        p_near: ``(n,)`` share of draws in which the row is within ε of that draw's best.
        p_feasible: ``(n,)`` share of draws in which every constraint holds.
        p_constraint: ``(n, c)`` the same per constraint.
        eligible: ``(n,)`` meets every chance constraint with its probability.
    """

    kind: str
    distance: np.ndarray
    p_best: np.ndarray
    p_near: np.ndarray
    p_feasible: np.ndarray
    p_constraint: np.ndarray
    eligible: np.ndarray
    margins: np.ndarray

    def beats(self, a: int, b: int) -> float:
        """P(candidate ``a`` is closer to the draw's ideal than ``b``)."""
        return float(np.mean(self.distance[:, a] < self.distance[:, b]))


def draw_stats(values: np.ndarray, margins: np.ndarray, directions: Sequence[str], *, scale_from: np.ndarray,
               weights: Sequence[float] | None, epsilon: float, required: Sequence[float | None],
               kind: str = "joint") -> DrawStats:
    """:class:`DrawStats` of per-draw values.

    Args:
        values: ``(S, n, m)`` objective values per draw.
        margins: ``(S, n, c)`` constraint values per draw (``<= 0`` met).
        directions: ``m`` directions.
        scale_from: ``(f, m)`` objective values (the front at the means) fixing the scaling.
        weights: ``m`` scalarisation weights (None: equal).
        epsilon: tolerance of "within ε of the best", in the objectives' units.
        required: per constraint, the probability a chance constraint needs (None: plain).
    """
    s_n, n, m = values.shape
    sign = np.array([1.0 if d == "maximize" else -1.0 for d in directions])
    up_front = np.asarray(scale_from, dtype=np.float64) * sign
    lo = up_front.min(axis=0)
    span = up_front.max(axis=0) - lo
    up_all = values.reshape(-1, m) * sign
    wide = up_all.max(axis=0) - up_all.min(axis=0) if up_all.size else np.ones(m)
    span = np.where(span > 0, span, np.where(wide > 0, wide, 1.0))
    w = np.ones(m) if weights is None else np.asarray(weights, dtype=np.float64)
    p_con = (margins <= 0).mean(axis=0) if margins.shape[2] else np.ones((n, 0))
    p_feas = np.all(margins <= 0, axis=2).mean(axis=0) if margins.shape[2] else np.ones(n)
    eligible = np.ones(n, dtype=bool)
    for j, p in enumerate(required):
        if p is not None:
            eligible &= p_con[:, j] >= p
    if not eligible.any():  # nothing meets the chance constraints as measured: judge all (the caller notes it)
        eligible = np.ones(n, dtype=bool)
    up = values * sign
    scaled = (up - lo) / span
    ideal = np.where(eligible[None, :, None], scaled, -np.inf).max(axis=1, keepdims=True)
    dist = np.sqrt(((ideal - scaled) ** 2 * w).sum(axis=2) / w.sum())
    dist = np.where(eligible[None, :], dist, np.inf)
    best = np.argmin(dist, axis=1)  # ties -> lower index (candidates come ordered by mean knee distance)
    p_best = np.bincount(best, minlength=n) / s_n
    vbest = np.take_along_axis(up, best[:, None, None], axis=1)  # (S, 1, m)
    near = np.all(vbest - up <= epsilon + 1e-12, axis=2) & eligible[None, :]
    return DrawStats(kind=kind, distance=dist, p_best=p_best, p_near=near.mean(axis=0), p_feasible=p_feas,
                     p_constraint=p_con, eligible=eligible, margins=margins)


# -- candidates and the shortlist ---------------------------------------------------------------
def candidate_order(values: np.ndarray, front_values: np.ndarray, directions: Sequence[str],
                    weights: Sequence[float] | None, knee_rows: np.ndarray, limit: int = MAX_CANDIDATES) -> np.ndarray:
    """Indices of ``values`` rows to judge: the ``limit`` smallest knee distances (scaled over
    the front) plus ``knee_rows``, ordered by knee distance."""
    dist = _knee_against(values, front_values, directions, weights)
    order = np.argsort(dist, kind="stable")
    keep = set(order[:limit].tolist()) | set(np.asarray(knee_rows, dtype=int).tolist())
    return np.array([i for i in order if i in keep], dtype=int)


def _knee_against(values: np.ndarray, front_values: np.ndarray, directions: Sequence[str],
                  weights: Sequence[float] | None) -> np.ndarray:
    """Knee distance of any rows with the front's scaling (ideal = the front's best)."""
    sign = np.array([1.0 if d == "maximize" else -1.0 for d in directions])
    f = front_values * sign
    lo, span = f.min(axis=0), f.max(axis=0) - f.min(axis=0)
    s = np.where(span > 0, (values * sign - lo) / np.where(span > 0, span, 1.0), 1.0)
    w = np.ones(values.shape[1]) if weights is None else np.asarray(weights, dtype=np.float64)
    return np.sqrt(((1.0 - s) ** 2 * w).sum(axis=1) / w.sum())


def pick_shortlist(stats: DrawStats, mean_values: np.ndarray, mixture: np.ndarray, directions: Sequence[str],
                   knee: np.ndarray, on_front: np.ndarray, k: int) -> list[int]:
    """Candidate indices of the shortlist, rank order (see the module docstring).

    Args:
        knee: candidate indices of the front's knee region (the pool of picks 2..k).
        on_front: ``(n,)`` which candidates are front rows (rank 1 is the front row with the
            largest P(best); off-front rows only when no eligible front row is left).
    """
    elig = np.flatnonzero(stats.eligible & np.asarray(on_front, dtype=bool))
    if elig.size == 0:
        elig = np.flatnonzero(stats.eligible)
    if elig.size == 0:
        return []
    first = int(elig[np.argmax(stats.p_best[elig])])  # argmax keeps the first (smallest mean knee distance) on ties
    pool = np.zeros(len(stats.p_best), dtype=bool)
    pool[np.asarray(knee, dtype=int)] = True
    pool &= stats.eligible
    pool[first] = True
    idx = np.flatnonzero(pool)
    feats = np.hstack([mixture[idx], scaled_objectives(mean_values[idx], directions)])
    chosen = [int(np.flatnonzero(idx == first)[0])]
    gap = np.linalg.norm(feats - feats[chosen[0]], axis=1)
    while len(chosen) < min(k, idx.size):
        g = gap.copy()
        g[chosen] = -1.0
        j = int(np.argmax(g))
        chosen.append(j)
        gap = np.minimum(gap, np.linalg.norm(feats - feats[j], axis=1))
    rest = sorted(chosen[1:], key=lambda c: -stats.p_best[idx[c]])  # stable: selection order on ties
    return [int(idx[c]) for c in [chosen[0], *rest]]


def knee_region(front_values: np.ndarray, directions: Sequence[str], weights: Sequence[float] | None, k: int,
                knee_fraction: float = KNEE_FRACTION) -> np.ndarray:
    """Front row indices of the knee region the shortlist draws from."""
    n = front_values.shape[0]
    dist = knee_distance(front_values, directions, weights)
    region_n = min(n, max(min(k, n), int(np.ceil(knee_fraction * n))))
    return np.argsort(dist, kind="stable")[:region_n]


# -- what a person reads --------------------------------------------------------------------------
def _ranges_text(mixture: np.ndarray, domains: Sequence[str], out: dict[str, Any]) -> list[str]:
    """``d lo–hi%`` per domain over the rows of ``mixture`` (n, k); fills ``out[d] = [lo, hi]``."""
    parts = []
    for j, d in enumerate(domains):
        lo, hi = float(mixture[:, j].min()), float(mixture[:, j].max())
        out[d] = [lo, hi]
        nd = 1 if hi - lo < 0.03 or hi < 0.1 else 0
        parts.append(f"{d} {100 * lo:.{nd}f}%" if abs(hi - lo) < 0.0005 else f"{d} {100 * lo:.{nd}f}–{100 * hi:.{nd}f}%")
    return parts


def robust_region(stats: DrawStats, mixture: np.ndarray, flops: np.ndarray, domains: Sequence[str], *,
                  phases: np.ndarray | None = None, phase_end: np.ndarray | None = None) -> dict[str, Any]:
    """The mixtures within ε of the best with probability >= :data:`ROBUST_P`: their ranges.

    For schedules (``phases (n, K, k)``, ``phase_end (n, K-1)``) also each phase's ratio ranges
    and its end's range (``out["phases"]``, and ``; phase k (ends a–b%): ...`` in the text); the
    ``mixture`` ranges are then the whole run's.
    """
    rows = np.flatnonzero((stats.p_near >= ROBUST_P) & stats.eligible)
    threshold = ROBUST_P
    if rows.size == 0 and stats.p_near.max(initial=0.0) > 0:
        threshold = float(stats.p_near.max()) / 2
        rows = np.flatnonzero((stats.p_near >= threshold) & stats.eligible)
    out: dict[str, Any] = {"n": int(rows.size), "threshold": threshold, "mixture": {}, "flops": None, "text": ""}
    if rows.size == 0:
        out["text"] = "no mixture is within epsilon of the best in most draws"
        return out
    parts = _ranges_text(mixture[rows], domains, out["mixture"])
    f = flops[rows]
    if f.max() > f.min() * (1 + 1e-9):
        out["flops"] = [float(f.min()), float(f.max())]
        parts.append(f"compute {f.min():.3g}–{f.max():.3g} FLOPs")
    out["text"] = ", ".join(parts)
    if phases is not None and phase_end is not None and phases.shape[1] > 1:
        out["text"] = "whole run " + out["text"]
        out["phases"] = []
        P, E = phases[rows], phase_end[rows]
        K = P.shape[1]
        for k in range(K):
            ph: dict[str, Any] = {"mixture": {}}
            text = ", ".join(_ranges_text(P[:, k, :], domains, ph["mixture"]))
            if k < K - 1:
                lo, hi = float(E[:, k].min()), float(E[:, k].max())
                ph["end"] = [lo, hi]
                end = f"{100 * lo:.0f}%" if hi - lo < 0.005 else f"{100 * lo:.0f}–{100 * hi:.0f}%"
            else:
                ph["end"] = [1.0, 1.0]
                end = "100%"
            out["phases"].append(ph)
            out["text"] += f"; phase {k + 1} (ends {end}): {text}"
    return out


def binding(problem: Problem, stats: DrawStats, i: int, points: Points, j_row: int) -> list[dict[str, Any]]:
    """Constraints and bounds that bind at candidate ``i`` (its decoded point is row ``j_row`` of ``points``).

    A constraint binds when its probability of holding is below 0.99 or its margin at the
    predicted mean is within two draw standard deviations of the bound; a mixture bound binds when the ratio
    sits on its floor or cap (within 1e-3).
    """
    out: list[dict[str, Any]] = []
    cons = {c.name: c for c in problem.constraints}
    one = points.take(np.array([j_row]))
    pred = problem.predict(one, intervals=False)
    at_mean = [float(c.margin(pred, one)[0]) for c in problem.constraints]
    if problem.space.has_data_constraint:
        at_mean.append(float(problem.space.data_violation(one)[0]))
    for j, name in enumerate(problem.constraint_names):
        m = stats.margins[:, i, j]
        mean, sd = at_mean[j], float(np.std(m))
        p = float(stats.p_constraint[i, j])
        c = cons.get(name)
        live = p < 0.99 or abs(mean) <= 2 * sd or abs(mean) <= 1e-3 * max(1.0, abs(c.threshold) if c else 1.0)
        if live:
            entry: dict[str, Any] = {"constraint": name, "p_met": p, "margin": -mean}
            if c is not None and not isinstance(c.target, ComputeCost):
                entry["value"] = c.threshold - mean if c.op == ">=" else c.threshold + mean
                entry["threshold"] = c.threshold
                entry["required"] = c.probability
            out.append(entry)
    sched = problem.space.schedule
    spaces = [("", problem.space.mixture, points.mixture[j_row])] if sched is None or points.phases is None else \
        [(f"phase {p + 1}: ", m, points.phases[j_row, p]) for p, m in enumerate(sched.phases)]
    for where, mix, x in spaces:
        for j, d in enumerate(problem.space.domains):
            if mix.cap[j] < 1 and x[j] >= mix.cap[j] - 1e-3:
                out.append({"bound": f"{where}{d} <= {mix.cap[j]:g} (cap)", "value": float(x[j])})
            elif mix.floor[j] > 0 and x[j] <= mix.floor[j] + 1e-3:
                out.append({"bound": f"{where}{d} >= {mix.floor[j]:g} (floor)", "value": float(x[j])})
    return out


def extrapolation(problem: Problem, points: Points) -> dict[str, Any]:
    """How far the points lie beyond the sampling runs, in compute.

    Reads :attr:`Prediction.compute_ratio` / ``calibrated_ratio`` when the surrogate fills
    them, else the surrogate's largest fitted compute (``train_max_flops_`` /
    ``fit_flops_max_``).
    """
    s = problem.surrogate
    flops = np.asarray(points.flops, dtype=np.float64)
    ratio, reach = None, None
    try:
        pred = problem.predict(points, intervals=False)
        r = getattr(pred, "compute_ratio", None)
        if r is not None:
            ratio = np.asarray(r, dtype=np.float64)
        reach = getattr(pred, "calibrated_ratio", None)
    except Exception:  # noqa: BLE001 - distance is informative; fall back to the fitted range below
        pass
    top = next((float(getattr(s, a)) for a in ("train_max_flops_", "fit_flops_max_")
                if np.isfinite(float(getattr(s, a, np.nan) or np.nan))), None)
    if ratio is None and top:
        ratio = flops / top
    out: dict[str, Any] = {"target_flops": [float(flops.min()), float(flops.max())] if flops.size else None,
                           "largest_run_flops": top, "compute_ratio": None, "calibrated_ratio": None,
                           "beyond_calibration": None, "warning": None}
    if ratio is None or not ratio.size:
        out["warning"] = "the surrogate does not say how far its fitted runs reach; the distance is unknown"
        return out
    rmax = float(np.max(ratio))
    out["compute_ratio"] = rmax
    out["calibrated_ratio"] = None if reach is None else float(reach)
    limit = max(float(reach), 1.0) if reach is not None else 1.0
    out["beyond_calibration"] = bool(rmax > limit * (1 + 1e-9))
    if reach is None and rmax > 1:
        out["warning"] = (f"the target is {rmax:.3g}x the compute of the largest sampling run and the intervals were not "
                          "calibrated on backtests that far out: treat them as optimistic")
    elif out["beyond_calibration"]:
        out["warning"] = (f"the target is {rmax:.3g}x the compute of the largest sampling run, beyond the {limit:.3g}x "
                          "the internal backtests covered: the intervals are extrapolated there, not measured")
    return out


def check_settings(n_draws: int, epsilon: float) -> None:
    """Raise SearchError on a bad number of draws or tolerance."""
    if not isinstance(n_draws, int) or isinstance(n_draws, bool) or not 16 <= n_draws <= 100_000:
        raise SearchError(f"decision draws must be a whole number in [16, 100000], got {n_draws!r}.")
    if not (isinstance(epsilon, (int, float)) and np.isfinite(epsilon) and epsilon >= 0):
        raise SearchError(f"epsilon must be a number >= 0 (in the objectives' units, e.g. 0.005), got {epsilon!r}.")


__all__ = [
    "DEFAULT_DRAWS",
    "DEFAULT_EPSILON",
    "MAX_CANDIDATES",
    "MAX_WIDENED",
    "ROBUST_P",
    "DrawStats",
    "binding",
    "candidate_order",
    "comonotone_draws",
    "draw_stats",
    "draw_values",
    "draws_kind",
    "extrapolation",
    "joint_draws",
    "knee_region",
    "pick_shortlist",
    "robust_region",
    "values_from_draws",
]
