"""Column maps with patterns, and run ids built from identifying columns."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest

from mixopt.data import read_runs
from mixopt.data.columns import MAX_SPELLED_DOMAINS, build_run_ids, resolve_columns
from mixopt.data.options import cli_option_names
from mixopt.errors import SchemaError


def test_patterns_exact_first_then_in_order() -> None:
    cols = ["weight_web", "weight_code", "web_loss", "code_loss", "model_size", "weight_loss"]
    ren, un = resolve_columns(cols, {"weight_{d}": "mix:{d}", "{d}_loss": "loss:{d}", "model_size": "params", "weight_loss": "loss"})
    assert un == []
    assert ren == {
        "model_size": "params",
        "weight_loss": "loss",  # exact names win over patterns
        "weight_web": "mix:web",
        "weight_code": "mix:code",
        "web_loss": "loss:web",
        "code_loss": "loss:code",
    }


def test_star_and_repeated_fields() -> None:
    ren, _ = resolve_columns(["train_a_x", "train_b_y"], {"train_*_*": "mix:*-*"})
    assert ren == {"train_a_x": "mix:a-x", "train_b_y": "mix:b-y"}
    ren, _ = resolve_columns(["a_a", "a_b"], {"{d}_{d}": "loss:{d}"})
    assert ren == {"a_a": "loss:a"}  # a field repeated in the key must match the same text


def test_pattern_errors() -> None:
    _, un = resolve_columns(["x"], {"weight_{d}": "mix:{d}", "zz": "run"})
    assert un == ["zz", "weight_{d}"]
    with pytest.raises(SchemaError, match="does not have"):
        resolve_columns(["weight_a"], {"weight_{d}": "mix:{e}"})
    with cli_option_names(), pytest.raises(SchemaError, match="--columns weight_"):
        resolve_columns(["weight_a"], {"weight_{d}": "mix:{e}"})


def _grid() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "size": [2e7, 2e7, 2e7, 2e7, 1e8, 1e8],
            "tok": [1e8, 2e8, 1e8, 2e8, 1e9, 2e9],
            "w_web": [0.7, 0.7, 0.2, 0.2, 0.7, 0.7],
            "w_code": [0.3, 0.3, 0.8, 0.8, 0.3, 0.3],
            "web_l": [3.0, 2.9, 3.4, None, 2.5, 2.4],
            "code_l": [3.1, 3.0, 2.8, 2.7, None, 2.6],
        }
    )


COLS = {"size": "params", "tok": "tokens", "w_{d}": "mix:{d}", "{d}_l": "loss:{d}"}


def test_run_ids_are_readable_and_do_not_depend_on_row_order(tmp_path: Path) -> None:
    p, q = tmp_path / "a.csv", tmp_path / "b.csv"
    _grid().write_csv(p)
    _grid().reverse().write_csv(q)
    a = read_runs(p, columns=COLS, run_id=["params", "mix"])
    b = read_runs(q, columns=COLS, run_id=["params", "mix"])
    assert a.runs == ("params=1e8 mix=0.7/0.3", "params=2e7 mix=0.2/0.8", "params=2e7 mix=0.7/0.3")
    assert a.frame.equals(b.frame)
    assert a.missing_counts() == {"loss:web": 1, "loss:code": 1}
    # without params the two sizes of one mixture collide: the table says so and names the fix
    with pytest.raises(SchemaError, match="several parameter counts.*--run-id"):
        with cli_option_names():
            read_runs(p, columns=COLS, run_id=["mix"])


def test_run_ids_hash_many_domains_and_refuse_bad_input() -> None:
    k = MAX_SPELLED_DOMAINS + 1
    f = pl.DataFrame({"params": [1e7, 1e7], **{f"mix:d{j}": [1 / k, 1 / k] for j in range(k)}, "tokens": [1.0, 2.0]})
    ids = build_run_ids(f, ["params", "mix"], source="t")["run"].unique().to_list()
    assert len(ids) == 1 and ids[0].startswith("params=1e7 mix#") and len(ids[0]) == len("params=1e7 mix#") + 8
    with pytest.raises(SchemaError, match="empty cells"):
        build_run_ids(f.with_columns(pl.lit(None, dtype=pl.Float64).alias("params")), ["params"], source="t")
    with pytest.raises(SchemaError, match="does not have"):
        build_run_ids(f, ["seed"], source="t")
    with pytest.raises(SchemaError, match="already has a 'run' column"):
        build_run_ids(f.with_columns(pl.lit("x").alias("run")), ["params"], source="t")


def test_run_ids_with_string_columns_and_step_tokens(tmp_path: Path) -> None:
    f = pl.DataFrame({"params": [1e7] * 4, "seed": ["s0", "s0", "s1", "s1"], "step": [10, 20, 10, 20], "loss": [3.0, 2.9, 3.1, 3.0]})
    p = tmp_path / "r.csv"
    f.write_csv(p)
    t = read_runs(p, run_id=["params", "seed"], tokens_per_step=1000)
    assert t.runs == ("params=1e7 seed=s0", "params=1e7 seed=s1")
    np.testing.assert_allclose(t.tokens(), [1e4, 2e4, 1e4, 2e4], rtol=0, atol=0)
    with pytest.raises(SchemaError, match="already has a 'tokens' column|tokens= was given"):
        read_runs(p, run_id=["params", "seed"], tokens_per_step=1000, tokens=5.0)
