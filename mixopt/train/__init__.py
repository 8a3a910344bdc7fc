"""Validation training jobs: trainers, executors, ladders and the optimise -> validate -> refit loop.

Trainers know nothing of Optuna or Ray; torch is imported only by the reference trainer when a job
runs, Ray only by :mod:`mixopt.train.ray_executor`.

Package rule: ``mixopt.train`` may import ``mixopt.errors``, ``mixopt.data`` and
``mixopt.surrogate`` (to compare predictions with measurements); never ``mixopt.search``,
``mixopt.config`` (its sections come in as arguments; type-only imports sit under
``TYPE_CHECKING``), ``mixopt.workflows``, ``mixopt.api`` or ``mixopt.cli``. The whole jobs
(ladder, validate, the loop) are run from :mod:`mixopt.workflows` and :mod:`mixopt.cli`.
"""
