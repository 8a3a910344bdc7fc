"""Decision metrics: known answers from a stub surrogate with fixed predictions."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest

from mixopt.backtest import compare_decisions, evaluate
from mixopt.data.table import RunTable
from mixopt.errors import SchemaError
from mixopt.surrogate.base import Prediction, Surrogate
from mixopt.surrogate.decision import choice_metrics, decision_metrics, pairwise_accuracy, spearman

# five mixtures of (a, b) at one held-out scale; actual loss and score per mixture
MIX_A = np.array([0.1, 0.3, 0.5, 0.7, 0.9])
ACTUAL_LOSS = np.array([3.0, 2.8, 2.9, 3.2, 3.5])   # best: mixture 1 (2.8), then 2 (2.9), 0 (3.0)
PRED_LOSS = np.array([2.7, 2.9, 2.95, 3.1, 3.6])    # picks mixture 0 (actual rank 3)
ACTUAL_SCORE = np.array([0.40, 0.55, 0.50, 0.30, 0.20])
PRED_SCORE = np.array([0.41, 0.52, 0.53, 0.33, 0.10])  # picks mixture 2 (actual rank 2)


def _runs(params: float = 1e9) -> RunTable:
    n = MIX_A.size
    return RunTable(pl.DataFrame({
        "run": [f"m{i}" for i in range(n)], "params": [params] * n, "tokens": [2e10] * n, "step": [1000] * n,
        "mix:a": MIX_A, "mix:b": 1 - MIX_A, "loss:a": ACTUAL_LOSS, "score:arc_easy": ACTUAL_SCORE,
    }))


class Fixed(Surrogate):
    """Predicts the fixed arrays above for the five mixtures, whatever the compute."""

    kind = "test-fixed"
    uses_mixture = True

    def _fit(self, runs):
        self.outputs_, self.domains_, self.benchmarks_, self.unpredictable_ = ("loss:a", "score:arc_easy"), ("a", "b"), runs.benchmarks, {}

    def _predict(self, targets, *, intervals, level):
        idx = [int(np.argmin(np.abs(MIX_A - a))) for a in targets.mixture[:, 0]]
        mean = np.column_stack([PRED_LOSS[idx], PRED_SCORE[idx]])
        return Prediction.from_normal(self.outputs_, mean, np.full_like(mean, 0.05) if intervals else None, level)

    def _get_state(self):
        return {}, {}

    def _set_state(self, state, arrays):
        pass


def test_spearman_and_pairwise_accuracy_known_answers():
    # ranks of PRED_LOSS: 1 2 3 4 5; of ACTUAL_LOSS: 3 1 2 4 5 -> d^2 = 4+1+1 = 6; rho = 1 - 6*6/(5*24) = 0.7
    assert spearman(PRED_LOSS, ACTUAL_LOSS) == pytest.approx(0.7)
    # 10 pairs; wrong: (0,1) and (0,2) -> 8/10
    assert pairwise_accuracy(PRED_LOSS, ACTUAL_LOSS) == pytest.approx(0.8)
    # prediction ties count one half; actual ties are left out
    assert pairwise_accuracy(np.array([1.0, 1.0, 2.0]), np.array([1.0, 2.0, 3.0])) == pytest.approx((0.5 + 1 + 1) / 3)
    assert pairwise_accuracy(np.array([1.0, 2.0, 3.0]), np.array([1.0, 1.0, 3.0])) == pytest.approx(1.0)
    assert math.isnan(spearman(np.ones(4), np.arange(4.0)))


def test_choice_metrics_direction_aware():
    loss = choice_metrics(PRED_LOSS, ACTUAL_LOSS, lower_better=True)
    assert loss["chosen"] == 0 and loss["best"] == 1 and loss["chosen_rank"] == 3
    assert loss["regret"] == pytest.approx(0.2) and loss["rel_regret"] == pytest.approx(0.2 / 2.8)
    score = choice_metrics(PRED_SCORE, ACTUAL_SCORE, lower_better=False)
    assert score["chosen"] == 2 and score["best"] == 1 and score["chosen_rank"] == 2
    assert score["regret"] == pytest.approx(0.05)
    # ranks of PRED_SCORE: 3 4 5 2 1; of ACTUAL_SCORE: 3 5 4 2 1 -> d^2 = 2 -> rho = 1 - 12/120 = 0.9
    assert score["spearman"] == pytest.approx(0.9)
    perfect = choice_metrics(ACTUAL_LOSS, ACTUAL_LOSS, lower_better=True)
    assert perfect["regret"] == 0 and perfect["chosen_rank"] == 1 and perfect["pairwise_accuracy"] == 1
    with pytest.raises(SchemaError, match="one length"):
        choice_metrics(np.ones(3), np.ones(4), lower_better=True)


def test_backtest_result_decisions_and_summary_from_a_stub_surrogate():
    runs = _runs()
    res = evaluate(Fixed().fit(runs), runs, method="fixed")
    d = res.decisions()
    assert d["method"].to_list() == ["fixed", "fixed"]
    loss = d.filter(pl.col("quantity") == "loss:a").row(0, named=True)
    assert loss["n_mixtures"] == 5 and loss["chosen_run"] == "m0" and loss["best_run"] == "m1"
    assert loss["chosen_rank"] == 3 and loss["regret"] == pytest.approx(0.2)
    assert loss["spearman"] == pytest.approx(0.7) and loss["pairwise_accuracy"] == pytest.approx(0.8)
    assert loss["scale"] == "params=1e+09, tokens=2e+10"
    score = d.filter(pl.col("quantity") == "score:arc_easy").row(0, named=True)
    assert score["chosen_run"] == "m2" and score["chosen_rank"] == 2 and score["regret"] == pytest.approx(0.05)
    s = res.summary()
    assert s.filter(pl.col("quantity") == "loss:a")["spearman"][0] == pytest.approx(0.7)
    assert s.filter(pl.col("quantity") == "score:arc_easy")["worst_chosen_rank"][0] == 2
    js = res.to_json()
    assert js["decisions"][0]["chosen_rank"] == 3
    assert compare_decisions([res, res]).height == 4


def test_decisions_per_scale_and_too_few_mixtures():
    both = RunTable(pl.concat([_runs(1e9).frame, _runs(3e9).frame.with_columns(pl.col("run") + "_big")]))
    res = evaluate(Fixed().fit(both), both)
    d = res.decisions()
    assert sorted(d["scale"].unique().to_list()) == ["params=1e+09, tokens=2e+10", "params=3e+09, tokens=2e+10"]
    assert d.height == 4
    two = res.rows.filter(pl.col("run").is_in(["m0", "m1"]))
    assert decision_metrics(two).height == 0  # two mixtures say nothing
    with pytest.raises(SchemaError, match="actual"):
        decision_metrics(pl.DataFrame({"quantity": ["x"], "predicted": [1.0]}))


def test_lower_is_better_benchmarks_flip_the_choice():
    from mixopt.data.table import Benchmark
    from mixopt.surrogate.decision import directions

    low = directions([Benchmark(name="bpb", chance=None, higher_is_better=False), Benchmark(name="arc_easy", chance=0.25)])
    assert low == {"score:bpb": True}
    rows = pl.DataFrame({"quantity": ["score:bpb"] * 5, "predicted": PRED_LOSS, "actual": ACTUAL_LOSS})
    d = decision_metrics(rows, lower_better=low).row(0, named=True)
    assert d["chosen_rank"] == 3 and d["regret"] == pytest.approx(0.2) and d["scale"] == "all"
    hi = decision_metrics(rows).row(0, named=True)  # read as higher-is-better: picks the largest prediction
    assert hi["chosen_run"] == "4" and hi["chosen_rank"] == 1


def test_average_ranks_match_scipy_rankdata_with_ties() -> None:
    """The numpy ranks used by Spearman ρ (no scipy.stats import on the fit path) equal scipy's average ranks."""
    from scipy.stats import rankdata

    from mixopt.surrogate.decision import average_ranks

    rng = np.random.default_rng(0)
    for _ in range(100):
        x = rng.integers(0, 4, size=int(rng.integers(1, 25))).astype(float)  # many ties
        np.testing.assert_array_equal(average_ranks(x), rankdata(x))
    y = rng.normal(size=50)
    np.testing.assert_array_equal(average_ranks(y), rankdata(y))
