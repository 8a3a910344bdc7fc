"""Plan the next sampling runs by what they teach about the decision (``mixopt plan``).

Candidates
----------
Candidate runs are ``n_candidates`` seeded mixtures drawn in the search's mixture space
(uniform in its cube, so floors, caps and pins hold; :meth:`MixtureSpace.to_mixture`) times
the candidate ``sizes`` (parameters N; tokens ``tokens_per_param * N``), or an explicit pool
(a retrospective benchmark). A run costs ``6·N·D`` FLOPs (:meth:`Targets.from_params_tokens`).

The decision
------------
``n_targets`` seeded points of the search space (mixture and target compute, decoded by
:meth:`SearchSpace.decode`, so token and ratio bounds hold) are re-predicted with the
surrogate's joint draws; per draw the search's scalarisation (:func:`draw_stats`: objectives
scaled over the points, weighted distance to the draw's ideal) ranks them. The pick is the
point with the largest P(best); the decision's loss in draw ``s`` is its regret
``r[s] = dist[s, pick] - min_i dist[s, i]``, with the gaps to the pick's nearest rivals.

Criteria (both greedy, both counting candidates, never seconds)
---------------------------------------------------------------
Each candidate run's outcome ``y`` (the quantities the objectives use, one column each) is
drawn with the *same* seed, so draw ``s`` is the same fitted model at the candidates and at
the targets: the draws' covariance links what a run would measure with the decision.

* ``decision`` (default): the expected reduction of the variance of the decision's losses
  from measuring the run, under a linear-Gaussian reading of the draws,
  ``sum_k sum_q Cov(y_q, r_k)^2 / (Var(y_q) + noise^2)``, per FLOP, where ``r_0`` is the
  regret and ``r_1..`` the distance gaps between the pick and its nearest rivals
  (:func:`decision_regret`), each scaled to unit variance. A cheap, documented
  approximation of the expected reduction of regret: a run whose outcome moves with the
  regret (it tells which mixture wins at the target) is worth much; one whose outcome is
  certain, or unrelated to which candidate wins, is worth little.
* ``doptimal``: the design-based rule: the gain in log-determinant of the information about
  the surrogate's fitted parameters, ``sum_q 0.5·log(1 + Var(y_q) / noise^2)``, per FLOP.
  Under a first-order expansion the draws' covariance of the outcomes is ``J Σ J^T`` (``J``
  the law's Jacobian at the fit, ``Σ`` the parameters' covariance), so this is greedy
  D-optimal design computed through the draws, without per-law Jacobians.

After each pick the draws are conditioned on the picked run's outcome (each draw's column
regressed on it and replaced by its residual: a Gaussian update of the draw ensemble), so a
second run that would teach the same thing is worth little (the diversity of the batch);
a candidate already picked is never picked twice. The batch stops at ``n_runs`` runs or when
the next run would exceed ``max_flops``.

Coverage (``coverage``, default :data:`DEFAULT_COVERAGE` = 0.75; 0 turns it off): a documented share of the batch is picked for space-filling
coverage of the candidate region instead of by the criterion -- pick ``t`` (from 0) is a coverage
pick when ``floor((t+1)·coverage) > floor(t·coverage)`` (a share of 0.25 makes every 4th pick
one), and it takes, among the affordable candidates of the size the criterion's latest pick has
(the criterion says where in compute to measure, coverage spreads the mixtures there; none
affordable there: the cheapest), the one that most lowers the summed
L1 distance from each decision point's mixture to its nearest run (made, or picked so far): the
greedy k-median rule, which covers the region the decision is about (its interior, where the
decision points are), not the simplex's corners (the max-min rule, which picks the mixtures
farthest from every run, was tried first and was worse at RegMix 1.1B / 32 runs). The draws are
conditioned on a coverage pick like on any pick, so the criterion's later picks count what it
teaches. A criterion computed from a surrogate fitted on few runs can concentrate the batch where
that fit is uncertain about the decision; the coverage picks keep the design spread over the region.

Fill (``fill``, default ``"auto"``; ``"off"`` turns it off): while the surrogate is fitted on fewer runs
than its linear part has parameters (``design_size(names) -> (runs, parameters)``, the ``regmix`` kind:
features + intercept, 2·domains + 1 on a swarm), *every* pick of the batch is a coverage pick (the
first too; there is no criterion pick to follow in compute, so they are made at the cheapest size). The
judgement reads the fitted runs alone, never a held-out answer: with fewer runs than parameters the linear
part is underdetermined, its leave-one-out choice of the ridge penalty can land on a near-interpolation,
and the posterior the criterion reads is then the penalty's, not the data's. Measured cause
(docs/figures.md#planning, RegMix, 17 domains, 35 parameters): batches planned from 16 runs by the
criterion picked runs after which the 32-run refit chose the smallest ridge penalty (1e-3, an interpolation)
and a lower shift, ρ down to 0.80 / 0.71 on the seeds that fell below random order. A surrogate without
``design_size`` never fills.

Runs already made are never proposed again: a candidate of the same size (parameters N and
tokens D each within :data:`SAME_SIZE_RTOL`, 5 % relative) as a run of the table
(``existing``) or as a run already earlier in the batch, whose mixture is within L1 distance
``duplicate_l1`` (default :data:`DUPLICATE_L1` = 0.05, the loop's "already validated"
distance; ratios normalised to sum 1) of that run's, is dropped before the greedy step. A
near-duplicate would measure what is already measured (up to run noise); with a surrogate
whose draws barely shrink at its training runs (FLP-M's fit-perturbation draws) the plan
otherwise proposed the same mixture round after round (docs/figures.md#planning).

Draws
-----
``draws = "auto"`` (default) uses the surrogate's **posterior draws** when it has them
(``predict_posterior_draws``: the ``regmix`` kind's Gaussian-process posterior): candidates
and decision points are drawn in *one* call, so a candidate's draw and a point's draw are
one function, and the covariance between them is the kernel posterior's -- large where no
run is near, shared between nearby mixtures. Without them (or ``draws = "model"``), the
surrogate's joint draws (``predict_draws``) are used, drawn in two calls with the same seed.
Those are the fit's response to perturbed training values: for ``regmix`` they are near
zero away from the training runs and correlate a candidate with the training runs it
shares, not with the targets it is near, so the plan clustered its picks beside measured
runs and did not beat random order on RegMix (docs/figures.md#planning).

* ``ranking``: ``decision`` with the gaps between the pick and *every* decision point (not
  only its nearest rivals): the variance of the whole ranking at the target, for
  decisions scored by rank correlation (RegMix's protocol).
* ``prediction``: the expected reduction of the summed variance of the objectives *at the
  decision points* (integrated variance, IMSE), ``sum_j sum_q Cov(y_q, f_j)^2 / (Var(y_q) +
  noise^2)``, each objective scaled by its std over all points and draws (not per point, so an
  already-known point counts little). With the GP posterior draws this is a space-filling
  design weighted to the region the decision is about (the coverage term: no pick at a
  corner of the simplex no decision point is near), and it is the quantity a rank
  correlation over the points scores.

Joint draws are required: a surrogate without its own ``predict_draws`` has only comonotone
draws (every row moves together), which cannot say which mixture wins; the plan says so
(``draws`` in the result) and should not be trusted then.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mixopt.errors import SearchError
from mixopt.search.decision import draw_stats, joint_draws, values_from_draws
from mixopt.search.objectives import Problem
from mixopt.search.space import Points
from mixopt.surrogate.base import Targets

CRITERIA = ("decision", "ranking", "prediction", "doptimal")
#: ``fill`` values: ``"auto"`` (a batch planned from a surrogate fitted on fewer runs than its linear part has
#: parameters is picked for coverage alone, see the module docstring) and ``"off"``.
FILLS = ("auto", "off")
#: Where the draws come from: the surrogate's posterior over candidates and targets jointly when it has one
#: (``predict_posterior_draws``), else its joint draws (``auto``); or either, forced.
DRAWS = ("auto", "posterior", "model")
#: Default noise of one run's measured outcome (std, in the quantity's units: nats of loss).
DEFAULT_NOISE = 0.01
#: Default L1 distance between mixtures (ratios summing to 1) under which a candidate run of the same size
#: as a run already made (or already in the batch) counts as that run again and is not proposed.
DUPLICATE_L1 = 0.05
#: Default share of a batch picked for coverage of the decision region (k-median) instead of by the criterion:
#: measured better than 0 on RegMix and level on Olmix and the synthetic worlds (docs/figures.md#planning).
DEFAULT_COVERAGE = 0.75
#: Relative tolerance on parameters N and on tokens D under which two runs are of the same size.
SAME_SIZE_RTOL = 0.05


@dataclass(frozen=True)
class PlanSettings:
    """How to plan (``[plan]`` in a config).

    Attributes:
        runs: most runs in the batch.
        flops: most total FLOPs of the batch (None: no FLOPs budget).
        criterion: one of :data:`CRITERIA` (``"decision"``, ``"ranking"``, ``"prediction"``, ``"doptimal"``).
        sizes: candidate model sizes N (empty: the sizes of the run table's runs).
        tokens_per_param: tokens D per parameter of a candidate run (None: the median tokens of the
            run table's runs of that size, else its median D/N times N).
        n_candidates: candidate mixtures (each at every size).
        n_targets: points of the search space the decision is judged on.
        n_draws: joint draws.
        noise: std of one run's measured outcome (quantity units).
        seed: seeds candidates, targets and draws.
        draws: ``"auto"``, ``"posterior"`` or ``"model"`` (:data:`DRAWS`; see the module docstring).
        duplicate_l1: a candidate of the same size as a run already made (or already in the batch) whose
            mixture is within this L1 distance of that run's is not proposed (0: only exact repeats).
        coverage: share of the batch (in [0, 1)) picked for space-filling coverage of the candidate region
            instead of by the criterion (default 0.75, see the module docstring; 0: every pick by the criterion;
            the first pick is always the criterion's, so a one-run plan is the criterion's pick).
        fill: ``"auto"`` (default): while the surrogate is fitted on fewer runs than its linear part has
            parameters (``design_size``, the ``regmix`` kind), every pick of the batch is a coverage pick
            (the module docstring, **Fill**); ``"off"``: never.
    """

    runs: int = 8
    flops: float | None = None
    criterion: str = "decision"
    sizes: tuple[float, ...] = ()
    tokens_per_param: float | None = None
    n_candidates: int = 256
    n_targets: int = 256
    n_draws: int = 256
    noise: float = DEFAULT_NOISE
    seed: int = 0
    draws: str = "auto"
    duplicate_l1: float = DUPLICATE_L1
    coverage: float = DEFAULT_COVERAGE
    fill: str = "auto"

    def __post_init__(self) -> None:
        problems = []
        if not (isinstance(self.runs, int) and self.runs >= 1):
            problems.append(f"runs must be an integer >= 1, got {self.runs!r}")
        if self.flops is not None and not (isinstance(self.flops, (int, float)) and np.isfinite(self.flops) and self.flops > 0):
            problems.append(f"flops must be a FLOPs budget > 0, got {self.flops!r}")
        if self.criterion not in CRITERIA:
            problems.append(f"criterion must be one of {list(CRITERIA)}, got {self.criterion!r}")
        if any(not (np.isfinite(s) and s > 0) for s in self.sizes):
            problems.append(f"sizes must be parameter counts > 0, got {list(self.sizes)}")
        if self.tokens_per_param is not None and not self.tokens_per_param > 0:
            problems.append(f"tokens_per_param must be > 0, got {self.tokens_per_param!r}")
        for name in ("n_candidates", "n_targets", "n_draws"):
            v = getattr(self, name)
            if not (isinstance(v, int) and v >= 2):
                problems.append(f"{name} must be an integer >= 2, got {v!r}")
        if not (np.isfinite(self.noise) and self.noise > 0):
            problems.append(f"noise must be a std > 0, got {self.noise!r}")
        if self.draws not in DRAWS:
            problems.append(f"draws must be one of {list(DRAWS)}, got {self.draws!r}")
        if not (isinstance(self.seed, int) and self.seed >= 0):
            problems.append(f"seed must be an integer >= 0, got {self.seed!r}")
        if not (isinstance(self.duplicate_l1, (int, float)) and np.isfinite(self.duplicate_l1) and 0 <= self.duplicate_l1 < 2):
            problems.append(f"duplicate_l1 must be an L1 distance between mixtures in [0, 2), got {self.duplicate_l1!r}")
        if not (isinstance(self.coverage, (int, float)) and 0 <= self.coverage < 1):
            problems.append(f"coverage must be a share of the batch in [0, 1), got {self.coverage!r}")
        if self.fill not in FILLS:
            problems.append(f"fill must be one of {list(FILLS)}, got {self.fill!r}")
        if problems:
            raise SearchError("Invalid plan settings: " + "; ".join(problems) + ".")


@dataclass(frozen=True)
class Plan:
    """A planned batch: the picked candidates in order, with the criterion at each pick."""

    domains: tuple[str, ...]
    mixture: np.ndarray  # (b, k)
    params: np.ndarray  # (b,)
    tokens: np.ndarray  # (b,)
    value: np.ndarray  # (b,) criterion gain at the pick (before dividing by FLOPs)
    index: np.ndarray  # (b,) candidate indices
    criterion: str
    draws: str
    summary: dict[str, Any] = field(default_factory=dict)

    @property
    def flops(self) -> np.ndarray:
        return 6.0 * self.params * self.tokens

    def __len__(self) -> int:
        return int(self.params.shape[0])


def candidate_runs(problem: Problem, sizes: Sequence[float], tokens_per_param: float | Mapping[float, float], n: int,
                   seed: int) -> Points:
    """``n`` seeded mixtures of the search's mixture space times ``sizes`` (size-major);
    ``tokens_per_param`` is one ratio D/N or ``{size: tokens}`` for each size."""
    ms = problem.space.mixture
    rng = np.random.default_rng([int(seed), 0x706C])
    mix = ms.to_mixture(rng.random((n, ms.dim))) if ms.dim else np.tile(ms.center(), (n, 1))
    sizes = np.asarray(sorted(set(float(s) for s in sizes)), dtype=np.float64)
    params = np.repeat(sizes, n)
    if isinstance(tokens_per_param, Mapping):
        tokens = np.repeat([float(tokens_per_param[s]) for s in sizes], n)
    else:
        tokens = params * float(tokens_per_param)
    return Points(mixture=np.tile(mix, (len(sizes), 1)), flops=6.0 * params * tokens, params=params, tokens=tokens)


def target_points(problem: Problem, n: int, seed: int) -> Points:
    """``n`` seeded points of the search space (mixture and target compute)."""
    rng = np.random.default_rng([int(seed), 0x7467])
    dim = problem.space.mixture.dim + problem.space.compute.dim
    return problem.space.decode(rng.random((n, dim)))


#: Rivals of the pick whose distance gap to it the decision criterion tracks.
RIVALS = 8


def decision_regret(problem: Problem, points: Points, *, n_draws: int, seed: int,
                    draws: Mapping[str, np.ndarray] | None = None, kind: str = "joint", rivals: int = RIVALS) -> tuple[np.ndarray, dict[str, Any], str]:
    """Per-draw decision losses ``(S, 1 + RIVALS)`` and a summary of the decision.

    Column 0 is the regret of the current pick; the others are the gaps
    ``dist[:, j] - dist[:, pick]`` to its :data:`RIVALS` nearest rivals (smallest mean
    distance), so a decision that is settled in every draw still says which runs would
    sharpen the comparison that could overturn it. ``draws``: given draws at ``points`` (of ``kind``)
    instead of the surrogate's joint draws."""
    if draws is None:
        draws, kind = joint_draws(problem, points, n_draws=n_draws, seed=seed)
    vals, cons = values_from_draws(problem, points, draws, n_draws)
    required = [c.probability for c in problem.constraints] + ([None] if problem.space.has_data_constraint else [])
    stats = draw_stats(vals, cons, problem.directions, scale_from=vals.mean(axis=0), weights=None, epsilon=0.0,
                       required=required, kind=kind)
    dist = np.where(np.isfinite(stats.distance), stats.distance, np.nan)
    pick = int(np.argmax(stats.p_best))
    regret = dist[:, pick] - np.nanmin(dist, axis=1)
    order = [int(j) for j in np.argsort(np.nan_to_num(np.nanmean(dist, axis=0), nan=np.inf)) if j != pick][:rivals]
    gaps = dist[:, order] - dist[:, [pick]]
    p = stats.p_best[stats.p_best > 0]
    summary = {"pick": {d: float(x) for d, x in zip(problem.space.domains, points.mixture[pick], strict=True)},
               "p_best_of_pick": float(stats.p_best[pick]), "expected_regret": float(np.nanmean(regret)),
               "p_best_entropy": float(-(p * np.log(p)).sum()), "targets": len(points)}
    return np.nan_to_num(np.column_stack([regret, gaps])), summary, kind


def target_values(problem: Problem, points: Points, *, n_draws: int, seed: int,
                  draws: Mapping[str, np.ndarray] | None = None, kind: str = "joint") -> tuple[np.ndarray, dict[str, Any], str]:
    """Per-draw objective values at the decision points ``(S, n·m)``, each objective scaled by its std over
    all points and draws (the ``prediction`` criterion's losses), and the decision's summary."""
    if draws is None:
        draws, kind = joint_draws(problem, points, n_draws=n_draws, seed=seed)
    _, summary, kind = decision_regret(problem, points, n_draws=n_draws, seed=seed, draws=draws, kind=kind, rivals=0)
    vals = np.nan_to_num(values_from_draws(problem, points, draws, n_draws)[0])  # (S, n, m)
    vals = vals - vals.mean(axis=0, keepdims=True)
    sd = vals.reshape(-1, vals.shape[2]).std(axis=0)
    vals = vals / np.where(sd > 0, sd, 1.0)[None, None, :]
    return vals.reshape(n_draws, -1), summary, kind


def outcome_draws(problem: Problem, runs: Points, *, n_draws: int, seed: int,
                  raw: Mapping[str, np.ndarray] | None = None) -> np.ndarray:
    """Draws ``(S, n, q)`` of the quantities the objectives use, at candidate runs (``raw``: given draws)."""
    if raw is None:
        targets = Targets.from_params_tokens(runs.params, runs.tokens, runs.mixture if problem.space.domains else None,
                                             problem.space.domains)
        raw = problem.surrogate.predict_draws(targets, n_draws=n_draws, seed=seed)
    names = [q for o in problem.objectives for q in o.quantities if q in raw]
    if not names:
        raise SearchError(f"The surrogate draws none of the objectives' quantities {list(problem.objective_names)}; "
                          "plan needs a loss or score objective the surrogate predicts.")
    names = list(dict.fromkeys(names))
    y = np.stack([np.asarray(raw[q], dtype=np.float64).reshape(n_draws, len(runs)) for q in names], axis=2)
    return np.nan_to_num(y - y.mean(axis=0, keepdims=True))


def _ratios(mixture: np.ndarray) -> np.ndarray:
    m = np.clip(np.asarray(mixture, dtype=np.float64), 0.0, None)
    total = m.sum(axis=1, keepdims=True)
    return m / np.where(total > 0, total, 1.0)


def _l1(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``(len(a), len(b))`` L1 distances between rows, in row chunks (the ``(chunk, len(b), f)`` temporary
    stays near 4M numbers, so API-sized plans do not allocate gigabytes)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    out = np.empty((a.shape[0], b.shape[0]))
    step = max(1, 4_000_000 // max(1, b.shape[0] * max(1, a.shape[1])))
    for i in range(0, a.shape[0], step):
        out[i:i + step] = np.abs(a[i:i + step, None, :] - b[None, :, :]).sum(axis=2)
    return out


def same_runs(candidates: Points, runs: Points, *, l1: float = DUPLICATE_L1, rtol: float = SAME_SIZE_RTOL) -> np.ndarray:
    """``(n_candidates, n_runs)``: True where a candidate is the same run as one of ``runs`` -- parameters
    and tokens each within ``rtol`` (relative) and mixture ratios (normalised to sum 1) within L1 ``l1``."""
    def close(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        a, b = np.asarray(a, dtype=np.float64)[:, None], np.asarray(b, dtype=np.float64)[None, :]
        return np.abs(a - b) <= rtol * np.maximum(np.abs(a), np.abs(b))

    size = close(candidates.params, runs.params) & close(candidates.tokens, runs.tokens)
    return size & (_l1(_ratios(candidates.mixture), _ratios(runs.mixture)) <= l1 + 1e-12)


def greedy_batch(y: np.ndarray, regret: np.ndarray | None, cost: np.ndarray, *, runs: int, flops: float | None,
                 noise: float, scale: bool = True, blocked: np.ndarray | None = None,
                 near: Callable[[int], np.ndarray] | None = None, coverage: float = 0.0,
                 features: np.ndarray | None = None, seen: np.ndarray | None = None,
                 region: np.ndarray | None = None) -> tuple[list[int], list[float]]:
    """Greedy picks over centred outcome draws ``y (S, n, q)``; ``regret (S, k)`` (the losses tracked) for
    ``decision``/``ranking``/``prediction``, None for ``doptimal``. ``scale``: each loss column to unit std
    (else the columns are taken as given, centred). ``blocked (n,)``: candidates never picked (runs already
    made); ``near(i) -> (n,)``: the candidates that are the same run as candidate ``i``, blocked once ``i`` is
    picked (a candidate is always blocked once picked). ``coverage``: the share of picks made for coverage
    instead of by the criterion: pick ``t`` is a coverage pick when ``floor((t+1)·coverage) > floor(t·coverage)``;
    it takes, among the affordable candidates at the size (cost) of the criterion's latest pick (none there:
    the cheapest; ``features (n, f)``: their mixture ratios), the one that
    most lowers the summed L1 distance from each point of ``region (m, f)`` (default: the candidates) to its
    nearest run among ``seen`` (runs already made) and the picks so far (the k-median rule)."""
    y = y.copy()
    out = np.zeros(y.shape[1], dtype=bool) if blocked is None else np.asarray(blocked, dtype=bool).copy()
    r = None
    if regret is not None:  # centred, each loss scaled to unit std (a constant one carries nothing)
        r = regret.reshape(regret.shape[0], -1) - regret.reshape(regret.shape[0], -1).mean(axis=0)
        sd = r.std(axis=0, ddof=1)
        r = r[:, sd > 0] / (sd[sd > 0] if scale else 1.0)
    s = y.shape[0]
    picked: list[int] = []
    gains: list[float] = []
    spent = 0.0
    n2 = noise * noise
    if coverage > 0 and features is None:
        raise SearchError("coverage picks need the candidates' features (their mixture ratios).")
    fill = cand_d = None
    if coverage > 0:  # the region to cover: the decision points' mixtures (else the candidates' own)
        feats = np.asarray(features, dtype=np.float64)
        reg = feats if region is None else np.asarray(region, dtype=np.float64)
        cand_d = _l1(feats, reg)  # (n, m)
        fill = np.full(reg.shape[0], 2.0)  # L1 distance of each region point to the nearest run so far (2: none)
        if seen is not None and len(seen):
            fill = _l1(reg, seen).min(axis=1)
    last: int | None = None  # the criterion's latest pick: coverage picks are made at its size (its cost)
    for t in range(runs):
        var = (y * y).sum(axis=0) / (s - 1)  # (n, q)
        if r is None:
            gain = 0.5 * np.log1p(var / n2).sum(axis=1)
        else:
            cov = np.einsum("snq,sk->nqk", y, r) / (s - 1)
            gain = (cov * cov / (var + n2)[:, :, None]).sum(axis=(1, 2))
        score = gain / cost
        score[picked] = -np.inf
        score[out] = -np.inf
        if flops is not None:
            score[spent + cost > flops * (1 + 1e-9)] = -np.inf
        if fill is not None and np.floor((t + 1) * coverage) > np.floor(t * coverage) and np.isfinite(score).any():
            ok = np.isfinite(score)
            at = ok & (np.abs(cost - cost[last]) <= 1e-9 * cost[last]) if last is not None else np.zeros_like(ok)
            if not at.any():  # no affordable candidate at the criterion's last size: the cheapest
                at = ok & (cost <= cost[ok].min() * (1 + 1e-9))
            score = np.where(at, -np.minimum(cand_d, fill[None, :]).sum(axis=1), -np.inf)
            covering = True
        else:
            covering = False
        i = int(np.argmax(score))
        if not np.isfinite(score[i]):
            break
        picked.append(i)
        if not covering:
            last = i
        gains.append(float(gain[i]))
        spent += float(cost[i])
        out[i] = True
        if near is not None:
            out |= np.asarray(near(i), dtype=bool)
        if fill is not None:
            fill = np.minimum(fill, cand_d[i])
        # Gaussian update of the draw ensemble on the picked run's (noisy) outcome, quantity by quantity.
        for q in range(y.shape[2]):
            yi = y[:, i, q].copy()
            denom = float(yi @ yi) / (s - 1) + n2
            beta = np.einsum("snq,s->nq", y, yi) / (s - 1) / denom
            y -= yi[:, None, None] * beta[None, :, :]
            if r is not None:
                r = r - yi[:, None] * ((yi @ r) / (s - 1) / denom)[None, :]
    return picked, gains


def posterior_draws(problem: Problem, runs: Points, points: Points | None, *, n_draws: int,
                    seed: int) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray] | None]:
    """The surrogate's joint posterior draws over candidate ``runs`` and decision ``points`` in one call
    (so a run's draw and a point's draw are one function), split back into the two sets."""
    allp = runs if points is None else Points(
        mixture=np.vstack([runs.mixture, points.mixture]), flops=np.concatenate([runs.flops, points.flops]),
        params=np.concatenate([runs.params, points.params]), tokens=np.concatenate([runs.tokens, points.tokens]))
    names = problem.quantities
    raw = problem.surrogate.predict_posterior_draws(problem.targets(allp), n_draws=n_draws, seed=seed,  # type: ignore[attr-defined]
                                                    names=names)
    n = len(runs)
    cand = {q: np.asarray(v)[:, :n] for q, v in raw.items()}
    return cand, (None if points is None else {q: np.asarray(v)[:, n:] for q, v in raw.items()})


def fill_design(problem: Problem, settings: PlanSettings) -> tuple[int, int] | None:
    """``(runs, parameters)`` of the surrogate's fit of the objectives' quantities for the **fill** rule
    (``settings.fill = "auto"`` and a surrogate with ``design_size``), else None (the rule is off)."""
    size = getattr(problem.surrogate, "design_size", None)
    if settings.fill != "auto" or not callable(size):
        return None
    got = size(tuple(problem.quantities))
    return None if got is None else (int(got[0]), int(got[1]))


def plan_runs(problem: Problem, settings: PlanSettings, *, candidates: Points | None = None,
              targets: Points | None = None, sizes: Sequence[float] = (),
              tokens: Mapping[float, float] | None = None, existing: Points | None = None) -> Plan:
    """The next batch of sampling runs (see the module docstring).

    Args:
        problem: the decision (the search's space, surrogate, objectives and constraints).
        settings: budget, criterion and sample sizes.
        candidates: an explicit pool of candidate runs (default: seeded candidates).
        targets: the points the decision chooses among (default: seeded points of the space).
        sizes: candidate sizes when ``settings.sizes`` is empty.
        tokens: ``{size: tokens}`` for ``sizes`` when ``settings.tokens_per_param`` is None.
        existing: the runs already made (the run table's final checkpoints): a candidate that is one of
            them again (same size, mixture within ``settings.duplicate_l1``) is not proposed.
    """
    st = settings
    if candidates is None:
        sz = st.sizes or tuple(sizes)
        tpp: float | Mapping[float, float] | None = st.tokens_per_param or tokens
        if isinstance(tpp, Mapping) and not all(float(x) in tpp for x in sz):
            tpp = None
        if not sz or tpp is None:
            raise SearchError("plan needs candidate sizes and tokens per parameter: set [plan] sizes = [...] and "
                              "tokens_per_param, or give a run table to take them from.")
        candidates = candidate_runs(problem, sz, tpp, st.n_candidates, st.seed)
    posterior = callable(getattr(problem.surrogate, "predict_posterior_draws", None))
    if st.draws == "posterior" and not posterior:
        raise SearchError(f"[plan] draws = \"posterior\" needs a surrogate with a joint posterior over new points "
                          f"(predict_posterior_draws: the regmix kind); {type(problem.surrogate).__name__} has none. "
                          "Use draws = \"auto\" or \"model\".")
    posterior = posterior and st.draws != "model"
    pts = None
    rivals = RIVALS if st.criterion == "decision" else (st.n_targets if targets is None else len(targets))
    if st.criterion in ("decision", "ranking", "prediction"):
        pts = targets if targets is not None else target_points(problem, st.n_targets, st.seed)
    regret, summary, kind = (None, {}, "joint")
    if posterior:
        raw_c, raw_t = posterior_draws(problem, candidates, pts, n_draws=st.n_draws, seed=st.seed)
        y = outcome_draws(problem, candidates, n_draws=st.n_draws, seed=st.seed, raw=raw_c)
        kind = "posterior"
        if st.criterion == "prediction":
            regret, summary, kind = target_values(problem, pts, n_draws=st.n_draws, seed=st.seed, draws=raw_t,
                                                  kind="posterior")
        elif pts is not None:
            regret, summary, kind = decision_regret(problem, pts, n_draws=st.n_draws, seed=st.seed, draws=raw_t,
                                                    kind="posterior", rivals=rivals)
    else:
        y = outcome_draws(problem, candidates, n_draws=st.n_draws, seed=st.seed)
        if st.criterion == "prediction":
            regret, summary, kind = target_values(problem, pts, n_draws=st.n_draws, seed=st.seed)
        elif pts is not None:
            regret, summary, kind = decision_regret(problem, pts, n_draws=st.n_draws, seed=st.seed, rivals=rivals)
        else:
            from mixopt.search.decision import draws_kind

            kind = draws_kind(problem.surrogate)
    cost = 6.0 * candidates.params * candidates.tokens
    blocked = (same_runs(candidates, existing, l1=st.duplicate_l1).any(axis=1) if existing is not None and len(existing)
               else np.zeros(len(candidates), dtype=bool))
    if blocked.all():
        raise SearchError(f"Every one of the {len(candidates)} candidate runs repeats a run already made (same size, mixture "
                          f"within L1 {st.duplicate_l1:g}); nothing new to propose. Add candidate sizes ([plan] sizes), "
                          "more candidates ([plan] n_candidates) or lower [plan] duplicate_l1.")
    def near(i: int) -> np.ndarray:
        return same_runs(candidates, candidates.take(np.array([i])), l1=st.duplicate_l1)[:, 0]

    design = fill_design(problem, st)
    fill = design is not None and design[0] < design[1]
    picked, gains = greedy_batch(y, regret, cost, runs=st.runs, flops=st.flops, noise=st.noise,
                                 scale=st.criterion != "prediction", blocked=blocked, near=near,
                                 coverage=1.0 if fill else st.coverage,
                                 features=_ratios(candidates.mixture),
                                 seen=None if existing is None else _ratios(existing.mixture),
                                 region=None if pts is None else _ratios(pts.mixture))
    if not picked:
        raise SearchError(f"No candidate run fits the FLOPs budget {st.flops:.3g}; the cheapest new run costs {cost[~blocked].min():.3g} FLOPs. "
                          "Raise [plan] flops or add a smaller size.")
    idx = np.asarray(picked, dtype=np.int64)
    summary = {**summary, "criterion": st.criterion, "draws": kind, "candidates": len(candidates),
               "repeats_dropped": int(blocked.sum()), "runs": len(idx), "flops": float(cost[idx].sum()), "fill": fill,
               "design": None if design is None else {"runs": design[0], "parameters": design[1]}}
    return Plan(domains=problem.space.domains, mixture=candidates.mixture[idx], params=candidates.params[idx],
                tokens=candidates.tokens[idx], value=np.asarray(gains), index=idx, criterion=st.criterion,
                draws=kind, summary=summary)


__all__ = ["CRITERIA", "DEFAULT_COVERAGE", "DEFAULT_NOISE", "DRAWS", "DUPLICATE_L1", "RIVALS", "SAME_SIZE_RTOL", "Plan", "PlanSettings", "candidate_runs",
           "decision_regret", "greedy_batch", "outcome_draws", "plan_runs", "posterior_draws", "same_runs", "target_points",
           "target_values"]
