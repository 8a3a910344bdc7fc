"""Long-format files (one row per checkpoint x domain): Data Mixing Laws' exports, logger exports."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mixopt.data import read_runs
from mixopt.data.long import LongLayout, parse_sizes
from mixopt.data.options import cli_option_names
from mixopt.errors import SchemaError
from mixopt.testing import mixture_world

FIXTURES = Path(__file__).parent / "fixtures"
DML = FIXTURES / "dml_3mix_70M_160M.txt"
DML_LAYOUT = {
    "checkpoint_pattern": "{params}_{_}-{mix}/{step}",
    "name_pattern": "pythia-pile.valid.{name}.bin",
    "mix_domains": ["Github", "Books3", "Pile-CC"],
}
BSZ = 4096 * 256


def test_data_mixing_laws_export_reads_as_it_is(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO):
        t = read_runs(DML, format="long", long=DML_LAYOUT, tokens_per_step=BSZ)
    assert t.n_runs == 12 and len(t) == 72  # 2 sizes x 6 mixtures x 6 steps
    assert t.domains == ("Github", "Books3", "Pile-CC") and t.loss_domains == t.domains
    assert sorted(set(t.params().tolist())) == [7e7, 1.6e8]
    run = t.select_runs(["70M_16-0.375-0.125-0.5"])
    np.testing.assert_allclose(run.mixture()[0], [0.375, 0.125, 0.5], rtol=0, atol=1e-15)
    np.testing.assert_allclose(run.tokens(), run.column("step") * BSZ, rtol=0, atol=0)
    # one checkpoint lacks Books3 mid-run; one run's final checkpoint lacks Pile-CC
    assert t.missing_counts() == {"loss:Books3": 1, "loss:Pile-CC": 1}
    assert t.final_missing() == {"loss:Pile-CC": ("160M_14-0-0-1",)}
    assert "dropped 3 exact duplicate row(s)" in caplog.text
    assert "2 empty cells" in caplog.text


def test_row_order_does_not_change_the_table(tmp_path: Path) -> None:
    lines = DML.read_text().splitlines()
    p = tmp_path / "shuffled.txt"
    p.write_text("\n".join(lines[::-1]) + "\n")
    a = read_runs(DML, format="long", long=DML_LAYOUT, tokens_per_step=BSZ)
    b = read_runs(p, format="long", long=DML_LAYOUT, tokens_per_step=BSZ)
    assert a.frame.equals(b.frame)


def _logger_export() -> pl.DataFrame:
    rows = []
    for run, n, mix in (("a", 2e7, 0.3), ("b", 5e7, 0.6)):
        for step in (100, 200):
            for dom, base in (("web", 3.0), ("code", 2.0)):
                rows.append({"run": run, "step": step, "params": n, "mix:web": mix, "mix:code": 1 - mix, "domain": dom, "value": base - step / 1000})
            rows.append({"run": run, "step": step, "params": n, "mix:web": mix, "mix:code": 1 - mix, "domain": "score:hellaswag", "value": 0.25 + step / 4000})
    return pl.DataFrame(rows)


def test_logger_export_with_header(tmp_path: Path) -> None:
    p = tmp_path / "log.csv"
    _logger_export().write_csv(p)
    t = read_runs(p, format="long", tokens_per_step=1e6)
    assert t.runs == ("a", "b") and t.loss_domains == ("code", "web") and t.benchmark_names == ("hellaswag",)
    np.testing.assert_allclose(t.select_runs(["a"]).losses(["web"])[:, 0], [2.9, 2.8], rtol=0, atol=1e-12)
    # a mixture file joined on run works after the pivot too
    f = _logger_export().drop("mix:web", "mix:code")
    f.write_csv(p)
    mix = tmp_path / "mix.csv"
    pl.DataFrame({"run": ["a", "b"], "web": [0.3, 0.6], "code": [0.7, 0.4]}).write_csv(mix)
    u = read_runs(p, ratios=mix, format="long", tokens_per_step=1e6)
    np.testing.assert_allclose(u.mixture(), t.mixture(), rtol=0, atol=1e-15)


def test_headerless_four_fields_and_run_step_pattern(tmp_path: Path) -> None:
    p = tmp_path / "log.tsv"
    p.write_text("r1\t10\tweb\t3.0\nr1\t20\tweb\t2.8\nr2\t10\tweb\t3.1\n")
    t = read_runs(p, format="long", tokens_per_step=100, params=1e7)
    assert t.runs == ("r1", "r2") and t.loss_domains == ("web",)
    q = tmp_path / "ck.csv"
    pl.DataFrame({"checkpoint": ["exp/r1/step10", "exp/r1/step20/"], "metric": ["web", "web"], "value": [3.0, 2.9]}).write_csv(q)
    u = read_runs(q, format="long", long={"checkpoint_pattern": "{run}/step{step}"}, tokens_per_step=100, params=1e7)
    assert u.runs == ("r1",) and u.column("step").tolist() == [10, 20]


def test_kind_score_and_raw_with_column_map(tmp_path: Path) -> None:
    p = tmp_path / "s.csv"
    pl.DataFrame({"run": ["a", "a"], "step": [1, 2], "metric": ["eval/hellaswag/acc"] * 2, "value": [0.3, 0.4]}).write_csv(p)
    t = read_runs(p, format="long", long={"kind": "raw"}, columns={"eval/{b}/acc": "score:{b}"}, tokens_per_step=10, params=1e7)
    assert t.benchmark_names == ("hellaswag",)
    t = read_runs(p, format="long", long={"kind": "score", "name_pattern": "eval/{name}/acc"}, tokens_per_step=10, params=1e7)
    assert t.benchmark_names == ("hellaswag",)


def test_sizes() -> None:
    s = parse_sizes(pl.Series(["70M", "1.1B", "2e8", "500k", "3T"]), "params", "f")
    np.testing.assert_allclose(s.to_numpy(), [7e7, 1.1e9, 2e8, 5e5, 3e12], rtol=1e-15, atol=0)
    with pytest.raises(SchemaError, match="not sizes"):
        parse_sizes(pl.Series(["70X"]), "params", "f")


def test_errors_name_the_fix(tmp_path: Path) -> None:
    with pytest.raises(SchemaError, match="does not match"):
        read_runs(DML, format="long", long=DML_LAYOUT | {"name_pattern": "valid.{name}.idx"}, tokens_per_step=BSZ)
    with pytest.raises(SchemaError, match="tell mixopt how to read it"):
        read_runs(DML, format="long", tokens_per_step=BSZ)
    with cli_option_names(), pytest.raises(SchemaError, match="--checkpoint-pattern"):
        read_runs(DML, format="long", tokens_per_step=BSZ)
    with pytest.raises(SchemaError, match="does not hold 2 ratios"):
        read_runs(DML, format="long", long=DML_LAYOUT | {"mix_domains": ["a", "b"]}, tokens_per_step=BSZ)
    with pytest.raises(SchemaError, match="mix_domains"):
        LongLayout(checkpoint_pattern="{mix}/{step}")
    with pytest.raises(SchemaError, match="not 'long'"):
        read_runs(DML, long=DML_LAYOUT)
    p = tmp_path / "c.csv"
    pl.DataFrame({"run": ["a", "a"], "step": [1, 1], "domain": ["web", "web"], "value": [3.0, 3.1]}).write_csv(p)
    with pytest.raises(SchemaError, match="different values for the same checkpoint"):
        read_runs(p, format="long", tokens_per_step=10, params=1e7)
    pl.DataFrame({"run": ["a"], "step": [1], "domain": ["web"], "value": ["n/a"]}).write_csv(p)
    with pytest.raises(SchemaError, match="non-numeric"):
        read_runs(p, format="long", tokens_per_step=10, params=1e7)
    pl.DataFrame({"run": ["a"], "step": [1], "what": ["web"], "value": [3.0]}).write_csv(p)
    with pytest.raises(SchemaError, match=r"no \['name'\] column"):
        read_runs(p, format="long", tokens_per_step=10, params=1e7)
    t = read_runs(p, format="long", long={"columns": {"name": "what"}}, tokens_per_step=10, params=1e7)
    assert t.loss_domains == ("web",)
    # a wide reader pointed at a long file suggests the long format
    with cli_option_names(), pytest.raises(SchemaError, match="--format long"):
        read_runs(p, tokens_per_step=10, params=1e7)


# -- property: wide -> long -> wide gives the table back ---------------------------------------
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 10_000), n_blank=st.integers(0, 5), shuffle=st.booleans())
def test_long_round_trip(tmp_path: Path, seed: int, n_blank: int, shuffle: bool) -> None:
    """A wide table unpivoted (empty cells become absent rows, in any order) reads back identically."""
    world = mixture_world(n_domains=3, n_benchmarks=1, seed=seed % 7)
    t = world.sample_runs([2e7, 6e7], world.random_mixtures(3, seed=seed), n_checkpoints=3, seed=seed)
    f = t.frame.drop("flops", "loss").with_columns(pl.col("step").cast(pl.Int64))
    rng = np.random.default_rng(seed)
    blank_rows = rng.choice(f.height, size=n_blank, replace=False)
    f = f.with_columns(pl.when(pl.int_range(pl.len()).is_in(blank_rows.tolist())).then(None).otherwise(pl.col("loss:web")).alias("loss:web"))
    index = ["run", "step", "params", "tokens", *[f"mix:{d}" for d in world.domains]]
    long = f.unpivot(index=index, variable_name="name", value_name="value").drop_nulls("value")
    if shuffle:
        long = long.sample(fraction=1.0, shuffle=True, seed=seed)
    p = tmp_path / f"long_{seed}_{n_blank}_{shuffle}.parquet"
    long.write_parquet(p)
    w = tmp_path / f"wide_{seed}_{n_blank}_{shuffle}.parquet"
    f.write_parquet(w)
    back = read_runs(p, format="long", long={"mix_domains": list(world.domains)})
    direct = read_runs(w)
    assert back.frame.select(direct.frame.columns).equals(direct.frame)
    assert back.loss_domains == world.domains  # mixture domains first, in their order
    assert back.missing_counts().get("loss:web", 0) == n_blank


def test_text_run_ids_stay_text(tmp_path: Path) -> None:
    p = tmp_path / "ids.csv"
    p.write_text("run,step,domain,value\n007,1,web,3.0\n007,2,web,2.9\n010,1,web,3.1\n")
    t = read_runs(p, format="long", tokens_per_step=10, params=1e7)
    assert t.runs == ("007", "010")
