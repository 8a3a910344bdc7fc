"""A world where the in-range choice and the out-of-range choice differ.

Small proxies carry structure that larger models do not: at RegMix's 1M scale a free residual
over the mixture learns such structure, wins every leave-mixtures-out fold, and then ranks
the 1.1B mixtures worse than the law alone. :func:`small_scale_artefact` builds that case
from any mixture world: each run's losses are multiplied by

    exp(strength · a(r) · (C_ref / C) ** decay),    a(r) = cos(2π · (r · w + φ)),

a smooth, mixture-dependent bump (``w``, ``φ`` seeded per domain) that is as strong as
``strength`` at the reference compute ``C_ref`` (the smallest run) and fades at larger
compute. The world's own law (the truth without the bump) is what a larger model follows, so
a method that extrapolates the law ranks large mixtures right, and one that carries the bump
ranks them wrong. :func:`artefact_truth` gives the losses without the bump at any compute.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from mixopt.data.table import LOSS_PREFIX, RunTable
from mixopt.testing.worlds import World

#: spread of the bump's projection weights (1.0: smooth enough for a kernel residual to learn)
BUMP_WEIGHT_SD = 1.0


def _bump(world: World, mixture: np.ndarray, seed: int) -> np.ndarray:
    """``a(r)`` per run and domain, ``(n, m)`` in [-1, 1]."""
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 23]))
    w = rng.normal(0.0, BUMP_WEIGHT_SD, size=(world.k, world.k))
    phi = rng.uniform(0.0, 1.0, size=world.k)
    return np.cos(2 * np.pi * (np.asarray(mixture, dtype=np.float64) @ w + phi))


def small_scale_artefact(world: World, runs: RunTable, *, strength: float = 0.04, decay: float = 1.5,
                         seed: int = 0) -> RunTable:
    """``runs`` with every domain loss multiplied by the fading bump of the module docstring.

    Args:
        world: the world the runs were sampled from (its domains are the runs' domains).
        runs: runs sampled from ``world``.
        strength: size of the log-loss bump at the smallest run's compute.
        decay: how fast it fades with compute (``(C_ref / C) ** decay``).
        seed: seed of the bump's shape.
    """
    fr = runs.frame
    flops = runs.flops()
    fade = (float(flops.min()) / flops) ** float(decay)
    a = _bump(world, runs.mixture(world.domains), seed)
    cols = []
    for j, d in enumerate(world.domains):
        name = LOSS_PREFIX + d
        if name in fr.columns:
            cols.append(pl.Series(name, fr[name].to_numpy() * np.exp(strength * a[:, j] * fade)))
    out = fr.with_columns(cols)
    if "loss" in out.columns and len(cols) == world.k:
        bumped = np.column_stack([c.to_numpy() for c in cols])
        out = out.with_columns(pl.Series("loss", bumped @ np.asarray(world.overall_weights, dtype=np.float64)))
    return RunTable(out, runs.benchmarks)


def artefact_truth(world: World, flops: np.ndarray, mixture: np.ndarray) -> np.ndarray:
    """True per-domain losses ``(n, m)`` without the bump (what large models follow)."""
    return world.true_losses(np.asarray(flops, dtype=np.float64), np.asarray(mixture, dtype=np.float64))


__all__ = ["artefact_truth", "small_scale_artefact"]
