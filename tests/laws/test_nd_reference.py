"""The N,D mixture laws against an independent, hand-written reference (unequal exponents).

The reference formulas below are written out from the papers' definitions with plain numpy
and share no code with :mod:`mixopt.laws.mixture`, so a law that swaps model size and
tokens, mixes up the two reference scales or applies the mixture to the wrong term disagrees
with them. Exponents differ on purpose (``a = 0.45`` on N, ``b = 0.25`` on D): with equal
exponents and references a swap of N and D could go unseen.
"""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from mixopt.data.table import RunTable
from mixopt.laws.mixture import DMLNDLaw, FLPMNDLaw
from mixopt.surrogate import Targets
from mixopt.surrogate.flpm import FLPM
from mixopt.testing import mixture_world

N_REF, D_REF = 1e8, 2e9
DOMAINS = ("a", "b", "c")


def flpm_nd_reference(N, D, R, *, E, A, a, b, eps, w):
    """``E + A·(N/N_ref)^-a + (D·(eps + Σ_s w_s·r_s)/D_ref)^-b``: model-size term and effective-data term."""
    return E + A * (N / N_REF) ** (-a) + (D * (eps + R @ np.asarray(w)) / D_REF) ** (-b)


def dml_nd_reference(N, D, R, *, E, A, a, b, t):
    """``E + A·(N/N_ref)^-a + (D/D_ref)^-b · exp(Σ_j t_j·r_j)``: the Data Mixing Law on the data term."""
    return E + A * (N / N_REF) ** (-a) + (D / D_REF) ** (-b) * np.exp(R @ np.asarray(t))


FLPM_ND = dict(E=1.2, A=0.9, a=0.45, b=0.25, eps=np.exp(-4.0), w=[1.0, np.exp(-2.5), np.exp(-1.0)])
DML_ND = dict(E=1.2, A=0.9, a=0.45, b=0.28, t=[-1.0, 0.3, 0.1])


def _flpm_theta(p):
    return np.array([p["E"], np.log(p["A"]), p["a"], p["b"], np.log(p["eps"]), *np.log(p["w"])])


def _dml_theta(p):
    return np.array([p["E"], np.log(p["A"]), p["a"], p["b"], *p["t"]])


def _points(seed=0, n=40):
    rng = np.random.default_rng(seed)
    N = 10 ** rng.uniform(7, 10, n)
    D = N * 10 ** rng.uniform(0, 3, n)  # 1 to 1000 tokens per parameter: N and D far apart
    R = rng.dirichlet(np.ones(3), n)
    return N, D, R


@pytest.mark.parametrize(("law", "theta", "reference", "p"), [
    (FLPMNDLaw(DOMAINS, True, 1e18, 1.0, N_REF, D_REF), _flpm_theta, flpm_nd_reference, FLPM_ND),
    (DMLNDLaw(DOMAINS, True, 1e18, 1.0, N_REF, D_REF), _dml_theta, dml_nd_reference, DML_ND),
])
def test_nd_law_matches_the_hand_written_reference(law, theta, reference, p):
    N, D, R = _points()
    x = law.inputs_from_scale(6 * N * D, N, D, R)
    np.testing.assert_allclose(law.predict(x, theta(p)), reference(N, D, R, **p), rtol=1e-12)
    # more tokens at the same size lower only the data term; a larger model at the same tokens only the size term
    size_term = p["A"] * (N / N_REF) ** (-p["a"])
    more_data = law.predict(law.inputs_from_scale(6 * N * 4 * D, N, 4 * D, R), theta(p))
    np.testing.assert_allclose(more_data - p["E"] - size_term, (reference(N, 4 * D, R, **p) - p["E"] - size_term), rtol=1e-12)
    bigger = law.predict(law.inputs_from_scale(6 * 4 * N * D, 4 * N, D, R), theta(p))
    np.testing.assert_allclose(law.predict(x, theta(p)) - bigger, size_term * (1 - 4.0 ** (-p["a"])), rtol=1e-10)


def _reference_table(seed=3, noise=0.0):
    """Runs of a world's sizes and mixtures whose per-domain losses follow :func:`flpm_nd_reference`."""
    world = mixture_world(n_domains=3, n_benchmarks=1, seed=0)
    runs = world.sample_runs([5e7, 1e8, 2e8, 5e8, 1e9], world.random_mixtures(14, seed=seed), loss_noise=0.0,
                             score_noise=0.0, n_checkpoints=5, seed=seed)
    N, D, R = runs.params(), runs.tokens(), runs.mixture()
    rng = np.random.default_rng(seed)
    cols = {}
    for j, d in enumerate(world.domains):
        p = dict(FLPM_ND, E=1.2 + 0.3 * j, b=0.25 + 0.03 * j, w=np.roll(FLPM_ND["w"], j))
        y = flpm_nd_reference(N, D, R, **p)
        cols[f"loss:{d}"] = y * (1 + noise * rng.standard_normal(y.shape))
    frame = runs.frame.with_columns(*(pl.Series(k, v) for k, v in cols.items()))
    return world, RunTable(frame.drop([c for c in frame.columns if c.startswith("score:")]), [])


def test_flpm_nd_fit_predicts_size_and_tokens_apart_like_the_reference():
    """Fitted to reference losses, FLP-M (flpm_nd) predicts 3x larger runs, compute-optimal and 100x
    over-trained at the same compute, as the reference does; swapping N and D anywhere between
    the targets and the law breaks the over-trained case by far more than the tolerance."""
    world, table = _reference_table()
    m = FLPM(stage1="flpm_nd", n_bootstrap=0, n_starts=3, family="law", stage2="net", stage2_inputs="observed",
             intervals="raw").fit(table)
    mix = np.tile(world.random_mixtures(2, seed=9), (2, 1))
    N = np.array([3e9, 3e9, 3e8, 3e8])
    D = np.array([60e9, 60e9, 600e9, 600e9])  # rows 3-4: same compute as rows 1-2, 100x the tokens per parameter
    pred = m.predict(Targets.from_params_tokens(N, D, mix, world.domains), intervals=False)
    for j, d in enumerate(world.domains):
        p = dict(FLPM_ND, E=1.2 + 0.3 * j, b=0.25 + 0.03 * j, w=np.roll(FLPM_ND["w"], j))
        want = flpm_nd_reference(N, D, mix, **p)
        np.testing.assert_allclose(pred.get(f"loss:{d}"), want, rtol=2e-3, err_msg=d)
        # at equal compute and mixture the over-trained run differs by several % of the loss, as predicted
        gap, got = want[2:] - want[:2], pred.get(f"loss:{d}")[2:] - pred.get(f"loss:{d}")[:2]
        assert np.all(np.abs(gap) > 0.02 * want[:2])
        np.testing.assert_allclose(got, gap, rtol=0.1, err_msg=d)
