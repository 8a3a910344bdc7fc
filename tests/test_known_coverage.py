"""Known-answer checks of the ``covered`` / coverage figures and of scoring over unequal quantity sets.

A stub surrogate predicts fixed means with fixed intervals; the actual values sit below,
inside, on the edge of and above them, so every ``covered`` flag, every coverage figure and
every relative error has one right answer. Checked for a backtest (:mod:`mixopt.backtest`),
the model-selection table (:func:`mixopt.surrogate.select.select`) and a validation round
(:func:`mixopt.train.validate.compare` / ``summarize``). Counting "below the upper bound
*or* above the lower bound", swapping the bounds, or dropping the edge fails here.
"""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from mixopt.backtest import backtest, make_split
from mixopt.data.table import RunTable
from mixopt.surrogate.base import Prediction, Surrogate, Targets
from mixopt.surrogate.select import Candidate, select, size_folds
from mixopt.train.validate import compare as validation_compare
from mixopt.train.validate import summarize

SIZES = [1e7, 2e7, 4e7, 8e7, 1.6e8, 3.2e8, 6.4e8, 1.28e9]
#: actual / predicted of the four largest runs: below (0.9), inside (1.0), upper edge (1.25), above (1.5)
FACTORS = {1.6e8: 0.9, 3.2e8: 1.0, 6.4e8: 1.25, 1.28e9: 1.5}
EXPECTED_COVERED = [False, True, True, False]


def _mean(params: np.ndarray) -> np.ndarray:
    return 3.0 * (np.asarray(params) / 1e8) ** -0.1


class FixedIntervalSurrogate(Surrogate):
    """Predicts ``loss = 3·(N/1e8)^-0.1`` with the interval ``[0.95, 1.25] x mean`` (asymmetric, exact in binary
    at the upper edge) and, with ``extra``, a second quantity ``loss:extra`` that is far off."""

    kind = "known_answer_stub"

    def __init__(self, *, scale: float = 1.0, extra: bool = False) -> None:
        self.scale = scale
        self.extra = extra

    def _fit(self, runs: RunTable) -> None:
        self.outputs_ = ("loss", "loss:extra") if self.extra else ("loss",)
        self.domains_ = ()
        self.benchmarks_ = ()
        self.unpredictable_ = {}

    def _predict(self, targets: Targets, *, intervals: bool, level: float) -> Prediction:
        mu = _mean(targets.params) * self.scale
        cols = [mu] + ([mu * 3.0] if self.extra else [])
        mean = np.column_stack(cols)
        if not intervals:
            return Prediction(names=self.outputs_, mean=mean, level=level)
        return Prediction(names=self.outputs_, mean=mean, lower=mean * 0.95, upper=mean * 1.25,
                          std=mean * 0.1, level=level)

    def _get_state(self):
        return {}, {}

    def _set_state(self, state, arrays) -> None:
        self._fit(None)  # type: ignore[arg-type]


def _table(factors: dict[float, float] = FACTORS, extra: float | None = None) -> RunTable:
    rows = []
    for n in SIZES:
        d = 20 * n
        row = {"run": f"N{n:.3g}", "params": n, "tokens": d, "flops": 6 * n * d, "loss": float(_mean(n)) * factors.get(n, 1.0)}
        if extra is not None:
            row["loss:extra"] = float(_mean(n)) * extra
        rows.append(row)
    return RunTable(pl.DataFrame(rows))


def test_backtest_covered_flags_and_coverage_are_exact():
    res = backtest(_table(), FixedIntervalSurrogate(), holdout_min_params=1.6e8)
    rows = res.rows.sort("params")
    assert rows["params"].to_list() == sorted(FACTORS)
    assert rows["covered"].to_list() == EXPECTED_COVERED
    assert res.coverage == 0.5
    want_rel = [abs(1 - f) / f for f in FACTORS.values()]
    np.testing.assert_allclose(rows["rel_error"].to_numpy(), want_rel, rtol=1e-12)
    np.testing.assert_allclose(rows["lower"].to_numpy(), _mean(rows["params"].to_numpy()) * 0.95, rtol=1e-12)
    s = res.summary().row(0, named=True)
    assert s["quantity"] == "loss" and s["n"] == 4 and s["coverage"] == 0.5
    assert s["median_rel_error"] == pytest.approx(np.median(want_rel), rel=1e-12)
    assert res.to_json()["coverage"] == 0.5


def test_backtest_coverage_counts_only_values_between_both_bounds():
    # all below the lower bound: none covered (an "or" of the two bounds would say all are)
    below = backtest(_table({n: 0.5 for n in FACTORS}), FixedIntervalSurrogate(), holdout_min_params=1.6e8)
    above = backtest(_table({n: 2.0 for n in FACTORS}), FixedIntervalSurrogate(), holdout_min_params=1.6e8)
    assert below.coverage == 0.0 and above.coverage == 0.0
    assert not below.rows["covered"].any() and not above.rows["covered"].any()


def test_coverage_on_one_split_differs_by_method():
    split = make_split(_table(), holdout_min_params=1.6e8)
    a = backtest(_table(), FixedIntervalSurrogate(), split=split)
    b = backtest(_table(), FixedIntervalSurrogate(scale=0.5), split=split)  # every interval far below: none covered
    c = backtest(_table(), FixedIntervalSurrogate(scale=1.25), split=split)  # [1.19, 1.56] x truth: 1.25 and 1.5 covered
    assert (a.coverage, b.coverage, c.coverage) == (0.5, 0.0, 0.5)
    assert c.rows.sort("params")["covered"].to_list() == [False, False, True, True]


def _selection(extra_candidate: bool):
    runs = _table(extra=1.0)
    folds = size_folds(runs, n_folds=2, min_train_sizes=3)
    cands = [Candidate("plain", {"scale": 1.0}), Candidate("shifted", {"scale": 1.1, "extra": extra_candidate})]
    return folds, select(runs, cands, lambda s: FixedIntervalSurrogate(**s), folds=folds)


def test_selection_table_coverage_is_exact():
    folds, sel = _selection(extra_candidate=False)
    assert len(folds) == 2
    t = {r["candidate"]: r for r in sel.table.iter_rows(named=True)}
    # fold 1 holds out 1.28e9 (actual 1.5x: above), fold 2 holds out 6.4e8 (1.25x: edge, covered) and 1.28e9
    assert t["plain"]["n_points"] == 3 and t["plain"]["coverage"] == pytest.approx(1 / 3)
    rows = sel.rows["plain"].sort(["fold", "params"])
    assert rows["covered"].to_list() == [False, True, False]
    # scaled by 1.1: interval [1.045, 1.375] x truth; 1.25 and 1.5 -> inside, above
    assert t["shifted"]["coverage"] == pytest.approx(1 / 3)
    assert sel.rows["shifted"].sort(["fold", "params"])["covered"].to_list() == [False, True, False]


def test_selection_scores_candidates_on_the_quantities_they_share():
    """A candidate that also predicts an extra, badly predicted quantity is judged on the shared ones only,
    and the table says how many quantities were scored."""
    _, sel = _selection(extra_candidate=True)
    t = {r["candidate"]: r for r in sel.table.iter_rows(named=True)}
    assert set(sel.rows["shifted"]["quantity"].unique().to_list()) == {"loss", "loss:extra"}  # it did predict it
    assert t["plain"]["n_quantities"] == 1 and t["shifted"]["n_quantities"] == 1
    assert t["plain"]["n_points"] == t["shifted"]["n_points"] == 3
    # on "loss" alone: plain errs by (1.5-1)/1.5, (1.25-1)/1.25, (1.5-1)/1.5; shifted by (1.5-1.1)/1.5, ...
    want = {"plain": np.mean([0.5 / 1.5, 0.25 / 1.25, 0.5 / 1.5]), "shifted": np.mean([0.4 / 1.5, 0.15 / 1.25, 0.4 / 1.5])}
    assert t["plain"]["score"] == pytest.approx(want["plain"], rel=1e-12)
    assert t["shifted"]["score"] == pytest.approx(want["shifted"], rel=1e-12)
    assert sel.chosen == "shifted"  # better on the shared quantity; its 200% error on loss:extra is not counted


def test_validation_round_covered_and_coverage_are_exact():
    model = FixedIntervalSurrogate().fit(_table())
    measured = _table().select_runs([f"N{n:.3g}" for n in FACTORS])
    cmp = validation_compare(model, measured, level=0.9).sort("params")
    assert cmp["covered"].to_list() == EXPECTED_COVERED
    np.testing.assert_allclose(cmp["rel_error"].to_numpy(), [abs(1 - f) / f for f in FACTORS.values()], rtol=1e-12)
    s = summarize(cmp).row(0, named=True)
    assert s["kind"] == "loss" and s["n"] == 4 and s["coverage"] == 0.5
    assert s["max_rel_error"] == pytest.approx(0.5 / 1.5, rel=1e-12)
