"""A synthetic world with schedules: the mixture changes during training, and late tokens count more.

:class:`PhasedWorld` is a :class:`~mixopt.testing.worlds.World` (the same transfer-weighted
compute power law per domain and emergent benchmarks) whose runs follow *schedules*
(:mod:`mixopt.data.phases`): ``K`` phases, each with its own mixture, ending at set fractions
of training. What a domain's loss sees is the **effective mixture** with a true recency
weight ``λ_d`` per validation domain (:func:`mixopt.laws.recency.recency_mixture`)::

    r_eff,d(f) = ∫_0^f r(t)·exp(λ_d·t/f) dt / ∫_0^f exp(λ_d·t/f) dt
    L_d        = E_d + A_d · (C · (Σ_s T[d, s]·r_eff,d,s + ε) / C_ref)^(−α_d)

for a checkpoint at fraction ``f`` of its run, with ``C = 6·N·D`` the compute seen so far (time
in the tokens seen so far: a checkpoint equals a run trained to its tokens on the schedule so far).
With ``λ_d = 0`` only the whole run's token-weighted mixture matters to domain d; with
``λ_d > 0`` data seen late teaches d more, so *annealing* on a domain (more of it in the last
phase) lowers its loss below what the same tokens mixed in throughout would give. Benchmarks
weight the domain losses differently, so annealing helps some benchmarks more than others.
A constant mixture gives ``r_eff = r``: such runs follow the base world's law exactly.

Quick start::

    from mixopt.testing.phases_world import phases_world
    world = phases_world(n_domains=3, n_benchmarks=4, seed=0)
    P, E = world.random_schedules(24, seed=1)             # (24, 2, 3), (24, 1): 1- and 2-phase
    runs = world.sample_runs([2e7, 6e7, 2e8], (P, E), seed=2)
    truth = world.true_losses(np.array([1e21]), P[:1], E[:1])  # (1, m)

Not modelled (beyond the base world's list): learning-rate schedule effects at a boundary,
and any interaction between phases other than the recency weighting of tokens.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from mixopt.data.phases import check_schedule, schedule_columns
from mixopt.data.table import LOSS, LOSS_PREFIX, PARAMS, RUN, SCORE_PREFIX, TOKENS, Benchmark, RunTable
from mixopt.errors import SchemaError
from mixopt.laws.recency import recency_mixture
from mixopt.testing.worlds import World, _check_sample_args, _checkpoint_grid, mixture_world

logger = logging.getLogger(__name__)

#: share of the run's tokens in the last (annealing) phase of sampled two-phase schedules
ANNEAL_SHARE = (0.1, 0.4)


@dataclass(frozen=True, eq=False, kw_only=True)
class PhasedWorld:
    """A world whose runs follow schedules, with a true recency weight per validation domain.

    Attributes:
        base: the constant-mixture world (laws, transfer, benchmarks).
        recency: ``(m,)`` true ``λ_d`` per validation domain (0 = only the overall mixture matters).
    """

    base: World
    recency: np.ndarray

    def __post_init__(self) -> None:
        lam = np.array(self.recency, dtype=np.float64).reshape(-1)
        if self.base.single_domain:
            raise SchemaError("A PhasedWorld needs a mixture world (k >= 2 domains); got a single-domain world.")
        if lam.shape != (len(self.base.loss_domains),) or not np.all(np.isfinite(lam)):
            raise SchemaError(f"recency must be {len(self.base.loss_domains)} finite numbers (one per loss domain), got {self.recency!r}.")
        lam.setflags(write=False)
        object.__setattr__(self, "recency", lam)

    @property
    def domains(self) -> tuple[str, ...]:
        return self.base.domains

    @property
    def loss_domains(self) -> tuple[str, ...]:
        return self.base.loss_domains

    @property
    def benchmarks(self) -> tuple[Benchmark, ...]:
        return self.base.benchmarks

    @property
    def k(self) -> int:
        return self.base.k

    # -- truth -----------------------------------------------------------------------------------
    def _schedule(self, phases: np.ndarray, phase_end: np.ndarray | None, n: int) -> tuple[np.ndarray, np.ndarray]:
        P = np.asarray(phases, dtype=np.float64)
        if P.ndim == 2:  # one schedule (K, k)
            P = P[None]
        if P.shape[0] == 1 and n > 1:
            P = np.broadcast_to(P, (n, *P.shape[1:]))
        E = np.zeros((P.shape[0], P.shape[1] - 1)) if phase_end is None else np.asarray(phase_end, dtype=np.float64)
        if E.ndim == 1:
            E = np.broadcast_to(E.reshape(1, -1), (P.shape[0], E.size))
        if E.shape[0] == 1 and P.shape[0] > 1:
            E = np.broadcast_to(E, (P.shape[0], E.shape[1]))
        return check_schedule(P, E, self.domains, what="world schedule")

    def effective_mixtures(self, phases: np.ndarray, phase_end: np.ndarray | None,
                           fraction: np.ndarray | float = 1.0) -> np.ndarray:
        """``(m, n, k)`` each validation domain's effective mixture of schedules ``(n, K, k)`` / ``(n, K-1)``."""
        P, E = self._schedule(phases, phase_end, np.asarray(phases).shape[0])
        return recency_mixture(P, E, self.recency[:, None], fraction)

    def true_losses(self, flops: np.ndarray | float, phases: np.ndarray, phase_end: np.ndarray | None,
                    fraction: np.ndarray | float = 1.0) -> np.ndarray:
        """True per-domain losses ``(n, m)`` at compute ``flops (n,)`` (seen so far) for schedules at ``fraction``.

        ``phases`` is ``(n, K, k)`` (or ``(K, k)`` for one schedule); ``phase_end`` ``(n, K-1)``
        (None / empty for one phase: constant mixtures ``R (n, k)`` are ``R[:, None, :]``).
        """
        c = np.atleast_1d(np.asarray(flops, dtype=np.float64))
        P, E = self._schedule(phases, phase_end, c.shape[0])
        if c.shape[0] == 1 and P.shape[0] > 1:
            c = np.broadcast_to(c, (P.shape[0],))
        if c.shape[0] != P.shape[0]:
            raise SchemaError(f"flops has {c.shape[0]} rows but there are {P.shape[0]} schedules; give one per compute value.")
        R = recency_mixture(P, E, self.recency[:, None], fraction)  # (m, n, k)
        b = self.base
        share = np.einsum("mnk,mk->nm", R, b.transfer) + b.eps  # (n, m)
        return b.E + b.A * (c[:, None] * share / b.c_ref) ** (-b.alpha)

    def true_overall_loss(self, flops: np.ndarray | float, phases: np.ndarray, phase_end: np.ndarray | None,
                          fraction: np.ndarray | float = 1.0) -> np.ndarray:
        """True overall loss ``(n,)`` (the base world's fixed weights), nats/token."""
        return self.true_losses(flops, phases, phase_end, fraction) @ self.base.overall_weights

    def true_scores(self, flops: np.ndarray | float, phases: np.ndarray, phase_end: np.ndarray | None,
                    fraction: np.ndarray | float = 1.0) -> np.ndarray:
        """True benchmark scores ``(n, b)``."""
        return self.base.scores_from_losses(self.true_losses(flops, phases, phase_end, fraction))

    # -- sampling --------------------------------------------------------------------------------
    def random_schedules(self, n: int, seed: int | np.random.Generator | None = 0, *, two_phase: float = 0.5,
                         anneal: tuple[float, float] = ANNEAL_SHARE, alpha: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
        """``n`` random schedules in the two-phase layout: ``(phases (n, 2, k), phase_end (n, 1))``.

        A share ``two_phase`` of them has two phases (each mixture Dirichlet(``alpha``), the last
        phase taking a uniform share in ``anneal`` of the tokens); the rest are constant mixtures
        (both phases equal; their boundary, drawn the same way, changes nothing).
        """
        if n < 0 or not 0 <= two_phase <= 1 or not 0 < anneal[0] <= anneal[1] < 1:
            raise SchemaError(f"random_schedules needs n >= 0, two_phase in [0, 1] and 0 < anneal low <= high < 1; "
                              f"got n={n}, two_phase={two_phase}, anneal={anneal}.")
        rng = np.random.default_rng(seed)
        a = np.full(self.k, float(alpha))
        first = rng.dirichlet(a, size=n)
        second = rng.dirichlet(a, size=n)
        two = rng.uniform(size=n) < two_phase
        second[~two] = first[~two]
        E = 1.0 - rng.uniform(anneal[0], anneal[1], size=(n, 1))
        return np.stack([first, second], axis=1), E

    def sample_runs(
        self,
        params: Sequence[float] | np.ndarray,
        schedules: tuple[np.ndarray, np.ndarray],
        *,
        tokens_per_param: float = 20.0,
        n_checkpoints: int = 10,
        loss_noise: float = 0.01,
        score_noise: float = 0.01,
        seed: int | np.random.Generator | None = 0,
    ) -> RunTable:
        """Simulate one run per (params, schedule) pair, as :meth:`World.sample_runs` does for mixtures.

        Checkpoint ``j`` of a run sits at fraction ``j / n_checkpoints`` of its tokens and is
        evaluated with the truth at the compute and effective mixtures seen so far, plus noise.

        Returns:
            RunTable with the schedule columns (``mix@k:<d>``, ``phase_end@k``, the overall
            ``mix:<d>``) and ``loss``, ``loss:<d>``, ``score:<b>``. Run ids ``N<params>_s<index>``.
        """
        N = _check_sample_args(params, tokens_per_param, n_checkpoints, loss_noise, score_noise)
        P, E = self._schedule(*schedules, np.asarray(schedules[0]).shape[0])
        n_ck = int(n_checkpoints)
        rng = np.random.default_rng(seed)
        p, q = N.size, P.shape[0]
        n_par, idx, frac, tokens, flops = _checkpoint_grid(N, q, n_ck, tokens_per_param)
        L = self.true_losses(flops, P[idx], E[idx], frac)
        overall = L @ self.base.overall_weights
        S = self.base.scores_from_losses(L)
        L_obs = np.maximum(L * (1.0 + loss_noise * rng.standard_normal(L.shape)), 1e-6)
        overall_obs = np.maximum(overall * (1.0 + loss_noise * rng.standard_normal(flops.size)), 1e-6)
        S_obs = np.clip(S + score_noise * rng.standard_normal(S.shape), 0.0, 1.0)
        width = max(3, len(str(q - 1)))
        cols: dict[str, Any] = {
            RUN: [f"N{x:.3g}_s{i:0{width}d}" for x, i in zip(n_par, idx, strict=True)],
            PARAMS: n_par, TOKENS: tokens, "flops": flops,
            "step": np.tile(np.arange(1, n_ck + 1), p * q).astype(np.int64),
        }
        cols.update({c: v[idx] for c, v in schedule_columns(P, E, self.domains).items()})
        cols[LOSS] = overall_obs
        cols.update({LOSS_PREFIX + d: L_obs[:, j] for j, d in enumerate(self.loss_domains)})
        cols.update({SCORE_PREFIX + b.name: S_obs[:, j] for j, b in enumerate(self.benchmarks)})
        frame = pl.DataFrame(cols)
        if frame[RUN].n_unique() * n_ck != frame.height:
            raise SchemaError("params contains duplicate sizes (same N to 3 significant digits); give distinct model sizes.")
        logger.debug("sampled %d schedule runs x %d checkpoints", p * q, n_ck)
        return RunTable(frame, self.benchmarks)

    # -- serialisation ---------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {"base": self.base.to_dict(), "recency": self.recency.tolist()}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> PhasedWorld:
        return cls(base=World.from_dict(d["base"]), recency=np.asarray(d["recency"], dtype=float))

    def __repr__(self) -> str:
        return f"PhasedWorld(domains={list(self.domains)}, recency={self.recency.round(3).tolist()})"


def phases_world(n_domains: int = 3, n_benchmarks: int = 4, seed: int = 0,
                 recency: Sequence[float] | None = None) -> PhasedWorld:
    """A :func:`~mixopt.testing.worlds.mixture_world` with schedules and a true recency weight.

    ``recency`` (one ``λ`` per validation domain) defaults to 0 for the first domain (web-like:
    only the overall mixture matters) and a draw in [2, 6] from ``seed`` for every other one
    (data seen late teaches them more: annealing on them pays).
    """
    if n_domains < 2:
        raise SchemaError(f"phases_world needs n_domains >= 2, got {n_domains}.")
    base = mixture_world(n_domains=n_domains, n_benchmarks=n_benchmarks, seed=seed)
    if recency is None:
        rng = np.random.default_rng(np.random.SeedSequence([int(seed), 25]))
        lam = np.concatenate([[0.0], rng.uniform(2.0, 6.0, n_domains - 1)])
    else:
        lam = np.asarray(recency, dtype=np.float64)
    if not np.all(np.isfinite(lam)) or lam.shape != (n_domains,) or math.isnan(float(lam.sum())):
        raise SchemaError(f"recency must be {n_domains} finite numbers, got {recency!r}.")
    return PhasedWorld(base=base, recency=lam)


__all__ = ["ANNEAL_SHARE", "PhasedWorld", "phases_world"]
