"""Synthetic worlds: seeded sampling runs drawn from known ground-truth laws.

A :class:`World` is a small, fully specified "universe" of language-model training in
which the true per-domain losses and benchmark scores are closed-form functions of
training compute and data mixture. Tests use it to check that fitted laws recover the
truth, benchmarks use it to score extrapolation, the search benchmark uses the exact
truth to enumerate a true Pareto front, and the demo uses it so anyone can try mixopt
without data::

    from mixopt.testing import mixture_world
    world = mixture_world(n_domains=3, n_benchmarks=4, seed=0)
    mixes = world.random_mixtures(16, seed=1)                 # (16, 3)
    runs = world.sample_runs([2e7, 6e7, 2e8], mixes, seed=2)  # RunTable, 48 runs x 10 ckpts
    truth = world.true_scores(np.array([1e21]), mixes[:1])    # (1, 4)

The truth
---------
Mixture domains ``s = 1..k`` with sampling ratios ``r_s`` (sum 1); validation domains
``d = 1..m`` (by default one per mixture domain). With ``C = 6·N·D`` training FLOPs:

* **Domain loss** (nats/token)::

      C_eff,d = C · (Σ_s T[d, s]·r_s + ε)
      L_d     = E_d + A_d · (C_eff,d / C_ref)^(−α_d)

  ``T`` (``m x k``) is a *transfer matrix*: strong diagonal (data from domain d is what
  teaches domain d) and weak non-negative off-diagonal transfer (code helps math a little).
  ``ε > 0`` keeps the loss finite when a domain gets no data (``r_s = 0``), so every
  mixture on the closed simplex is valid. The power in ``r`` gives diminishing returns,
  so weighted trade-offs between domains have an *interior* optimum, not a corner.
  ``L_d`` strictly decreases in ``C`` for every mixture and tends to ``E_d``.
  (This is the FLP-M reading "each domain's loss falls with the compute spent on each
  source ``C_s = r_s·C``" with the source contributions pooled before the power law.)
* **Overall loss** ``loss = Σ_d v_d·L_d`` with *fixed* weights ``v`` (default uniform):
  the loss on one fixed held-out validation set made of the validation domains, so
  overall losses of different mixtures are comparable (a mixture-weighted average would
  change the yardstick with the mixture). A single-domain world has ``loss = L_1``.
* **Benchmark score** (emergent)::

      score_b = chance_b + (ceil_b − chance_b) · sigmoid(κ_b · (τ_b − Σ_d w[b, d]·L_d))

  ``w[b]`` is a benchmark-specific weighting of the domain losses (a point on the
  simplex), so different benchmarks prefer different mixtures and there is a real
  trade-off / Pareto front; the score is flat at chance while the weighted loss is above
  the threshold ``τ_b`` and rises like a sigmoid to ``ceil_b`` after. Presets calibrate
  ``τ_b`` and ``κ_b`` from two readable numbers: the FLOPs ``c_mid`` at which the score is
  half-way to its ceiling (at the uniform mixture), and the number of decades ``width``
  between 5 % and 50 % of the rise. The presets put ``c_mid`` at 1e19.5–1e20.5 FLOPs, so
  with sampling runs of 1e7–1e9 params at 20 tokens/param (1e16–1e20 FLOPs) scores are at
  chance for the smallest runs, emerge inside the sampling range, and keep rising over
  the next 10–100x of compute: extrapolation backtests are meaningful.

What is not modelled
--------------------
Checkpoints along a run use the *same* law at the compute seen so far, so a checkpoint
at 30 % of training equals a fully trained smaller-budget run; the real effect of the
learning-rate schedule (a cosine run's mid-training checkpoints are worse than a run
trained to that budget) is not modelled. Final checkpoints are the "fully trained" points
FLP stage 1 fits on. Noise is independent per checkpoint: relative Gaussian noise on
losses (``loss_noise``) and absolute Gaussian noise on scores (``score_noise``, clipped to
[0, 1]); no run-level offsets, no data repetition effects. All randomness comes from
``np.random.default_rng(seed)``; nothing touches the global RNG.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from mixopt.data.table import (
    LOSS,
    LOSS_PREFIX,
    MIX_PREFIX,
    PARAMS,
    RUN,
    SCORE_PREFIX,
    TOKENS,
    Benchmark,
    RunTable,
    training_flops,
)
from mixopt.errors import SchemaError

logger = logging.getLogger(__name__)

#: Default domain names of generated worlds, in order; worlds with more domains get
#: ``domain11``, ``domain12``, ...
DOMAIN_NAMES: tuple[str, ...] = (
    "web", "code", "math", "books", "wiki", "papers", "forums", "news", "legal", "medical",
)

#: Benchmark names (and chance levels, 0-1 scale) of generated worlds, in order; more
#: benchmarks than this get ``bench<i>`` with a chance level drawn from {0, 0.25, 0.5}.
BENCHMARK_POOL: tuple[tuple[str, float], ...] = (
    ("hellaswag", 0.25), ("humaneval", 0.0), ("gsm8k", 0.0), ("arc_easy", 0.25),
    ("triviaqa", 0.0), ("mmlu", 0.25), ("piqa", 0.5), ("mbpp", 0.0), ("arc_challenge", 0.25),
    ("winogrande", 0.5), ("race", 0.25), ("bbh", 0.0),
)

#: log(19): the logit distance between 5 % and 50 % of a sigmoid's rise.
_LOGIT_5 = math.log(19.0)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    # numerically stable logistic
    out = np.empty_like(x)
    pos = x >= 0
    out[pos] = 1.0 / (1.0 + np.exp(-x[pos]))
    ex = np.exp(x[~pos])
    out[~pos] = ex / (1.0 + ex)
    return out


def random_mixtures(n: int, k: int, *, seed: int | np.random.Generator | None = 0, alpha: float | Sequence[float] = 1.0) -> np.ndarray:
    """Draw ``n`` mixtures over ``k`` domains from a Dirichlet distribution.

    Args:
        n: number of mixtures.
        k: number of domains (>= 1).
        seed: seed or generator for ``np.random.default_rng``.
        alpha: Dirichlet concentration, a scalar (symmetric) or ``(k,)``. 1 is uniform on
            the simplex; < 1 favours sparse mixtures near the corners; > 1 favours the centre.

    Returns:
        ``(n, k)`` array, every row non-negative and summing to 1.
    """
    if n < 0 or k < 1:
        raise SchemaError(f"random_mixtures needs n >= 0 and k >= 1, got n={n}, k={k}.")
    a = np.broadcast_to(np.asarray(alpha, dtype=np.float64), (k,))
    if not np.all(np.isfinite(a)) or np.any(a <= 0):
        raise SchemaError(f"Dirichlet alpha must be finite and > 0, got {alpha!r}.")
    rng = np.random.default_rng(seed)
    return rng.dirichlet(a, size=n).reshape(n, k)


def _check_sample_args(params: Sequence[float] | np.ndarray, tokens_per_param: float, n_checkpoints: int,
                       loss_noise: float, score_noise: float) -> np.ndarray:
    """The model sizes of :meth:`World.sample_runs` as ``(p,)`` floats, after checking its numeric settings."""
    N = np.atleast_1d(np.asarray(params, dtype=np.float64))
    if N.ndim != 1 or N.size == 0 or not np.all(np.isfinite(N)) or np.any(N <= 0):
        raise SchemaError(f"params must be a non-empty sequence of finite sizes > 0, got {params!r}.")
    if not (tokens_per_param > 0 and math.isfinite(tokens_per_param)):
        raise SchemaError(f"tokens_per_param must be > 0, got {tokens_per_param}.")
    if int(n_checkpoints) < 1:
        raise SchemaError(f"n_checkpoints must be >= 1, got {n_checkpoints}.")
    if loss_noise < 0 or score_noise < 0:
        raise SchemaError(f"noise levels must be >= 0, got loss_noise={loss_noise}, score_noise={score_noise}.")
    return N


def _checkpoint_grid(N: np.ndarray, q: int, n_checkpoints: int,
                     tokens_per_param: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Rows of ``p·q`` runs x ``n_checkpoints``: run-major (sizes outer, mixtures inner), checkpoints innermost.

    Returns ``(params, mixture index, fraction of training, tokens, flops)``, one entry per row.
    """
    p, n_ck = N.size, int(n_checkpoints)
    n_par = np.repeat(np.repeat(N, q), n_ck)
    idx = np.repeat(np.tile(np.arange(q), p), n_ck)
    frac = np.tile(np.arange(1, n_ck + 1) / n_ck, p * q)
    tokens = tokens_per_param * n_par * frac
    return n_par, idx, frac, tokens, training_flops(n_par, tokens)


@dataclass(frozen=True, eq=False, kw_only=True)
class World:
    """A synthetic world with known truth (see the module docstring for the laws).

    Shapes: ``k`` mixture domains, ``m`` validation (loss) domains, ``b`` benchmarks.
    ``k = 0`` is a *single-domain* world: no mixture, ``m = 1``, runs carry only ``loss``.

    Attributes:
        domains: ``k`` mixture domain names (``mix:<d>`` columns); empty = single-domain.
        loss_domains: ``m`` validation domain names (``loss:<d>`` columns).
        benchmarks: ``b`` benchmark metadata (chance level, direction = higher is better).
        E: ``(m,)`` irreducible loss per validation domain, nats/token.
        A: ``(m,)`` reducible loss at ``C_eff = C_ref``, nats/token.
        alpha: ``(m,)`` compute exponents (> 0).
        transfer: ``(m, k)`` non-negative transfer matrix ``T``.
        eps: floor on the effective data share (> 0), keeps losses finite at ``r = 0``.
        c_ref: reference compute, FLOPs.
        overall_weights: ``(m,)`` fixed weights of the overall loss (sum 1).
        bench_weights: ``(b, m)`` weights of each benchmark on the domain losses (rows sum 1).
        bench_ceiling: ``(b,)`` score the benchmark saturates at (> chance).
        bench_tau: ``(b,)`` weighted-loss threshold at the sigmoid mid-point, nats/token.
        bench_slope: ``(b,)`` sigmoid slope ``κ`` per nat (> 0).
    """

    domains: tuple[str, ...]
    loss_domains: tuple[str, ...]
    benchmarks: tuple[Benchmark, ...]
    E: np.ndarray
    A: np.ndarray
    alpha: np.ndarray
    transfer: np.ndarray
    eps: float = 0.02
    c_ref: float = 1e18
    overall_weights: np.ndarray | None = None
    bench_weights: np.ndarray | None = None
    bench_ceiling: np.ndarray | None = None
    bench_tau: np.ndarray | None = None
    bench_slope: np.ndarray | None = None

    def __post_init__(self) -> None:
        set_ = lambda name, v: object.__setattr__(self, name, v)  # noqa: E731
        set_("domains", tuple(str(d) for d in self.domains))
        set_("loss_domains", tuple(str(d) for d in self.loss_domains))
        set_("benchmarks", tuple(self.benchmarks))
        k, m, b = len(self.domains), len(self.loss_domains), len(self.benchmarks)
        problems: list[str] = []

        def arr(name: str, shape: tuple[int, ...]) -> np.ndarray:
            a = np.array(getattr(self, name), dtype=np.float64)
            if a.shape != shape:
                problems.append(f"{name} must have shape {shape}, got {a.shape}")
                a = np.zeros(shape)
            elif not np.all(np.isfinite(a)):
                problems.append(f"{name} must be finite, got {a}")
            a.setflags(write=False)
            set_(name, a)
            return a

        if m < 1:
            problems.append("a world needs at least one validation domain (loss_domains)")
        if k == 0 and m != 1:
            problems.append(f"a single-domain world (no mixture domains) has exactly one loss domain, got {m}")
        if len(set(self.domains)) != k or len(set(self.loss_domains)) != m:
            problems.append(f"domain names must be unique, got {self.domains} / {self.loss_domains}")
        if len({x.name for x in self.benchmarks}) != b:
            problems.append(f"benchmark names must be unique, got {[x.name for x in self.benchmarks]}")
        for x in self.benchmarks:
            if not x.higher_is_better:
                problems.append(f"benchmark {x.name!r}: synthetic scores are accuracies (higher_is_better=True)")
        E, A, al = arr("E", (m,)), arr("A", (m,)), arr("alpha", (m,))
        T = arr("transfer", (m, k))
        if self.overall_weights is None:
            set_("overall_weights", np.full(m, 1.0 / max(m, 1)))
        if b == 0:  # benchmark arrays may be omitted for a world without benchmarks
            for name, shape in (("bench_weights", (0, m)), ("bench_ceiling", (0,)), ("bench_tau", (0,)), ("bench_slope", (0,))):
                if getattr(self, name) is None:
                    set_(name, np.zeros(shape))
        v = arr("overall_weights", (m,))
        W = arr("bench_weights", (b, m))
        ceil, _tau, slope = arr("bench_ceiling", (b,)), arr("bench_tau", (b,)), arr("bench_slope", (b,))
        if np.any(E < 0) or np.any(A <= 0) or np.any(al <= 0):
            problems.append("E must be >= 0, A and alpha > 0 (loss must fall with compute)")
        if np.any(T < 0):
            problems.append("transfer must be non-negative")
        if k and np.any(T.sum(axis=1) <= 0):
            problems.append("every loss domain needs some transfer from some mixture domain (row sums of transfer > 0)")
        if not (math.isfinite(self.eps) and self.eps > 0) or not (math.isfinite(self.c_ref) and self.c_ref > 0):
            problems.append(f"eps and c_ref must be finite and > 0, got eps={self.eps}, c_ref={self.c_ref}")
        if np.any(v < 0) or abs(v.sum() - 1) > 1e-9:
            problems.append(f"overall_weights must be non-negative and sum to 1, got {v}")
        if b and (np.any(W < 0) or np.any(np.abs(W.sum(axis=1) - 1) > 1e-9)):
            problems.append("bench_weights rows must be non-negative and sum to 1")
        chance = np.array([x.chance or 0.0 for x in self.benchmarks])
        if b and (np.any(ceil <= chance) or np.any(ceil > 1)):
            problems.append(f"bench_ceiling must be in (chance, 1], got {ceil} for chance {chance}")
        if np.any(slope <= 0):
            problems.append("bench_slope must be > 0")
        if problems:
            raise SchemaError("Invalid World:", problems)
        set_("_chance", chance)

    # -- sizes ----------------------------------------------------------------------------
    @property
    def k(self) -> int:
        """Number of mixture domains (0 for a single-domain world)."""
        return len(self.domains)

    @property
    def single_domain(self) -> bool:
        """True if the world has no mixture (runs carry no ``mix:`` columns)."""
        return not self.domains

    @property
    def benchmark_names(self) -> tuple[str, ...]:
        return tuple(x.name for x in self.benchmarks)

    # -- truth ----------------------------------------------------------------------------
    def _inputs(self, flops: np.ndarray | float, mixture: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        c = np.atleast_1d(np.asarray(flops, dtype=np.float64))
        if c.ndim != 1:
            raise SchemaError(f"flops must be a scalar or (n,), got shape {c.shape}.")
        if self.single_domain:
            if mixture is not None and np.asarray(mixture).size:
                raise SchemaError("This single-domain world takes no mixture; pass mixture=None.")
            return c, np.zeros((c.shape[0], 0))
        if mixture is None:
            raise SchemaError(f"This world needs a mixture over {list(self.domains)}; got None.")
        r = np.asarray(mixture, dtype=np.float64)
        if r.ndim == 1:
            r = r[None, :]
        if r.ndim != 2 or r.shape[1] != self.k:
            raise SchemaError(f"mixture must be (n, {self.k}) over {list(self.domains)}, got shape {r.shape}.")
        if r.shape[0] == 1 and c.shape[0] > 1:
            r = np.broadcast_to(r, (c.shape[0], self.k))
        elif c.shape[0] == 1 and r.shape[0] > 1:
            c = np.broadcast_to(c, (r.shape[0],))
        if r.shape[0] != c.shape[0]:
            raise SchemaError(f"flops has {c.shape[0]} rows but mixture has {r.shape[0]}; give one mixture per compute value.")
        return c, r

    def effective_compute(self, flops: np.ndarray | float, mixture: np.ndarray | None = None) -> np.ndarray:
        """Effective compute per validation domain ``C·(T r + ε)``, FLOPs, ``(n, m)``.

        For a single-domain world this is ``C`` itself, ``(n, 1)``.
        """
        c, r = self._inputs(flops, mixture)
        if self.single_domain:
            return c[:, None].copy()
        return c[:, None] * (r @ self.transfer.T + self.eps)

    def true_losses(self, flops: np.ndarray | float, mixture: np.ndarray | None = None) -> np.ndarray:
        """True per-domain validation losses, nats/token.

        Args:
            flops: ``(n,)`` training compute, FLOPs (a scalar broadcasts).
            mixture: ``(n, k)`` sampling ratios (a single ``(k,)`` row broadcasts); None
                for a single-domain world.

        Returns:
            ``(n, m)`` losses, columns in :attr:`loss_domains` order.
        """
        ceff = self.effective_compute(flops, mixture)
        return self.E + self.A * (ceff / self.c_ref) ** (-self.alpha)

    def true_overall_loss(self, flops: np.ndarray | float, mixture: np.ndarray | None = None) -> np.ndarray:
        """True overall loss ``Σ_d v_d·L_d`` (fixed weights), nats/token, ``(n,)``."""
        return self.true_losses(flops, mixture) @ self.overall_weights

    def scores_from_losses(self, losses: np.ndarray) -> np.ndarray:
        """Benchmark scores implied by domain losses (the true stage-2 map).

        Args:
            losses: ``(n, m)`` domain losses, nats/token.

        Returns:
            ``(n, b)`` scores on each benchmark's 0-1 scale, in :attr:`benchmarks` order.
        """
        L = np.asarray(losses, dtype=np.float64)
        if L.ndim != 2 or L.shape[1] != len(self.loss_domains):
            raise SchemaError(f"losses must be (n, {len(self.loss_domains)}), got {L.shape}.")
        z = self.bench_slope * (self.bench_tau - L @ self.bench_weights.T)
        return self._chance + (self.bench_ceiling - self._chance) * _sigmoid(z)

    def true_scores(self, flops: np.ndarray | float, mixture: np.ndarray | None = None) -> np.ndarray:
        """True benchmark scores, ``(n, b)`` (0-1 scale, in :attr:`benchmarks` order)."""
        return self.scores_from_losses(self.true_losses(flops, mixture))

    # -- sampling -------------------------------------------------------------------------
    def random_mixtures(self, n: int, seed: int | np.random.Generator | None = 0, alpha: float | Sequence[float] = 1.0) -> np.ndarray:
        """``(n, k)`` Dirichlet mixtures over this world's domains (see :func:`random_mixtures`)."""
        if self.single_domain:
            raise SchemaError("A single-domain world has no mixture to sample.")
        return random_mixtures(n, self.k, seed=seed, alpha=alpha)

    def sample_runs(
        self,
        params: Sequence[float] | np.ndarray,
        mixtures: np.ndarray | None = None,
        *,
        tokens_per_param: float = 20.0,
        n_checkpoints: int = 10,
        loss_noise: float = 0.01,
        score_noise: float = 0.01,
        seed: int | np.random.Generator | None = 0,
    ) -> RunTable:
        """Simulate sampling runs: one run per (params, mixture) pair, with checkpoints.

        Run ``(N, r)`` trains on ``D = tokens_per_param·N`` tokens; its checkpoints sit at
        ``D·j/n_checkpoints`` for ``j = 1..n_checkpoints`` (the last one is the final,
        "fully trained" checkpoint), each evaluated with the true law at ``C = 6·N·D_j``
        plus noise.

        Args:
            params: ``(p,)`` model sizes N (parameters, > 0).
            mixtures: ``(q, k)`` sampling ratios; None = the uniform mixture for a
                multi-domain world, and no mixture for a single-domain world.
            tokens_per_param: final tokens / params (20 = Chinchilla-optimal).
            n_checkpoints: evaluated checkpoints per run (>= 1).
            loss_noise: relative std of the multiplicative Gaussian loss noise.
            score_noise: absolute std of the additive Gaussian score noise (clipped to [0, 1]).
            seed: seed or generator for ``np.random.default_rng``.

        Returns:
            RunTable with ``p·q`` runs x ``n_checkpoints`` rows; columns ``run``, ``params``,
            ``tokens``, ``flops``, ``step``, ``mix:<d>`` (multi-domain only), ``loss``,
            ``loss:<d>`` (multi-domain only) and ``score:<b>``. Run ids are
            ``N<params>_m<mixture index>``, e.g. ``N1e+08_m003``.
        """
        N = _check_sample_args(params, tokens_per_param, n_checkpoints, loss_noise, score_noise)
        n_ck = int(n_checkpoints)
        R = self._sample_mixtures(mixtures)
        rng = np.random.default_rng(seed)
        p, q = N.size, R.shape[0]
        n_par, mix_idx, frac, tokens, flops = _checkpoint_grid(N, q, n_ck, tokens_per_param)
        r = R[mix_idx] if not self.single_domain else None
        L = self.true_losses(flops, r)
        overall = L @ self.overall_weights
        S = self.scores_from_losses(L)
        n = flops.size
        L_obs = L * (1.0 + loss_noise * rng.standard_normal(L.shape))
        overall_obs = overall * (1.0 + loss_noise * rng.standard_normal(n))
        S_obs = np.clip(S + score_noise * rng.standard_normal(S.shape), 0.0, 1.0)
        L_obs = np.maximum(L_obs, 1e-6)
        overall_obs = np.maximum(overall_obs, 1e-6)

        width = max(3, len(str(q - 1)))
        run_ids = [f"N{x:.3g}_m{i:0{width}d}" for x, i in zip(n_par, mix_idx, strict=True)]
        cols: dict[str, Any] = {
            RUN: run_ids,
            PARAMS: n_par,
            TOKENS: tokens,
            "flops": flops,
            "step": np.tile(np.arange(1, n_ck + 1), p * q).astype(np.int64),
        }
        for j, d in enumerate(self.domains):
            cols[MIX_PREFIX + d] = R[mix_idx, j]
        cols[LOSS] = overall_obs
        if not self.single_domain:
            for j, d in enumerate(self.loss_domains):
                cols[LOSS_PREFIX + d] = L_obs[:, j]
        for j, x in enumerate(self.benchmarks):
            cols[SCORE_PREFIX + x.name] = S_obs[:, j]
        frame = pl.DataFrame(cols)
        dup = frame[RUN].n_unique() * n_ck != n
        if dup:
            raise SchemaError("params contains duplicate sizes (same N to 3 significant digits); give distinct model sizes.")
        logger.debug("sampled %d runs x %d checkpoints from %r", p * q, n_ck, self)
        return RunTable(frame, self.benchmarks)

    def _sample_mixtures(self, mixtures: np.ndarray | None) -> np.ndarray:
        """``(q, k)`` checked sampling ratios (``(1, 0)`` for a single-domain world)."""
        if self.single_domain:
            if mixtures is not None and np.asarray(mixtures).size:
                raise SchemaError("This single-domain world takes no mixtures; pass mixtures=None.")
            return np.zeros((1, 0))
        R = np.full((1, self.k), 1.0 / self.k) if mixtures is None else np.asarray(mixtures, dtype=np.float64)
        if R.ndim == 1:
            R = R[None, :]
        if R.ndim != 2 or R.shape[1] != self.k:
            raise SchemaError(f"mixtures must be (q, {self.k}) over {list(self.domains)}, got shape {R.shape}.")
        if np.any(~np.isfinite(R)) or np.any(R < 0) or np.any(np.abs(R.sum(axis=1) - 1) > 1e-6):
            raise SchemaError("every mixture row must be non-negative and sum to 1; renormalise the rows.")
        return R

    # -- serialisation ----------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable description; :meth:`from_dict` rebuilds an identical world."""
        return {
            "domains": list(self.domains),
            "loss_domains": list(self.loss_domains),
            "benchmarks": [x.to_dict() for x in self.benchmarks],
            "E": self.E.tolist(),
            "A": self.A.tolist(),
            "alpha": self.alpha.tolist(),
            "transfer": self.transfer.tolist(),
            "eps": self.eps,
            "c_ref": self.c_ref,
            "overall_weights": self.overall_weights.tolist(),
            "bench_weights": self.bench_weights.tolist(),
            "bench_ceiling": self.bench_ceiling.tolist(),
            "bench_tau": self.bench_tau.tolist(),
            "bench_slope": self.bench_slope.tolist(),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> World:
        """Inverse of :meth:`to_dict`."""
        m = len(d["loss_domains"])
        b = len(d["benchmarks"])
        return cls(
            domains=tuple(d["domains"]),
            loss_domains=tuple(d["loss_domains"]),
            benchmarks=tuple(Benchmark.from_dict(x) for x in d["benchmarks"]),
            E=np.asarray(d["E"], dtype=float),
            A=np.asarray(d["A"], dtype=float),
            alpha=np.asarray(d["alpha"], dtype=float),
            transfer=np.asarray(d["transfer"], dtype=float).reshape(m, len(d["domains"])),
            eps=float(d["eps"]),
            c_ref=float(d["c_ref"]),
            overall_weights=np.asarray(d["overall_weights"], dtype=float),
            bench_weights=np.asarray(d["bench_weights"], dtype=float).reshape(b, m),
            bench_ceiling=np.asarray(d["bench_ceiling"], dtype=float),
            bench_tau=np.asarray(d["bench_tau"], dtype=float),
            bench_slope=np.asarray(d["bench_slope"], dtype=float),
        )

    def __repr__(self) -> str:
        return (
            f"World(domains={list(self.domains)}, loss_domains={list(self.loss_domains)}, "
            f"benchmarks={list(self.benchmark_names)})"
        )


# -- construction helpers -------------------------------------------------------------------
def calibrate_benchmarks(
    world: World,
    specs: Sequence[tuple[Benchmark, Sequence[float], float, float, float]],
    reference_mixture: np.ndarray | None = None,
) -> World:
    """A copy of ``world`` with benchmarks set from readable emergence settings.

    Args:
        world: a world (its own benchmarks are replaced).
        specs: one ``(benchmark, weights, ceiling, c_mid, width)`` per benchmark:
            ``weights`` ``(m,)`` on the domain losses (normalised to sum 1), ``ceiling``
            the saturation score, ``c_mid`` the FLOPs at which the score is half-way from
            chance to ceiling at ``reference_mixture``, ``width`` the decades of compute
            between 5 % and 50 % of the rise.
        reference_mixture: ``(k,)`` mixture the calibration is done at (default uniform).

    Returns:
        A new :class:`World`.
    """
    ref = None if world.single_domain else (
        np.full(world.k, 1.0 / world.k) if reference_mixture is None else np.asarray(reference_mixture, float)
    )
    W, ceil, tau, slope, bench = [], [], [], [], []
    for x, w, ce, c_mid, width in specs:
        w = np.asarray(w, dtype=np.float64)
        w = w / w.sum()
        l_mid = float(world.true_losses(np.array([c_mid]), ref)[0] @ w)
        l_lo = float(world.true_losses(np.array([c_mid / 10.0**width]), ref)[0] @ w)
        W.append(w)
        ceil.append(ce)
        tau.append(l_mid)
        slope.append(_LOGIT_5 / (l_lo - l_mid))
        bench.append(x)
    d = world.to_dict()
    d.update(
        benchmarks=[x.to_dict() for x in bench],
        bench_weights=np.array(W).reshape(len(bench), len(world.loss_domains)).tolist(),
        bench_ceiling=ceil, bench_tau=tau, bench_slope=slope,
    )
    return World.from_dict(d)


def single_domain_world(seed: int = 0, n_benchmarks: int = 3) -> World:
    """A world without mixtures: one overall loss and ``n_benchmarks`` emergent benchmarks.

    Loss ``L(C) = E + A·(C/1e18)^(−α)`` with E in [1.6, 2.1], A in [1.2, 1.6], α in
    [0.12, 0.18] nats/token drawn from ``seed``; benchmark mid-points at 1e19.5–1e20.5
    FLOPs, 1–1.5 decades wide. Use it for FLP (one data source).
    """
    rng = np.random.default_rng(seed)
    base = World(
        domains=(),
        loss_domains=("all",),
        benchmarks=(),
        E=rng.uniform(1.6, 2.1, 1),
        A=rng.uniform(1.2, 1.6, 1),
        alpha=rng.uniform(0.12, 0.18, 1),
        transfer=np.zeros((1, 0)),
    )
    specs = []
    for i in range(n_benchmarks):
        name, chance = _benchmark_name(i, rng)
        specs.append((Benchmark(name=name, chance=chance), [1.0], _ceiling(chance, rng), 10 ** rng.uniform(19.5, 20.5), rng.uniform(1.0, 1.5)))
    return calibrate_benchmarks(base, specs)


def mixture_world(n_domains: int = 3, n_benchmarks: int = 4, seed: int = 0) -> World:
    """A random multi-domain world with plausible parameters for any ``k >= 1``.

    Drawn from ``seed``: per domain E in [0.8, 2.2] (code/math-like domains can be low),
    A in [1.0, 1.8], α in [0.10, 0.20]; transfer diagonal 1, off-diagonal in [0, 0.10];
    ε = 0.02. Benchmark ``i`` favours domain ``i mod k``: its loss weights are
    0.5 on that domain + 0.25/k on every domain + 0.25·Dirichlet(2), so every domain
    matters a little. For k <= 3 each benchmark's best mixture is interior (checked for
    seeds 0-4); from k = 4 on a few ratios of a benchmark's best mixture can sit at 0
    (a face of the simplex, not a corner). Ceilings 0.55–0.9, mid-points 1e19.5–1e20.5 FLOPs at the uniform mixture,
    1–1.5 decades wide.
    Domains are named from :data:`DOMAIN_NAMES`, benchmarks from :data:`BENCHMARK_POOL`.
    """
    if n_domains < 1 or n_benchmarks < 0:
        raise SchemaError(f"mixture_world needs n_domains >= 1 and n_benchmarks >= 0, got {n_domains}, {n_benchmarks}.")
    k = int(n_domains)
    rng = np.random.default_rng(seed)
    names = tuple(DOMAIN_NAMES[i] if i < len(DOMAIN_NAMES) else f"domain{i + 1}" for i in range(k))
    T = rng.uniform(0.0, 0.10, (k, k))
    np.fill_diagonal(T, 1.0)
    base = World(
        domains=names,
        loss_domains=names,
        benchmarks=(),
        E=rng.uniform(0.8, 2.2, k),
        A=rng.uniform(1.0, 1.8, k),
        alpha=rng.uniform(0.10, 0.20, k),
        transfer=T,
        eps=0.02,
    )
    specs = []
    for i in range(n_benchmarks):
        name, chance = _benchmark_name(i, rng)
        w = 0.25 / k + 0.25 * rng.dirichlet(np.full(k, 2.0))
        w[i % k] += 0.5
        specs.append((Benchmark(name=name, chance=chance), w, _ceiling(chance, rng), 10 ** rng.uniform(19.5, 20.5), rng.uniform(1.0, 1.5)))
    return calibrate_benchmarks(base, specs)


def two_domain_code_world() -> World:
    """The paper's FLP-M setting: a general web corpus (DCLM-like) plus code (Stack-like).

    Domains ``web`` and ``code`` (validation loss on each). Code data teaches web text
    little (transfer 0.05) and web teaches code a bit (0.10). Benchmarks: ``hellaswag``,
    ``arc_challenge`` and ``triviaqa`` weight mostly the web loss (so they prefer little
    code), ``humaneval`` weights mostly the code loss but needs some general language
    ability (so the best code ratio for it is high but interior), and ``bbh`` mixes both.
    At 1e21 FLOPs the best code ratios are about 0.06 (hellaswag), 0.17 (arc_challenge),
    0.03 (triviaqa), 0.65 (humaneval), 0.33 (bbh); the overall-loss optimum is ~0.43.
    Emergence is calibrated at the mixture (0.8 web, 0.2 code). No randomness: the world
    is fixed.
    """
    base = World(
        domains=("web", "code"),
        loss_domains=("web", "code"),
        benchmarks=(),
        E=np.array([1.85, 0.75]),
        A=np.array([1.30, 1.10]),
        alpha=np.array([0.14, 0.17]),
        transfer=np.array([[1.0, 0.05], [0.10, 1.0]]),
        eps=0.02,
    )
    specs = [
        (Benchmark(name="hellaswag", chance=0.25), [0.85, 0.15], 0.85, 10**19.8, 1.3),
        (Benchmark(name="arc_challenge", chance=0.25), [0.75, 0.25], 0.65, 10**20.3, 1.2),
        (Benchmark(name="triviaqa", chance=0.0), [0.88, 0.12], 0.60, 10**20.4, 1.1),
        (Benchmark(name="humaneval", chance=0.0), [0.30, 0.70], 0.55, 10**20.2, 1.2),
        (Benchmark(name="bbh", chance=0.0), [0.6, 0.4], 0.50, 10**20.5, 1.3),
    ]
    return calibrate_benchmarks(base, specs, reference_mixture=np.array([0.8, 0.2]))


def _benchmark_name(i: int, rng: np.random.Generator) -> tuple[str, float]:
    if i < len(BENCHMARK_POOL):
        return BENCHMARK_POOL[i]
    return f"bench{i + 1}", float(rng.choice([0.0, 0.25, 0.5]))


def _ceiling(chance: float, rng: np.random.Generator) -> float:
    return float(max(chance + 0.3, rng.uniform(0.55, 0.9)))


__all__ = [
    "BENCHMARK_POOL",
    "DOMAIN_NAMES",
    "World",
    "calibrate_benchmarks",
    "mixture_world",
    "random_mixtures",
    "single_domain_world",
    "two_domain_code_world",
]
