"""The names of the search's samplers (built by :func:`mixopt.search.samplers.make_sampler`).

A module of its own, without Optuna: a config's ``[search] sampler`` is checked when the config
is loaded, and a finished study's resume (its stored result) never imports Optuna.
"""

from __future__ import annotations

SAMPLERS: tuple[str, ...] = ("nsga2", "nsga2-optuna", "nsga3", "tpe", "gp", "random", "qmc", "cmaes")

__all__ = ["SAMPLERS"]
