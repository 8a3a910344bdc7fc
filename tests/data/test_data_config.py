"""The [data] section of a config: column maps, run ids and the long format reach the reader."""

from __future__ import annotations

from pathlib import Path

import pytest

from mixopt.config import load_config
from mixopt.data import read_runs
from mixopt.errors import ConfigError

FIXTURES = Path(__file__).parent / "fixtures"


def _cfg(tmp_path: Path, data: str) -> Path:
    p = tmp_path / "c.toml"
    p.write_text(data + "\n[surrogate]\nmethod = \"regmix\"\n[compute]\nflops = 1e20\n[objectives]\noptimize = [\"loss:web\"]\n")
    return p


def test_wide_table_with_column_map_and_run_ids(tmp_path: Path) -> None:
    cfg = load_config(_cfg(tmp_path, f'''[data]
runs = "{FIXTURES / "wide_mixture_scale.csv"}"
columns = {{ "weight_{{d}}" = "mix:{{d}}", "{{d}}_loss" = "loss:{{d}}", "{{b}}_acc" = "score:{{b}}", model_size = "params", n_tokens = "tokens" }}
run_id = ["params", "mix"]
'''))
    assert cfg.data.run_id == ("params", "mix")
    t = read_runs(cfg.data.runs, **cfg.data.read_options())
    assert t.n_runs == 15 and t.domains == ("web", "code", "math")


def test_long_format_section(tmp_path: Path) -> None:
    cfg = load_config(_cfg(tmp_path, f'''[data]
runs = "{FIXTURES / "dml_3mix_70M_160M.txt"}"
format = "long"
tokens_per_step = 1048576
[data.long]
checkpoint_pattern = "{{params}}_{{_}}-{{mix}}/{{step}}"
name_pattern = "pythia-pile.valid.{{name}}.bin"
mix_domains = ["Github", "Books3", "Pile-CC"]
'''))
    t = read_runs(cfg.data.runs, **cfg.data.read_options())
    assert t.n_runs == 12 and t.loss_domains == ("Github", "Books3", "Pile-CC")


def test_bad_data_keys_are_reported_together(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as e:
        load_config(_cfg(tmp_path, f'''[data]
runs = "{FIXTURES / "dml_3mix_70M_160M.txt"}"
run_id = "params,mix"
join = "left"
[data.long]
checkpoint_pattern = "{{mix}}/{{step}}"
pattern = "x"
'''))
    msg = str(e.value)
    for fragment in ("data.join", "unknown key data.long.pattern", "data.format", "mix_domains"):
        assert fragment in msg, msg
