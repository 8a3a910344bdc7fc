"""Objectives and constraints: parsing, validation against the surrogate, values, risk."""

from __future__ import annotations

import numpy as np
import pytest

from mixopt.errors import SearchError
from mixopt.search import (
    Aggregate,
    ComputeCost,
    ComputeSpace,
    DataBudget,
    Metric,
    MixtureSpace,
    Problem,
    SearchSpace,
    parse_constraint,
    parse_objective,
)

from .conftest import analytic_problem, fitted_analytic

ATOL = 1e-12
RTOL = 1e-12


def test_parse_objectives() -> None:
    assert parse_objective("score:x") == Metric("score:x")
    assert parse_objective("loss:a") == Metric("loss:a")
    assert parse_objective("max:loss") == Metric("loss", "maximize")
    assert isinstance(parse_objective("compute"), ComputeCost)
    assert isinstance(parse_objective("flops"), ComputeCost)
    agg = parse_objective("mean(score:x, score:y)")
    assert isinstance(agg, Aggregate) and agg.items == ("score:x", "score:y")
    tab = parse_objective({"name": "avg", "mean": ["score:x", "score:y"], "weights": [3, 1]})
    assert isinstance(tab, Aggregate) and tab.weights == (3.0, 1.0) and tab.name == "avg"
    for bad in ("", "accuracy", "score:", {"mean": []}, {"name": "x"}, 3):
        with pytest.raises(SearchError):
            parse_objective(bad)  # type: ignore[arg-type]


def test_parse_constraints() -> None:
    c = parse_constraint("score:mmlu >= 0.45")
    assert c.op == ">=" and c.threshold == 0.45 and c.target == Metric("score:mmlu")
    c = parse_constraint("loss:code<1.2")
    assert c.op == "<=" and c.threshold == 1.2
    c = parse_constraint("compute <= 1e21")
    assert isinstance(c.target, ComputeCost) and c.threshold == 1e21
    for bad in ("score:mmlu", "score:mmlu >= high", "score:mmlu == 0.4", "max:score:x >= 0.1", ">= 3"):
        with pytest.raises(SearchError):
            parse_constraint(bad)


def test_directions_follow_higher_is_better() -> None:
    p = analytic_problem(objectives=["score:x", "score:z", "loss:a", "compute", "mean(score:*)"])
    assert p.directions == ("maximize", "minimize", "minimize", "minimize", "maximize")
    agg = p.objectives[-1]
    assert agg.items == ("score:x", "score:y", "score:z")  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("objectives", "constraints", "match"),
    [
        (["score:mmlu"], [], r"Unknown benchmark 'score:mmlu'.*\['score:x', 'score:y', 'score:z'\]"),
        (["score:x"], ["loss:code <= 1.2"], r"Unknown loss 'loss:code'"),
        (["score:x", "score:x"], [], "listed more than once"),
        ([], [], "at least one objective"),
        (["mean(score:q*)"], [], "matches no predictable output"),
    ],
)
def test_unknown_quantities_raise(objectives, constraints, match) -> None:
    with pytest.raises(SearchError, match=match):
        analytic_problem(objectives=objectives, constraints=constraints)


def test_unpredictable_quantity_raises() -> None:
    s = fitted_analytic()
    s.unpredictable_ = {"score:y": "fewer than 3 emerged checkpoints"}
    with pytest.raises(SearchError, match="cannot predict: fewer than 3 emerged"):
        analytic_problem(s, objectives=["score:y"])


def test_surrogate_domains_must_match_the_space() -> None:
    s = fitted_analytic()
    with pytest.raises(SearchError, match=r"lacks \['d'\]"):
        Problem(SearchSpace(MixtureSpace(("a", "b", "c", "d")), ComputeSpace(flops=1e21)), s, ["score:x"])
    with pytest.raises(SearchError, match=r"does not cover the surrogate's domain\(s\) \['c'\]"):
        Problem(SearchSpace(MixtureSpace(("a", "b")), ComputeSpace(flops=1e21)), s, ["score:x"])


def test_values_and_constraints() -> None:
    p = analytic_problem(objectives=["score:x", "score:z", "compute"],
                         constraints=["score:y >= 0.5", "loss:a <= 1.5", "compute <= 5e21"],
                         flops=(1e21, 1e22))
    u = np.random.default_rng(0).random((50, p.space.dim))
    pts = p.space.decode(u)
    ev = p(u)
    r, c = pts.mixture, pts.flops
    bump = 0.01 * np.log10(c / 1e20)
    np.testing.assert_allclose(ev.values[:, 0], 0.3 + 0.5 * r[:, 0] + bump, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(ev.values[:, 1], 1 - r[:, 2], rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(ev.values[:, 2], np.log10(c), rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(ev.constraints[:, 0], 0.5 - (0.3 + 0.5 * r[:, 1] + bump), rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(ev.constraints[:, 1], (2 - r[:, 0]) - 1.5, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(ev.constraints[:, 2], c - 5e21, rtol=RTOL)
    assert ev.ok.all()
    assert p.constraint_names == ("score:y >= 0.5", "loss:a <= 1.5", "compute <= 5e21")


def test_risk_aware_uses_pessimistic_bounds() -> None:
    s = fitted_analytic(std=0.02)
    base = analytic_problem(s, objectives=["score:x", "score:z"], constraints=["score:y >= 0.5"])
    risky = analytic_problem(s, objectives=["score:x", "score:z"], constraints=["score:y >= 0.5"], kappa=2.0)
    u = np.random.default_rng(1).random((20, base.space.dim))
    a, b = base(u), risky(u)
    np.testing.assert_allclose(b.values[:, 0], a.values[:, 0] - 2 * 0.02, rtol=0, atol=ATOL)  # maximised: mean - k sd
    np.testing.assert_allclose(b.values[:, 1], a.values[:, 1] + 2 * 0.02, rtol=0, atol=ATOL)  # minimised: mean + k sd
    np.testing.assert_allclose(b.constraints[:, 0], a.constraints[:, 0] + 2 * 0.02, rtol=0, atol=ATOL)


def test_aggregate_weights_and_std() -> None:
    s = fitted_analytic(std=0.03)
    p = analytic_problem(s, objectives=[{"name": "avg", "mean": ["score:x", "score:y"], "weights": [3, 1]}], kappa=1.0)
    u = np.random.default_rng(2).random((10, p.space.dim))
    pts = p.space.decode(u)
    pred = s.predict(p.targets(pts), intervals=True)
    mean = 0.75 * pred.get("score:x") + 0.25 * pred.get("score:y")
    std = 0.03 * np.sqrt(0.75**2 + 0.25**2)
    np.testing.assert_allclose(p(u).values[:, 0], mean - std, rtol=0, atol=1e-12)


def test_penalty_worsens_infeasible_models_only() -> None:
    p0 = analytic_problem(objectives=["score:x", "score:z"], constraints=["score:y >= 0.6"])
    p1 = analytic_problem(objectives=["score:x", "score:z"], constraints=["score:y >= 0.6"], penalty=10.0)
    u = np.random.default_rng(3).random((200, p0.space.dim))
    a, b = p0(u), p1(u)
    viol = np.maximum(a.constraints[:, 0], 0)
    np.testing.assert_allclose(b.values[:, 0], a.values[:, 0] - 10 * viol, rtol=0, atol=ATOL)
    np.testing.assert_allclose(b.values[:, 1], a.values[:, 1] + 10 * viol, rtol=0, atol=ATOL)
    assert (viol > 0).any() and (viol == 0).any()


def test_data_constraint_column() -> None:
    p = analytic_problem(objectives=["score:x"], data=DataBudget(available={"a": 1e9}), flops=6e19)
    assert p.constraint_names == ("data",)
    u = np.random.default_rng(4).random((30, p.space.dim))
    pts = p.space.decode(u)
    np.testing.assert_allclose(p(u).constraints[:, 0], pts.mixture[:, 0] * pts.tokens / 4e9 - 1, rtol=RTOL)


def test_non_finite_predictions_are_flagged() -> None:
    p = analytic_problem(fitted_analytic(fail_when="nan_b"))
    u = p.space.mixture.to_unit(np.array([[0.05, 0.9, 0.05], [0.5, 0.3, 0.2]]))
    assert p(u).ok.tolist() == [False, True]


def test_risk_needs_uncertainty() -> None:
    class NoStd(type(fitted_analytic())):  # type: ignore[misc]
        def _predict(self, targets, *, intervals, level):
            return super()._predict(targets, intervals=False, level=level)

    s = NoStd()
    s._fit(None)
    s.fitted_ = True
    with pytest.raises(SearchError, match="needs predictive uncertainty"):
        analytic_problem(s, kappa=1.0)
