"""Validation training jobs: trainers, executors, ladders and the optimise -> validate -> refit loop.

Trainers know nothing of Optuna or Ray; torch is imported only by the reference trainer when a job
runs, Ray only by :mod:`mixopt.train.ray_executor`.
"""
