"""Logistic stage-2 map: fit on a known sigmoid, vectorised predictions equal the per-benchmark reference."""

from __future__ import annotations

import numpy as np
import pytest

from mixopt.errors import NotFittedError, SchemaError
from mixopt.surrogate.logistic import LogisticScoreMap, _sigmoid

#: vectorised vs per-benchmark reference (summation order differs)
RTOL_VECTOR, ATOL_VECTOR = 1e-12, 1e-12
#: recovery of a noisy sigmoid benchmark in range, score units
ATOL_FIT = 0.02


def _data(seed: int = 0):
    rng = np.random.default_rng(seed)
    X = rng.normal(2.5, 0.2, (200, 4))
    groups = np.repeat(np.arange(40), 5)
    true = 0.25 + 0.5 / (1 + np.exp(10 * (X @ np.array([0.3, 0.2, 0.4, 0.1]) - 2.5)))
    Y = np.column_stack([true + rng.normal(0, 0.01, 200), X @ np.array([1.0, 2.0, 0.0, 1.0]) + rng.normal(0, 0.01, 200)])
    return X, Y, np.ones_like(Y, dtype=bool), groups, true


@pytest.fixture(scope="module")
def fitted():
    X, Y, M, g, _ = _data()
    m = LogisticScoreMap(n_members=6, seed=1).fit(X, Y, M, g, chance=[0.25, None], higher_is_better=[True, False])
    m.members_[0, 2] = np.nan  # a failed refit falls back to the full-data fit
    m._table = None
    return m


def _reference(m: LogisticScoreMap, X: np.ndarray, theta: np.ndarray, j: int) -> np.ndarray:
    """The per-benchmark formula on standardised inputs: ``floor + sign·span·sigmoid(a + w·z)``."""
    z = (X - m.mu_[j]) / m.sd_[j]
    g = theta[0] + z @ theta[1:-1]
    return m.floor_[j] + m.sign_[j] * np.exp(theta[-1]) * _sigmoid(g) if m.link_[j] else g


def test_fits_a_known_sigmoid(fitted):
    X, _, _, _, true = _data()
    np.testing.assert_allclose(fitted.predict_mean(X)[:, 0], true, rtol=0, atol=ATOL_FIT)


def test_vectorised_predictions_equal_the_reference(fitted):
    rng = np.random.default_rng(3)
    X = rng.normal(2.4, 0.3, (50, 4))
    Xs = rng.normal(2.4, 0.3, (13, 50, 4))
    mean, members, paired = fitted.predict_mean(X), fitted.predict_members(X), fitted.predict_paired(Xs)
    E = fitted.members_.shape[1]
    for j in range(2):
        np.testing.assert_allclose(mean[:, j], _reference(fitted, X, fitted.coef_[j], j), rtol=RTOL_VECTOR, atol=ATOL_VECTOR)
        for e in range(E):
            th = fitted.members_[j, e] if np.isfinite(fitted.members_[j, e]).all() else fitted.coef_[j]
            np.testing.assert_allclose(members[e, :, j], _reference(fitted, X, th, j), rtol=RTOL_VECTOR, atol=ATOL_VECTOR)
        for s in range(Xs.shape[0]):
            np.testing.assert_allclose(paired[s, :, j], members_at(fitted, Xs[s], s % E)[:, j], rtol=RTOL_VECTOR, atol=ATOL_VECTOR)
    np.testing.assert_allclose(members[2, :, 0], mean[:, 0], rtol=RTOL_VECTOR, atol=ATOL_VECTOR)  # the NaN member


def members_at(m: LogisticScoreMap, X: np.ndarray, e: int) -> np.ndarray:
    return m.predict_members(X)[e]


def test_round_trip_and_errors(fitted):
    X, *_ = _data()
    again = LogisticScoreMap.from_arrays(fitted.arrays(), n_members=6, seed=1)
    np.testing.assert_array_equal(again.predict_paired(np.stack([X[:7]] * 3)), fitted.predict_paired(np.stack([X[:7]] * 3)))
    with pytest.raises(SchemaError, match=r"\(S, n, m\)"):
        fitted.predict_paired(X)
    with pytest.raises(SchemaError, match="domain losses"):
        fitted.predict_mean(X[:, :2])
    with pytest.raises(NotFittedError):
        LogisticScoreMap().predict_mean(X)


def test_all_logistic_links_take_the_in_place_path_and_equal_the_reference():
    X, Y, M, g, _ = _data(1)
    Y = np.column_stack([Y[:, 0], 1.0 - 0.8 * (Y[:, 0] - 0.25)])  # a lower-is-better benchmark with a floor too
    m = LogisticScoreMap(n_members=3, seed=2).fit(X, Y, M, g, chance=[0.25, 0.8], higher_is_better=[True, False])
    assert np.all(m.link_ == 1)
    Xs = np.random.default_rng(4).normal(2.4, 0.3, (4, 30, 4))
    paired = m.predict_paired(Xs)
    for s in range(4):
        for j in range(2):
            th = m.members_[j, s % 3] if np.isfinite(m.members_[j, s % 3]).all() else m.coef_[j]
            np.testing.assert_allclose(paired[s, :, j], _reference(m, Xs[s], th, j), rtol=RTOL_VECTOR, atol=ATOL_VECTOR)
    np.testing.assert_allclose(m.predict_mean(Xs[0])[:, 1], _reference(m, Xs[0], m.coef_[1], 1), rtol=RTOL_VECTOR, atol=ATOL_VECTOR)


def _trf(m: LogisticScoreMap, j: int, z: np.ndarray, y: np.ndarray, w: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Reference fit: scipy's trust-region least squares from each start, the lowest cost kept."""
    from scipy.optimize import least_squares

    lo, hi = m._bounds(z.shape[1], m._max_span(j, y))
    gap, sw = m.sign_[j] * (y - m.floor_[j]), np.sqrt(w)
    fits = [least_squares(lambda t: sw * (np.exp(t[-1]) * _sigmoid(t[0] + z @ t[1:-1]) - gap), t0, bounds=(lo, hi),
                          method="trf", max_nfev=m.max_nfev) for t0 in starts]
    return min(fits, key=lambda r: r.cost).x


def _cost(m: LogisticScoreMap, j: int, z: np.ndarray, y: np.ndarray, theta: np.ndarray, w: np.ndarray) -> float:
    return float(np.sum(w * (m._eval(j, z, theta[None])[0] - y) ** 2))


#: batched Levenberg-Marquardt against scipy's trust-region fit: objective no worse than this
#: (relative), predictions this close in score units (scipy stops at ftol 1e-8, LM at 1e-12)
RTOL_COST, ATOL_SOLVER = 1e-9, 1e-6


@pytest.mark.parametrize("seed", [0, 2, 5])
def test_batched_point_fit_reaches_the_trust_region_optimum(seed):
    # all grid starts of a logistic benchmark in one batched Levenberg-Marquardt run: the winner
    # reaches at least the best of scipy's trust-region fits from the same starts, at the same predictions
    X, Y, M, g, _ = _data(seed)
    m = LogisticScoreMap(n_members=0, seed=3).fit(X, Y, M, g, chance=[0.25, None], higher_is_better=[True, False])
    z = (X - m.mu_[0]) / m.sd_[0]
    y = Y[:, 0]
    hi_span = m._max_span(0, y)
    lo, hi = m._bounds(z.shape[1], hi_span)
    A = np.column_stack([np.ones(y.size), z])
    slope = np.linalg.lstsq(A, y - 0.25, rcond=None)[0][1:]
    slope /= np.linalg.norm(slope)
    starts = [np.clip(np.concatenate([[a0], slope, [np.log(max(f * hi_span, 1.5e-4 * hi_span))]]), lo + 1e-9, hi - 1e-9)
              for a0 in (-4.0, -1.5, 0.5) for f in (0.35, 0.7, 1.0)]
    ref = _trf(m, 0, z, y, np.ones(y.size), np.stack(starts))
    ones = np.ones(y.size)
    assert _cost(m, 0, z, y, m.coef_[0], ones) <= _cost(m, 0, z, y, ref, ones) * (1 + RTOL_COST)
    np.testing.assert_allclose(m._eval(0, z, m.coef_[0][None])[0], m._eval(0, z, ref[None])[0], rtol=0, atol=ATOL_SOLVER)


def test_batched_bootstrap_refits_reach_the_per_refit_least_squares_optimum():
    # the members of a logistic benchmark are fitted in one batched Levenberg-Marquardt run; each
    # reaches at least the objective of its own trust-region fit (scipy, from the same start)
    X, Y, M, g, _ = _data(2)
    m = LogisticScoreMap(n_members=8, seed=3).fit(X, Y, M, g, chance=[0.25, None], higher_is_better=[True, False])
    z = (X - m.mu_[0]) / m.sd_[0]
    y = Y[:, 0]
    labels, inv = np.unique(g, return_inverse=True)
    rng = np.random.default_rng(np.random.SeedSequence([3, 7]))
    W = np.stack([np.bincount(rng.integers(0, labels.size, labels.size), minlength=labels.size)[inv] for _ in range(8)]).astype(float)
    for e in range(8):
        ref = _trf(m, 0, z, y, W[e], m.coef_[0][None])
        assert _cost(m, 0, z, y, m.members_[0, e], W[e]) <= _cost(m, 0, z, y, ref, W[e]) * (1 + RTOL_COST)
        np.testing.assert_allclose(m._eval(0, z, m.members_[0, e][None])[0], m._eval(0, z, ref[None])[0], rtol=0, atol=1e-3)


def test_all_logistic_paired_fast_path_is_the_general_link_bit_for_bit():
    # every link logistic: predict_paired negates the parameters instead of the predictor (exact),
    # so its scores are _link's on the same predictor, bit for bit, and match the reference
    X, Y, M, g, _ = _data()
    m = LogisticScoreMap(n_members=4, seed=2).fit(X, Y[:, :1], M[:, :1], g, chance=[0.25], higher_is_better=[True])
    assert (m.link_ == 1).all()
    Xs = np.random.default_rng(4).normal(2.4, 0.3, (9, 30, 4))
    a, wt, span = m._paired_theta(9)
    general = m._link(np.matmul(Xs, wt) + a, span)
    np.testing.assert_array_equal(m.predict_paired(Xs), general)
    th = m._theta_table()
    for s in range(9):
        np.testing.assert_allclose(m.predict_paired(Xs)[s, :, 0], _reference(m, Xs[s], th[s % th.shape[0], 0], 0),
                                   rtol=RTOL_VECTOR, atol=ATOL_VECTOR)
