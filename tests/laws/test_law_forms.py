"""The law forms: shapes, broadcasting, Jacobians, monotonicity, configs."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mixopt.errors import ConfigError
from mixopt.laws import (
    LAWS,
    ChinchillaLaw,
    FPPowerLaw,
    Law,
    Linear,
    Param,
    PowerLawWithOffset,
    PurePowerLaw,
    Sigmoid,
    make_law,
    reference_for,
)

#: relative / absolute tolerance of analytic vs central-difference Jacobians
JAC_RTOL, JAC_ATOL = 1e-5, 1e-8
#: tolerance of batched vs one-at-a-time predictions (same arithmetic, different layout)
BATCH_RTOL, BATCH_ATOL = 1e-12, 1e-12


def _cases() -> list[tuple[Law, np.ndarray, np.ndarray]]:
    """(law, x (n, q), theta (p,)) with realistic magnitudes."""
    c = np.logspace(18, 22, 7)[:, None]
    loss = np.linspace(2.0, 4.0, 7)[:, None]
    nd = np.column_stack([np.logspace(7, 10, 7), np.logspace(9, 12, 7)])
    return [
        (PowerLawWithOffset(reference=1e20), c, np.array([1.7, 0.2, 0.3])),
        (PurePowerLaw(reference=1e20), c, np.array([1.0, -0.05])),
        (FPPowerLaw(reference=1e20), c, np.array([-1.0, 0.1])),
        (Linear(), loss, np.array([1.6, -0.4])),
        (Sigmoid(floor=0.25, ceiling_bounds=(0.25, 1.0)), loss, np.array([0.9, 3.0, 3.0])),
        (Sigmoid(floor=None), loss, np.array([0.2, 0.9, 3.0, 3.0])),
        (ChinchillaLaw(), nd, np.array([1.8, -0.9, 0.34, -0.5, 0.28])),
    ]


CASES = _cases()
IDS = [f"{law.name}-{i}" for i, (law, _, _) in enumerate(CASES)]


@pytest.mark.parametrize(("law", "x", "theta"), CASES, ids=IDS)
def test_predict_shapes_and_batching(law: Law, x: np.ndarray, theta: np.ndarray) -> None:
    n = x.shape[0]
    assert law.predict(x, theta).shape == (n,)
    thetas = np.stack([theta, theta * 1.01, theta * 0.99])
    batch = law.predict(x, thetas)
    assert batch.shape == (3, n)
    for b in range(3):
        np.testing.assert_allclose(batch[b], law.predict(x, thetas[b]), rtol=BATCH_RTOL, atol=BATCH_ATOL)
    xs = np.stack([x, x * 1.1, x * 0.9])  # (B, n, q): draw b uses x[b]
    per_draw = law.predict(xs, thetas)
    assert per_draw.shape == (3, n)
    for b in range(3):
        np.testing.assert_allclose(per_draw[b], law.predict(xs[b], thetas[b]), rtol=BATCH_RTOL, atol=BATCH_ATOL)


@pytest.mark.parametrize(("law", "x", "theta"), CASES, ids=IDS)
def test_jacobian_matches_central_differences(law: Law, x: np.ndarray, theta: np.ndarray) -> None:
    jac = law.jacobian(x, theta)
    assert jac is not None and jac.shape == (x.shape[0], law.n_params)
    num = np.empty_like(jac)
    for i in range(law.n_params):
        h = 1e-6 * max(1.0, abs(theta[i]))
        e = np.zeros_like(theta)
        e[i] = h
        num[:, i] = (law.predict(x, theta + e) - law.predict(x, theta - e)) / (2 * h)
    np.testing.assert_allclose(jac, num, rtol=JAC_RTOL, atol=JAC_ATOL)
    # batched Jacobian agrees with the single one
    jb = law.jacobian(x, np.stack([theta, theta]))
    assert jb.shape == (2, x.shape[0], law.n_params)
    np.testing.assert_allclose(jb[1], jac, rtol=BATCH_RTOL, atol=BATCH_ATOL)


@pytest.mark.parametrize(("law", "x", "theta"), CASES, ids=IDS)
def test_design_is_the_law_in_residual_space(law: Law, x: np.ndarray, theta: np.ndarray) -> None:
    design = law.design(x)
    if design is None:
        pytest.skip("nonlinear law")
    g = np.log(law.predict(x, theta)) if law.log_space else law.predict(x, theta)
    np.testing.assert_allclose(g, design @ theta, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(("law", "x", "theta"), CASES, ids=IDS)
def test_config_round_trip_through_json(law: Law, x: np.ndarray, theta: np.ndarray) -> None:
    cfg = json.loads(json.dumps(law.config()))
    rebuilt = make_law(law.name, **cfg)
    assert rebuilt == law
    np.testing.assert_array_equal(rebuilt.predict(x, theta), law.predict(x, theta))


def test_every_builtin_law_declares_valid_params() -> None:
    for name, cls in LAWS.items():
        law = cls()
        assert law.name == name
        assert len(set(law.param_names)) == law.n_params > 0
        lo, hi = law.bounds
        assert np.all(lo < hi)


def test_pure_power_paper_form_reproduces_predictions() -> None:
    law = PurePowerLaw(reference=1e19)
    theta = np.array([1.1, -0.048])
    c = np.logspace(18, 23, 5)
    pf = law.paper_form(theta)
    np.testing.assert_allclose((c / pf["C"]) ** pf["alpha"], law.predict(c[:, None], theta), rtol=1e-12)


def test_param_validation_messages() -> None:
    with pytest.raises(ConfigError, match="lower < upper"):
        Param("a", 1.0, 0.0)
    with pytest.raises(ConfigError, match="outside the bounds"):
        Param("a", 0.0, 1.0, (2.0,))
    with pytest.raises(ConfigError, match="reference must be finite and > 0"):
        PowerLawWithOffset(reference=-1.0)
    with pytest.raises(ConfigError, match="Unknown law"):
        make_law("nope")


def test_reference_for_is_a_power_of_ten_near_the_geometric_mean() -> None:
    assert reference_for(np.array([1e18, 1e20])) == 1e19
    assert reference_for(np.array([3e17, 3e17])) == 1e17 * 10 ** round(math.log10(3))


finite = dict(allow_nan=False, allow_infinity=False)


@settings(max_examples=60, deadline=None)
@given(
    e=st.floats(0.0, 3.0, **finite),
    log_a=st.floats(-3.0, 3.0, **finite),
    alpha=st.floats(0.01, 1.5, **finite),
    lo=st.floats(15.0, 22.0, **finite),
)
def test_power_law_with_offset_loss_falls_with_compute(e: float, log_a: float, alpha: float, lo: float) -> None:
    law = PowerLawWithOffset(reference=1e19)
    c = np.logspace(lo, lo + 3, 20)
    y = law.predict(c[:, None], np.array([e, log_a, alpha]))
    assert np.all(np.diff(y) <= 0)
    assert np.all(y >= e)


@settings(max_examples=60, deadline=None)
@given(
    a=st.floats(-3.0, 2.0, **finite),
    alpha=st.floats(0.01, 1.0, **finite),
    b=st.floats(-3.0, 2.0, **finite),
    beta=st.floats(0.01, 1.0, **finite),
)
def test_chinchilla_loss_falls_with_params_and_tokens(a: float, alpha: float, b: float, beta: float) -> None:
    law = ChinchillaLaw()
    theta = np.array([1.5, a, alpha, b, beta])
    n = np.logspace(7, 11, 15)
    grow_n = law.predict(np.column_stack([n, np.full_like(n, 1e11)]), theta)
    grow_d = law.predict(np.column_stack([np.full_like(n, 1e9), n * 10]), theta)
    assert np.all(np.diff(grow_n) <= 0) and np.all(np.diff(grow_d) <= 0)


@settings(max_examples=60, deadline=None)
@given(
    ceiling=st.floats(0.3, 1.0, **finite),
    k=st.floats(0.1, 50.0, **finite),
    l0=st.floats(1.0, 5.0, **finite),
)
def test_sigmoid_score_rises_as_loss_falls_between_floor_and_ceiling(ceiling: float, k: float, l0: float) -> None:
    law = Sigmoid(floor=0.25, ceiling_bounds=(0.25, 1.0))
    loss = np.linspace(6.0, 1.0, 30)
    p = law.predict(loss[:, None], np.array([ceiling, k, l0]))
    assert np.all(np.diff(p) >= -1e-15)
    assert np.all((p >= 0.25 - 1e-12) & (p <= ceiling + 1e-12))


@pytest.mark.parametrize("vary_compute", [True, False])
def test_flpm_batched_predict_is_the_general_evaluation_bit_for_bit(vary_compute: bool) -> None:
    # the prediction path's in-place (n, b) evaluation must give the numbers of _parts exactly
    from mixopt.laws.mixture import FLPMLaw

    rng = np.random.default_rng(0)
    law = FLPMLaw(list("abcd"), vary_compute=vary_compute)
    x = law.inputs_from(rng.uniform(1e18, 1e22, 50), rng.dirichlet(np.ones(4), size=50))
    theta = rng.normal(size=(12, 7)) * 0.3
    theta[:, 0], theta[:, 1] = 2.0, 0.3
    fast = law.predict(x, theta)
    general = law._vj(law._prepare(x), theta, False)[0]
    assert fast.shape == (12, 50)
    assert np.array_equal(fast, general)
    assert np.array_equal(law.predict(x, theta[3]), general[3])
