"""The surrogate contract, as a suite every registered kind must pass (like ``optuna.testing``
or scikit-learn's ``check_estimator``).

Each check takes a method name (anything :func:`~mixopt.surrogate.make_surrogate` accepts)
and optional settings, builds its own synthetic world of the kind's family (a mixture world
for mixture-aware kinds, a single-domain world otherwise), and raises ``AssertionError``
with what was expected and what happened when the kind breaks the contract:

* :func:`check_fit_predict_shapes` -- ``fit`` returns the estimator; ``predict`` before ``fit``
  raises :class:`~mixopt.errors.NotFittedError`; a prediction has one ``(n, m)`` row per
  target and one column per output, with ``lower <= mean <= upper`` and finite means for
  every predictable quantity.
* :func:`check_save_load_identical` -- save, load, and the same predictions bit for bit.
* :func:`check_intervals_widen_with_distance` -- loss intervals (relative to the mean) grow
  with the compute beyond the largest run; a kind fitted at one scale refuses the far
  targets with :class:`~mixopt.errors.NotPredictableError` instead.
* :func:`check_bad_targets_are_refused` -- wrong input types, a mixture over unknown domains,
  a level outside (0, 1) and an unfitted save raise mixopt errors whose message names the fix.
* :func:`check_deterministic_under_seed` -- two fits with the same seed give identical predictions.
* :func:`check_coverage_near_nominal` -- on a noisy world of its own family, the 90%
  intervals at held-out runs one size beyond the fitted ones cover between
  :data:`COVERAGE_RANGE` of the values (the heavy check: a full fit with intervals).

:func:`check_surrogate` runs them all; :data:`CHECKS` names them for parametrised tests::

    import pytest
    from mixopt.surrogate import surrogate_kinds
    from mixopt.testing.conformance import CHECKS

    @pytest.mark.parametrize("kind", surrogate_kinds())
    @pytest.mark.parametrize("check", CHECKS.values(), ids=CHECKS.keys())
    def test_contract(kind, check):
        check(kind)

:data:`QUICK_SETTINGS` holds fast settings for the built-in kinds (fewer bootstrap draws,
the logistic stage 2 instead of the net); a new kind runs with its defaults unless settings
are given.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from mixopt.data.table import RunTable
from mixopt.errors import MixoptError, NotFittedError, NotPredictableError, SchemaError
from mixopt.surrogate.base import Prediction, Surrogate, Targets, load_surrogate, make_surrogate, save_surrogate
from mixopt.testing.worlds import World, mixture_world, single_domain_world

#: fast settings for the built-in kinds (the contract does not depend on them)
QUICK_SETTINGS: dict[str, dict[str, Any]] = {
    "flp": {"n_bootstrap": 8},
    "fp": {"n_bootstrap": 8},
    "flpm": {"n_bootstrap": 4, "n_starts": 2, "stage2": "logistic"},
    "flpm_additive": {"n_bootstrap": 4, "n_starts": 2, "stage2": "logistic"},
    "dml": {"n_bootstrap": 4, "n_starts": 2, "stage2": "logistic"},
}
#: model sizes of the sampling runs: mixture worlds (10 mixtures each) and single-domain worlds
#: (one run each); the largest is held out by the coverage check
SIZES = (5e7, 1e8, 2e8, 5e8, 1e9)
SINGLE_SIZES = (2e7, 5e7, 1e8, 2e8, 4e8, 7e8, 1e9)
#: multiples of the largest run's size predicted by the distance check
DISTANCE_MULTIPLES = (1.0, 3.0, 10.0, 30.0)
#: accepted share of held-out values inside their 90% interval (nominal 0.9)
COVERAGE_RANGE = (0.7, 1.0)
LEVEL = 0.9


def _settings(kind: str, settings: Mapping[str, Any] | None) -> dict[str, Any]:
    return dict(QUICK_SETTINGS.get(kind, {}) if settings is None else settings)


def _uses_mixture(kind: str) -> bool:
    return type(make_surrogate(kind)).uses_mixture


@lru_cache(maxsize=8)
def _world(mixture: bool, seed: int) -> World:
    return mixture_world(n_domains=3, n_benchmarks=2, seed=seed) if mixture else single_domain_world(seed=seed, n_benchmarks=2)


@lru_cache(maxsize=8)
def _runs(mixture: bool, seed: int, noise: float) -> RunTable:
    w = _world(mixture, seed)
    mixtures = w.random_mixtures(10, seed=seed + 100) if mixture else None
    return w.sample_runs(list(SIZES if mixture else SINGLE_SIZES), mixtures, n_checkpoints=5, loss_noise=noise, score_noise=noise, seed=seed + 200)


def world_and_runs(kind: str, *, seed: int = 0, noise: float = 0.005) -> tuple[World, RunTable]:
    """The synthetic world of ``kind``'s family and its sampling runs (cached per family, seed and noise)."""
    mixture = _uses_mixture(kind)
    return _world(mixture, seed), _runs(mixture, seed, noise)


def _targets(world: World, params: np.ndarray, mixture_seed: int = 7) -> Targets:
    params = np.asarray(params, dtype=np.float64)
    if not world.domains:
        return Targets.from_params_tokens(params, 20 * params)
    mix = np.tile(world.random_mixtures(1, seed=mixture_seed), (len(params), 1))
    return Targets.from_params_tokens(params, 20 * params, mix, world.domains)


def _fit(kind: str, settings: Mapping[str, Any] | None, runs: RunTable) -> Surrogate:
    model = make_surrogate(kind, **_settings(kind, settings))
    out = model.fit(runs)
    if out is not model:
        raise AssertionError(f"{kind}: fit must return the estimator itself, got {type(out).__name__}.")
    return model


#: fitted models shared by the checks that only read them (kind, settings, seed, noise) -> model
_FITTED: dict[tuple[str, str, int, float], Surrogate] = {}


def fitted(kind: str, settings: Mapping[str, Any] | None = None, *, seed: int = 0, noise: float = 0.005) -> Surrogate:
    """``kind`` fitted on :func:`world_and_runs` (cached: checks that only predict share one fit)."""
    import json

    key = (kind, json.dumps(_settings(kind, settings), sort_keys=True, default=str), seed, noise)
    if key not in _FITTED:
        _FITTED[key] = _fit(kind, settings, world_and_runs(kind, seed=seed, noise=noise)[1])
    return _FITTED[key]


def _predictable(model: Surrogate, pred: Prediction) -> list[int]:
    return [j for j, q in enumerate(pred.names) if q not in model.unpredictable_]


# -- the checks -------------------------------------------------------------------------------------
def check_fit_predict_shapes(kind: str, settings: Mapping[str, Any] | None = None) -> None:
    """fit -> self; predict before fit raises NotFittedError; (n, m) predictions with ordered intervals."""
    world, runs = world_and_runs(kind)
    unfitted = make_surrogate(kind, **_settings(kind, settings))
    t = _targets(world, np.array([2e8, 5e8, 8e8]))
    try:
        unfitted.predict(t)
    except NotFittedError:
        pass
    else:
        raise AssertionError(f"{kind}: predict before fit must raise NotFittedError.")
    model = fitted(kind, settings)
    pred = model.predict(t, level=LEVEL)
    names = tuple(model.outputs)
    if pred.names != names:
        raise AssertionError(f"{kind}: prediction names {pred.names} differ from the model's outputs {names}.")
    for arr, what in ((pred.mean, "mean"), (pred.lower, "lower"), (pred.upper, "upper"), (pred.std, "std")):
        if arr is None or arr.shape != (len(t), len(names)):
            raise AssertionError(f"{kind}: {what} must have shape {(len(t), len(names))}, got {None if arr is None else arr.shape}.")
    ok = _predictable(model, pred)
    if not ok:
        raise AssertionError(f"{kind}: predicted nothing on its own world ({model.unpredictable_}).")
    m, lo, hi = pred.mean[:, ok], pred.lower[:, ok], pred.upper[:, ok]  # type: ignore[index]
    if not np.all(np.isfinite(m)):
        raise AssertionError(f"{kind}: non-finite means for predictable quantities {[names[j] for j in ok]}.")
    if not (np.all(lo <= m) and np.all(m <= hi)):
        raise AssertionError(f"{kind}: intervals must contain the mean; got lower {lo[~(lo <= m)][:3]} / upper "
                             f"{hi[~(m <= hi)][:3]} around means {m[~((lo <= m) & (m <= hi))][:3]}.")
    if not np.all(pred.std[:, ok] >= 0):  # type: ignore[index]
        raise AssertionError(f"{kind}: negative predictive std.")
    means_only = model.predict(t, intervals=False)
    np.testing.assert_allclose(means_only.mean, pred.mean, rtol=1e-12, equal_nan=True,
                               err_msg=f"{kind}: means differ with and without intervals")


def check_save_load_identical(kind: str, settings: Mapping[str, Any] | None = None) -> None:
    """save -> load -> the same predictions (means and intervals, exactly)."""
    world, _ = world_and_runs(kind)
    model = fitted(kind, settings)
    t = _targets(world, np.array([1e8, 1e9, 2e9]))
    before = model.predict(t, level=LEVEL)
    with tempfile.TemporaryDirectory() as tmp:
        path = save_surrogate(model, Path(tmp) / "model")
        loaded = load_surrogate(path)
    if type(loaded) is not type(model) or loaded.get_params() != model.get_params():
        raise AssertionError(f"{kind}: loaded {type(loaded).__name__}({loaded.get_params()}), saved "
                             f"{type(model).__name__}({model.get_params()}).")
    after = loaded.predict(t, level=LEVEL)
    if after.names != before.names or dict(after.unpredictable) != dict(before.unpredictable):
        raise AssertionError(f"{kind}: loaded model predicts {after.names} (unpredictable {dict(after.unpredictable)}), "
                             f"saved one {before.names} ({dict(before.unpredictable)}).")
    for what in ("mean", "lower", "upper", "std"):
        np.testing.assert_array_equal(getattr(after, what), getattr(before, what), err_msg=f"{kind}: {what} changed by save/load")


def check_intervals_widen_with_distance(kind: str, settings: Mapping[str, Any] | None = None) -> None:
    """Relative loss-interval width grows with the compute beyond the largest run (or far targets are refused)."""
    world, _ = world_and_runs(kind)
    model = fitted(kind, settings)
    t = _targets(world, max(SIZES) * np.asarray(DISTANCE_MULTIPLES))
    try:
        pred = model.predict(t, level=LEVEL)
    except NotPredictableError as e:
        if "compute" not in str(e):
            raise AssertionError(f"{kind}: refused targets beyond its runs without saying it is about compute: {e}") from None
        return
    ok = _predictable(model, pred)
    losses = [j for j in ok if pred.names[j].startswith("loss")]
    if not ok:
        raise AssertionError(f"{kind}: predicted nothing on its own world.")
    width = pred.upper - pred.lower  # type: ignore[operator]
    for j in losses:  # a loss interval grows relative to the (falling) loss
        rel = width[:, j] / np.abs(pred.mean[:, j])
        if not np.all(np.diff(rel) > 0):
            raise AssertionError(f"{kind}: the relative width of the {pred.names[j]} interval must grow with distance "
                                 f"({list(DISTANCE_MULTIPLES)}x the largest run); got {np.round(rel, 5).tolist()}.")
    # a kind without losses: its score intervals are wider at the farthest target than at the largest run
    # (with losses, score intervals may narrow where a score approaches its ceiling)
    for j in ([] if losses else ok):
        if not width[-1, j] > width[0, j]:
            raise AssertionError(f"{kind}: the {pred.names[j]} interval is not wider at {DISTANCE_MULTIPLES[-1]}x the largest "
                                 f"run than at 1x: widths {np.round(width[:, j], 5).tolist()}.")


def check_bad_targets_are_refused(kind: str, settings: Mapping[str, Any] | None = None) -> None:
    """Wrong types, unknown domains and bad levels raise mixopt errors that say what to fix."""
    world, runs = world_and_runs(kind)
    unfitted = make_surrogate(kind, **_settings(kind, settings))
    with tempfile.TemporaryDirectory() as tmp:
        _expect_error(kind, "save before fit", lambda: save_surrogate(unfitted, Path(tmp) / "m"), NotFittedError, "fit")
    _expect_error(kind, "fit on a polars frame", lambda: unfitted.fit(runs.frame), SchemaError, "RunTable")  # type: ignore[arg-type]
    model = fitted(kind, settings)
    t = _targets(world, np.array([1e9]))
    _expect_error(kind, "predict on an array", lambda: model.predict(np.array([1e20])), SchemaError, "Targets")  # type: ignore[arg-type]
    _expect_error(kind, "level 1.5", lambda: model.predict(t, level=1.5), SchemaError, "level")
    _expect_error(kind, "negative compute", lambda: Targets(flops=np.array([-1e20])), SchemaError, "compute")
    if world.domains:
        other = Targets.from_params_tokens([1e9], [2e10], np.array([[0.5, 0.5]]), ("web", "unknown_domain"))
        _expect_error(kind, "a mixture over an unknown domain", lambda: model.predict(other), SchemaError, "unknown_domain")
        _expect_error(kind, "compute without a mixture", lambda: model.predict(Targets(flops=np.array([1e20]))),
                      SchemaError, "mixture")


def _expect_error(kind: str, what: str, call: Callable[[], Any], error: type[MixoptError], needle: str) -> None:
    try:
        call()
    except error as e:
        if needle.lower() not in str(e).lower():
            raise AssertionError(f"{kind}: {what} raised {type(e).__name__} without naming {needle!r}: {e}") from None
    except Exception as e:  # noqa: BLE001 - any other error breaks the contract
        raise AssertionError(f"{kind}: {what} must raise {error.__name__}, got {type(e).__name__}: {e}") from None
    else:
        raise AssertionError(f"{kind}: {what} must raise {error.__name__}; nothing was raised.")


def check_deterministic_under_seed(kind: str, settings: Mapping[str, Any] | None = None) -> None:
    """Two fits with the same settings and seed predict identically (means and intervals)."""
    world, runs = world_and_runs(kind)
    t = _targets(world, np.array([3e8, 1e9, 3e9]))
    a = fitted(kind, settings).predict(t, level=LEVEL)
    b = _fit(kind, settings, runs).predict(t, level=LEVEL)  # a second, fresh fit
    for what in ("mean", "lower", "upper"):
        np.testing.assert_allclose(getattr(b, what), getattr(a, what), rtol=1e-9, atol=0, equal_nan=True,
                                   err_msg=f"{kind}: {what} differs between two fits with the same seed")


def check_coverage_near_nominal(kind: str, settings: Mapping[str, Any] | None = None, *,
                                seeds: tuple[int, ...] | None = None) -> float:
    """Pooled over ``seeds`` (default 2 mixture worlds of 10 mixtures, or 10 single-domain worlds of one
    run per size): 90% intervals at the runs of the largest size, fitted on the smaller ones, cover
    within :data:`COVERAGE_RANGE` of the held-out losses and scores. Returns the coverage."""
    if seeds is None:
        seeds = (1, 2) if _uses_mixture(kind) else tuple(range(1, 11))
    hits: list[np.ndarray] = []
    for seed in seeds:
        world, runs = world_and_runs(kind, seed=seed, noise=0.01)
        train = runs.filter(pl.col("params") < max(SIZES))
        test = runs.filter(pl.col("params") >= max(SIZES)).final()
        model = _fit(kind, settings, train)
        try:
            pred = model.predict(Targets.from_runs(test), level=LEVEL)
        except NotPredictableError:
            raise AssertionError(f"{kind}: could not predict runs one size (2x) beyond its fitted runs.") from None
        for j in _predictable(model, pred):
            q = pred.names[j]
            if q not in test.frame.columns:
                continue
            a = test.column(q)
            lo, hi = pred.interval(q)
            ok = np.isfinite(a)
            hits.append(((lo <= a) & (a <= hi))[ok])
    if not hits:
        raise AssertionError(f"{kind}: no held-out value could be compared.")
    cov = float(np.mean(np.concatenate(hits)))
    lo_ok, hi_ok = COVERAGE_RANGE
    if not lo_ok <= cov <= hi_ok:
        raise AssertionError(f"{kind}: 90% intervals covered {cov:.0%} of {sum(map(len, hits))} held-out values one size "
                             f"beyond the runs; expected {lo_ok:.0%}-{hi_ok:.0%}.")
    return cov


#: every check by name; the first five are fast, the coverage check fits with full intervals on two worlds
CHECKS: dict[str, Callable[..., Any]] = {
    "fit_predict_shapes": check_fit_predict_shapes,
    "save_load_identical": check_save_load_identical,
    "intervals_widen_with_distance": check_intervals_widen_with_distance,
    "bad_targets_are_refused": check_bad_targets_are_refused,
    "deterministic_under_seed": check_deterministic_under_seed,
    "coverage_near_nominal": check_coverage_near_nominal,
}


def check_surrogate(kind: str, settings: Mapping[str, Any] | None = None) -> None:
    """Run every check of the contract on ``kind``; raises AssertionError at the first broken one."""
    for check in CHECKS.values():
        check(kind, settings)


__all__ = ["CHECKS", "COVERAGE_RANGE", "QUICK_SETTINGS", "check_bad_targets_are_refused", "check_coverage_near_nominal",
           "check_deterministic_under_seed", "check_fit_predict_shapes", "check_intervals_widen_with_distance",
           "check_save_load_identical", "check_surrogate", "fitted", "world_and_runs"]
