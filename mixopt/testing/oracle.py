"""The information-limit oracle of a synthetic world: its own generating forms, fitted.

A method judged on a :class:`~mixopt.testing.worlds.World` should be compared with what
*any* method could extract from the same runs, not with a fixed error target. The
oracle knows the world's functional forms exactly (see :mod:`mixopt.testing.worlds`) and
fits them, with the same parameter count, by least squares to exactly the runs the method
may use; its error on the held-out runs is the information limit of that data::

    from mixopt.backtest import make_split
    from mixopt.testing import WorldOracle, single_domain_world
    world = single_domain_world(seed=1)
    runs = world.sample_runs([2e7, 5e7, 1e8, 2e8, 4e8, 7e8, 1e9, 3e9], seed=1)
    split = make_split(runs, holdout_min_params=1e9)
    oracle = WorldOracle(world, seed=0).fit(split.train)
    scores = oracle.predict_scores(split.test.final().flops(), None)   # (n, b)

The fit, in two least-squares stages (all checkpoints of the fitted runs, as the laws see them):

1. **Domain losses**: ``L_d = E_d + A_d·(C·(Σ_s T[d,s]·r_s + ε)/C_ref)^(−α_d)`` with the
   transfer diagonal fixed at 1 (the world's own normalisation; ``A_d`` absorbs the scale),
   the off-diagonal transfer ``T[d, s≠d] >= 0`` and one shared ``ε > 0`` free: ``3 + (k−1)``
   parameters per domain plus ``ε`` (3 in a single-domain world). Residuals are relative,
   matching the world's multiplicative loss noise; observed ``loss:<d>`` columns (``loss`` in
   a single-domain world) are fitted jointly.
2. **Scores**, per benchmark: ``chance + (ceil − chance)·sigmoid(κ·(τ − Σ_d w_d·L̂_d))`` on the
   stage-1 losses ``L̂`` (what is known at prediction time), with ``w`` on the simplex
   (``m − 1`` free), ``τ``, ``κ > 0`` and the ceiling free (``ceiling="free"``) or set to the
   world's (``ceiling="true"``). The chance level is the benchmark's metadata, known to any
   method. Residuals are absolute, matching the additive score noise.

Each stage is a seeded multi-start of :func:`scipy.optimize.least_squares` (bounded,
trust-region reflective); the start with the lowest cost wins. ``params="true"`` skips the
fit and predicts with the world's true parameters: its error is the noise floor of the
held-out observations. Nothing touches the global RNG.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.optimize import least_squares

from mixopt.data.table import LOSS, LOSS_PREFIX, MIX_PREFIX, SCORE_PREFIX, RunTable
from mixopt.errors import SchemaError
from mixopt.testing.worlds import World, _sigmoid

_CEILINGS = ("free", "true")
_PARAMS = ("fitted", "true")


@dataclass(frozen=True)
class LossParams:
    """Stage-1 parameters: ``E``, ``A``, ``alpha`` ``(m,)``, ``transfer`` ``(m, k)``, ``eps``."""

    E: np.ndarray
    A: np.ndarray
    alpha: np.ndarray
    transfer: np.ndarray
    eps: float


@dataclass(frozen=True)
class ScoreParams:
    """Stage-2 parameters: ``weights`` ``(b, m)``, ``tau``, ``slope``, ``ceiling`` ``(b,)``."""

    weights: np.ndarray
    tau: np.ndarray
    slope: np.ndarray
    ceiling: np.ndarray


class WorldOracle:
    """The world's own generating forms, fitted to the runs a method may use.

    Args:
        world: the synthetic world whose forms are fitted (its true parameters are used
            only with ``params="true"``, and its ceilings only with ``ceiling="true"``).
        ceiling: ``"free"`` fits every benchmark's score ceiling; ``"true"`` gives it.
        params: ``"fitted"`` fits the forms; ``"true"`` predicts with the true parameters.
        seed: seed of the multi-start initial points.
        n_starts: starts per least-squares stage (>= 1).
    """

    def __init__(self, world: World, *, ceiling: str = "free", params: str = "fitted", seed: int = 0, n_starts: int = 8) -> None:
        if not isinstance(world, World):
            raise SchemaError(f"WorldOracle needs a mixopt.testing.World, got {type(world).__name__}.")
        if ceiling not in _CEILINGS:
            raise SchemaError(f"ceiling must be one of {_CEILINGS}, got {ceiling!r}.")
        if params not in _PARAMS:
            raise SchemaError(f"params must be one of {_PARAMS}, got {params!r}.")
        if int(n_starts) < 1:
            raise SchemaError(f"n_starts must be >= 1, got {n_starts}.")
        self.world, self.ceiling, self.params = world, ceiling, params
        self.seed, self.n_starts = int(seed), int(n_starts)
        self.loss_params_: LossParams | None = None
        self.score_params_: ScoreParams | None = None

    # -- fitting ---------------------------------------------------------------------------
    def fit(self, runs: RunTable) -> WorldOracle:
        """Fit both stages to every checkpoint of ``runs`` (or take the truth); returns self."""
        w = self.world
        if self.params == "true":
            self.loss_params_ = LossParams(w.E.copy(), w.A.copy(), w.alpha.copy(), w.transfer.copy(), float(w.eps))
            self.score_params_ = ScoreParams(w.bench_weights.copy(), w.bench_tau.copy(), w.bench_slope.copy(), w.bench_ceiling.copy())
            return self
        flops, mix = self._inputs(runs)
        losses = self._observed_losses(runs)
        rng = np.random.default_rng(self.seed)
        self.loss_params_ = self._fit_losses(flops, mix, losses, rng)
        l_hat = self._losses(self.loss_params_, flops, mix)
        self.score_params_ = self._fit_scores(runs, l_hat, rng)
        return self

    def _inputs(self, runs: RunTable) -> tuple[np.ndarray, np.ndarray]:
        w = self.world
        missing = [MIX_PREFIX + d for d in w.domains if MIX_PREFIX + d not in runs.frame.columns]
        if missing:
            raise SchemaError(f"the runs lack the world's mixture columns {missing}; give runs sampled from this world.")
        mix = np.column_stack([runs.column(MIX_PREFIX + d) for d in w.domains]) if w.k else np.zeros((len(runs), 0))
        return runs.flops(), mix

    def _observed_losses(self, runs: RunTable) -> np.ndarray:
        w = self.world
        cols = [LOSS] if w.single_domain else [LOSS_PREFIX + d for d in w.loss_domains]
        missing = [c for c in cols if c not in runs.frame.columns]
        if missing:
            raise SchemaError(f"the runs lack the loss columns {missing} the world's forms are fitted to.")
        return np.column_stack([runs.column(c) for c in cols])

    def _losses(self, p: LossParams, flops: np.ndarray, mix: np.ndarray) -> np.ndarray:
        share = mix @ p.transfer.T + p.eps if self.world.k else np.ones((flops.size, 1))
        ceff = flops[:, None] * share / self.world.c_ref
        return p.E + p.A * ceff ** (-p.alpha)

    def _unpack_loss(self, theta: np.ndarray) -> LossParams:
        m, k = len(self.world.loss_domains), self.world.k
        per = 3 + max(k - 1, 0)
        blocks = theta[: m * per].reshape(m, per)
        T = np.ones((m, k))
        for d in range(m):
            off = [s for s in range(k) if s != d]
            T[d, off] = blocks[d, 3:]
        eps = float(theta[m * per]) if k else self.world.eps
        return LossParams(blocks[:, 0].copy(), np.exp(blocks[:, 1]), blocks[:, 2].copy(), T, eps)

    def _fit_losses(self, flops: np.ndarray, mix: np.ndarray, obs: np.ndarray, rng: np.random.Generator) -> LossParams:
        m, k = obs.shape[1], self.world.k
        per_lo = [0.0, -6.0, 0.01] + [0.0] * max(k - 1, 0)
        per_hi = [10.0, 6.0, 1.5] + [1.0] * max(k - 1, 0)
        lo = per_lo * m + ([1e-4] if k else [])
        hi = per_hi * m + ([1.0] if k else [])
        ok = np.all(np.isfinite(obs), axis=1)

        def resid(theta: np.ndarray) -> np.ndarray:
            pred = self._losses(self._unpack_loss(theta), flops[ok], mix[ok])
            return ((pred - obs[ok]) / obs[ok]).ravel()

        def start() -> np.ndarray:
            e0 = rng.uniform(0.2, 0.95, m) * np.nanmin(obs, axis=0)
            blocks = [[e0[d], rng.uniform(-1.0, 1.0), rng.uniform(0.05, 0.4)] + list(rng.uniform(0.0, 0.2, max(k - 1, 0))) for d in range(m)]
            return np.array([x for b in blocks for x in b] + ([rng.uniform(0.005, 0.1)] if k else []))

        theta = _multistart(resid, start, np.array(lo), np.array(hi), self.n_starts)
        return self._unpack_loss(theta)

    def _fit_scores(self, runs: RunTable, l_hat: np.ndarray, rng: np.random.Generator) -> ScoreParams:
        w = self.world
        m = l_hat.shape[1]
        b = len(w.benchmarks)
        W, tau, slope, ceil = np.zeros((b, m)), np.zeros(b), np.zeros(b), np.zeros(b)
        for j, bench in enumerate(w.benchmarks):
            col = SCORE_PREFIX + bench.name
            if col not in runs.frame.columns:
                raise SchemaError(f"the runs lack {col!r}; give runs sampled from this world.")
            y = runs.column(col)
            ok = np.isfinite(y)
            chance = float(bench.chance or 0.0)
            fixed = float(w.bench_ceiling[j]) if self.ceiling == "true" else None
            theta = self._fit_one_score(l_hat[ok], y[ok], chance, fixed, rng)
            W[j], tau[j], slope[j] = _simplex(theta[: m - 1]), theta[m - 1], math.exp(theta[m])
            ceil[j] = fixed if fixed is not None else theta[m + 1]
        return ScoreParams(W, tau, slope, ceil)

    def _fit_one_score(self, L: np.ndarray, y: np.ndarray, chance: float, fixed: float | None, rng: np.random.Generator) -> np.ndarray:
        m = L.shape[1]
        l_lo, l_hi = float(L.min()), float(L.max())
        lo = [-8.0] * (m - 1) + [0.0, math.log(0.05)] + ([] if fixed is not None else [chance + 1e-3])
        hi = [8.0] * (m - 1) + [20.0, math.log(500.0)] + ([] if fixed is not None else [1.0])

        def resid(theta: np.ndarray) -> np.ndarray:
            top = fixed if fixed is not None else theta[m + 1]
            z = math.exp(theta[m]) * (theta[m - 1] - L @ _simplex(theta[: m - 1]))
            return chance + (top - chance) * _sigmoid(z) - y

        def start() -> np.ndarray:
            span = max(l_hi - l_lo, 1e-3)
            x = list(rng.normal(0.0, 1.0, m - 1)) + [rng.uniform(l_lo - 0.5 * span, l_lo + 0.5 * span),
                                                      math.log(rng.uniform(2.0, 40.0) / span)]
            if fixed is None:
                x.append(rng.uniform(max(chance + 0.05, float(y.max())), 1.0) if float(y.max()) < 1.0 else 1.0)
            return np.clip(np.array(x), np.array(lo) + 1e-9, np.array(hi) - 1e-9)

        return _multistart(resid, start, np.array(lo), np.array(hi), self.n_starts)

    # -- prediction ------------------------------------------------------------------------
    def _check(self) -> tuple[LossParams, ScoreParams]:
        if self.loss_params_ is None or self.score_params_ is None:
            raise SchemaError("this WorldOracle is not fitted; call .fit(runs) first.")
        return self.loss_params_, self.score_params_

    def predict_losses(self, flops: np.ndarray | float, mixture: np.ndarray | None = None) -> np.ndarray:
        """Predicted per-domain losses ``(n, m)`` at ``flops`` ``(n,)`` and ``mixture`` ``(n, k)``."""
        p, _ = self._check()
        c, r = self.world._inputs(flops, mixture)
        return self._losses(p, c, r)

    def predict_scores(self, flops: np.ndarray | float, mixture: np.ndarray | None = None) -> np.ndarray:
        """Predicted benchmark scores ``(n, b)`` (0-1 scale, in the world's benchmark order)."""
        _, s = self._check()
        L = self.predict_losses(flops, mixture)
        chance = np.array([x.chance or 0.0 for x in self.world.benchmarks])
        return chance + (s.ceiling - chance) * _sigmoid(s.slope * (s.tau - L @ s.weights.T))

    def predict_runs(self, runs: RunTable) -> np.ndarray:
        """Predicted scores ``(n_runs, b)`` at the final checkpoint of every run in ``runs``."""
        final = runs.final()
        flops, mix = self._inputs(final)
        return self.predict_scores(flops, mix if self.world.k else None)


def _simplex(logits: np.ndarray) -> np.ndarray:
    z = np.concatenate([[0.0], np.asarray(logits, dtype=np.float64)])
    e = np.exp(z - z.max())
    return e / e.sum()


def _multistart(resid, start, lo: np.ndarray, hi: np.ndarray, n_starts: int) -> np.ndarray:
    best, best_cost = None, math.inf
    for _ in range(n_starts):
        x0 = np.clip(start(), lo + 1e-9, hi - 1e-9)
        try:
            r = least_squares(resid, x0, bounds=(lo, hi), method="trf", x_scale="jac", max_nfev=2000)
        except (ValueError, FloatingPointError):
            continue
        if np.isfinite(r.cost) and r.cost < best_cost:
            best, best_cost = r.x, float(r.cost)
    if best is None:
        raise SchemaError("the oracle's least-squares fit found no finite solution from any start; check the runs' values.")
    return best


__all__ = ["LossParams", "ScoreParams", "WorldOracle"]
