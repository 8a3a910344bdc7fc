"""Output written for people: tables, engineering numbers, constant columns, wide tables, progress lines."""

from __future__ import annotations

import io
import re

import numpy as np
import polars as pl
import pytest

from mixopt._terminal import ProgressLines, format_table, number, params_text, sci


@pytest.mark.parametrize("value, column, text", [
    (1e22, "flops", "1e22"), (23040000000000.0, "flops", "2.3e13"), (1.83e11, "tokens", "1.8e11"),
    (7e9, "params", "7.0B"), (7000000000, "params", "7.0B"), (1.2e8, "params", "120M"), (4e4, "params", "40K"),
    (13e9, "params", "13B"), (0.6, "mix:web", "0.600"), (6.3e-05, "hypervolume", "6.3e-5"), (2.0300412, "mean", "2.03"),
    (None, "mean", "-"), (True, "feasible", "yes"), (12, "trial", "12"), (float("nan"), "mean", "nan"),
])
def test_numbers_in_engineering_form(value, column, text):
    assert number(value, column) == text


def test_sci_and_params_helpers():
    assert sci(1e22) == "1e22" and sci(-2.5e-7) == "-2.5e-7" and sci(0) == "0"
    assert params_text(1.5e9) == "1.5B" and params_text(999) == "999"


def test_a_table_has_no_polars_shape_or_dtype_rows_and_says_constants_once():
    f = pl.DataFrame({"quantity": ["loss", "score:a", "score:b"], "params": [7e9] * 3, "tokens": [1.4e11] * 3,
                      "flops": [5.88e21] * 3, "mean": [1.9153, 0.7261, 0.65], "lower": [1.81, 0.318, -0.146]})
    text = format_table(f, "predictions:")
    assert "shape:" not in text and "f64" not in text and "str" not in text.split("\n", 3)[2]
    lines = text.splitlines()
    assert lines[0] == "predictions:" and lines[1].strip() == "params 7.0B; tokens 1.4e11; flops 5.9e21"
    assert "1e22" not in text and text.count("7.0B") == 1  # once above the table, not in every row
    header = lines[2].split()
    assert header == ["quantity", "mean", "lower"]
    assert lines[4].split() == ["loss", "1.915", "1.810"]  # one number of decimals per column


def test_a_wide_table_is_split_into_blocks_not_squeezed():
    rng = np.random.default_rng(0)
    cols = {"run": [f"r{i}" for i in range(5)], **{f"loss:pile_domain_{j:02d}": rng.random(5) + 2 for j in range(34)}}
    f = pl.DataFrame(cols)
    text = format_table(f, width=120)
    lines = text.splitlines()
    assert all(len(line) <= 120 for line in lines)
    for name in cols:  # every column shown whole, under its full name
        assert name in text
    assert text.count("(columns ") > 1 and text.count("\nrun ") + text.startswith("run ") >= 2  # key column repeated
    assert "…" not in text and "..." not in text


def test_empty_tables_say_so():
    assert "no rows" in format_table(pl.DataFrame({"a": []}))


def test_progress_lines_are_plain_lines():
    out = io.StringIO()
    p = ProgressLines(64, desc="mixopt search", unit="trial", every=0.0, stream=out)
    for _ in range(4):
        p.update(16)
    p.close()
    text = out.getvalue()
    assert "\r" not in text and text.count("\n") == 4 and text.splitlines()[-1].startswith("mixopt search: 64/64 trial(s)")


def test_step_progress_off_a_terminal_is_one_line_per_step(capsys):
    from mixopt.progress import step_bar

    with step_bar(["read", "fit", "save"], desc="mixopt fit") as done:
        for _ in range(3):
            done()
    err = capsys.readouterr().err
    assert "\r" not in err
    assert [line.split(" [")[0] for line in err.splitlines()] == [
        "mixopt fit: step 1/3 read", "mixopt fit: step 2/3 fit", "mixopt fit: step 3/3 save", "mixopt fit: done"]


def test_cli_tables_read_as_text(tmp_path, capsys):
    from mixopt.cli import main

    runs = tmp_path / "runs.parquet"
    assert main(["simulate", "--out", str(runs), "--world", "single", "--sizes", "2e7,5e7,1e8,2e8,4e8", "--seed", "1"]) == 0
    assert main(["inspect", "--runs", str(runs)]) == 0
    out = capsys.readouterr().out
    assert "shape:" not in out and "┌" not in out and "f64" not in out
    assert re.search(r"\n  params \d+(\.\d)?[KMB]\b", out), out  # the shown run's size, once above its rows
