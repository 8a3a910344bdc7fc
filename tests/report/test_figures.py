"""Figures: each plots exactly its inputs (checked on the returned data and in the SVG)."""

from __future__ import annotations

import subprocess
import sys
import xml.etree.ElementTree as ET

import numpy as np
import polars as pl
import pytest

from mixopt.errors import SchemaError
from mixopt.report import SearchData, Target
from mixopt.report import figures as F
from mixopt.report.document import figure_svg
from mixopt.report.inputs import BacktestData, normalise_validation
from mixopt.surrogate import Targets
from mixopt.surrogate.flp import emerged_mask

RTOL, ATOL = 1e-9, 1e-12  # plotted values are the inputs, up to float formatting


def svg_tree(fig, key: str) -> ET.Element:
    return ET.fromstring(figure_svg(fig, key, inline=False).encode())


def group(root: ET.Element, gid: str) -> ET.Element:
    for el in root.iter():
        if el.get("id") == gid:
            return el
    raise AssertionError(f"no SVG element with id {gid!r}")


def n_markers(root: ET.Element, gid: str) -> int:
    """Markers drawn by a scatter / errorbar series: its ``<use>`` elements."""
    return sum(1 for el in group(root, gid).iter() if el.tag.endswith("use"))


def test_import_mixopt_does_not_import_matplotlib():
    code = "import sys, mixopt, mixopt.report, mixopt.cli; mixopt.cli.build_parser(); print('matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_fit_curves_plot_the_final_checkpoints_and_the_model(flp, single_runs):
    target = Target(flops=3e21, label="t")
    fig, data = F._fit_curves(flp, single_runs, target)
    (panel,) = data["panels"]
    final = single_runs.final()
    assert panel["quantity"] == "loss"
    np.testing.assert_allclose(panel["runs"]["flops"], final.flops(), rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(panel["runs"]["loss"], final.column("loss"), rtol=RTOL, atol=ATOL)
    # the target marker is the model's own prediction, with its interval
    pred = flp.predict(Targets(flops=np.array([3e21]), params=np.sqrt(np.array([3e21]) / 120), tokens=20 * np.sqrt(np.array([3e21]) / 120)))
    assert panel["target"]["mean"] == pytest.approx(float(pred.get("loss")[0]), rel=1e-9)
    lo, hi = pred.interval("loss")
    assert panel["target"]["lower"] == pytest.approx(float(lo[0]), rel=1e-9)
    assert panel["target"]["upper"] == pytest.approx(float(hi[0]), rel=1e-9)
    # the curve reaches the target and its band contains the mean
    c = panel["curve"]
    assert max(c["flops"]) >= 3e21
    assert all(lo_ <= m <= hi_ for lo_, m, hi_ in zip(c["lower"], c["mean"], c["upper"], strict=True))
    root = svg_tree(fig, "fit")
    assert n_markers(root, "fit/loss/runs") == final.n_runs
    assert n_markers(root, "fit/loss/checkpoints") == len(single_runs)
    group(root, "fit/loss/band")
    group(root, "fit/loss/extrapolation")  # the target lies beyond the largest run


def test_fit_curves_public_function_returns_a_figure_and_leaves_matplotlib_state_alone(flp, single_runs):
    import matplotlib

    before = matplotlib.rcParams.copy()  # (reading rcParams["backend"] would itself import pyplot)
    fig = F.fit_curves(flp, single_runs)
    from matplotlib.figure import Figure

    assert isinstance(fig, Figure)
    assert "matplotlib.pyplot" not in sys.modules  # no global figure registry, no backend switch
    assert dict.__eq__(matplotlib.rcParams, before)  # the style was a context, not a global change


def test_score_maps_split_checkpoints_by_emergence(flp, single_runs):
    fig, data = F._score_maps(flp, single_runs, Target(flops=3e21))
    assert data["axis"] == "loss" and data["axis_columns"] == ["loss"]
    root = svg_tree(fig, "scores")
    loss = single_runs.column("loss")
    for panel, b in zip(data["panels"], single_runs.benchmarks, strict=True):
        q = f"score:{b.name}"
        s = single_runs.column(q)
        em = emerged_mask(s, b, 0.05)
        ev = np.isfinite(s)
        assert panel["chance"] == b.chance
        np.testing.assert_allclose(panel["emerged"]["score"], s[em & ev], rtol=RTOL, atol=ATOL)
        np.testing.assert_allclose(panel["emerged"]["x"], loss[em & ev], rtol=RTOL, atol=ATOL)
        np.testing.assert_allclose(panel["not_emerged"]["score"], s[ev & ~em], rtol=RTOL, atol=ATOL)
        assert n_markers(root, f"scores/{q}/emerged") == int((em & ev).sum())
        assert n_markers(root, f"scores/{q}/not_emerged") == int((ev & ~em).sum())
        group(root, f"scores/{q}/chance")
        if q not in flp.unpredictable_:
            # the map is drawn from the emerged region on, and ends at the target prediction
            assert max(panel["curve"]["x"]) <= max(panel["emerged"]["x"]) * (1 + 1e-9)
            assert panel["curve"]["mean"][-1] == pytest.approx(panel["target"]["mean"], rel=0.05)


def test_score_maps_show_why_a_benchmark_is_not_predictable(flp_strict, single_runs):
    fig, data = F._score_maps(flp_strict, single_runs)
    by_q = {p["quantity"]: p for p in data["panels"]}
    root = svg_tree(fig, "scores")
    for q, why in flp_strict.unpredictable_.items():
        assert by_q[q]["not_predictable"] == why
        assert "curve" not in by_q[q] and "target" not in by_q[q]
        group(root, f"scores/{q}/not_predictable")
    assert "curve" in by_q["score:humaneval"] and "target" in by_q["score:humaneval"]


def test_mixture_score_maps_use_the_mean_domain_loss(mixmodel, mix_runs):
    _, data = F._score_maps(mixmodel, mix_runs)
    assert data["axis"] == "mean_loss" and data["axis_columns"] == ["loss:web", "loss:code"]
    mean_loss = np.mean(np.column_stack([mix_runs.column("loss:web"), mix_runs.column("loss:code")]), axis=1)
    for p in data["panels"]:
        xs = np.concatenate([p["emerged"]["x"], p["not_emerged"]["x"]])
        np.testing.assert_allclose(np.sort(xs), np.sort(mean_loss[np.isfinite(mix_runs.column(p["quantity"]))]),
                                   rtol=RTOL, atol=ATOL)


def test_mixture_fit_curves_colour_runs_by_domain_share(mixmodel, mix_runs):
    target = Target(flops=1e21, mixture={"web": 0.7, "code": 0.3})
    fig, data = F._fit_curves(mixmodel, mix_runs, target)
    assert [p["quantity"] for p in data["panels"]] == ["loss:web", "loss:code"]
    final = mix_runs.final()
    root = svg_tree(fig, "fit")
    n_mix = len(np.unique(np.round(final.mixture(), 6), axis=0))
    for j, panel in enumerate(data["panels"]):
        np.testing.assert_allclose(panel["runs"]["share"], final.mixture()[:, j], rtol=RTOL, atol=ATOL)
        q = panel["quantity"]
        for i in range(n_mix):
            group(root, f"fit/{q}/mixture{i}")
        assert panel["target"]["flops"] == 1e21
    with pytest.raises(SchemaError, match="sum to 1"):
        F._fit_curves(mixmodel, mix_runs, Target(flops=1e21, mixture={"web": 0.7, "code": 0.7}))


def test_default_target_is_ten_times_the_largest_run_at_the_mean_mixture(mixmodel, mix_runs):
    t = F.default_target(mixmodel, mix_runs)
    assert t.flops == pytest.approx(10 * mix_runs.final().flops().max())
    assert sum(t.mixture.values()) == pytest.approx(1.0)


def test_parity_and_coverage_match_the_backtest(backtest):
    results, table = backtest
    data = BacktestData.from_results(results, comparison=table)
    fig, out = F._parity(data)
    root = svg_tree(fig, "parity")
    for panel in out["panels"]:
        r = next(r for r in results if r.method == panel["method"])
        for s in panel["series"]:
            rows = r.rows.filter(pl.col("quantity") == s["quantity"])
            np.testing.assert_allclose(s["actual"], rows["actual"].to_numpy(), rtol=RTOL, atol=ATOL)
            np.testing.assert_allclose(s["predicted"], rows["predicted"].to_numpy(), rtol=RTOL, atol=ATOL)
            np.testing.assert_allclose(s["lower"], rows["lower"].to_numpy(), rtol=RTOL, atol=ATOL)
            assert n_markers(root, f"parity/{panel['method']}/{panel['group']}/{s['quantity']}") == rows.height
    fig2, cov = F._coverage(data)
    for r in results:
        summ = r.summary()
        expect = {q: c for q, c in zip(summ["quantity"], summ["coverage"], strict=True)}
        got = dict(zip(cov["quantities"], cov["methods"][r.method], strict=True))
        for q, c in expect.items():
            assert got[q] == pytest.approx(c)
    assert cov["level"] == 0.9


def test_search_figures_plot_the_pareto_set(search_files):
    res = search_files["result"]
    s = SearchData.from_result(res)
    fig, data = F._pareto_front(s)
    names = [n for n, _ in res.objectives]
    assert len(data["panels"]) == 3  # 3 objectives -> 3 projections
    p0 = data["panels"][0]
    assert (p0["x"], p0["y"]) == (names[0], names[1])
    np.testing.assert_allclose(p0["front"]["x"], res.pareto[f"obj:{names[0]}"].to_numpy(), rtol=RTOL, atol=ATOL)
    # the compute objective (log10 FLOPs) is plotted in FLOPs
    pc = next(p for p in data["panels"] if p["y"] == "compute")
    np.testing.assert_allclose(pc["front"]["y"], res.pareto["flops"].to_numpy(), rtol=RTOL, atol=ATOL)
    root = svg_tree(fig, "pareto")
    assert n_markers(root, f"pareto/{names[0]}~{names[1]}/front") == res.pareto.height
    group(root, f"pareto/{names[0]}~{names[1]}/best")
    # parallel coordinates for > 2 objectives
    _, par = F._parallel(s)
    assert len(par["values"]) == res.pareto.height
    # shortlist: the search's own when it made one (ranked), else the weighted best first; bars are the mixtures
    short = F.shortlist_rows(s)
    own = getattr(res, "shortlist", None)
    if own is not None and own.height:
        assert short["trial"].to_list() == own.sort("rank")["trial"].to_list()[: F.SHORTLIST_ROWS]
    else:
        assert short["trial"][0] == res.best["trial"]
    picked = F.shortlist_rows(SearchData(pareto=s.pareto, objectives=s.objectives, domains=s.domains, summary=s.summary))
    assert picked["trial"][0] == res.best["trial"]
    _, sh = F._shortlist(s)
    np.testing.assert_allclose(sh["mixture"]["web"], short["mix:web"].to_numpy(), rtol=RTOL, atol=ATOL)
    assert "score:hellaswag" in sh["predictions"]
    # the history ends at the reported hypervolume (same reference point)
    _, hv = F._hv_history(s)
    assert hv["trials"][-1] == res.n_trials
    assert hv["hypervolume"][-1] == pytest.approx(res.hypervolume, rel=1e-9)
    assert all(a <= b + 1e-12 for a, b in zip(hv["hypervolume"], hv["hypervolume"][1:], strict=False))


def test_two_objective_search_has_no_parallel_coordinates(search_files):
    res = search_files["result"]
    s = SearchData.from_result(res)
    two = SearchData(pareto=s.pareto, objectives=s.objectives[:2], domains=s.domains, summary=s.summary)
    assert F._parallel(two) is None
    assert F._pareto_front(two) is not None
    with pytest.raises(SchemaError, match="three objectives"):
        F.parallel_coordinates(two)


def test_validation_figure_accepts_long_and_wide_tables():
    long = pl.DataFrame({"run": ["a", "b", "a"], "quantity": ["score:x", "score:x", "loss:web"],
                         "predicted": [0.5, 0.6, 2.0], "measured": [0.52, 0.58, 2.1], "lower": [0.4, 0.5, 1.9], "upper": [0.6, 0.7, 2.2]})
    fig, data = F._validation(normalise_validation(long))
    assert {p["group"] for p in data["panels"]} == {"losses", "scores"}
    sc = next(p for p in data["panels"] if p["group"] == "scores")["series"][0]
    assert sc["actual"] == [0.52, 0.58] and sc["predicted"] == [0.5, 0.6]
    wide = pl.DataFrame({"trial": [1, 2], "score:x:predicted": [0.5, 0.6], "score:x:measured": [0.52, 0.58]})
    v = normalise_validation(wide)
    assert v["id"].to_list() == ["1", "2"] and v["measured"].to_list() == [0.52, 0.58]
    with pytest.raises(SchemaError, match="measured"):
        normalise_validation(pl.DataFrame({"quantity": ["score:x"], "predicted": [0.5]}))


def test_public_functions_raise_clear_errors_on_missing_inputs(single_runs):
    from mixopt.surrogate import make_surrogate

    fp = make_surrogate("fp", n_bootstrap=5).fit(single_runs)
    with pytest.raises(SchemaError, match="predicts no loss"):
        F.fit_curves(fp, single_runs)
    # FP has no loss: its score map runs along compute
    _, data = F._score_maps(fp, single_runs)
    assert data["axis"] == "flops"
    with pytest.raises(SchemaError, match="positive number of FLOPs"):
        Target(flops=-1.0)
