"""The `mixopt` command end to end: simulate -> fit -> predict -> backtest, and bad input."""

from __future__ import annotations

import json
import subprocess
import sys

import polars as pl
import pytest

from mixopt.cli import EXIT_BAD_INPUT, main

SIZES = "2e7,5e7,1e8,2e8,4e8,7e8,1e9,1.5e9"


@pytest.fixture(scope="module")
def single_runs(tmp_path_factory):
    d = tmp_path_factory.mktemp("single")
    out = d / "runs.parquet"
    assert main(["simulate", "--out", str(out), "--world", "single", "--sizes", SIZES, "--seed", "3"]) == 0
    return out


def _json(capsys):
    return json.loads(capsys.readouterr().out)


def test_simulate_fit_predict_backtest(single_runs, tmp_path, capsys):
    model = tmp_path / "flp"
    assert main(["fit", "--runs", str(single_runs), "--method", "flp", "--out", str(model), "--json"]) == 0
    info = _json(capsys)
    assert info["method"] == "flp" and "loss" in info["outputs"]

    assert main(["predict", "--model", str(model), "--params", "7e9", "--tokens", "1.4e11", "--json"]) == 0
    pred = _json(capsys)["predictions"]
    loss = next(p for p in pred if p["quantity"] == "loss")
    assert loss["lower"] < loss["mean"] < loss["upper"]

    assert main(["backtest", "--runs", str(single_runs), "--method", "flp,fp", "--holdout-min-params", "1e9", "--json"]) == 0
    bt = _json(capsys)
    methods = {r["method"] for r in bt["results"]}
    assert methods == {"flp", "fp"}
    row = bt["results"][0]["rows"][0]
    assert {"run", "quantity", "predicted", "actual", "rel_error", "lower", "upper"} <= set(row)
    assert all(r["winner"] in {"flp", "fp"} for r in bt["comparison"])


def test_human_output(single_runs, tmp_path, capsys):
    model = tmp_path / "fp"
    assert main(["fit", "--runs", str(single_runs), "--method", "fp", "--out", str(model)]) == 0
    assert main(["predict", "--model", str(model), "--flops", "1e21"]) == 0
    out = capsys.readouterr().out
    assert "fp predictions" in out


def _write(tmp_path, frame: pl.DataFrame, name="bad.csv"):
    p = tmp_path / name
    frame.write_csv(p)
    return p


def _good_frame():
    return pl.DataFrame({
        "run": ["a", "a", "b", "b", "c", "c"],
        "params": [1e7, 1e7, 3e7, 3e7, 1e8, 1e8],
        "tokens": [1e8, 2e8, 3e8, 6e8, 1e9, 2e9],
        "mix:web": [0.5] * 6,
        "mix:code": [0.5] * 6,
        "loss": [4.0, 3.8, 3.6, 3.4, 3.2, 3.0],
        "score:arc_easy": [0.25, 0.26, 0.25, 0.27, 0.26, 0.26],
    })


@pytest.mark.parametrize(
    "damage, needle",
    [
        (lambda f: f.head(0), "has no data"),
        (lambda f: f.drop("params"), "has no 'params' column"),
        (lambda f: f.with_columns(pl.when(pl.col("run") == "b").then(float("nan")).otherwise(pl.col("loss")).alias("loss")), "NaN"),
        (lambda f: f.with_columns(pl.lit(0.4).alias("mix:web")), "sum to 0.9"),
        (lambda f: f.with_columns(pl.lit(-1.0e18).alias("flops")), "negative"),
    ],
)
def test_bad_input_gives_one_paragraph_error(tmp_path, capsys, damage, needle):
    p = _write(tmp_path, damage(_good_frame()))
    code = main(["fit", "--runs", str(p), "--method", "flp", "--out", str(tmp_path / "m")])
    err = capsys.readouterr().err
    assert code == EXIT_BAD_INPUT
    assert needle in err
    assert "Traceback" not in err


def test_benchmark_never_emerging_is_reported_not_predicted(tmp_path, capsys):
    p = _write(tmp_path, _good_frame())
    assert main(["fit", "--runs", str(p), "--method", "flp", "--out", str(tmp_path / "m"), "--json"]) == 0
    info = _json(capsys)
    assert "score:arc_easy" in info["unpredictable"]
    assert "emerged" in info["unpredictable"]["score:arc_easy"]


def test_missing_file_and_bad_model_dir(tmp_path, capsys):
    assert main(["fit", "--runs", str(tmp_path / "nope.csv"), "--out", str(tmp_path / "m")]) == EXIT_BAD_INPUT
    assert main(["predict", "--model", str(tmp_path), "--flops", "1e21"]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert "not a mixopt model directory" in err


def test_console_script_exit_code(tmp_path):
    """The installed entry point maps bad input to exit code 2 without a traceback."""
    r = subprocess.run([sys.executable, "-m", "mixopt.cli", "predict", "--model", str(tmp_path), "--flops", "1e21"],
                       capture_output=True, text=True)
    assert r.returncode == EXIT_BAD_INPUT
    assert "Traceback" not in r.stderr


def test_fit_progress_on_stderr_and_quiet_with_json(tmp_path, capsys):
    """[metric] a step bar on stderr for `fit`; nothing but JSON with --json."""
    from mixopt.testing import mixture_world
    from mixopt.data.readers import write_runs

    w = mixture_world(2, 1, seed=0)
    path = tmp_path / "runs.parquet"
    write_runs(w.sample_runs([5e7, 1e8, 2e8], w.random_mixtures(3, seed=1), seed=2), path)
    assert main(["fit", "--runs", str(path), "--method", "fp", "--out", str(tmp_path / "m1")]) == 0
    assert "mixopt fit: step" in capsys.readouterr().err
    assert main(["fit", "--runs", str(path), "--method", "fp", "--out", str(tmp_path / "m2"), "--json"]) == 0
    cap = capsys.readouterr()
    assert "mixopt fit" not in cap.err and json.loads(cap.out)["method"] == "fp"
