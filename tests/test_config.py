"""Search configs: TOML loading, validation errors naming key/value/fix, and run_search end to end."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import numpy as np
import optuna
import pytest
from search.conftest import LinearMixSurrogate, fitted_analytic, ray_local  # noqa: F401  (registers test-linear)

from mixopt.config import SearchConfig, config_to_dict, load_config
from mixopt.data.readers import read_runs
from mixopt.errors import ConfigError, SearchError
from mixopt.workflows import run_search
from tests._configs import search_config_text

REPO = Path(__file__).resolve().parents[1]


def write(tmp_path: Path, body: str, name: str = "c.toml") -> Path:
    p = tmp_path / name
    p.write_text(textwrap.dedent(body))
    return p


def base(runs: Path, extra: str = "", search: str = "") -> str:
    """A valid config over ``runs``; ``extra`` goes into [objectives] (and may add tables), ``search`` into [search]."""
    return search_config_text(runs, flops="[1e20, 1e22]", objectives=extra, search=search, trials=256, batch_size=64,
                              storage="memory")


def test_load_full_config_and_relative_paths(tmp_path, runs_file) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "runs.csv").write_text(runs_file.read_text())
    cfg = load_config(write(tmp_path, """
        [data]
        runs = "data/runs.csv"
        chance = { hellaswag = 0.25 }
        [surrogate]
        method = "test-linear"
        settings = { ridge = 1e-4 }
        [compute]
        flops = 1e21
        tokens_per_param = [10, 40]
        [domains.web]
        floor = 0.2
        cap = 0.9
        [domains.math]
        pin = 0.05
        [tokens]
        available = { code = 1e12 }
        max_epochs = 2
        [objectives]
        optimize = ["score:hellaswag", { name = "avg", mean = ["score:hellaswag", "score:humaneval"], weights = [1, 2] }]
        constraints = ["score:gsm8k >= 0.1"]
        risk_kappa = 1.0
        weights = { avg = 2 }
        [search]
        trials = 100
        sampler = "tpe"
        storage = "out/study.db"
        output = "out/front.parquet"
        warm_start = [{ web = 0.5, code = 0.45, math = 0.05 }]
    """))
    assert isinstance(cfg, SearchConfig)
    assert cfg.data.runs == (tmp_path / "data" / "runs.csv").resolve()
    assert cfg.search.storage == str((tmp_path / "out" / "study.db").resolve())
    assert cfg.output == (tmp_path / "out" / "front.parquet").resolve()
    assert cfg.compute.flops == (1e21, 1e21) and cfg.compute.tokens_per_param == (10.0, 40.0)
    assert cfg.domains["web"].floor == 0.2 and cfg.domains["math"].pin == 0.05
    assert cfg.tokens.available == {"code": 1e12} and cfg.tokens.max_epochs == 2.0
    assert cfg.objectives.risk_kappa == 1.0 and cfg.search.sampler == "tpe"
    assert json.dumps(config_to_dict(cfg))
    with pytest.raises(AttributeError):
        cfg.search.trials = 5  # type: ignore[misc]  (frozen)


def test_defaults_storage_next_to_the_config(tmp_path, runs_file) -> None:
    cfg = load_config(write(tmp_path, f"""
        [data]
        runs = "{runs_file}"
        [compute]
        flops = 1e21
        [objectives]
        optimize = ["score:hellaswag"]
    """))
    assert cfg.search.storage == str((tmp_path / "mixopt.log").resolve())  # journal file by default
    assert cfg.surrogate.method == "flpm" and cfg.search.sampler == "nsga2" and cfg.output is None


def test_overrides_take_cli_paths_from_cwd(tmp_path, runs_file, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    cfg = load_config(write(tmp_path / "", base(runs_file)), overrides={
        "trials": 50, "seed": 3, "sampler": "random", "output": "x/front.csv", "storage": "memory",
        "study_name": "s2", "executor": "ray", "ray_address": None,
    })
    assert cfg.search.trials == 50 and cfg.search.seed == 3 and cfg.search.sampler == "random"
    assert cfg.output == (tmp_path / "x" / "front.csv").resolve()
    assert cfg.search.study_name == "s2" and cfg.search.executor == "ray"
    with pytest.raises(ConfigError, match="Unknown override 'bogus'"):
        load_config(tmp_path / "c.toml", overrides={"bogus": 1})
    with pytest.raises(ConfigError, match=r"search.trials = 0: must be an integer >= 1"):
        load_config(tmp_path / "c.toml", overrides={"trials": 0})


@pytest.mark.parametrize(
    ("extra", "search", "match"),
    [
        ("", "trials = -5", r"search\.trials = -5: must be an integer >= 1"),
        ("", "sampler = \"tpee\"", r"search\.sampler = 'tpee': did you mean 'tpe'\?"),
        ("", "batchsize = 4", r"unknown key search\.batchsize: did you mean 'batch_size'\?"),
        ("", "executor = \"dask\"", r"search\.executor = 'dask': must be one of \['local', 'ray'\]"),
        ("", "output = \"front.xlsx\"", r"search\.output = 'front\.xlsx': must end in \.parquet, \.csv or \.json"),
        ("risk_kappa = -1", "", r"objectives\.risk_kappa = -1: must be a number >= 0"),
        ("constraints = [\"score:mmlu = 0.4\"]", "", r"objectives\.constraints\[0\] = 'score:mmlu = 0\.4'"),
        ("[domains.web]\nfloor = 0.7\n[domains.code]\nfloor = 0.5", "",
         r"sum\(floors and pins\) <= 1 must hold, but got 1\.2 for domains \(web, code\); lower the floors"),
        ("[domains.web]\nfloor = 0.5\ncap = 0.4", "", r"floor 0\.5 > cap 0\.4"),
        ("[domains.web]\npin = 0.5\ncap = 0.9", "", r"give either pin or floor/cap"),
        ("[tokens]\nepochs = { code = 2 }", "", r"tokens\.epochs names \['code'\] without tokens\.available"),
    ],
)
def test_invalid_settings_name_key_value_and_fix(tmp_path, runs_file, extra, search, match) -> None:
    with pytest.raises(ConfigError, match=match):
        load_config(write(tmp_path, base(runs_file, extra=textwrap.indent(extra, "    "), search=search)))


def test_all_problems_reported_at_once(tmp_path, runs_file) -> None:
    with pytest.raises(ConfigError) as e:
        load_config(write(tmp_path, base(runs_file, extra="risk_kappa = -1", search="trials = 0\nseed = -2")))
    msg = str(e.value)
    assert "3 problem(s)" in msg and "search.trials" in msg and "search.seed" in msg and "risk_kappa" in msg


def test_file_errors(tmp_path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.toml")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(write(tmp_path, "[search\ntrials = 3"))
    with pytest.raises(ConfigError, match=r"data\.runs = 'nope\.csv': file not found"):
        load_config(write(tmp_path, """
            [data]
            runs = "nope.csv"
            [compute]
            flops = 1e21
            [objectives]
            optimize = ["score:x"]
        """))
    with pytest.raises(ConfigError, match=r"\[compute\] needs flops"):
        load_config(write(tmp_path, """
            [surrogate]
            model = "."
            [objectives]
            optimize = ["score:x"]
        """))


# -- run_search end to end -----------------------------------------------------------------
def test_run_search_fits_searches_writes_and_resumes(tmp_path, runs_file) -> None:
    cfg_path = write(tmp_path, base(
        runs_file,
        extra="constraints = [\"score:gsm8k >= 0.05\"]\n[domains.web]\nfloor = 0.1\n[tokens]\navailable = { code = 2e10 }",
        search="storage = \"study.db\"\noutput = \"out/front.csv\"\nstudy_name = \"e2e\"",
    ))
    cfg = load_config(cfg_path)
    res = run_search(cfg, progress=False)
    assert res.n_trials == 256 and res.n_complete == 256
    assert res.pareto.height > 0 and res.pareto["mix:web"].min() >= 0.1 - 1e-12
    assert res.constraints == ("score:gsm8k >= 0.05", "data")
    written = res.write(cfg.output)
    assert written[0] == (tmp_path / "out" / "front.csv").resolve() and written[0].is_file()
    assert "Pareto set" in res.report()
    again = run_search(load_config(cfg_path, overrides={"trials": 400}), progress=False)
    assert again.n_trials == 400 and again.n_new == 144
    assert len(optuna.load_study(study_name="e2e", storage=f"sqlite:///{tmp_path / 'study.db'}").trials) == 400


@pytest.mark.parametrize(
    ("extra", "match"),
    [
        ("", None),
        ("[domains.wbe]\nfloor = 0.1", r"names domain\(s\) \['wbe'\] that the run table runs\.csv lacks"),
        ("constraints = [\"score:mmlu >= 0.4\"]", r"Unknown benchmark 'score:mmlu'"),
        ("[tokens]\navailable = { code = 1e3, web = 1e3, math = 1e3 }", r"impossible for every mixture"),
    ],
)
def test_infeasible_problems_fail_before_fitting(tmp_path, runs_file, monkeypatch, extra, match) -> None:
    fits = []
    monkeypatch.setattr(LinearMixSurrogate, "_fit", lambda self, runs: fits.append(1) or pytest.fail("fitted"))
    cfg = load_config(write(tmp_path, base(runs_file, extra=extra)))
    if match is None:
        with pytest.raises(pytest.fail.Exception, match="fitted"):
            run_search(cfg, progress=False)
        return
    with pytest.raises(SearchError, match=match):
        run_search(cfg, progress=False)
    assert fits == []


def test_given_surrogate_without_a_named_domain(tmp_path, runs_file) -> None:
    cfg = load_config(write(tmp_path, base(runs_file, extra="[domains.books]\ncap = 0.2")))
    with pytest.raises(SearchError, match=r"names domain\(s\) \['books'\] that the surrogate .* lacks"):
        run_search(cfg, fitted_analytic(), progress=False)


def test_run_search_on_ray(tmp_path, runs_file, ray_local) -> None:  # noqa: F811 - a pytest fixture
    cfg = load_config(write(tmp_path, base(runs_file, search="executor = \"ray\"\nworkers = 2")))
    res = run_search(cfg, progress=False)
    local = run_search(load_config(tmp_path / "c.toml", overrides={"executor": "local", "workers": 2}), progress=False)
    assert res.executor == "Ray (2 workers)"
    np.testing.assert_array_equal(res.trials["mix:web"].to_numpy(), local.trials["mix:web"].to_numpy())


@pytest.mark.parametrize("name", ["example.toml", "two_domain_code.toml"])
def test_shipped_configs_load(name, tmp_path, runs_file) -> None:
    path = REPO / "configs" / name
    raw = path.read_text()
    # the example data files are generated by the project; point the copy at a test file
    import re

    raw = re.sub(r'(?m)^runs = "[^"]*"', f'runs = "{runs_file}"', raw)
    cfg = load_config(write(tmp_path, raw, name))
    assert cfg.objectives.optimize and cfg.search.trials >= 1000


def test_shortlist_and_ray_dashboard_settings(tmp_path, runs_file) -> None:
    cfg = load_config(write(tmp_path, base(runs_file, extra="shortlist = 3", search="ray_dashboard = true")))
    assert cfg.objectives.shortlist == 3 and cfg.search.ray_dashboard is True
    assert load_config(tmp_path / "c.toml", overrides={"shortlist": 7}).objectives.shortlist == 7
    with pytest.raises(ConfigError, match=r"objectives.shortlist = 0: must be an integer >= 1"):
        load_config(write(tmp_path, base(runs_file, extra="shortlist = 0")))
    with pytest.raises(ConfigError, match=r"search.ray_dashboard = 'yes': must be true or false"):
        load_config(write(tmp_path, base(runs_file, search='ray_dashboard = "yes"')))


def test_a_domain_named_changes_is_refused_with_the_rename(tmp_path, runs_file) -> None:
    """``[domains.changes]`` is the domain-set change; bounds there name the reservation and the fix, not 'unknown key'."""
    with pytest.raises(ConfigError) as e:
        load_config(write(tmp_path, base(runs_file, extra="[domains.changes]\n    floor = 0.1\n    cap = 0.5")))
    msg = str(e.value)
    assert "'changes' is reserved" in msg and "(cap, floor)" in msg and "[data] columns" in msg
    assert "[domains.changes_data]" in msg and "unknown key" not in msg
    # the fix the message gives works: a table whose domain is called 'changes', renamed by [data] columns
    mix = next(c for c in runs_file.read_text().splitlines()[0].split(",") if c.startswith("mix:"))
    renamed = tmp_path / "runs.csv"
    renamed.write_text(runs_file.read_text().replace(mix, "mix:changes"))
    text = base(renamed, extra="[domains.changes_data]\n    floor = 0.1").replace(
        "[data]\n", "[data]\ncolumns = { \"mix:changes\" = \"mix:changes_data\" }\n", 1)
    cfg = load_config(write(tmp_path, text))
    assert cfg.domains["changes_data"].floor == 0.1 and cfg.changes is None
    table = read_runs(cfg.data.runs, **cfg.data.read_options())
    assert "changes_data" in table.domains and "changes" not in table.domains
