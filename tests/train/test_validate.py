import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mixopt.errors import SchemaError
from mixopt.train.validate import jobs_from_rows, pick_diverse


def _pareto(X):
    return pl.DataFrame({"trial": list(range(len(X))), "mix:a": X[:, 0], "mix:b": X[:, 1], "mix:c": X[:, 2],
                         "params": [1e8] * len(X), "tokens": [2e9] * len(X)})


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 10_000), st.integers(1, 6))
def test_pick_diverse_returns_distinct_rows(seed, k):
    X = np.random.default_rng(seed).dirichlet(np.ones(3), size=12)
    rows = pick_diverse(_pareto(X), k)
    assert rows.height == k and rows["trial"].n_unique() == k


def test_near_duplicates_are_not_picked_twice():
    # ten copies of one mixture and two others: a diverse 3 takes one of each
    X = np.array([[0.5, 0.3, 0.2]] * 10 + [[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    X[:10] += np.linspace(0, 1e-4, 10)[:, None] * np.array([1, -1, 0])
    rows = pick_diverse(_pareto(X), 3)
    got = {tuple(np.round(r, 2)) for r in rows.select(["mix:a", "mix:b", "mix:c"]).to_numpy()}
    assert got == {(0.5, 0.3, 0.2), (1.0, 0.0, 0.0), (0.0, 0.0, 1.0)}


def test_shortlist_rows_come_first():
    X = np.random.default_rng(0).dirichlet(np.ones(3), size=10)
    p = _pareto(X)
    rows = pick_diverse(p, 3, shortlist=p[[7, 2]])
    assert rows["trial"].to_list()[:2] == [7, 2]


def test_jobs_from_rows_renormalise_and_name_runs():
    X = np.array([[0.5, 0.3, 0.2000001]])
    jobs = jobs_from_rows(_pareto(X), prefix="val_r1", seed=3, checkpoints=2)
    assert jobs[0].run_id == "val_r1_t0_s3" and abs(sum(jobs[0].mixture.values()) - 1) < 1e-12


def test_bad_top_is_rejected():
    with pytest.raises(SchemaError, match="top"):
        pick_diverse(_pareto(np.eye(3)), 0)


def test_mixtures_validated_before_are_avoided():
    X = np.array([[0.5, 0.3, 0.2], [0.9, 0.05, 0.05], [0.1, 0.1, 0.8], [0.3, 0.4, 0.3]])
    rows = pick_diverse(_pareto(X), 2, avoid=np.array([[0.5, 0.3, 0.2], [0.9, 0.05, 0.05]]))
    assert set(rows["trial"].to_list()) == {2, 3}
    # too few rows left: the avoided ones come back rather than returning fewer than asked
    rows = pick_diverse(_pareto(X), 3, avoid=X[:2])
    assert rows.height == 3
