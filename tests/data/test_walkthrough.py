"""The README's "Bring your own data" walkthrough: every command runs, exactly as written.

``WALKTHROUGH`` holds the commands of that README section. When README.md has the section,
the test checks that its commands are exactly these (so the README and the tests cannot
drift apart); each command is then run in-process from the repository root, with
``--out`` redirected into a temporary folder. Commands on ../shared/data are skipped where
the data are absent; fits on the shared data are ``slow``.
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import polars as pl
import pytest

from mixopt.cli import EXIT_BAD_INPUT, main
from tests.conftest import needs_data

ROOT = Path(__file__).parents[2]
SHARED = ROOT.parent / "shared" / "data"

_DML = (
    "--runs tests/data/fixtures/dml_3mix_70M_160M.txt --format long --checkpoint-pattern '{params}_{_}-{mix}/{step}' "
    "--name-pattern 'pythia-pile.valid.{name}.bin' --mix-domains Github,Books3,Pile-CC --tokens-per-step 1048576"
)
_LOGGER = (
    "--runs tests/data/fixtures/logger_long.csv --ratios tests/data/fixtures/logger_mixtures.csv --format long --long-kind raw "
    "--columns 'eval/{d}/loss=loss:{d},eval/{b}/acc=score:{b}' --tokens-per-step 8388608"
)
_WIDE = (
    "--runs tests/data/fixtures/wide_mixture_scale.csv "
    "--columns 'weight_{d}=mix:{d},{d}_loss=loss:{d},{b}_acc=score:{b},model_size=params,n_tokens=tokens' --run-id params,mix"
)
_REGMIX = (
    "--runs ../shared/data/regmix/train_pile_loss_1m.csv --ratios ../shared/data/regmix/train_mixture_1m.csv "
    "--params-default 1e6 --tokens-default 1.05e9"
)
_OLMIX = "--runs ../shared/data/olmix/dclm_metrics.csv --ratios ../shared/data/olmix/dclm_ratios.csv --params-default 30e6 --tokens-default 3e9"

WALKTHROUGH = [
    f"mixopt inspect {_REGMIX}",
    f"mixopt fit {_REGMIX} --method regmix --out models/regmix_1m",
    f"mixopt inspect {_OLMIX}",
    f"mixopt fit {_OLMIX} --method regmix --out models/olmix_dclm",
    f"mixopt inspect {_DML}",
    f"mixopt fit {_DML} --method regmix --out models/dml_3mix",
    f"mixopt inspect {_LOGGER}",
    f"mixopt fit {_LOGGER} --method regmix --out models/logger_sweep",
    f"mixopt inspect {_WIDE}",
    f"mixopt fit {_WIDE} --method regmix --out models/wide_grid",
]


def _readme_commands() -> list[str] | None:
    readme = ROOT / "README.md"
    if not readme.is_file():
        return None
    text = readme.read_text()
    m = re.search(r"^##+ Bring your own data\s*$(.*?)(?=^## [^#]|\Z)", text, flags=re.M | re.S)
    if m is None:
        return None
    cmds = []
    for block in re.findall(r"```(?:bash|sh|console)?\n(.*?)```", m.group(1), flags=re.S):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.strip().removeprefix("$ ").strip()
            if line.startswith("mixopt "):
                cmds.append(" ".join(line.split()))
    return cmds


def _norm(cmd: str) -> str:
    return " ".join(cmd.split())


def test_readme_walkthrough_is_the_tested_one() -> None:
    cmds = _readme_commands()
    if cmds is None:
        pytest.skip("README.md has no 'Bring your own data' section yet")
    assert cmds == [_norm(c) for c in WALKTHROUGH]


def _params() -> list:
    out = []
    for cmd in WALKTHROUGH:
        marks = []
        if "../shared/data" in cmd:
            marks.append(needs_data(SHARED))
            if " fit " in cmd:
                marks.append(pytest.mark.slow)
        out.append(pytest.param(cmd, marks=marks, id=" ".join(cmd.split()[:2]) + ":" + cmd.split("--runs ")[1].split()[0].split("/")[-1]))
    return out


@pytest.mark.parametrize("cmd", _params())
def test_walkthrough_command(cmd: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    argv = shlex.split(cmd)
    assert argv[0] == "mixopt"
    argv = argv[1:]
    if "--out" in argv:
        i = argv.index("--out") + 1
        argv[i] = str(tmp_path / argv[i])
    monkeypatch.chdir(ROOT)
    rc = main(argv)
    out, err = capsys.readouterr()
    assert rc == 0, err
    if argv[0] == "inspect":
        assert "read " in out and "mixture domains" in out
    else:
        assert (tmp_path / "models").is_dir()


# -- what the walkthrough promises ------------------------------------------------------------
def _inspect(flags: str, capsys: pytest.CaptureFixture[str]) -> dict:
    assert main(["inspect", *shlex.split(flags), "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_fixture_layouts_read_as_documented(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(ROOT)
    dml = _inspect(_DML, capsys)
    assert (dml["runs"], dml["checkpoints"]) == (12, 72)
    assert dml["domains"] == dml["loss_domains"] == ["Github", "Books3", "Pile-CC"]
    assert dml["missing"] == {"loss:Books3": 1, "loss:Pile-CC": 1}
    log = _inspect(_LOGGER, capsys)
    assert (log["runs"], log["checkpoints"]) == (8, 40) and log["domains"] == ["web", "code"]
    assert log["loss_domains"] == ["code", "web"] and log["benchmarks"] == ["hellaswag"]
    assert log["missing"] == {"score:hellaswag": 1} and log["run_ids"][0] == "sweep-00"
    wide = _inspect(_WIDE, capsys)
    assert (wide["runs"], wide["checkpoints"]) == (15, 60)  # 3 sizes x 5 mixtures, 4 checkpoints each
    assert wide["domains"] == ["web", "code", "math"] and wide["benchmarks"] == ["hellaswag"]
    assert wide["missing"] == {"loss:web": 3, "loss:code": 3, "score:hellaswag": 3}
    assert wide["final_missing"] == {"loss:web": ["params=1e8 mix=0.533/0.03/0.437"]}
    assert all(r.startswith("params=") and " mix=" in r for r in wide["run_ids"])


def test_fit_and_backtest_report_missing_cells(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(ROOT)
    assert main(["fit", *shlex.split(_WIDE), "--method", "regmix", "--out", str(tmp_path / "m")]) == 0
    out = capsys.readouterr().out
    assert out.startswith("missing values: 9 empty cells (loss:web 3, loss:code 3, score:hellaswag 3)"), out
    assert main(["fit", *shlex.split(_WIDE), "--method", "regmix", "--out", str(tmp_path / "m2"), "--json"]) == 0
    cap = capsys.readouterr()
    json.loads(cap.out)  # stdout stays pure JSON; the note goes to stderr
    assert "missing values: 9 empty cells" in cap.err
    assert main(["backtest", *shlex.split(_WIDE), "--method", "regmix", "--holdout-runs", "params=1e8 mix=0.059/0.568/0.373"]) == 0
    out = capsys.readouterr().out
    assert "missing values: 9 empty cells" in out and "held out" in out


# -- messages through the CLI name the flags ----------------------------------------------------
@needs_data(SHARED)
def test_cli_errors_name_flags_not_python_arguments(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(ROOT)
    rc = main(["inspect", "--runs", "../shared/data/regmix/train_pile_loss_1m.csv", "--ratios", "../shared/data/regmix/train_mixture_1m.csv"])
    err = capsys.readouterr().err
    assert rc == EXIT_BAD_INPUT
    assert "--params-default 1e6" in err and "--tokens-default 1.05e9" in err
    assert "params=" not in err and "tokens=" not in err
    rc = main(["inspect", "--runs", "../shared/data/regmix/train_pile_loss_1m.csv", "--params-default", "1e6", "--tokens-default", "1e9"])
    err = capsys.readouterr().err
    assert rc == EXIT_BAD_INPUT and "--ratios train_mixture_1m.csv" in err and "ratios=" not in err


def test_cli_ratio_typo_names_the_run_and_the_offset(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    p = tmp_path / "r.csv"
    pl.DataFrame(
        {"run": ["a", "a", "b", "b"], "params": [1e7] * 4, "tokens": [1e8, 2e8] * 2, "mix:web": [0.5, 0.5, 0.62, 0.62],
         "mix:code": [0.5, 0.5, 0.4, 0.4], "loss:web": [3.0, 2.9, 3.1, 3.0]}
    ).write_csv(p)
    assert main(["inspect", "--runs", str(p)]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert "run 'b' sums to 1.02 (+0.02)" in err and "'a'" not in err
    assert main(["inspect", "--runs", str(p), "--columns", "nope"]) == EXIT_BAD_INPUT
    assert "--columns must look like old=new" in capsys.readouterr().err
    assert main(["inspect", "--runs", str(p), "--columns", "zz=run"]) == EXIT_BAD_INPUT
    assert "--columns renames ['zz']" in capsys.readouterr().err
