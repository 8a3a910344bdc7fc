"""The schedule contract (mix@k:<d>, phase_end@k, run_tokens): reading, errors, helpers, Targets."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from mixopt.data.phases import (
    check_schedule,
    exposure,
    exposure_tokens,
    overall_mixture,
    phase_index,
    phase_layout,
    schedule_columns,
    schedule_from_mappings,
)
from mixopt.data.readers import read_runs, write_runs
from mixopt.data.table import RunTable
from mixopt.errors import SchemaError
from mixopt.surrogate.base import Targets

ATOL = 1e-12


def _frame(**over: object) -> pl.DataFrame:
    """Two runs, two checkpoints each; run a is two-phase (0.8 web then 0.2 web after 75%), b one-phase."""
    cols: dict[str, list] = {
        "run": ["a", "a", "b", "b"],
        "params": [1e6] * 4,
        "tokens": [5e8, 1e9, 5e8, 1e9],
        "mix@1:web": [0.8, 0.8, 0.5, 0.5],
        "mix@1:code": [0.2, 0.2, 0.5, 0.5],
        "mix@2:web": [0.2, 0.2, 0.5, 0.5],
        "mix@2:code": [0.8, 0.8, 0.5, 0.5],
        "phase_end@1": [0.75, 0.75, 0.5, 0.5],
        "loss:web": [3.0, 2.8, 3.1, 2.9],
    }
    cols.update(over)  # type: ignore[arg-type]
    return pl.DataFrame({k: v for k, v in cols.items() if v is not None})


def test_phased_table_reads_with_overall_mixture_and_exposure() -> None:
    t = RunTable(_frame())
    assert t.is_phased and t.n_phases == 2 and t.domains == ("web", "code")
    # a: 0.75*0.8 + 0.25*0.2 = 0.65 web
    np.testing.assert_allclose(t.mixture()[:2], [[0.65, 0.35]] * 2, rtol=0, atol=ATOL)
    np.testing.assert_allclose(t.phases()[0], [[0.8, 0.2], [0.2, 0.8]], rtol=0, atol=ATOL)
    np.testing.assert_allclose(t.phase_end()[:, 0], [0.75, 0.75, 0.5, 0.5], rtol=0, atol=ATOL)
    np.testing.assert_allclose(t.run_tokens(), [1e9] * 4, rtol=0, atol=0)
    np.testing.assert_allclose(t.training_fraction(), [0.5, 1.0, 0.5, 1.0], rtol=0, atol=ATOL)
    assert t.phase().tolist() == [1, 2, 1, 2]  # b's checkpoint at 0.5 is on its boundary: phase 1
    # tokens of each domain seen so far: a at 50%: 5e8 of phase 1 (0.8 web)
    np.testing.assert_allclose(t.exposure()[0], [4e8, 1e8], rtol=1e-12, atol=0)
    np.testing.assert_allclose(t.exposure()[1], [6.5e8, 3.5e8], rtol=1e-12, atol=0)


def test_constant_table_unchanged() -> None:
    f = pl.DataFrame({"run": ["a", "b"], "params": [1e6, 1e6], "tokens": [1e9, 1e9], "mix:web": [0.3, 0.6],
                      "mix:code": [0.7, 0.4], "loss:web": [3.0, 2.9]})
    t = RunTable(f)
    assert not t.is_phased and t.n_phases == 1 and t.frame.columns == RunTable(f).frame.columns
    assert "run_tokens" not in t.frame.columns
    np.testing.assert_array_equal(t.phases()[:, 0], t.mixture())
    assert t.phase_end().shape == (2, 0)
    tg = Targets.from_runs(t)
    assert tg.phases is None and tg.fraction is None


def test_given_overall_mixture_must_agree() -> None:
    ok = RunTable(_frame(**{"mix:web": [0.65, 0.65, 0.5, 0.5], "mix:code": [0.35, 0.35, 0.5, 0.5]}))
    np.testing.assert_allclose(ok.mixture()[0], [0.65, 0.35], rtol=0, atol=ATOL)
    with pytest.raises(SchemaError, match="token-weighted mixture"):
        RunTable(_frame(**{"mix:web": [0.5] * 4, "mix:code": [0.5] * 4}))


@pytest.mark.parametrize(
    ("over", "match"),
    [
        ({"mix@2:web": [0.3, 0.3, 0.5, 0.5]}, "sum to 1"),
        ({"phase_end@1": [1.2, 1.2, 0.5, 0.5]}, r"strictly inside \(0, 1\)"),
        ({"phase_end@1": [0.0, 0.0, 0.5, 0.5]}, r"strictly inside \(0, 1\)"),
        ({"mix@2:code": None}, "appears in phase"),
        ({"phase_end@1": None}, "missing boundary"),
        ({"mix@3:web": [0.5] * 4, "mix@3:code": [0.5] * 4}, "missing boundary"),
        ({"mix@3:web": [0.5] * 4, "mix@3:code": [0.5] * 4, "mix@2:web": None, "mix@2:code": None}, "missing phase"),
        ({"phase_end@1": [0.75, 0.7, 0.5, 0.5]}, "different schedules"),
        ({"run_tokens": [8e8] * 4}, "run_tokens"),
    ],
)
def test_contract_errors(over: dict, match: str) -> None:
    with pytest.raises(SchemaError, match=match):
        RunTable(_frame(**over))


def test_boundaries_must_increase() -> None:
    P = np.array([[[1.0, 0.0], [0.5, 0.5], [0.0, 1.0]]])
    with pytest.raises(SchemaError, match="strictly increase"):
        check_schedule(P, np.array([[0.6, 0.4]]))
    check_schedule(P, np.array([[0.4, 0.6]]))


def test_helpers_agree() -> None:
    rng = np.random.default_rng(0)
    P = rng.dirichlet(np.ones(3), size=(20, 3))
    E = np.sort(rng.uniform(0.05, 0.95, size=(20, 2)), axis=1)
    P, E = check_schedule(P, E)
    M = overall_mixture(P, E)
    np.testing.assert_allclose(M.sum(axis=1), 1.0, rtol=0, atol=1e-12)
    np.testing.assert_allclose(exposure(P, E, 1.0), M, rtol=0, atol=1e-12)
    f = rng.uniform(0.01, 1, size=20)
    np.testing.assert_allclose(exposure(P, E, f).sum(axis=1), f, rtol=0, atol=1e-12)
    np.testing.assert_allclose(exposure_tokens(P, E, f * 1e9, np.full(20, 1e9)), exposure(P, E, f) * 1e9, rtol=1e-12, atol=0)
    idx = phase_index(E, f)
    assert np.all((idx >= 1) & (idx <= 3))
    cols = schedule_columns(P, E, ["a", "b", "c"])
    assert phase_layout(list(cols)).n_phases == 3
    p1, e1 = schedule_from_mappings([{"a": 1.0}, {"b": 0.5, "c": 0.5}], [0.8], ["a", "b", "c"])
    np.testing.assert_allclose(overall_mixture(p1, e1)[0], [0.8, 0.1, 0.1], rtol=0, atol=1e-12)


def test_targets_with_schedule() -> None:
    P = np.array([[0.8, 0.2], [0.2, 0.8]])
    t = Targets(flops=[6e15, 1.2e16], params=[1e6, 1e6], tokens=[1e9, 2e9], domains=("web", "code"), phases=P,
                phase_end=[0.75])
    assert t.n_phases == 2 and t.phases.shape == (2, 2, 2)
    np.testing.assert_allclose(t.mixture, [[0.65, 0.35]] * 2, rtol=0, atol=ATOL)
    a = t.align(("code", "web"))
    np.testing.assert_allclose(a.phases[0], [[0.2, 0.8], [0.8, 0.2]], rtol=0, atol=ATOL)
    np.testing.assert_allclose(a.mixture[0], [0.35, 0.65], rtol=0, atol=ATOL)
    with pytest.raises(SchemaError, match="sum to 1"):
        Targets(flops=[1e20], domains=("web", "code"), phases=[[0.8, 0.3], [0.2, 0.8]], phase_end=[0.5])
    with pytest.raises(SchemaError, match="token-weighted"):
        Targets(flops=[1e20], domains=("web", "code"), phases=P, phase_end=[0.75], mixture=[0.5, 0.5])
    with pytest.raises(SchemaError, match="strictly inside"):
        Targets(flops=[1e20], domains=("web", "code"), phases=P, phase_end=[1.0])


def test_csv_round_trip(tmp_path) -> None:
    t = RunTable(_frame())
    p = write_runs(t, tmp_path / "runs.csv")
    back = read_runs(p)
    assert back.is_phased and back.n_phases == 2
    np.testing.assert_allclose(back.phases(), t.phases(), rtol=0, atol=ATOL)
    np.testing.assert_allclose(back.mixture(), t.mixture(), rtol=0, atol=ATOL)
    raw = tmp_path / "raw.csv"
    _frame().write_csv(raw)  # no mix:<d>, no run_tokens: computed on read
    again = read_runs(raw)
    np.testing.assert_allclose(again.mixture(), t.mixture(), rtol=0, atol=ATOL)
    tg = Targets.from_runs(again)
    assert tg.n_phases == 2
    np.testing.assert_allclose(tg.fraction, [0.5, 1.0, 0.5, 1.0], rtol=0, atol=ATOL)


def test_pad_schedule_keeps_exposure() -> None:
    from mixopt.data.phases import pad_schedule

    P = np.array([[[0.8, 0.2], [0.2, 0.8]]])
    E = np.array([[0.75]])
    P3, E3 = pad_schedule(P, E, 3)
    check_schedule(P3, E3)
    assert P3.shape == (1, 3, 2) and E3.shape == (1, 2)
    f = np.linspace(0.05, 1.0, 20)
    np.testing.assert_allclose(exposure(np.repeat(P3, 20, 0), np.repeat(E3, 20, 0), f),
                               exposure(np.repeat(P, 20, 0), np.repeat(E, 20, 0), f), rtol=0, atol=1e-12)
    one, e1 = pad_schedule(P[:, :1], np.zeros((1, 0)), 2)
    np.testing.assert_allclose(one[0], [[0.8, 0.2], [0.8, 0.2]], rtol=0, atol=0)
    np.testing.assert_allclose(e1, [[0.5]], rtol=0, atol=0)


def test_simulate_phases_world_writes_a_phased_table(tmp_path) -> None:
    from mixopt.cli import main

    out = tmp_path / "phased.csv"
    assert main(["simulate", "--world", "phases", "--out", str(out), "--mixtures", "6", "--sizes", "2e7,5e7",
                 "--checkpoints", "3", "--seed", "1"]) == 0
    t = read_runs(out)
    assert t.is_phased and t.n_phases == 2 and t.n_runs == 12 and t.domains == ("web", "code", "math")
    P = t.final().phases()
    assert np.any(np.abs(P[:, 0] - P[:, 1]).max(axis=1) > 1e-6)  # some two-phase runs
    assert np.any(np.abs(P[:, 0] - P[:, 1]).max(axis=1) == 0)  # and some constant ones
    assert set(t.phase().tolist()) == {1, 2}
