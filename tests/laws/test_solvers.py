"""The batched Levenberg-Marquardt solver: structured Jacobians, early stopping, warm starts."""

from __future__ import annotations

import numpy as np
import pytest

from mixopt.errors import SchemaError
from mixopt.laws import ChinchillaLaw, LawFitter
from mixopt.laws.mixture import RatioBlockJacobian, make_stage1_law
from mixopt.laws.solvers import _gram, _tmatvec, batched_lm

#: structured and dense products of the same Jacobian agree to rounding
RTOL_PRODUCT, ATOL_PRODUCT = 1e-11, 1e-13
#: objectives of fits that must reach the same optimum
RTOL_OBJECTIVE = 1e-9

SOURCES = ("web", "code", "math", "books", "wiki")


def _mixture_case(form: str, vary: bool, seed: int = 0):
    rng = np.random.default_rng(seed)
    law = make_stage1_law(form, SOURCES, vary_compute=vary, reference=1e18)
    n = 40
    R = rng.dirichlet(np.ones(len(SOURCES)), n)
    if law.uses_nd:
        x = law.inputs_from_scale(None, 10 ** rng.uniform(7, 9, n), 10 ** rng.uniform(9, 11, n), R)
    else:
        x = law.inputs_from(10 ** rng.uniform(17, 19, n), R)
    lo, hi = law.bounds
    theta = np.clip(rng.normal(0.0, 0.3, (5, law.n_params)), lo, hi)
    theta[:, 0] = 1.5
    return law, x, theta


@pytest.mark.parametrize(("form", "vary"), [("flpm", True), ("flpm", False), ("dml", True), ("dml", False),
                                            ("flpm_nd", True), ("dml_nd", True), ("flpm_additive", True)])
def test_structured_jacobian_products_match_the_dense_jacobian(form: str, vary: bool) -> None:
    law, x, theta = _mixture_case(form, vary)
    f, jac = law.evaluator(x)(theta, True)
    dense = law.jacobian(x, theta)
    np.testing.assert_allclose(f, law.predict(x, theta), rtol=1e-14)
    if form != "flpm_additive":
        assert isinstance(jac, RatioBlockJacobian)
    q = np.random.default_rng(1).uniform(0.0, 2.0, f.shape)
    np.testing.assert_allclose(_tmatvec(jac, q), _tmatvec(dense, q), rtol=RTOL_PRODUCT, atol=ATOL_PRODUCT)
    np.testing.assert_allclose(_gram(jac, q), _gram(dense, q), rtol=RTOL_PRODUCT, atol=ATOL_PRODUCT)
    # the dense Jacobian is d predict / d theta (central differences)
    h = 1e-6
    for j in range(law.n_params):
        d = np.zeros(law.n_params)
        d[j] = h
        num = (law.predict(x, theta[0] + d) - law.predict(x, theta[0] - d)) / (2 * h)
        np.testing.assert_allclose(dense[0, :, j], num, rtol=1e-5, atol=1e-7)


def _chinchilla_data(seed: int = 5):
    law = ChinchillaLaw()
    rng = np.random.default_rng(seed)
    n = np.repeat(np.logspace(7, 9.5, 5), 4)
    x = np.column_stack([n, n * np.tile([5.0, 20.0, 80.0, 320.0], 5)])
    y = law.predict(x, np.array([1.7, -1.0, 0.3, -0.4, 0.3])) * np.exp(rng.normal(0, 0.01, n.size))
    return law, x, y


def test_stopping_starts_that_cannot_win_keeps_the_best_objective() -> None:
    law, x, y = _chinchilla_data()
    fitter = LawFitter(law, n_starts=16)
    starts = fitter._start_points(x, y, np.random.default_rng(0))
    w = np.ones((starts.shape[0], y.size))
    args = (law.evaluator(x), np.log(y), w, starts, law.bounds, fitter._rho_psi)
    full = batched_lm(*args, log_space=True, maxiter=2000)
    pruned = batched_lm(*args, log_space=True, maxiter=2000, prune_every=10)
    assert np.min(pruned.objective) == pytest.approx(np.min(full.objective), rel=RTOL_OBJECTIVE)
    assert pruned.n_iter.sum() < full.n_iter.sum()
    assert "pruned" in set(pruned.status.tolist())
    # every accepted step lowers the objective: no start ends above where it began
    start_obj = batched_lm(*args, log_space=True, maxiter=1).objective
    assert np.all(full.objective <= start_obj + 1e-15)


def test_a_warm_start_is_tried_first_and_never_hurts() -> None:
    law, x, y = _chinchilla_data()
    cold = LawFitter(law, n_starts=4).fit(x, y)
    warm = LawFitter(law, n_starts=4).fit(x, y, init=cold.params_)
    assert warm.starts_.height == cold.starts_.height + 1
    first = np.array([warm.starts_[f"init:{n}"][0] for n in law.param_names])
    np.testing.assert_allclose(first, np.clip(cold.params_, *law.bounds))
    assert warm.objective_ <= cold.objective_ * (1 + RTOL_OBJECTIVE)
    # the grid starts are stopped early once the warm start is ahead
    assert warm.starts_["n_iter"][1:].sum() <= cold.starts_["n_iter"].sum()
    with pytest.raises(SchemaError, match="init must have shape"):
        LawFitter(law).fit(x, y, init=np.zeros(3))
