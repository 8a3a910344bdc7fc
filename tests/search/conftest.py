"""Shared helpers for the search tests: tiny surrogates, worlds, a real local Ray."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
import pytest

from mixopt.data import Benchmark, RunTable
from mixopt.search import ComputeSpace, DataBudget, MixtureSpace, Problem, SearchSpace
from mixopt.surrogate.base import Prediction, Surrogate, Targets, register
from mixopt.testing import WorldSurrogate, mixture_world


class AnalyticSurrogate(Surrogate):
    """A closed-form mixture surrogate with a known Pareto front.

    Domains ``a, b, c``; ``score:x = 0.3 + 0.5·r_a``, ``score:y = 0.3 + 0.5·r_b`` (both rise
    with compute by ``0.01·log10(C/1e20)``), ``score:z`` lower-is-better ``= 1 - r_c``;
    ``loss:a = 2 - r_a``, ``loss = 2``. Constant predictive std ``std``. The two-objective
    (x, y) front at fixed compute is ``r_a + r_b = 1`` (``r_c = 0``).
    """

    kind: ClassVar[str] = "test-analytic"
    uses_mixture: ClassVar[bool] = True

    def __init__(self, std: float = 0.01, fail_when: str | None = None) -> None:
        self.std = std
        self.fail_when = fail_when

    def _fit(self, runs: RunTable | None) -> None:
        self.domains_ = ("a", "b", "c")
        self.benchmarks_ = (Benchmark(name="x", chance=0.25), Benchmark(name="y", chance=0.25),
                            Benchmark(name="z", chance=None, higher_is_better=False))
        self.outputs_ = ("score:x", "score:y", "score:z", "loss:a", "loss")
        self.unpredictable_ = {}

    def _predict(self, targets: Targets, *, intervals: bool, level: float) -> Prediction:
        r = targets.mixture
        if self.fail_when == "always":
            raise RuntimeError("analytic surrogate: forced failure")
        if self.fail_when == "high_a" and np.any(r[:, 0] > 0.6):
            raise RuntimeError("analytic surrogate: r_a > 0.6 is not allowed")
        c = 0.01 * np.log10(targets.flops / 1e20)
        mean = np.column_stack([0.3 + 0.5 * r[:, 0] + c, 0.3 + 0.5 * r[:, 1] + c, 1 - r[:, 2], 2 - r[:, 0],
                                np.full(len(targets), 2.0)])
        if self.fail_when == "nan_b":
            mean[r[:, 1] > 0.8, 1] = np.nan
        return Prediction.from_normal(self.outputs_, mean, self.std if intervals else None, level)

    def _get_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        return {}, {}

    def _set_state(self, state: dict[str, Any], arrays: Mapping[str, np.ndarray]) -> None:
        self._fit(None)


def fitted_analytic(**kw: Any) -> AnalyticSurrogate:
    s = AnalyticSurrogate(**kw)
    s._fit(None)
    s.fitted_ = True
    return s


class LinearMixSurrogate(Surrogate):
    """Least squares of every loss/score on (1, log10 C, r, r²) over final checkpoints: a test stand-in for FLP-M."""

    kind: ClassVar[str] = "test-linear"
    uses_mixture: ClassVar[bool] = True

    def __init__(self, ridge: float = 1e-6) -> None:
        self.ridge = ridge

    def _features(self, flops: np.ndarray, mix: np.ndarray) -> np.ndarray:
        return np.column_stack([np.ones(len(flops)), np.log10(flops), mix, mix**2])

    def _fit(self, runs: RunTable) -> None:
        self.domains_ = runs.domains
        self.benchmarks_ = runs.benchmarks
        names = [f"score:{b}" for b in runs.benchmark_names] + [f"loss:{d}" for d in runs.loss_domains]
        y = np.column_stack([runs.scores(), runs.losses()])
        x = self._features(runs.flops(), runs.mixture())
        a = x.T @ x + self.ridge * np.eye(x.shape[1])
        self.coef_ = np.linalg.solve(a, x.T @ y)
        self.sd_ = np.std(y - x @ self.coef_, axis=0)
        self.train_max_flops_ = float(runs.flops().max())  # how far a target extrapolates (the search's headline)
        self.outputs_ = tuple(names)
        self.unpredictable_ = {}

    def _predict(self, targets: Targets, *, intervals: bool, level: float) -> Prediction:
        mean = self._features(targets.flops, targets.mixture) @ self.coef_
        return Prediction.from_normal(self.outputs_, mean, self.sd_ if intervals else None, level)

    def _get_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        return {"train_max_flops": self.train_max_flops_}, {"coef": self.coef_, "sd": self.sd_}

    def _set_state(self, state: dict[str, Any], arrays: Mapping[str, np.ndarray]) -> None:
        self.coef_, self.sd_ = arrays["coef"], arrays["sd"]
        self.train_max_flops_ = float(state.get("train_max_flops", np.nan))


register(AnalyticSurrogate)
register(LinearMixSurrogate)


@pytest.fixture
def analytic() -> AnalyticSurrogate:
    return fitted_analytic()


def analytic_problem(surrogate: Surrogate | None = None, *, objectives=("score:x", "score:y"), constraints=(),
                     flops: Any = 1e21, data: DataBudget | None = None, **kw: Any) -> Problem:
    s = surrogate or fitted_analytic()
    space = SearchSpace(MixtureSpace(("a", "b", "c")), ComputeSpace(flops=flops), data)
    return Problem(space, s, list(objectives), list(constraints), **kw)


@pytest.fixture(scope="session")
def world3():
    return mixture_world(n_domains=3, n_benchmarks=3, seed=0)


@pytest.fixture(scope="session")
def world_surrogate3(world3) -> WorldSurrogate:
    return WorldSurrogate(world3, std=0.01)


@pytest.fixture(scope="session")
def ray_local():
    """A real local Ray (2 CPUs) for the whole session; shut down at the end."""
    ray = pytest.importorskip("ray")
    import logging
    import sys

    from ray import cloudpickle

    # test surrogates live in the tests, which Ray workers cannot import: ship them by value
    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    started = False
    if not ray.is_initialized():
        auth_log = logging.getLogger("ray._private.authentication.authentication_token_setup")  # as RayExecutor does
        level = auth_log.level
        auth_log.setLevel(logging.ERROR)
        try:
            ray.init(num_cpus=2, include_dashboard=False, logging_level=logging.WARNING, log_to_driver=False)
        finally:
            auth_log.setLevel(level)
        started = True
    yield ray
    if started:
        ray.shutdown()


def write_endless_search_config(tmp_path: Any, search: str) -> Any:
    """A config for a search that runs until it is stopped (regmix on a tiny 3-domain world),
    with ``search`` appended to its ``[search]`` section; returns the config path."""
    from mixopt.data.readers import write_runs
    from tests._configs import write_search_config

    w = mixture_world(n_domains=3, n_benchmarks=2, seed=0)
    runs = write_runs(w.sample_runs([2e7, 6e7, 2e8], w.random_mixtures(8, seed=1), n_checkpoints=3, seed=2), tmp_path / "r.csv")
    return write_search_config(tmp_path / "c.toml", runs, method="regmix", optimize=(f"score:{w.benchmark_names[0]}",),
                               search=search, batch_size=16, sampler="random", storage="s.log")
