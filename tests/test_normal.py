"""``mixopt._normal.ndtri`` is scipy's ``ndtri`` (the Cephes algorithm) without importing scipy."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mixopt._normal import ndtri

special = pytest.importorskip("scipy.special")


def _points() -> np.ndarray:
    rng = np.random.default_rng(0)
    edges = [0.5, 1e-300, 5e-324, math.exp(-2), 1 - math.exp(-2), math.exp(-32), 0.05, 0.95, 0.975, 1 - 1e-16]
    return np.concatenate([rng.random(20_000), 10 ** -rng.uniform(0, 300, 10_000), 1 - 10 ** -rng.uniform(0, 16, 5_000),
                           np.array(edges)])


def test_ndtri_matches_scipy_on_arrays_to_1e_15() -> None:
    p = _points()
    want, got = special.ndtri(p), ndtri(p)
    assert np.all(np.isfinite(got))
    np.testing.assert_allclose(got, want, rtol=1e-15, atol=0)


def test_ndtri_matches_scipy_on_scalars_and_returns_floats() -> None:
    for p in _points()[::97]:
        got = ndtri(float(p))
        assert isinstance(got, float)
        assert got == pytest.approx(float(special.ndtri(p)), rel=1e-15, abs=0)
    assert ndtri(0.975) == pytest.approx(1.959963984540054, rel=1e-15)
    assert ndtri(np.float64(0.5)) == 0.0


def test_ndtri_edges_and_outside_the_unit_interval() -> None:
    got = ndtri(np.array([0.0, 1.0, -0.1, 1.1, np.nan]))
    assert got[0] == -np.inf and got[1] == np.inf and np.isnan(got[2:]).all()
    assert ndtri(0.0) == -math.inf and ndtri(1.0) == math.inf and math.isnan(ndtri(-1.0)) and math.isnan(ndtri(2.0))
    assert ndtri(np.zeros((2, 3)) + 0.5).shape == (2, 3)
