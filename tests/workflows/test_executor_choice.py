"""The search's executor is chosen by the count of remaining trials, never by a clock."""

from __future__ import annotations

import importlib
import itertools
import time
from types import SimpleNamespace

import pytest

opt = importlib.import_module("mixopt.workflows.optimize")  # the package re-exports a function of that name


def _config(executor: str = "ray", address: str | None = None) -> SimpleNamespace:
    return SimpleNamespace(search=SimpleNamespace(executor=executor, ray_address=address, workers=2, ray_dashboard=False))


@pytest.fixture
def started(monkeypatch) -> list[tuple[str, str | None]]:
    """Records every executor make_executor would start (nothing is started)."""
    calls: list[tuple[str, str | None]] = []
    monkeypatch.setattr(opt, "make_executor", lambda kind, **kw: calls.append((kind, kw["address"])) or "started")
    monkeypatch.setattr(opt, "ray_is_running", lambda: False)
    return calls


def test_small_search_runs_in_process_and_large_one_starts_ray(started) -> None:
    make = opt._executor_factory(_config())
    small = make(opt.RAY_MIN_TRIALS - 1)
    assert isinstance(small, opt._InProcess) and "20,000 trials" in small.describe()
    assert started == []
    assert make(opt.RAY_MIN_TRIALS) == "started" and started == [("ray", None)]


def test_the_choice_does_not_depend_on_the_clock(started, monkeypatch) -> None:
    # a clock that jumps by hours between reads (a loaded or suspended machine) changes nothing
    ticks = itertools.count(0.0, 3600.0)
    monkeypatch.setattr(time, "perf_counter", lambda: next(ticks))
    monkeypatch.setattr(time, "monotonic", lambda: next(ticks))
    for _ in range(3):
        assert isinstance(opt._executor_factory(_config())(2000), opt._InProcess)
    assert started == []


def test_local_and_addressed_executors_are_taken_as_configured(started) -> None:
    assert opt._executor_factory(_config("local"))(10) == "started"
    assert opt._executor_factory(_config("local", address="head:6379"))(10) == "started"  # an address means Ray
    assert started == [("local", None), ("ray", "head:6379")]
