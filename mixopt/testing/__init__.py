"""Synthetic ground-truth worlds and shipped test helpers.

See :mod:`mixopt.testing.worlds` for the laws; quick start::

    from mixopt.testing import mixture_world
    world = mixture_world(n_domains=3, n_benchmarks=4, seed=0)
    runs = world.sample_runs([2e7, 6e7, 2e8], world.random_mixtures(16, seed=1), seed=2)

:class:`WorldSurrogate` (:mod:`mixopt.testing.truth`) serves a world's exact truth behind the
surrogate interface, so a search can be measured against a known Pareto front.
:class:`WorldOracle` (:mod:`mixopt.testing.oracle`) fits a world's own generating forms to the
runs a method may use: the information limit a method's error is judged against.

Package rule: ``mixopt.testing`` may import ``mixopt.data``, ``mixopt.laws`` and
``mixopt.surrogate``; the library never imports it (only tests, benchmarks and the CLI's
``simulate`` command do).
"""

from mixopt.testing.oracle import WorldOracle
from mixopt.testing.truth import WorldSurrogate
from mixopt.testing.worlds import (
    BENCHMARK_POOL,
    DOMAIN_NAMES,
    World,
    calibrate_benchmarks,
    mixture_world,
    random_mixtures,
    single_domain_world,
    two_domain_code_world,
)

__all__ = [
    "BENCHMARK_POOL",
    "DOMAIN_NAMES",
    "World",
    "WorldOracle",
    "WorldSurrogate",
    "calibrate_benchmarks",
    "mixture_world",
    "random_mixtures",
    "single_domain_world",
    "two_domain_code_world",
]
