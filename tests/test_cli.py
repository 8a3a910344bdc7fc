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
        (lambda f: f.with_columns(pl.lit(0.4).alias("mix:web")), "sums to 0.9"),
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


# -- issue 14: the small things a user trips on ------------------------------------------------------
def test_global_json_before_the_command(tmp_path, capsys):
    out = tmp_path / "r.csv"
    assert main(["--json", "simulate", "--out", str(out), "--world", "single", "--sizes", "2e7,5e7", "--checkpoints", "2"]) == 0
    assert _json(capsys)["runs"] == 2
    assert main(["-v", "simulate", "--out", str(out), "--world", "single", "--sizes", "2e7,5e7", "--checkpoints", "2",
                 "--json"]) == 0
    assert _json(capsys)["runs"] == 2


def test_negative_number_reaches_its_check(single_runs, tmp_path, capsys):
    model = tmp_path / "flp"
    assert main(["fit", "--runs", str(single_runs), "--method", "flp", "--out", str(model)]) == 0
    capsys.readouterr()
    code = main(["predict", "--model", str(model), "--params", "7e9", "--tokens", "-6e10"])
    err = capsys.readouterr().err
    assert code == EXIT_BAD_INPUT, err
    assert "tokens must be finite and > 0" in err, err
    assert "-6e+10" in err or "-60000000000" in err, err


def test_fit_out_on_an_existing_file_or_unwritable_path(single_runs, tmp_path, capsys):
    f = tmp_path / "keep.txt"
    f.write_text("precious")
    assert main(["fit", "--runs", str(single_runs), "--out", str(f)]) == EXIT_BAD_INPUT
    assert f.read_text() == "precious"
    assert main(["fit", "--runs", str(single_runs), "--out", "/proc/mixopt-no-such-dir/model"]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert "is an existing file" in err and "Cannot create the folder /proc/mixopt-no-such-dir" in err
    assert "Traceback" not in err


def test_settings_are_given_per_method(single_runs, capsys):
    from mixopt.cli.models import method_settings as _method_settings

    assert _method_settings(['{"stage1": "dml"}'], ["flpm"]) == {"flpm": {"stage1": "dml"}}
    assert _method_settings(['flpm={"n_members": 2}', 'dml={"seed": 1}'], ["flpm", "dml"]) == {
        "flpm": {"n_members": 2}, "dml": {"seed": 1}}
    assert _method_settings(['{"flpm": {"n_members": 2}}'], ["flpm", "dml"]) == {"flpm": {"n_members": 2}}
    # one plain JSON for several methods would silently change every method: refused
    code = main(["backtest", "--runs", str(single_runs), "--method", "flp,fp", "--settings", '{"n_starts": 2}',
                 "--holdout-min-params", "1e9"])
    assert code == EXIT_BAD_INPUT and "does not say which method" in capsys.readouterr().err
    code = main(["backtest", "--runs", str(single_runs), "--method", "flp", "--settings", 'fp={"a": 1}'])
    assert code == EXIT_BAD_INPUT and "not among --method" in capsys.readouterr().err


def test_flpm_additive_is_a_method():
    from mixopt import make_surrogate
    from mixopt.errors import SchemaError

    m = make_surrogate("flpm_additive", n_members=2)
    assert m.kind == "flpm" and m.stage1 == "flpm_additive" and m.n_members == 2
    with pytest.raises(SchemaError, match="contradict"):
        make_surrogate("flpm_additive", stage1="dml")


def test_relative_error_is_finite_when_the_actual_value_is_zero():
    import numpy as np

    from mixopt.backtest import REL_ERROR_FLOOR, evaluate
    from mixopt.data import RunTable
    from mixopt.surrogate import Prediction
    from mixopt.surrogate.base import Surrogate

    frame = _good_frame().with_columns(pl.lit(0.0).alias("score:arc_easy"))
    runs = RunTable(frame)

    class Const(Surrogate):
        kind = "test-const"

        def _fit(self, runs):
            self.outputs_, self.domains_, self.benchmarks_, self.unpredictable_ = ("score:arc_easy",), (), runs.benchmarks, {}

        def _predict(self, targets, *, intervals, level):
            return Prediction.from_normal(self.outputs_, np.full((len(targets), 1), 0.02), 0.01 if intervals else None, level)

        def _get_state(self):
            return {}, {}

        def _set_state(self, state, arrays):
            pass

    res = evaluate(Const().fit(runs), runs)
    rel = res.rows["rel_error"].to_numpy()
    assert np.all(np.isfinite(rel)) and rel == pytest.approx(0.02 / REL_ERROR_FLOOR)
    assert np.isfinite(res.summary()["mean_rel_error"][0])


def test_optimize_terminated_saves_batches_and_exits_143(tmp_path):
    import signal
    import time

    from search.conftest import write_endless_search_config

    cfg = write_endless_search_config(tmp_path, """
        trials = 10000000
    """)
    p = subprocess.Popen([sys.executable, "-m", "mixopt", "optimize", str(cfg), "--no-progress", "-v"],
                         stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    log = tmp_path / "s.log"
    while time.time() < deadline and (not log.exists() or log.stat().st_size < 20_000):
        time.sleep(0.2)
    p.send_signal(signal.SIGTERM)
    _, err = p.communicate(timeout=60)
    assert p.returncode == 143, err
    assert "terminated: finished batches are saved" in err and "Traceback" not in err
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    st = optuna.load_study(study_name="mixopt", storage=JournalStorage(JournalFileBackend(str(log))))
    assert len(st.trials) >= 16 and len(st.trials) % 16 == 0


def test_fit_progress_on_stderr_and_quiet_with_json(tmp_path, capsys):
    """[metric] a step bar on stderr for `fit`; nothing but JSON with --json."""
    from mixopt.data.readers import write_runs
    from mixopt.testing import mixture_world

    w = mixture_world(2, 1, seed=0)
    path = tmp_path / "runs.parquet"
    write_runs(w.sample_runs([5e7, 1e8, 2e8], w.random_mixtures(3, seed=1), seed=2), path)
    assert main(["fit", "--runs", str(path), "--method", "fp", "--out", str(tmp_path / "m1")]) == 0
    assert "mixopt fit: step" in capsys.readouterr().err
    assert main(["fit", "--runs", str(path), "--method", "fp", "--out", str(tmp_path / "m2"), "--json"]) == 0
    cap = capsys.readouterr()
    assert "mixopt fit" not in cap.err and json.loads(cap.out)["method"] == "fp"


def test_backtest_reports_decisions_among_held_out_mixtures(tmp_path, capsys):
    runs = tmp_path / "mix.parquet"
    assert main(["simulate", "--out", str(runs), "--world", "mixture", "--domains", "3", "--mixtures", "16",
                 "--sizes", "2e7,5e7", "--seed", "2"]) == 0
    capsys.readouterr()
    assert main(["backtest", "--runs", str(runs), "--method", "regmix", "--holdout-mixtures", "6", "--json"]) == 0
    bt = _json(capsys)
    dec = bt["decisions"]
    assert dec and dec == bt["results"][0]["decisions"]
    for d in dec:
        assert d["n_mixtures"] == 6 and 1 <= d["chosen_rank"] <= 6 and d["regret"] >= 0
        assert 0 <= d["pairwise_accuracy"] <= 1 and -1 <= d["spearman"] <= 1
    assert {d["scale"].split(",")[0] for d in dec} == {"params=2e+07", "params=5e+07"}
    assert main(["backtest", "--runs", str(runs), "--method", "regmix", "--holdout-mixtures", "6"]) == 0
    assert "decisions among held-out mixtures" in capsys.readouterr().out


def test_optimize_two_phase_config_on_the_shipped_phased_ladder(tmp_path, capsys):
    """`mixopt optimize configs/two_phase.toml`: schedules searched on the real phased ladder, in CI time."""
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    out = tmp_path / "pareto.csv"
    rc = main(["--json", "optimize", str(repo / "configs" / "two_phase.toml"), "--no-progress", "--output", str(out),
               "--trials", "512"])
    assert rc == 0
    front = pl.read_csv(out)
    assert {"mix@1:math", "mix@2:math", "phase_end@1"} <= set(front.columns)
    assert front["phase_end@1"].min() >= 0.6 - 1e-9 and front["phase_end@1"].max() <= 0.9 + 1e-9
    assert (front["mix:math"] * front["tokens"]).max() <= 1.5e5 * (1 + 1e-9)  # math tokens over both phases
    assert all(front[f"mix@{k}:prose"].min() >= 0.05 - 1e-9 for k in (1, 2))
    best = _json(capsys)["best"]
    assert 0.6 - 1e-9 <= best["phase_end@1"] <= 0.9 + 1e-9 and "mix@2:math" in best
