"""The command line at its edges: every bad input and fault ends in a clear error, with nothing
half-written at the target (``clean_failure`` and ``full_disk`` come from tests/conftest.py)."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import polars as pl
import pytest

from mixopt.cli import main
from tests._configs import write_search_config

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "data" / "fixtures"
EXAMPLE_RUNS = ROOT / "mixopt" / "examples" / "runs_3domain.csv"
SIZES = "2e7,5e7,1e8,2e8,4e8,7e8,1e9"


@pytest.fixture(scope="module")
def single(tmp_path_factory):
    """A single-domain run table and an FLP model fitted on it."""
    d = tmp_path_factory.mktemp("single")
    runs = d / "runs.parquet"
    assert main(["simulate", "--out", str(runs), "--world", "single", "--sizes", SIZES, "--seed", "3"]) == 0
    assert main(["fit", "--runs", str(runs), "--method", "fp", "--out", str(d / "fp"), "--json"]) == 0
    return {"runs": runs, "model": d / "fp"}


@pytest.fixture
def job_command():
    """The stand-in cluster job of tests/train/scripts/job.py (its "trained models" report a known world)."""
    import sys

    script = ROOT / "tests" / "train" / "scripts" / "job.py"

    def make(mode: str) -> str:
        return (f"{sys.executable} {script} {mode} --mix {{mix_json}} --params {{params}} --tokens {{tokens}} "
                "--out {out} --checkpoints {checkpoints} --seed {seed}")

    return make


def _search_config(tmp_path: Path, output: str, *, runs: Path = EXAMPLE_RUNS, extra: str = "") -> Path:
    return write_search_config(tmp_path / "search.toml", runs, method="regmix", optimize=("score:humaneval", "score:hellaswag"),
                               search=extra, trials=32, batch_size=16, seed=0, storage="memory", output=output)


# -- bad input --------------------------------------------------------------------------------------
def test_a_duplicated_column_is_refused_naming_it(tmp_path, clean_failure):
    text = EXAMPLE_RUNS.read_text().splitlines()
    col = text[0].split(",").index("loss:web")
    dup = tmp_path / "dup.csv"
    dup.write_text("\n".join([text[0] + ",loss:web", *(f"{r},{r.split(',')[col]}" for r in text[1:])]) + "\n")
    out = clean_failure(["fit", "--runs", dup, "--method", "regmix", "--out", tmp_path / "m"], [tmp_path / "m"],
                        needle="'loss:web' (columns")
    assert "loss:web_duplicated_0" not in out["stderr"]
    clean_failure(["inspect", "--runs", dup, "--json"], needle="more than once")


def test_data_runs_naming_a_folder_is_bad_input(tmp_path, clean_failure):
    (tmp_path / "runs_dir").mkdir()
    cfg = _search_config(tmp_path, "out/pareto.csv", runs=tmp_path / "runs_dir")
    clean_failure(["optimize", cfg, "--no-progress"], [tmp_path / "out" / "pareto.csv"], needle="is a folder")


def test_predict_mix_on_a_model_without_domains_is_refused(single, clean_failure):
    clean_failure(["predict", "--model", single["model"], "--flops", "1e21", "--mix", "web=1"],
                  needle="does not depend on the mixture")


def test_predict_beyond_float_range_is_the_error_alone(single, clean_failure):
    out = clean_failure(["predict", "--model", single["model"], "--params", "1e300", "--tokens", "1e10"],
                        needle="finite", subprocess_=True)
    assert "RuntimeWarning" not in out["stderr"] and out["stderr"].startswith("mixopt predict: error:")


def test_json_errors_are_one_object_on_stdout_with_the_exit_code(tmp_path, single, clean_failure):
    out = clean_failure(["fit", "--runs", tmp_path / "missing.csv", "--out", tmp_path / "m", "--json"], [tmp_path / "m"])
    assert out["json"]["error"] == "SchemaError" and out["json"]["command"] == "fit" and "does not exist" in out["json"]["message"]
    out = clean_failure(["predict", "--model", single["model"], "--flops", "lots", "--json"])
    assert out["json"]["error"] == "UsageError"
    # argparse's own usage errors too (exit 2 either way)
    with pytest.raises(SystemExit) as e:
        main(["--json", "fit", "--runs"])
    assert e.value.code == 2


def test_a_json_usage_error_prints_the_object(capsys):
    with pytest.raises(SystemExit):
        main(["fit", "--runs", "--json"])
    obj = json.loads(capsys.readouterr().out)
    assert obj["exit_code"] == 2 and "expected one argument" in obj["message"] and obj["command"] == "fit"


def test_an_interrupted_fit_says_what_is_true_for_fit(single, tmp_path, capsys, monkeypatch):
    """SIGTERM during `mixopt fit` (raised as main's _Terminated): no talk of a study; nothing saved."""
    import importlib

    cli_main = importlib.import_module("mixopt.cli.main")

    def killed(*args, **kwargs):
        raise cli_main._Terminated("signal 15")

    monkeypatch.setattr(importlib.import_module("mixopt.workflows.fit"), "fit_model", killed)
    assert main(["fit", "--runs", str(single["runs"]), "--method", "fp", "--out", str(tmp_path / "m"), "--json"]) == 143
    cap = capsys.readouterr()
    assert "study" not in cap.err and "nothing was written" in cap.err
    assert json.loads(cap.out)["exit_code"] == 143
    assert not (tmp_path / "m").exists()


@pytest.mark.parametrize("argv, target", [
    (["simulate", "--world", "single", "--out", "{bad}/runs.csv"], "{bad}/runs.csv"),
    (["backtest", "--runs", "{runs}", "--method", "fp", "--holdout-min-params", "5e8", "--out", "{bad}/bt.json"], "{bad}/bt.json"),
    (["backtest", "--runs", "{runs}", "--method", "fp", "--holdout-min-params", "5e8", "--report", "{bad}/r.html"], "{bad}/r.html"),
    (["corpus", "build", "{bad}/corpus", "--fixture"], "{bad}/corpus"),
    (["fit", "--runs", "{runs}", "--method", "fp", "--out", "{bad}/model"], "{bad}/model"),
])
def test_an_output_under_a_file_is_bad_input(single, tmp_path, clean_failure, argv, target):
    bad = tmp_path / "a_file"
    bad.write_text("keep me")
    fill = {"bad": str(bad), "runs": str(single["runs"])}
    clean_failure([a.format(**fill) for a in argv], [bad, Path(target.format(**fill))], needle=str(bad))
    assert bad.read_text() == "keep me"


# -- the report -------------------------------------------------------------------------------------
def test_report_to_an_unusable_place_fails_before_the_work(single, tmp_path, clean_failure):
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    for out, needle in ((a_file / "r.html", "is a file, not a folder"), (tmp_path, "is a folder")):
        clean_failure(["report", "--model", single["model"], "--runs", single["runs"], "--out", out], [out], needle=needle)
    clean_failure(["report", "--model", single["model"], "--format", "png", "--out", a_file], [a_file], needle="not a folder")


def test_report_to_a_full_disk_fails_before_the_work(single, tmp_path, clean_failure, monkeypatch):
    import collections
    import shutil

    usage = collections.namedtuple("usage", "total used free")
    real = shutil.disk_usage
    full = tmp_path / "full"
    full.mkdir()
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage(1 << 30, 1 << 30, 0) if Path(p) == full else real(p))
    import importlib

    workflow = importlib.import_module("mixopt.workflows.report")
    monkeypatch.setattr(workflow, "build_report", lambda **k: pytest.fail("the report was built"))
    out = full / "r.html"
    clean_failure(["report", "--model", single["model"], "--runs", single["runs"], "--out", out], [out],
                  needle="the disk is full")


def test_report_refuses_runs_that_are_not_the_models_data(single, tmp_path, clean_failure):
    out = tmp_path / "r.html"
    clean_failure(["report", "--model", single["model"], "--runs", EXAMPLE_RUNS, "--out", out], [out],
                  needle="are not the data the model")


# -- a full disk ------------------------------------------------------------------------------------
def test_optimize_on_a_full_disk_leaves_no_partial_table(tmp_path, full_disk, clean_failure):
    cfg = _search_config(tmp_path, "full/pareto.csv")
    (tmp_path / "full").mkdir()
    full_disk(tmp_path / "full", room=100)
    targets = [tmp_path / "full" / n for n in ("pareto.csv", "pareto.shortlist.csv", "pareto.summary.json")]
    out = clean_failure(["optimize", cfg, "--no-progress"], targets, needle="no space left")
    assert "were saved to" in out["stderr"]  # the work is not lost: written elsewhere, and said where
    saved = Path(out["stderr"].split("were saved to ")[1].split(" instead")[0])
    assert pl.read_csv(saved / "pareto.csv").height > 0


def test_fit_on_a_full_disk_leaves_no_model(single, tmp_path, full_disk, clean_failure):
    (tmp_path / "full").mkdir()
    full_disk(tmp_path / "full")
    model = tmp_path / "full" / "m"
    clean_failure(["fit", "--runs", single["runs"], "--method", "fp", "--out", model], [model], needle="no space left")
    assert list((tmp_path / "full").iterdir()) == []


@pytest.mark.parametrize("fmt", ["html", "svg"])
def test_report_on_a_full_disk_leaves_nothing(single, tmp_path, full_disk, clean_failure, fmt):
    (tmp_path / "full").mkdir()
    full_disk(tmp_path / "full", room=512)
    out = tmp_path / "full" / ("r.html" if fmt == "html" else "figs")
    clean_failure(["report", "--model", single["model"], "--runs", single["runs"], "--format", fmt, "--out", out],
                  [out / "fit_loss.svg" if fmt == "svg" else out], needle="no space left")
    left = [p for p in (tmp_path / "full").rglob("*") if p.is_file()]
    assert left == []


def test_ladder_on_a_full_disk_leaves_the_table_as_it_was(tmp_path, job_command, full_disk, clean_failure):
    cmd = job_command("ok").replace("\\", "\\\\")
    (tmp_path / "full").mkdir()
    cfg = tmp_path / "ladder.toml"
    cfg.write_text(textwrap.dedent(f"""
        [trainer]
        kind = "command"
        max_parallel = 1
        timeout_s = 300
        workdir = "jobs"
        [trainer.options]
        command = "{cmd}"
        [ladder]
        sizes = [5e7]
        tokens_per_param = 20
        checkpoints = 2
        output = "full/ladder.csv"
        [ladder.mixtures]
        a = {{ web = 0.6, code = 0.3, math = 0.1 }}
    """))
    full_disk(tmp_path / "full", room=64)
    clean_failure(["ladder", cfg], [tmp_path / "full" / "ladder.csv"], needle="no space left")
    assert list((tmp_path / "full").iterdir()) == []


# -- one translation of [data] ----------------------------------------------------------------------
DATA_SECTIONS = {
    "long, on, join, tokens_per_step": f'''
        [data]
        runs = "{FIXTURES / 'logger_long.csv'}"
        ratios = "{FIXTURES / 'logger_mixtures.csv'}"
        format = "long"
        on = "run"
        join = "inner"
        tokens_per_step = 8388608
        columns = {{ "eval/{{d}}/loss" = "loss:{{d}}", "eval/{{b}}/acc" = "score:{{b}}" }}
        [data.long]
        kind = "raw"
    ''',
    "run_id, columns": f'''
        [data]
        runs = "{FIXTURES / 'wide_mixture_scale.csv'}"
        columns = {{ "weight_{{d}}" = "mix:{{d}}", "{{d}}_loss" = "loss:{{d}}", "{{b}}_acc" = "score:{{b}}", model_size = "params", n_tokens = "tokens" }}
        run_id = ["params", "mix"]
    ''',
}


@pytest.mark.parametrize("name", list(DATA_SECTIONS))
def test_one_data_section_reads_the_same_table_in_optimize_the_loop_and_the_report(tmp_path, name):
    import importlib

    from mixopt.config import load_config
    from mixopt.data import read_runs

    loop, optimize, report = (importlib.import_module(f"mixopt.workflows.{m}") for m in ("loop", "optimize", "report"))

    path = tmp_path / "c.toml"
    path.write_text(textwrap.dedent(DATA_SECTIONS[name]) + textwrap.dedent("""
        [surrogate]
        method = "regmix"
        [compute]
        flops = 1e20
        [objectives]
        optimize = ["loss:web"]
    """))
    cfg = load_config(path)
    d = cfg.data
    direct = read_runs(d.runs, ratios=d.ratios, format=d.format, columns=dict(d.columns) or None,
                       run_id=list(d.run_id) or None, tokens_per_step=d.tokens_per_step, on=d.on, how=d.join,
                       long=dict(d.long) or None)
    assert direct.n_runs >= 8 and direct.domains == ("web", "code") or direct.domains == ("web", "code", "math")
    for reader in (optimize._read_config_runs, loop._read_base_runs, report.read_config_runs):
        got = reader(cfg)
        assert got.frame.equals(direct.frame), reader.__qualname__
    # and through the commands themselves
    out = tmp_path / "pareto.csv"
    assert main(["optimize", str(path), "--output", str(out), "--trials", "16", "--no-progress", "--json"]) == 0
    assert pl.read_csv(out).height > 0
    assert main(["report", "--config", str(path), "--out", str(tmp_path / "r.html"), "--json"]) == 0


def test_stdout_closed_early_ends_quietly(tmp_path):
    """`mixopt inspect ... | head -1`: no BrokenPipeError traceback, exit 141 (128 + SIGPIPE)."""
    import os
    import subprocess
    import sys

    runs = tmp_path / "runs.csv"
    assert main(["simulate", "--out", str(runs), "--world", "mixture", "--mixtures", "40", "--checkpoints", "20"]) == 0
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    p = subprocess.Popen([sys.executable, "-m", "mixopt", "inspect", "--runs", str(runs), "--show", "4000"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    assert p.stdout is not None and p.stdout.readline()
    p.stdout.close()  # the reader goes away, as `head -1` does
    err = p.stderr.read().decode() if p.stderr else ""
    assert p.wait(timeout=120) == 141, err
    assert "Traceback" not in err and "BrokenPipe" not in err
