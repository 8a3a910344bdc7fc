"""FLP-M's interval prediction in one pass over sorted draws gives the general path's numbers, bit for bit.

The one-pass path (:meth:`FLPMPrediction._interval_block_sorted`) and its helpers
(:func:`mixopt._rowwise.apply_rows`, :func:`mixopt._rowwise.var_draws`,
:func:`mixopt.laws.uncertainty.sorted_interval`) promise the very same floating-point
operations on the very same operands as the general path, so every comparison here is exact.
"""

from __future__ import annotations

import numpy as np
import pytest

from mixopt._rowwise import Workspace, apply_rows, tile_factor, var_draws
from mixopt.laws.mixture import make_stage1_law
from mixopt.laws.uncertainty import combine_interval, sorted_all_valid, sorted_interval
from mixopt.surrogate import Targets
from mixopt.surrogate.draws import calibrated_draws, comonotone_draws, match_marginals, shared_normals, sorted_quantiles
from mixopt.surrogate.flpm import FLPM
from mixopt.testing import mixture_world

SIZES = [2e7, 6e7, 2e8, 4e8]
SETTINGS = dict(n_bootstrap=8, n_starts=3, stage1="flpm", stage2="logistic", stage2_inputs="fitted", seed=0)


@pytest.mark.parametrize("n", [1, 2, 7, 97, 100, 128, 544, 1024])
@pytest.mark.parametrize("shape", ["draws", "ones", "flat"])
def test_apply_rows_is_numpy_broadcasting_exactly(n, shape):
    rng = np.random.default_rng(n)
    g = rng.normal(size=(6, n, 5))
    const = {"draws": rng.normal(size=(6, 1, 5)), "ones": rng.normal(size=(1, 1, 5)), "flat": rng.normal(size=5)}[shape]
    tiles: dict = {}
    for ufunc in (np.add, np.multiply, np.subtract, np.divide):
        want = ufunc(g, const)
        np.testing.assert_array_equal(apply_rows(ufunc, g, const, tiles), want)
        np.testing.assert_array_equal(apply_rows(ufunc, g, const, tiles), want)  # from the kept tile
        inplace = g.copy()
        apply_rows(ufunc, inplace, const, tiles, out=inplace)
        np.testing.assert_array_equal(inplace, want)
    assert n % tile_factor(n) == 0 and tile_factor(n) <= 128


def test_apply_rows_never_serves_a_replaced_constant():
    g = np.ones((2, 100, 5))
    tiles: dict = {}
    a = np.full((2, 1, 5), 2.0)
    apply_rows(np.multiply, g, a, tiles)
    b = np.full((2, 1, 5), 3.0)
    assert np.all(apply_rows(np.multiply, g, b, tiles) == 3.0)


@pytest.mark.parametrize("shape", [(2, 3), (30, 100, 5), (31, 1, 5), (8, 1024, 5)])
def test_var_draws_is_np_var_exactly(shape):
    a = np.random.default_rng(1).lognormal(size=shape)
    np.testing.assert_array_equal(var_draws(a), np.var(a, axis=0, ddof=1))
    np.testing.assert_array_equal(var_draws(a, ddof=0), np.var(a, axis=0))


def test_var_draws_with_a_scratch_array_is_np_var_exactly():
    a = np.random.default_rng(2).lognormal(size=(30, 256, 5))
    ws = Workspace()
    np.testing.assert_array_equal(var_draws(a, work=ws.get("w", a.shape)), np.var(a, axis=0, ddof=1))


def test_workspace_hands_back_the_same_memory_per_name_and_grows():
    ws = Workspace()
    a = ws.get("x", (3, 4))
    assert a.shape == (3, 4) and a.flags.c_contiguous and a.dtype == np.float64
    a[:] = 1.0
    b = ws.get("x", (2, 6))
    assert np.shares_memory(a, b) and np.all(b == 1.0)
    assert not np.shares_memory(ws.get("y", (3, 4)), a)
    c = ws.get("x", (10, 10))  # larger: a new array
    assert c.shape == (10, 10)


@pytest.mark.parametrize("form", ["flpm", "flpm_additive", "dml", "flpm_nd"])
@pytest.mark.parametrize("n", [1, 7, 100, 256])
def test_predict_each_is_predict_exactly(form, n):
    # the inputs prepared once for several parameter batches, with and without a scratch array
    sources = ("a", "b", "c")
    law = make_stage1_law(form, sources, vary_compute=True, reference=1e18)
    rng = np.random.default_rng(n)
    R = rng.dirichlet(np.ones(3), size=n)
    C = np.geomspace(1e18, 1e21, n)
    x = law.inputs_from_scale(C, np.sqrt(C / 120), 20 * np.sqrt(C / 120), R)
    lo = np.array([p.lower for p in law.params])
    hi = np.array([p.upper for p in law.params])
    start = np.array([p.grid[0] for p in law.params])
    thetas = [np.clip(start + rng.normal(0, 0.1, size=(b, start.size)), lo, hi) for b in (3, 30 * 3)]
    want = [law.predict(x, t) for t in thetas]
    for scratch in (None, [None, np.empty((n, thetas[1].shape[0]))]):
        for got, w in zip(law.predict_each(x, thetas, scratch), want, strict=True):
            np.testing.assert_array_equal(got, w)


@pytest.mark.parametrize("B", [2, 3, 8, 30, 31])
@pytest.mark.parametrize("level", [0.9, 0.5, 0.99])
@pytest.mark.parametrize("log_space", [True, False])
def test_sorted_interval_is_combine_interval_exactly(B, level, log_space):
    rng = np.random.default_rng(B)
    draws = rng.lognormal(0.5, 0.2, size=(B, 40, 5))
    point = np.median(draws, axis=0)
    sd = rng.uniform(0.0, 0.05, size=5)
    want = combine_interval(point, draws, sd, level, log_space=log_space)
    got0 = sorted_interval(np.sort(draws, axis=0), sd, level, log_space=log_space)
    nat = np.ascontiguousarray(draws.transpose(1, 0, 2))  # (n, B, m), sorted along axis 1
    got1 = sorted_interval(np.sort(nat, axis=1), sd, level, log_space=log_space, axis=1)
    for got in (got0, got1):
        np.testing.assert_array_equal(got[0], want[0])
        np.testing.assert_array_equal(got[1], want[1])


@pytest.mark.parametrize("S", [1, 2, 3, 8, 29, 30, 64, 256])
@pytest.mark.parametrize("qs", [(0.05, 0.5, 0.95), (0.25, 0.5, 0.75), (0.0, 1.0), (0.3,)])
@pytest.mark.parametrize("ties", [False, True])
def test_sorted_quantiles_is_np_quantile_exactly(S, qs, ties):
    # the joint draws' marginal matching reads its quantiles from the sort it has made anyway
    rng = np.random.default_rng(S)
    a = rng.integers(0, 3, size=(S, 50)).astype(float) if ties else rng.lognormal(size=(S, 50))
    np.testing.assert_array_equal(sorted_quantiles(np.sort(a, axis=0), qs), np.quantile(a, qs, axis=0))


def test_calibrated_draws_are_comonotone_where_raw_draws_are_missing_and_matched_elsewhere():
    rng = np.random.default_rng(4)
    n, S = 6, 40
    names = ("loss:a", "score:b", "score:c")
    mean = rng.uniform(1, 2, size=(n, 3))
    lower, upper = mean - rng.uniform(0.1, 0.2, size=(n, 3)), mean + rng.uniform(0.1, 0.3, size=(n, 3))
    raw = {"loss:a": rng.normal(1.5, 0.1, size=(S, n)), "score:c": rng.normal(1.5, 0.1, size=(S, n))}
    raw["score:c"][3, 2] = np.nan  # a failed draw: the matching fills it (np.quantile path)
    got = calibrated_draws(raw, mean, lower, upper, names, n_draws=S, seed=5)
    assert list(got) == list(names)
    np.testing.assert_array_equal(got["score:b"], comonotone_draws(mean, lower, upper, names, n_draws=S, seed=5)["score:b"])
    z = shared_normals(S, 3, 5)
    for j in (0, 2):
        want = match_marginals(raw[names[j]], mean[:, j], lower[:, j], upper[:, j], level=0.9, z=z[:, j])
        np.testing.assert_array_equal(got[names[j]], want)


def test_sorted_all_valid_rejects_what_the_general_path_must_handle():
    a = np.random.default_rng(0).lognormal(size=(10, 4, 3))
    assert sorted_all_valid(np.sort(a, axis=0), positive=True)
    for bad in (np.nan, np.inf, -np.inf, 0.0, -1.0):
        b = a.copy()
        b[3, 2, 1] = bad
        assert not sorted_all_valid(np.sort(b, axis=0), positive=True), bad
        nat = np.sort(np.ascontiguousarray(b.transpose(1, 0, 2)), axis=1)
        assert not sorted_all_valid(nat, positive=True, axis=1), bad
    b = a.copy()
    b[0, 0, 0] = -1.0
    assert sorted_all_valid(np.sort(b, axis=0), positive=False)


@pytest.fixture(scope="module")
def world():
    return mixture_world(n_domains=3, n_benchmarks=3, seed=5)


@pytest.fixture(scope="module")
def models(world):
    runs = world.sample_runs(SIZES, world.random_mixtures(14, seed=1), loss_noise=0.003, score_noise=0.005, seed=2)
    return {family: FLPM(family=family, **SETTINGS).fit(runs) for family in ("law", "hybrid", "average")}


def _general(model, monkeypatch):
    """The model with the one-pass path switched off (every block through :meth:`_interval_block`)."""
    monkeypatch.setattr(type(model), "_point_and_draws", lambda self, x, ws=None: None)


@pytest.mark.parametrize("family", ["law", "hybrid", "average"])  # average: every row averaged (_family_spread)
@pytest.mark.parametrize("n", [1, 7, 100, 1500])
def test_one_pass_intervals_equal_the_general_path_bit_for_bit(models, world, family, n, monkeypatch):
    model = models[family]
    # 1500 rows: one full block of 1,024 and a remainder; compute within and beyond the runs
    flops = np.geomspace(model.train_max_flops_ / 10, model.train_max_flops_ * 300, n)
    t = Targets(flops=flops, mixture=world.random_mixtures(n, seed=n), domains=world.domains)
    fast = {lev: model.predict(t, intervals=True, level=lev) for lev in (0.9, 0.5)}
    raw = model._predict_raw(t.align(model.domains_), intervals=True, level=0.9)  # before calibration and envelopes
    used = []
    original = type(model)._interval_block_sorted

    def spy(self, *a, **k):
        used.append(original(self, *a, **k))
        return used[-1]

    with monkeypatch.context() as mp:
        mp.setattr(type(model), "_interval_block_sorted", spy)
        model.predict(t, intervals=True)
    assert used and all(used), "the one-pass path did not run: the comparison would be empty"
    _general(model, monkeypatch)
    for lev, p in fast.items():
        g = model.predict(t, intervals=True, level=lev)
        for a, b in ((p.mean, g.mean), (p.lower, g.lower), (p.upper, g.upper), (p.std, g.std)):
            np.testing.assert_array_equal(a, b)
    g = model._predict_raw(t.align(model.domains_), intervals=True, level=0.9)
    for a, b in ((raw.lower, g.lower), (raw.upper, g.upper), (raw.std, g.std)):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(fast[0.9].mean, model.predict(t, intervals=False).mean)


def test_one_pass_intervals_widen_averaged_rows_like_the_general_path(models, world, monkeypatch):
    # a correction large enough that the averaged rows' spread (_family_spread) binds
    model = models["average"]
    n = 300
    t = Targets(flops=np.full(n, model.train_max_flops_ * 5), mixture=world.random_mixtures(n, seed=8),
                domains=world.domains).align(model.domains_)
    cls = type(model)
    monkeypatch.setattr(cls, "_residual_correction", lambda self, R, flops=None, full=None: np.full((R.shape[0], len(self.loss_domains_)), 0.3))
    fast = model._predict_raw(t, intervals=True, level=0.9)
    with monkeypatch.context() as mp:
        mp.setattr(cls, "_family_spread", lambda self, L, corr, lo, hi, rows: (lo, hi))
        unspread = model._predict_raw(t, intervals=True, level=0.9)
    assert np.any(fast.lower != unspread.lower), "the spread does not bind: the comparison would be empty"
    _general(model, monkeypatch)
    general = model._predict_raw(t, intervals=True, level=0.9)
    for a, b in ((fast.mean, general.mean), (fast.lower, general.lower), (fast.upper, general.upper), (fast.std, general.std)):
        np.testing.assert_array_equal(a, b)


def test_one_pass_path_falls_back_on_invalid_draws(models, world, monkeypatch):
    # a non-positive draw sends the block through the general path (the same numbers as with it off)
    model = models["law"]
    t = Targets(flops=np.full(20, model.train_max_flops_ * 4), mixture=world.random_mixtures(20, seed=3), domains=world.domains)
    original = type(model)._point_and_draws

    def broken(self, x, ws=None):
        point, nat, forms = original(self, x, ws)
        nat[3, 1, 0] = -1.0
        return point, nat, forms

    monkeypatch.setattr(type(model), "_point_and_draws", broken)
    calls = []
    general = type(model)._interval_block
    monkeypatch.setattr(type(model), "_interval_block", lambda self, *a, **k: calls.append(1) or general(self, *a, **k))
    p = model.predict(t, intervals=True)
    assert calls, "an invalid draw must take the general path"
    assert np.isfinite(p.lower[:, 0]).all()


@pytest.mark.parametrize("form", ["flpm_nd", "dml_nd"])
@pytest.mark.parametrize("n", [1, 7, 100, 256])
@pytest.mark.parametrize("one_scale", [False, True])
def test_nd_laws_in_place_evaluation_is_the_general_formula_exactly(form, n, one_scale):
    # the (n, b) in-place evaluation (the size term once when every row has one scale) against _parts
    law = make_stage1_law(form, ("a", "b", "c"), vary_compute=True, reference=1e18)
    rng = np.random.default_rng(n)
    C = np.full(n, 3e20) if one_scale else np.geomspace(1e18, 1e21, n)
    x = law.inputs_from_scale(C, np.sqrt(C / 120), 20 * np.sqrt(C / 120), rng.dirichlet(np.ones(3), size=n))
    lo, hi = (np.array([getattr(p, k) for p in law.params]) for k in ("lower", "upper"))
    start = np.array([p.grid[0] for p in law.params])
    theta = np.clip(start + rng.normal(0, 0.1, size=(90, start.size)), lo, hi)
    want = law._parts(law._prepare(x), theta, False)[0]
    np.testing.assert_array_equal(law.predict(x, theta), want)
    one = theta[0]  # one vector takes the general formula itself
    np.testing.assert_array_equal(law.predict(x, one), law._parts(law._prepare(x), one, False)[0])


def test_predict_mean_each_is_predict_mean_exactly(models, world):
    nets = models["law"].nets_
    rng = np.random.default_rng(3)
    Xs = [rng.uniform(2.0, 4.0, size=(n, nets.mu_.shape[1])) for n in (1, 7, 100)]
    for X in Xs:
        np.testing.assert_array_equal(nets.predict_mean_each([X, 1.1 * X, 0.9 * X]),
                                      np.stack([nets.predict_mean(X), nets.predict_mean(1.1 * X), nets.predict_mean(0.9 * X)]))


@pytest.fixture(scope="module", params=[("flpm", "dml"), ("dml_nd", "flpm_nd")])
def form_average(world, request):
    runs = world.sample_runs(SIZES, world.random_mixtures(14, seed=1), loss_noise=0.003, score_noise=0.005, seed=2)
    first, alt = request.param
    model = FLPM(**{**SETTINGS, "stage1": first, "family": "average"})
    model._stage1_alt_request = (alt, 0.5)  # what auto hands over when it averages the forms
    return model.fit(runs)


def test_form_average_one_pass_equals_the_general_path_bit_for_bit(form_average, world, monkeypatch):
    # a form average's blocks (both forms' points and draws, each law's inputs prepared once) as the general path
    model = form_average
    assert model.stage1_alt_ is not None
    for n in (1, 7, 100, 700):
        flops = np.geomspace(model.train_max_flops_ / 10, model.train_max_flops_ * 300, n)
        t = Targets(flops=flops, mixture=world.random_mixtures(n, seed=n), domains=world.domains)
        used = []
        original = type(model)._interval_block_sorted
        with monkeypatch.context() as mp:
            mp.setattr(type(model), "_interval_block_sorted", lambda self, *a, **k: used.append(original(self, *a, **k)) or used[-1])
            fast = {lev: model.predict(t, intervals=True, level=lev) for lev in (0.9, 0.5)}
        assert used and all(used), "the one-pass path did not run: the comparison would be empty"
        with monkeypatch.context() as mp:
            _general(model, mp)
            for lev, p in fast.items():
                g = model.predict(t, intervals=True, level=lev)
                for a, b in ((p.mean, g.mean), (p.lower, g.lower), (p.upper, g.upper), (p.std, g.std)):
                    np.testing.assert_array_equal(a, b)
    # the picked refits' parameters are kept once, not once per call
    for _ in range(5):
        model.predict(t, intervals=True)
    assert len(model._draw_params_cache) == 2


@pytest.mark.parametrize("n", [2, 100, 5000])
def test_calibration_factors_at_one_distance_are_each_rows_factors_exactly(models, n):
    # a batch at one compute takes one row's factors, broadcast: the factor is a function of the distance row by row
    model = models["law"]
    cal = model.calibrator_
    assert cal is not None
    names = tuple(model.outputs_)
    d = np.full(n, 0.7)
    f, f_std = model._cal_matrices(cal, d, names, "score", {}, 0.8)
    assert f.shape == f_std.shape == (n, len(names))
    for g, cols in model._calibration_groups(names, "score", {}):
        np.testing.assert_array_equal(f[:, cols], np.broadcast_to(cal.factor(d, groups=g, level=0.8)[:, None], (n, cols.size)))
        np.testing.assert_array_equal(f_std[:, cols], np.broadcast_to(np.maximum(cal.factor(d, groups=g, level=None), 1.0)[:, None], (n, cols.size)))


@pytest.mark.parametrize("forms", [("flpm", "dml"), ("dml_nd", "flpm_nd")])
def test_form_average_envelope_from_shared_points_equals_its_own(world, forms, monkeypatch):
    # a form average of the hybrid family (no family-averaged rows): the calibrated interval's envelope takes both
    # forms' corrected points and scores from the raw prediction; the same numbers as computing them itself
    runs = world.sample_runs(SIZES, world.random_mixtures(14, seed=1), loss_noise=0.003, score_noise=0.005, seed=2)
    model = FLPM(**{**SETTINGS, "stage1": forms[0], "family": "hybrid"})
    model._stage1_alt_request = (forms[1], 0.5)
    model.fit(runs)
    assert model.stage1_alt_ is not None and model.calibrator_ is not None
    shared = []
    original = type(model)._model_envelope
    for n in (1, 7, 300, 1500):  # 1,500 rows: several interval blocks
        flops = np.geomspace(model.train_max_flops_ / 10, model.train_max_flops_ * 300, n)
        t = Targets(flops=flops, mixture=world.random_mixtures(n, seed=n), domains=world.domains)
        assert not model._averaged_rows(t.flops).any()
        with monkeypatch.context() as mp:
            mp.setattr(type(model), "_model_envelope",
                       lambda self, *a, **k: shared.append(k.get("shared") is not None) or original(self, *a, **k))
            fast = model.predict(t, intervals=True, level=0.8)
        with monkeypatch.context() as mp:
            mp.setattr(type(model), "_model_envelope", lambda self, *a, **k: original(self, *a, **{**k, "shared": None}))
            own = model.predict(t, intervals=True, level=0.8)
        for a, b in ((fast.lower, own.lower), (fast.upper, own.upper), (fast.mean, own.mean), (fast.std, own.std)):
            np.testing.assert_array_equal(a, b)
    assert shared and all(shared), "the shared points did not reach the envelope: the comparison would be empty"
