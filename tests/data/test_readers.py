"""read_runs / write_runs: layouts, round trips, and a clear SchemaError for every damaged file."""

from __future__ import annotations

import json
import logging
import tempfile
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mixopt.data import Benchmark, RunTable, read_runs, sidecar_path, write_runs
from mixopt.errors import SchemaError
from mixopt.testing import two_domain_code_world

EXTS = [".csv", ".tsv", ".parquet", ".jsonl"]


@pytest.fixture(scope="module")
def table() -> RunTable:
    world = two_domain_code_world()
    return world.sample_runs([1e7, 1e8], world.random_mixtures(2, seed=0), n_checkpoints=3, seed=0)


def _write(frame: pl.DataFrame, path: Path) -> Path:
    if path.suffix == ".csv":
        frame.write_csv(path)
    elif path.suffix == ".tsv":
        frame.write_csv(path, separator="\t")
    elif path.suffix == ".parquet":
        frame.write_parquet(path)
    else:
        frame.write_ndjson(path)
    return path


def _damaged(frame: pl.DataFrame, col: str, row: int, value: object) -> pl.DataFrame:
    """``frame`` with one cell replaced (the column becomes text if the value is text)."""
    s = frame[col]
    if isinstance(value, str):
        vals = s.cast(pl.String).to_list()
    else:
        vals = s.to_list()
    vals[row] = value
    return frame.with_columns(pl.Series(col, vals))


# -- round trips ---------------------------------------------------------------------------------
@pytest.mark.parametrize("ext", EXTS)
def test_round_trip_is_exact(table: RunTable, tmp_path: Path, ext: str) -> None:
    p = write_runs(table, tmp_path / f"runs{ext}")
    assert sidecar_path(p).is_file()
    back = read_runs(p)
    assert back.frame.equals(table.frame)
    assert back.frame.schema == table.frame.schema
    assert back.benchmarks == table.benchmarks


@pytest.mark.parametrize("ext", EXTS)
def test_round_trip_keeps_text_ids_nulls_and_custom_benchmarks(tmp_path: Path, ext: str) -> None:
    frame = pl.DataFrame(
        {
            "run": ["007", "007", "010"],
            "params": [1e7, 1e7, 2e7],
            "tokens": [1e8, 2e8, 4e8],
            "loss": [3.1, 2.9, 2.7],
            "score:mytask": [None, 0.3, 0.41],
            "dataset": ["a", "a", "b"],
        }
    )
    t = RunTable(frame, [Benchmark(name="mytask", chance=0.1, higher_is_better=True)])
    back = read_runs(write_runs(t, tmp_path / f"r{ext}"))
    assert back.runs == ("007", "010")
    assert back.frame.equals(t.frame)
    assert back.benchmark("mytask") == Benchmark(name="mytask", chance=0.1)


def test_write_removes_stale_sidecar(tmp_path: Path) -> None:
    p = tmp_path / "r.csv"
    sidecar_path(p).write_text("[]")
    t = RunTable(pl.DataFrame({"run": ["a"], "params": [1.0], "tokens": [2.0], "loss": [3.0]}))
    write_runs(t, p)
    assert not sidecar_path(p).exists()
    with pytest.raises(SchemaError, match="file type"):
        write_runs(t, tmp_path / "r.xlsx")


# -- benchmark metadata --------------------------------------------------------------------------
def _score_frame() -> pl.DataFrame:
    return pl.DataFrame({"run": ["a", "b"], "params": [1e7, 2e7], "tokens": [2e8, 4e8], "loss": [3.0, 2.8], "score:foo": [0.3, 0.5]})


def test_unknown_benchmark_is_an_error_with_the_fix(tmp_path: Path) -> None:
    p = _write(_score_frame(), tmp_path / "r.csv")
    with pytest.raises(SchemaError, match=r"unknown benchmark 'foo'.*chance") as e:
        read_runs(p)
    assert str(p) in str(e.value)


def test_benchmark_metadata_sources_and_precedence(tmp_path: Path) -> None:
    p = _write(_score_frame(), tmp_path / "r.csv")
    assert read_runs(p, chance={"foo": 0.25}).benchmark("foo") == Benchmark(name="foo", chance=0.25)
    assert read_runs(p, benchmarks=[{"name": "foo", "chance": 0.1}]).benchmark("foo").chance == 0.1
    sidecar_path(p).write_text(json.dumps([{"name": "foo", "chance": 0.2, "higher_is_better": False}]))
    assert read_runs(p).benchmark("foo") == Benchmark(name="foo", chance=0.2, higher_is_better=False)
    # explicit arguments beat the sidecar; chance= beats both
    assert read_runs(p, benchmarks=[Benchmark(name="foo", chance=0.3)]).benchmark("foo").chance == 0.3
    b = read_runs(p, benchmarks=[Benchmark(name="foo", chance=0.3)], chance={"foo": None}).benchmark("foo")
    assert b.chance is None and b.higher_is_better
    with pytest.raises(SchemaError, match="no score column"):
        read_runs(p, chance={"bar": 0.5})


def test_bad_sidecar(tmp_path: Path) -> None:
    p = _write(_score_frame(), tmp_path / "r.csv")
    sidecar_path(p).write_text("{not json")
    with pytest.raises(SchemaError, match="benchmark file"):
        read_runs(p)
    sidecar_path(p).write_text(json.dumps([{"name": "foo", "chance": 0.2}, {"name": "ghost", "chance": 0.5}]))
    with pytest.raises(SchemaError, match="ghost"):
        read_runs(p)


def test_known_benchmarks_need_no_metadata(tmp_path: Path) -> None:
    p = _write(_score_frame().rename({"score:foo": "score:HellaSwag"}), tmp_path / "r.csv")
    assert read_runs(p).benchmark("HellaSwag").chance == 0.25


# -- column mapping and scalars -----------------------------------------------------------------
def test_columns_mapping_and_scalar_params_tokens(tmp_path: Path) -> None:
    f = pl.DataFrame({"model": ["m1", "m2"], "val_loss": [3.0, 2.5], "hs": [0.26, 0.31]})
    p = _write(f, tmp_path / "mine.csv")
    t = read_runs(p, columns={"model": "run", "val_loss": "loss", "hs": "score:hellaswag"}, params=1e8, tokens=2e9)
    assert t.runs == ("m1", "m2")
    np.testing.assert_allclose(t.flops(), 6 * 1e8 * 2e9, rtol=1e-15, atol=0)
    with pytest.raises(SchemaError, match="matches"):
        read_runs(p, columns={"nope": "run"})
    with pytest.raises(SchemaError, match="duplicate column"):
        read_runs(p, columns={"model": "run", "val_loss": "run"})
    with pytest.raises(SchemaError, match="no 'run' column"):
        read_runs(p, params=1e8, tokens=2e9)
    with pytest.raises(SchemaError, match=r"no 'params' column.*params="):
        read_runs(p, columns={"model": "run", "val_loss": "loss", "hs": "score:hellaswag"}, tokens=2e9)


def test_scalar_conflicts_with_column(tmp_path: Path, table: RunTable) -> None:
    p = write_runs(table, tmp_path / "r.csv")
    with pytest.raises(SchemaError, match="already has a 'params' column"):
        read_runs(p, params=1e9)


def test_bad_options(tmp_path: Path, table: RunTable) -> None:
    p = write_runs(table, tmp_path / "r.csv")
    with pytest.raises(SchemaError, match="format= must be"):
        read_runs(p, format="excel")  # type: ignore[arg-type]
    with pytest.raises(SchemaError, match="how= must be"):
        read_runs(p, how="left")  # type: ignore[arg-type]


# -- damaged files -------------------------------------------------------------------------------
def test_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(SchemaError, match="does not exist"):
        read_runs(tmp_path / "nope.csv")
    (tmp_path / "d.csv").mkdir()
    with pytest.raises(SchemaError, match="not a file"):
        read_runs(tmp_path / "d.csv")
    (tmp_path / "r.xlsx").write_text("x")
    with pytest.raises(SchemaError, match=r"file type.*\.xlsx"):
        read_runs(tmp_path / "r.xlsx")


@pytest.mark.parametrize("ext", EXTS)
def test_empty_file(tmp_path: Path, ext: str) -> None:
    p = tmp_path / f"r{ext}"
    p.write_bytes(b"")
    with pytest.raises(SchemaError, match="empty"):
        read_runs(p)


def test_header_only_file(tmp_path: Path) -> None:
    p = tmp_path / "r.csv"
    p.write_text("run,params,tokens,loss\n")
    with pytest.raises(SchemaError, match="no data rows"):
        read_runs(p)


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("ragged.csv", "run,params,tokens,loss\na,1,2,3,4,5\n"),
        ("bad.jsonl", '{"run": "a", "params": 1}\n{broken\n'),
        ("bad.parquet", "this is not parquet"),
    ],
)
def test_unreadable_file(tmp_path: Path, name: str, content: str) -> None:
    p = tmp_path / name
    p.write_text(content)
    with pytest.raises(SchemaError, match="Cannot read"):
        read_runs(p)


DAMAGE = [
    # (column, row, value, expected message fragment)
    ("tokens", None, None, "no 'tokens' column"),
    ("loss", 1, float("nan"), "NaN"),
    ("loss:web", 1, float("inf"), "NaN/inf"),
    ("loss:web", 2, -1.0, "zero or negative"),
    ("flops", 0, -5.0, "'flops' is zero or negative"),
    ("params", 0, "abc", "non-numeric"),
    ("score:humaneval", 4, "n/a", "non-numeric"),
    ("score:humaneval", 4, float("nan"), "NaN"),
    ("mix:web", None, "sum_0.9", "sums to 0.9"),
    ("mix:code", 0, -0.2, "outside"),
    ("tokens", None, "dup", "duplicate checkpoints"),
    ("tokens", None, "decreasing", "decreases along run"),
    ("params", 1, 5e8, "several parameter counts"),
    ("run", 0, None, "no run id"),
]


@pytest.mark.parametrize(("col", "row", "value", "fragment"), DAMAGE)
@pytest.mark.parametrize("ext", [".csv", ".parquet"])
def test_damaged_file_gives_useful_schema_error(
    table: RunTable, tmp_path: Path, col: str, row: int | None, value: object, fragment: str, ext: str
) -> None:
    f = table.frame
    if row is not None:
        f = _damaged(f, col, row, value)
    elif value is None:
        f = f.drop(col)
    elif value == "sum_0.9":
        f = f.with_columns(pl.col("mix:web") * 0.9, pl.col("mix:code") * 0.9)
    elif value == "dup":
        f = pl.concat([f, f.head(1)])
    elif value == "decreasing":
        first = f["run"][0]
        f = f.with_columns(pl.when(pl.col("run") == first).then(pl.col("step").reverse().over("run")).otherwise(pl.col("step")).alias("step"))
    p = _write(f, tmp_path / f"r{ext}")
    sidecar_path(p).write_text(json.dumps(table.benchmarks_dict()))
    with pytest.raises(SchemaError) as e:
        read_runs(p)
    msg = str(e.value)
    assert fragment in msg, msg
    assert str(p) in msg  # names the file


# -- hypothesis: any single-field damage is rejected ---------------------------------------------
_BAD_VALUES = {
    "params": ["abc", "-1", "0", ""],
    "tokens": ["abc", "-3", "0", "", "inf"],
    "flops": ["-1", "0", "x", ""],
    "loss": ["nan", "-0.5", "0", "?"],  # "" is a missing cell: allowed
    "loss:web": ["nan", "-1", "inf"],
    "loss:code": ["NaN", "0", "one"],
    "mix:web": ["-0.1", "1.5", "", "abc", "nan"],
    "mix:code": ["2", "-0.5", ""],
    "score:hellaswag": ["nan", "inf", "abc"],
    "step": ["abc"],
    "run": [""],
}


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(col=st.sampled_from(sorted(_BAD_VALUES)), row=st.integers(0, 11), data=st.data())
def test_single_field_damage_is_rejected(table: RunTable, col: str, row: int, data: st.DataObject) -> None:
    value = data.draw(st.sampled_from(_BAD_VALUES[col]))
    f = _damaged(table.frame, col, row, value)
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "r.csv"
        f.write_csv(p)
        sidecar_path(p).write_text(json.dumps(table.benchmarks_dict()))
        with pytest.raises(SchemaError):
            read_runs(p)


# -- two-file joins ------------------------------------------------------------------------------
def _two_files(tmp_path: Path) -> tuple[Path, Path]:
    runs = pl.DataFrame({"run": ["a", "a", "b", "c"], "params": [1e7] * 4, "tokens": [1e8, 2e8, 2e8, 2e8], "loss": [3.2, 3.0, 2.9, 3.1]})
    mix = pl.DataFrame({"run": ["a", "b", "c"], "web": [0.5, 0.7, 1.0], "code": [0.5, 0.3, 0.0]})
    return _write(runs, tmp_path / "runs.csv"), _write(mix, tmp_path / "mix.csv")


def test_mixopt_layout_with_separate_mixture_file(tmp_path: Path) -> None:
    runs, mix = _two_files(tmp_path)
    t = read_runs(runs, ratios=mix)
    assert t.domains == ("web", "code") and len(t) == 4
    np.testing.assert_allclose(t.select_runs(["b"]).mixture(), [[0.7, 0.3]], rtol=0, atol=1e-15)


def test_unmatched_keys_are_listed_and_refused_unless_inner(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    runs, mix = _two_files(tmp_path)
    pl.read_csv(mix).filter(pl.col("run") != "c").vstack(pl.DataFrame({"run": ["zz"], "web": [0.1], "code": [0.9]})).write_csv(mix)
    with pytest.raises(SchemaError) as e:
        read_runs(runs, ratios=mix)
    msg = str(e.value)
    assert "'c'" in msg and "'zz'" in msg and "how='inner'" in msg and "1 of 4 row(s)" in msg
    with caplog.at_level(logging.WARNING, logger="mixopt.data.readers"):
        t = read_runs(runs, ratios=mix, how="inner")
    assert t.runs == ("a", "b")
    assert "drops unmatched" in caplog.text


def test_duplicate_and_missing_keys(tmp_path: Path) -> None:
    runs, mix = _two_files(tmp_path)
    m = pl.read_csv(mix)
    pl.concat([m, m.head(1)]).write_csv(mix)
    with pytest.raises(SchemaError, match=r"duplicate 'run' value\(s\) \['a'\]"):
        read_runs(runs, ratios=mix)
    m.rename({"run": "id"}).write_csv(mix)
    with pytest.raises(SchemaError, match="no join column 'run'"):
        read_runs(runs, ratios=mix)
    t = read_runs(runs, ratios=mix, columns={"id": "run"})
    assert t.n_runs == 3


def test_ratios_given_twice(tmp_path: Path, table: RunTable) -> None:
    p = write_runs(table, tmp_path / "r.csv")
    _, mix = _two_files(tmp_path)
    with pytest.raises(SchemaError, match="already has mix: columns"):
        read_runs(p, ratios=mix)


def test_regmix_layout_on_small_files(tmp_path: Path) -> None:
    loss = pl.DataFrame({"index": [1, 2], "metric/the_pile_github_val_loss": [2.0, 1.5], "metric/the_pile_pile_cc_val_loss": [3.0, 3.2]})
    mix = pl.DataFrame({"index": [2, 1], "train_the_pile_github": [0.6, 0.2], "train_the_pile_pile_cc": [0.4, 0.8]})
    lp, mp = _write(loss, tmp_path / "loss.csv"), _write(mix, tmp_path / "mix.csv")
    t = read_runs(lp, ratios=mp, params=1e6, tokens=1e9)
    assert t.domains == ("github", "pile_cc") and t.loss_domains == ("github", "pile_cc")
    np.testing.assert_allclose(t.select_runs(["1"]).mixture(), [[0.2, 0.8]], rtol=0, atol=1e-15)
    # the order of the two files does not matter
    assert read_runs(mp, ratios=lp, params=1e6, tokens=1e9).frame.equals(t.frame)
    with pytest.raises(SchemaError, match=r"params=1e6 and tokens=1.05e9"):
        read_runs(lp, ratios=mp)
    with pytest.raises(SchemaError, match="two parts"):
        read_runs(lp, params=1e6, tokens=1e9)
    # the files are read as they are: a 0-based mixture file does not match a 1-based loss file
    mix.with_columns(pl.col("index") - 1).write_csv(mp)
    with pytest.raises(SchemaError, match="do not describe the same runs"):
        read_runs(lp, ratios=mp, params=1e6, tokens=1e9)


def test_olmix_layout_on_small_files(tmp_path: Path) -> None:
    metrics = pl.DataFrame({"": [0, 1], "run": ["x1", "x2"], "name": ["n1", "n2"], "index": [0, 1], "arc:rc": [1.2, 1.1], "mbpp": [0.9, 0.8]})
    ratios = pl.DataFrame({"": [0, 1], "run": ["x2", "x1"], "name": ["n2", "n1"], "index": [1, 0], "dclm:a": [0.3, 0.9], "code": [0.7, 0.1]})
    mp, rp = _write(metrics, tmp_path / "m.csv"), _write(ratios, tmp_path / "r.csv")
    t = read_runs(mp, ratios=rp, params=30e6, tokens=3e9)
    assert t.domains == ("dclm:a", "code")
    assert t.benchmark("arc:rc") == Benchmark(name="arc:rc", chance=None, higher_is_better=False)
    assert "name" not in t.frame.columns and "index" not in t.frame.columns
    np.testing.assert_allclose(t.select_runs(["x1"]).mixture(), [[0.9, 0.1]], rtol=0, atol=1e-15)
    with pytest.raises(SchemaError, match="params=30e6 and tokens=3e9"):
        read_runs(mp, ratios=rp)
