"""mixopt ladder / validate / the optimise -> validate -> refit loop, on tiny configs.

The training command is the stand-in cluster job (scripts/job.py), whose "trained models"
report a known synthetic world's losses: the loop's orchestration runs for real in seconds.
"""

import json

import numpy as np
import polars as pl
import pytest

from mixopt.cli import main
from mixopt.data.readers import read_runs
from tests._configs import write_loop_config

LOSS_REL_TOL = 0.05  # FLP-M on a noise-free-ish world: predicted vs measured loss


def _write_config(tmp_path, job_command, *, rounds=2, method="regmix", extra=""):
    return write_loop_config(tmp_path, job_command("ok"), rounds=rounds, method=method, extra=extra, name="tiny")


@pytest.mark.parametrize("method", ["regmix", pytest.param("flpm", marks=pytest.mark.slow)])
def test_optimize_runs_the_loop_and_a_rerun_adds_nothing(tmp_path, job_command, capsys, method):
    cfg = _write_config(tmp_path, job_command, method=method)
    assert main(["optimize", str(cfg), "--no-progress", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [r["round"] for r in out["rounds"]] == [1, 2]
    loop = tmp_path / "out" / "loop"
    for r in (1, 2):
        f = loop / f"round_{r}"
        assert (f / "surrogate").is_dir() and (f / "pareto.csv").is_file() and (f / "study.db").is_file()
        comp = pl.read_csv(f / "validation.csv")
        assert comp.height > 0 and set(comp["quantity"].str.split(":").list.first()) <= {"loss", "score"}
        losses = comp.filter(pl.col("quantity").str.starts_with("loss:"))
        assert losses["rel_error"].median() < LOSS_REL_TOL
        proposal = json.loads((f / "round.json").read_text())["proposal"]
        assert proposal["mixture"] and proposal["rule"] == "plan" and "plan_error" not in proposal
        assert proposal["params"] > 0 and proposal["tokens"] > 0 and proposal["decision"]["targets"] > 0
    validated = read_runs(tmp_path / "out" / "validated.csv")
    assert validated.n_runs == 4 and all(r.startswith(("val_r1_", "val_r2_")) for r in validated.runs)
    runs2 = read_runs(loop / "round_2" / "runs.csv")
    assert runs2.n_runs == 32 + 2  # round 2 refits on the base runs plus round 1's validated runs
    # re-running the loop retrains nothing and appends nothing
    assert main(["optimize", str(cfg), "--no-progress", "--json"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert all(r["added"] == [] for r in again["rounds"])
    assert read_runs(tmp_path / "out" / "validated.csv").n_runs == 4


def test_validate_command_reports_predicted_vs_measured(tmp_path, job_command, capsys):
    cfg = _write_config(tmp_path, job_command, rounds=0)
    assert main(["optimize", str(cfg), "--no-progress", "--json"]) == 0
    capsys.readouterr()
    pareto = tmp_path / "out" / "pareto.csv"
    assert main(["validate", str(cfg), "--pareto", str(pareto), "--top", "3", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert len(out["trained"]) == 3 and not out["failed"]
    comp = pl.DataFrame(out["comparison"])
    assert comp["run"].n_unique() == 3
    assert {"predicted", "lower", "upper", "measured", "covered"} <= set(comp.columns)
    assert np.all(comp["lower"].to_numpy() <= comp["upper"].to_numpy())


def test_ladder_command_continues_past_a_failing_job(tmp_path, job_command, capsys):
    ok, fail = job_command("ok").replace("\\", "\\\\"), job_command("fail")
    # a mixture named "boom" makes the stand-in fail: route by a shell-free template per job is not possible,
    # so run two ladders into one table: one good, one whose command fails
    for name, cmd in (("good", ok), ("bad", fail)):
        (tmp_path / f"{name}.toml").write_text(f"""
[trainer]
kind = "command"
max_parallel = 2
timeout_s = 300
workdir = "jobs_{name}"
[trainer.options]
command = "{cmd}"
[ladder]
sizes = [5e7, 1e8]
tokens_per_param = 20
checkpoints = 2
output = "ladder.csv"
[ladder.mixtures]
{name}_a = {{ web = 0.6, code = 0.3, math = 0.1 }}
{name}_b = {{ web = 0.2, code = 0.2, math = 0.6 }}
""")
    assert main(["ladder", str(tmp_path / "good.toml"), "--json"]) == 0
    first = json.loads(capsys.readouterr().out)
    assert len(first["added"]) == 4
    assert main(["ladder", str(tmp_path / "bad.toml"), "--json"]) == 4
    bad = json.loads(capsys.readouterr().out)
    assert len(bad["failed"]) == 4 and "out of memory" in bad["failed"][0]["message"]
    assert main(["ladder", str(tmp_path / "good.toml"), "--json"]) == 0  # re-run: nothing to do
    again = json.loads(capsys.readouterr().out)
    assert again["added"] == [] and len(again["skipped"]) == 4
    t = read_runs(tmp_path / "ladder.csv")
    assert t.n_runs == 4 and len(t) == 8


def test_train_sections_are_validated(tmp_path):
    from mixopt.config import load_train_config
    from mixopt.errors import ConfigError

    p = tmp_path / "bad.toml"
    p.write_text('[validate]\nnext = "widest"\n[trainer]\nkind = "slurm"\nmax_parallel = 0\n[ladder]\nsizes = []\ntokens = 1e6\n[ladder.mixtures]\na = { x = 0.5, y = 0.6 }\n')
    with pytest.raises(ConfigError) as e:
        load_train_config(p)
    msg = str(e.value)
    assert "trainer.kind" in msg and "max_parallel" in msg and "ladder.sizes" in msg and "sum to 1.1" in msg
    assert "validate.next" in msg and '"uncertainty"' in msg
