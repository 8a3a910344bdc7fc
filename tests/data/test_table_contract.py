"""The canonical RunTable: normalisation, selections, and every validation rule."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from mixopt import Benchmark, RunTable, SchemaError
from mixopt.data.table import RATIO_SUM_ATOL


def _frame(**over):
    base = {
        "run": ["a", "a", "b", "b"],
        "params": [1e7, 1e7, 2e7, 2e7],
        "tokens": [1e9, 2e9, 2e9, 4e9],
        "mix:web": [0.6, 0.6, 0.5, 0.5],
        "mix:code": [0.4, 0.4, 0.5, 0.5],
        "loss": [3.1, 3.0, 2.9, 2.8],
        "loss:web": [3.2, 3.1, 3.0, 2.9],
        "score:arc_easy": [0.26, 0.30, 0.33, None],
    }
    base.update(over)
    return pl.DataFrame(base)


def test_valid_table_normalises_and_fills_flops():
    t = RunTable(_frame())
    assert t.domains == ("web", "code")
    assert t.loss_domains == ("web",)
    assert t.benchmark_names == ("arc_easy",)
    assert t.benchmark("arc_easy").chance == 0.25  # from the known-benchmark registry
    np.testing.assert_allclose(t.flops(), 6 * t.params() * t.tokens(), rtol=1e-12, atol=0)
    assert np.isnan(t.scores()[-1, 0])  # null score = not evaluated
    assert t.final().tokens().tolist() == [2e9, 4e9]


def test_ratios_within_tolerance_are_renormalised():
    t = RunTable(_frame(**{"mix:web": [0.603] * 2 + [0.5] * 2}))
    np.testing.assert_allclose(t.mixture().sum(axis=1), 1.0, rtol=0, atol=1e-12)


def test_row_order_does_not_matter():
    f = _frame()
    a, b = RunTable(f), RunTable(f.reverse())
    assert a.frame.equals(b.frame)


@pytest.mark.parametrize(
    "damage, needle",
    [
        ({"loss": [3.1, float("nan"), 2.9, 2.8]}, "NaN"),
        ({"loss:web": [3.1, -1.0, 2.9, 2.8]}, "negative"),
        ({"mix:web": [0.5, 0.5, 0.4, 0.4]}, "sums to 0.9"),
        ({"mix:web": [1.2, 1.2, 0.5, 0.5], "mix:code": [-0.2, -0.2, 0.5, 0.5]}, "outside [0, 1]"),
        ({"params": [1e7, 1e7, -2e7, -2e7]}, "negative"),
        ({"tokens": [1e9, 1e9, 2e9, 4e9]}, "duplicate checkpoints"),
        ({"params": [1e7, 2e7, 2e7, 2e7]}, "several parameter counts"),
        ({"mix:web": [0.6, 0.5, 0.5, 0.5], "mix:code": [0.4, 0.5, 0.5, 0.5]}, "different mixture ratios"),
        ({"score:mystery": [0.1, 0.2, 0.3, 0.4]}, "unknown benchmark 'mystery'"),
        ({"flops": [1e18, 5e17, 1e18, 2e18]}, "decreases along run"),
        ({"step": [2, 1, 1, 2]}, "'tokens' decreases"),
    ],
)
def test_single_damage_is_rejected_with_a_clear_message(damage, needle):
    with pytest.raises(SchemaError) as e:
        RunTable(_frame(**damage))
    assert needle in str(e.value)


def test_all_problems_reported_at_once():
    with pytest.raises(SchemaError) as e:
        RunTable(_frame(**{"loss": [float("nan")] + [3.0] * 3, "mix:web": [0.5, 0.5, 0.4, 0.4], "score:zzz": [0.1] * 4}))
    assert len(e.value.problems) == 3


def test_empty_and_missing_columns():
    with pytest.raises(SchemaError, match="empty"):
        RunTable(_frame().head(0))
    with pytest.raises(SchemaError, match="Missing required column"):
        RunTable(_frame().drop("params"))


def test_declared_metadata_wins_and_extra_metadata_is_an_error():
    t = RunTable(_frame(), [Benchmark(name="arc_easy", chance=0.2)])
    assert t.benchmark("arc_easy").chance == 0.2
    with pytest.raises(SchemaError, match="no score column"):
        RunTable(_frame(), [Benchmark(name="hellaswag", chance=0.25)])


def test_selections():
    t = RunTable(_frame())
    assert t.select_runs(["b"]).runs == ("b",)
    assert t.drop_runs(["b"]).runs == ("a",)
    with pytest.raises(SchemaError, match="Unknown run"):
        t.select_runs(["zz"])
    assert RATIO_SUM_ATOL < 0.1  # "ratios summing to 0.9" must stay an error


# -- missing values ------------------------------------------------------------------------
def _gappy():
    return RunTable(_frame(**{"loss:web": [3.2, None, 3.0, 2.9], "loss:code": [3.0, 2.9, None, 2.5]}))


def test_empty_loss_cells_are_allowed_and_counted():
    t = _gappy()
    assert t.loss_domains == ("web", "code")
    np.testing.assert_array_equal(t.present("loss:web"), [True, False, True, True])
    np.testing.assert_array_equal(t.present(["loss:web", "loss:code"]), [[1, 1], [0, 1], [1, 0], [1, 1]])
    assert np.isnan(t.losses()[1, 0]) and np.isnan(t.losses()[2, 1])
    assert t.missing_counts() == {"loss:web": 1, "loss:code": 1, "score:arc_easy": 1}
    assert len(t.rows_with("loss:web")) == 3 and len(t.rows_with(["loss:web", "loss:code"])) == 2
    assert t.rows_with("loss:web").domains == t.domains
    # run a's final checkpoint (tokens 2e9) lacks loss:web: reported, never back-filled
    assert t.final_missing() == {"loss:web": ("a",), "score:arc_easy": ("b",)}
    assert np.isnan(t.final().losses(["web"])[0, 0])
    assert "3 empty cells" in t.missing_summary() and "final checkpoint lacks loss:web in 1 run(s)" in t.missing_summary()
    assert RunTable(_frame()).missing_summary().startswith("1 empty cells (score:arc_easy 1)")


def test_missing_value_rules():
    with pytest.raises(SchemaError, match="has no values at all"):
        RunTable(_frame(**{"loss:code": [None, None, None, None]}))
    with pytest.raises(SchemaError, match="NaN/inf"):
        RunTable(_frame(**{"loss:web": [3.2, float("inf"), 3.0, 2.9]}))
    with pytest.raises(SchemaError, match="no column"):
        _gappy().present("loss:zzz")


def test_ratio_sum_message_names_run_and_offset():
    with pytest.raises(SchemaError) as e:
        RunTable(_frame(**{"mix:web": [0.62, 0.62, 0.5, 0.5]}))
    assert "run 'a' sums to 1.02 (+0.02)" in str(e.value)
