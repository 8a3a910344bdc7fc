"""FLP-M's interval prediction in one pass over sorted draws gives the general path's numbers, bit for bit.

The one-pass path (:meth:`FLPMPrediction._interval_block_sorted`) and its helpers
(:func:`mixopt._rowwise.apply_rows`, :func:`mixopt._rowwise.var_draws`,
:func:`mixopt.laws.uncertainty.sorted_interval`) promise the very same floating-point
operations on the very same operands as the general path, so every comparison here is exact.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from mixopt._rowwise import Workspace, apply_rows, swap01, tile_factor, var_draws
from mixopt.laws.mixture import _THETA_CONSTS_MAX, make_stage1_law
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


# -- the 100-mixture call's per-call constants kept per fit, and fewer passes (each against the general path) --------


@pytest.mark.parametrize("shape", [(1, 1, 5), (100, 30, 5), (7, 2, 3), (256, 31, 1)])
def test_swap01_is_the_transposed_copy_exactly(shape):
    a = np.random.default_rng(shape[0]).normal(size=shape)
    a.flat[::7] = np.nan
    a.flat[1::11] = -0.0
    out = swap01(a, np.empty((shape[1], shape[0], shape[2])))
    want = np.ascontiguousarray(a.transpose(1, 0, 2))
    assert out.tobytes() == want.tobytes()
    strided = np.random.default_rng(1).normal(size=(shape[0], shape[1], 2 * shape[2]))[:, :, ::2]  # not contiguous: numpy's copy
    assert swap01(strided, np.empty((shape[1], shape[0], shape[2]))).tobytes() == np.ascontiguousarray(strided.transpose(1, 0, 2)).tobytes()
    with pytest.raises(ValueError, match="out must be"):
        swap01(a, np.empty((shape[1] + 1, shape[0], shape[2])))


def _nd_inputs(law, n, scale, rng):
    C = np.full(n, scale) if scale is not None else np.geomspace(1e18, 1e21, n)
    return law.inputs_from_scale(C, np.sqrt(C / 120), 20 * np.sqrt(C / 120), rng.dirichlet(np.ones(3), size=n))


@pytest.mark.parametrize("form", ["flpm_nd", "dml_nd"])
def test_nd_laws_keep_read_only_parameters_constants_exactly(form):
    # a read-only parameter batch (a fitted model's) keeps what the law derives from it, per scale; a writable one
    # (a fit's trial parameters) is derived per call: the same numbers either way, whatever the order of scales
    law = make_stage1_law(form, ("a", "b", "c"), vary_compute=True, reference=1e18)
    rng = np.random.default_rng(4)
    lo, hi = (np.array([getattr(p, k) for p in law.params]) for k in ("lower", "upper"))
    start = np.array([p.grid[0] for p in law.params])
    theta = np.clip(start + rng.normal(0, 0.1, size=(90, start.size)), lo, hi)
    frozen = theta.copy()
    frozen.setflags(write=False)
    for scale in (3e20, 1e19, None, 3e20, 1e19):  # back to scales seen: from the kept constants
        for n in (1, 7, 100):
            x = _nd_inputs(law, n, scale, rng)
            np.testing.assert_array_equal(law.predict(x, frozen), law.predict(x, theta))
            np.testing.assert_array_equal(law.predict(x, frozen), law._parts(law._prepare(x), theta, False)[0])
    assert len(law._theta_consts_cache) == 1 and law._theta_consts_cache[id(frozen)][0] is frozen
    for _ in range(3 * _THETA_CONSTS_MAX):  # bounded: many batches, many scales
        t = theta + 0.0
        t.setflags(write=False)
        for scale in rng.uniform(1e18, 1e21, size=6):
            x = _nd_inputs(law, 5, scale, rng)
            np.testing.assert_array_equal(law.predict(x, t), law.predict(x, theta))
    assert len(law._theta_consts_cache) <= _THETA_CONSTS_MAX
    assert all(len(c) <= 4 * _THETA_CONSTS_MAX + 3 for _, c in law._theta_consts_cache.values())


def test_forms_with_the_same_prep_key_share_prepared_inputs_exactly():
    sources = ("a", "b", "c")
    first, alt = (make_stage1_law(f, sources, vary_compute=True, reference=1e18) for f in ("dml_nd", "flpm_nd"))
    assert first.prep_key() == alt.prep_key() is not None
    assert make_stage1_law("flpm", sources, vary_compute=True, reference=1e18).prep_key() is None
    other = make_stage1_law("flpm_nd", sources, vary_compute=True, reference=1e18, n_reference=3e8)
    assert other.prep_key() != first.prep_key()
    rng = np.random.default_rng(5)
    x = _nd_inputs(alt, 50, 2e20, rng)
    start = np.array([p.grid[0] for p in alt.params])
    thetas = [start + rng.normal(0, 0.05, size=(b, start.size)) for b in (1, 12)]
    for got, want in zip(alt.predict_each(x, thetas, prep=first.prepare(x)), alt.predict_each(x, thetas), strict=True):
        np.testing.assert_array_equal(got, want)


def test_logistic_link_kind_follows_the_links(models):
    import copy

    nets = copy.deepcopy(models["law"].nets_)
    X = np.random.default_rng(6).uniform(2.0, 4.0, size=(20, nets.mu_.shape[1]))
    assert nets._link_kind() == "logistic"
    nets.link_[:] = 0  # in place: every benchmark linear, the linear predictor itself
    assert nets._link_kind() == "linear"
    a, w, _ = nets._mean_theta()
    np.testing.assert_array_equal(nets.predict_mean(X), X @ w.T + a)
    nets.link_[0] = 1
    assert nets._link_kind() == "mixed"
    got = nets.predict_mean(X)
    np.testing.assert_array_equal(got[:, 1:], (X @ w.T + a)[:, 1:])
    assert np.all((got[:, 0] >= np.minimum(nets.floor_[0], nets.floor_[0] + nets.sign_[0] * np.exp(nets.coef_[0, -1])) - 1e-12))


def test_hybrid_raw_features_are_the_stacked_columns_exactly(models):
    res = models["hybrid"].residual_
    R = np.random.default_rng(7).dirichlet(np.ones(3), size=33)
    np.testing.assert_array_equal(res._raw(R), np.column_stack([R, np.log(R + 1e-3)]))
    Z = (res._raw(R) - res.feat_mean_) / res.feat_sd_  # the correction's inputs as it standardised them before
    from mixopt.laws.metric import sqdist

    t_sq, groups = res._kernel_parts()
    want = Z @ res.coef_.T + res.intercept_
    D = sqdist(Z, res.train_features_, t_sq)
    for cols, c, alpha_t in groups:
        want[:, cols] += np.exp(D * c) @ alpha_t
    np.testing.assert_array_equal(res.predict(R), want)


@pytest.mark.parametrize("which", ["average", "form_average"])
def test_one_block_envelope_scores_equal_the_envelopes_own(models, form_average, world, which, monkeypatch):
    # a batch of one interval block with family-averaged rows: the envelope's models are scored in the block's
    # stage-2 call; the same numbers as the envelope scoring them itself (and the same compute ratios as before)
    model = models["average"] if which == "average" else form_average
    original = type(model)._model_envelope
    passed = []
    for n in (1, 7, 100, 256, 300):
        flops = np.geomspace(model.train_max_flops_ / 10, model.train_max_flops_ * 300, n)
        t = Targets(flops=flops, mixture=world.random_mixtures(n, seed=n), domains=world.domains)
        assert model._averaged_rows(t.flops).all()
        with monkeypatch.context() as mp:
            mp.setattr(type(model), "_model_envelope", lambda self, *a, **k: passed.append((n, k.get("models") is not None))
                       or original(self, *a, **k))
            fast = {lev: model.predict(t, intervals=True, level=lev) for lev in (0.9, 0.5)}
        with monkeypatch.context() as mp:
            mp.setattr(type(model), "_model_envelope", lambda self, *a, **k: original(self, *a, **{**k, "models": None}))
            for lev, p in fast.items():
                own = model.predict(t, intervals=True, level=lev)
                for a, b in ((p.mean, own.mean), (p.lower, own.lower), (p.upper, own.upper), (p.std, own.std)):
                    np.testing.assert_array_equal(a, b)
                base = dataclasses.replace(model._predict(t.align(model.domains_), intervals=True, level=lev),
                                           compute_ratio=t.flops / model.train_max_flops_,
                                           calibrated_ratio=model.calibrator_.calibrated_ratio)
                np.testing.assert_array_equal(p.compute_ratio, base.compute_ratio)
                assert p.calibrated_ratio == base.calibrated_ratio and type(p) is type(base)
    assert {n: used for n, used in passed} == {1: True, 7: True, 100: True, 256: True, 300: False}


def test_calibration_factors_at_one_distance_kept_per_batch_size(models):
    model = models["law"]
    cal, names = model.calibrator_, tuple(model.outputs_)
    for n in (3, 50, 3, 50):
        f, f_std = model._cal_matrices(cal, np.full(n, 0.4), names, "score", {}, 0.9)
        g, g_std = model._cal_matrices(cal, np.array([0.4]), names, "score", {}, 0.9)
        assert f.shape == (n, len(names))
        np.testing.assert_array_equal(f, np.broadcast_to(g, f.shape))
        np.testing.assert_array_equal(f_std, np.broadcast_to(g_std, f.shape))
