import os

import numpy as np
import polars as pl
import pytest

from mixopt.data.readers import read_runs
from mixopt.errors import SchemaError
from mixopt.testing import mixture_world
from mixopt.train.store import append_runs, atomic_write_runs, merge_tables


@pytest.fixture(scope="module")
def runs():
    w = mixture_world(n_domains=3, n_benchmarks=2, seed=0)
    return w.sample_runs([1e8, 2e8], w.random_mixtures(3, seed=1), n_checkpoints=3, seed=0)


def test_append_twice_adds_nothing_the_second_time(tmp_path, runs):
    path = tmp_path / "runs.csv"
    half = runs.runs[: len(runs.runs) // 2]
    table, added = append_runs(path, runs.select_runs(half))
    assert added == list(half)
    table, added = append_runs(path, runs)  # re-run: the first half is already there
    assert sorted(added) == sorted(set(runs.runs) - set(half))
    table, added = append_runs(path, runs)
    assert added == []
    back = read_runs(path)
    assert back.n_runs == runs.n_runs and len(back) == len(runs)
    assert back.frame.select(["run", "tokens"]).is_duplicated().sum() == 0
    np.testing.assert_allclose(np.sort(back.losses().ravel()), np.sort(runs.losses().ravel()))
    assert back.benchmark_names == runs.benchmark_names


def test_atomic_write_leaves_no_temporary_files(tmp_path, runs):
    atomic_write_runs(runs, tmp_path / "t.csv")
    assert sorted(os.listdir(tmp_path)) == ["t.benchmarks.json", "t.csv"]


def test_merge_unions_columns_and_rejects_duplicate_ids(runs):
    a = runs.select_runs(runs.runs[:2])
    b = runs.select_runs(runs.runs[2:4])
    b2 = type(b)(b.frame.drop("step") if "step" in b.frame.columns else b.frame.with_columns(pl.lit(1).alias("extra")), b.benchmarks)
    m = merge_tables([a, b2])
    assert m.n_runs == 4
    with pytest.raises(SchemaError, match="two tables"):
        merge_tables([a, a])
