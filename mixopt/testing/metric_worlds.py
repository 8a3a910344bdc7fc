"""Olmix-like synthetic swarms: many domains, one model size, many loss-like task metrics.

The truth of every metric is the Data Mixing Law ``y_m = E_m + exp(Σ_d t_md·r_d)`` with
sparse task-specific coefficients (each task is helped by about 30 % of the domains), so
tests and benchmarks know what a metric-only fit should recover.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from mixopt.data.table import Benchmark, RunTable


def olmix_like_runs(
    n_domains: int,
    n_runs: int,
    n_metrics: int,
    *,
    seed: int = 0,
    noise: float = 0.01,
    concentration: float = 0.3,
    with_losses: bool = False,
) -> tuple[RunTable, dict[str, np.ndarray]]:
    """A swarm of ``n_runs`` Dirichlet mixtures over ``n_domains`` domains at ~30M params.

    Args:
        n_domains, n_runs, n_metrics: sizes.
        seed: seeds everything.
        noise: relative std of multiplicative Gaussian noise on every value.
        concentration: Dirichlet concentration of the mixtures (small = sparse mixtures,
            so some domains are seen in few runs, as in the Olmix swarms).
        with_losses: also write ``loss:<d>`` columns (each domain's loss falls with its own ratio).

    Returns:
        ``(runs, truth)``: ``score:task<m>`` metrics (lower is better, no chance floor) and
        ``truth = {"E": (M,), "T": (M, k)}``.
    """
    rng = np.random.default_rng(seed)
    R = rng.dirichlet(np.full(n_domains, concentration), n_runs)
    T = -np.abs(rng.normal(0.0, 1.0, (n_metrics, n_domains))) * (rng.random((n_metrics, n_domains)) < 0.3)
    E = rng.uniform(0.3, 1.0, n_metrics)
    Y = (E + np.exp(R @ T.T)) * (1 + noise * rng.standard_normal((n_runs, n_metrics)))
    cols: dict = {"run": [f"r{i:04d}" for i in range(n_runs)], "params": np.full(n_runs, 30e6), "tokens": np.full(n_runs, 3e9)}
    for j in range(n_domains):
        cols[f"mix:d{j}"] = R[:, j]
    if with_losses:
        L = (1.0 + np.exp(-2.0 * R - 0.05)) * (1 + noise * rng.standard_normal((n_runs, n_domains)))
        for j in range(n_domains):
            cols[f"loss:d{j}"] = L[:, j]
    for m in range(n_metrics):
        cols[f"score:task{m}"] = Y[:, m]
    bench = [Benchmark(name=f"task{m}", chance=None, higher_is_better=False) for m in range(n_metrics)]
    return RunTable(pl.DataFrame(cols), bench), {"E": E, "T": T}


__all__ = ["olmix_like_runs"]
