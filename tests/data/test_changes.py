"""Domain-set changes: old runs mapped into the new domain space, or refused with the reason."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from mixopt.config import config_from_dict
from mixopt.data import RunTable
from mixopt.data.changes import EVIDENCE, DomainChanges, approximate, combine_runs, evidence, map_runs, mapped
from mixopt.errors import ConfigError, SchemaError

ATOL = 1e-12


def _old() -> RunTable:
    """Four old runs on web, python, java, wiki (two checkpoints each)."""
    mixes = {
        "a": [0.5, 0.3, 0.2, 0.0],
        "b": [0.2, 0.4, 0.395, 0.005],
        "c": [0.0, 0.5, 0.5, 0.0],
        "d": [0.4, 0.2, 0.1, 0.3],
    }
    rows = []
    for r, m in mixes.items():
        for tok in (1e7, 2e7):
            rows.append({"run": r, "params": 1e6, "tokens": tok, "mix:web": m[0], "mix:python": m[1], "mix:java": m[2],
                         "mix:wiki": m[3], "loss:web": 3.0 + m[0] + tok / 1e8})
    return RunTable(pl.DataFrame(rows))


def _mix(t: RunTable, run: str) -> dict[str, float]:
    row = t.final().frame.filter(pl.col("run") == run)
    return {d: float(row[f"mix:{d}"][0]) for d in t.domains}


def _ev(t: RunTable, run: str) -> str:
    return str(t.final().frame.filter(pl.col("run") == run)[EVIDENCE][0])


def test_added_domain_is_zero_in_old_runs_and_exact():
    m = map_runs(_old(), DomainChanges(added=["math"]))
    assert m.domains == ("web", "python", "java", "wiki", "math")
    for r in "abcd":
        assert _mix(m.runs, r)["math"] == 0.0
        assert _ev(m.runs, r) == "mapped:added"
    assert _mix(m.runs, "a")["web"] == pytest.approx(0.5, abs=ATOL)
    assert len(m.runs) == 8  # every checkpoint mapped
    # measurements pass through unchanged
    np.testing.assert_allclose(m.runs.column("loss:web"), _old().column("loss:web"), atol=ATOL)


def test_removed_domain_maps_runs_near_zero_and_drops_the_rest():
    m = map_runs(_old(), DomainChanges(removed=["wiki"]))
    assert m.domains == ("web", "python", "java")
    assert set(m.runs.runs) == {"a", "b", "c"}
    assert "d" in m.dropped and "0.3" in m.dropped["d"]
    b = _mix(m.runs, "b")
    assert b["web"] == pytest.approx(0.2 / 0.995, abs=ATOL)
    assert sum(b.values()) == pytest.approx(1.0, abs=ATOL)
    assert _ev(m.runs, "b") == "mapped:removed"
    assert _ev(m.runs, "a") == "mapped:unchanged"


def test_removed_domain_discount_and_refuse():
    m = map_runs(_old(), DomainChanges(removed=["wiki"], on_removed="discount"))
    assert _ev(m.runs, "d") == "mapped:removed~"
    assert approximate(_ev(m.runs, "d")) and not approximate(_ev(m.runs, "b"))
    assert _mix(m.runs, "d")["web"] == pytest.approx(0.4 / 0.7, abs=ATOL)
    with pytest.raises(SchemaError, match=r"removed domain\(s\) \['wiki'\].*'d' \(0.3\)"):
        map_runs(_old(), DomainChanges(removed=["wiki"], on_removed="refuse"))


def test_split_with_proportions_is_assumed_evidence():
    m = map_runs(_old(), DomainChanges(split={"web": {"web_hq": 0.3, "web_lq": 0.7}}))
    assert m.domains == ("web_hq", "web_lq", "python", "java", "wiki")
    a = _mix(m.runs, "a")
    assert a["web_hq"] == pytest.approx(0.15, abs=ATOL) and a["web_lq"] == pytest.approx(0.35, abs=ATOL)
    assert _ev(m.runs, "a") == "mapped:split~"
    assert _ev(m.runs, "c") == "mapped:unchanged"  # run c had no web: the split does not touch it
    assert any("assumed" in s for s in m.assumptions)


def test_split_proportions_learned_from_new_runs():
    new = RunTable(pl.DataFrame({"run": ["n1", "n2"], "params": [1e6, 1e6], "tokens": [2e7, 2e7],
                                 "mix:web_hq": [0.2, 0.1], "mix:web_lq": [0.2, 0.3], "mix:python": [0.3, 0.3],
                                 "mix:java": [0.3, 0.3], "mix:wiki": [0.0, 0.0], "loss:web": [3.1, 3.2]}))
    m = map_runs(_old(), DomainChanges(split={"web": ["web_hq", "web_lq"]}), new_runs=new)
    a = _mix(m.runs, "a")  # learned proportions: mean of 0.5 and 0.25 -> 0.375
    assert a["web_hq"] == pytest.approx(0.5 * 0.375, abs=ATOL)
    with pytest.raises(SchemaError, match="no proportions and there are no new runs"):
        map_runs(_old(), DomainChanges(split={"web": ["web_hq", "web_lq"]}))


def test_merged_block_sums_members_and_checks_the_internal_mix():
    m = map_runs(_old(), DomainChanges(merged={"code": {"python": 0.5, "java": 0.5}}))
    assert m.domains == ("web", "code", "wiki")
    assert _mix(m.runs, "a")["code"] == pytest.approx(0.5, abs=ATOL)
    assert _ev(m.runs, "a") == "mapped:merged~"  # internal 0.6/0.4: total variation 0.1 > 0.05
    assert _ev(m.runs, "b") == "mapped:merged"  # 0.503/0.497
    assert _ev(m.runs, "c") == "mapped:merged"
    unknown = map_runs(_old(), DomainChanges(merged={"code": ["python", "java"]}))
    assert _ev(unknown.runs, "c") == "mapped:merged~"


def test_refiltered_keeps_the_share_and_discounts_runs_that_used_it():
    m = map_runs(_old(), DomainChanges(refiltered=["web"]))
    assert m.domains == _old().domains
    assert _mix(m.runs, "a") == pytest.approx(_mix(_old(), "a"), abs=ATOL)
    assert _ev(m.runs, "a") == "mapped:refiltered~"
    assert _ev(m.runs, "c") == "mapped:unchanged"


def test_renamed_keeps_the_share_under_the_new_name():
    m = map_runs(_old(), DomainChanges(renamed={"wiki": "wikipedia"}))
    assert m.domains == ("web", "python", "java", "wikipedia")
    assert _mix(m.runs, "d")["wikipedia"] == pytest.approx(0.3, abs=ATOL)
    assert _ev(m.runs, "d") == "mapped:renamed"
    assert _ev(m.runs, "a") == "mapped:unchanged"


def test_combined_changes_and_combine_with_new_runs():
    ch = DomainChanges(added=["math"], removed=["wiki"], split={"web": {"web_hq": 0.3, "web_lq": 0.7}},
                       merged={"code": {"python": 0.5, "java": 0.5}})
    m = map_runs(_old(), ch)
    assert m.domains == ("web_hq", "web_lq", "code", "math")
    assert _ev(m.runs, "b") == "mapped:removed+split~+merged+added"
    new = RunTable(pl.DataFrame({"run": ["n1"], "params": [1e6], "tokens": [2e7], "mix:math": [0.2], "mix:code": [0.3],
                                 "mix:web_hq": [0.2], "mix:web_lq": [0.3], "loss:math": [2.0]}))
    both = combine_runs(m.runs, new)
    assert both.domains == ("math", "code", "web_hq", "web_lq")
    ev = evidence(both.final())
    assert list(mapped(ev)) == [True, True, True, False]
    assert np.isnan(both.final().column("loss:math")[:3]).all()


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        (dict(removed=["math"]), r"unknown domain\(s\) \['math'\]"),
        (dict(added=["web"]), r"already in the old runs"),
        (dict(removed=["web"], refiltered=["web"]), r"'web' is both removed and refiltered"),
        (dict(split={"web": {"web_hq": 0.3, "web_lq": 0.6}}), r"proportions must sum to 1, but got 0.9"),
        (dict(split={"web": {"web_hq": 0.3}}), r"at least two parts"),
        (dict(merged={"code": ["python", "java"]}, added=["code"]), r"'code' comes from added and merged"),
        (dict(on_removed="keep"), r"on_removed must be one of"),
        (dict(renamed={"wiki": "web"}), r"would appear twice"),
        (dict(renamed={"wiki": "x"}, removed=["wiki"]), r"'wiki' is both removed and renamed"),
    ],
)
def test_unmappable_changes_are_refused_with_the_reason(changes, reason):
    with pytest.raises(SchemaError, match=reason):
        map_runs(_old(), DomainChanges(**changes))


def test_new_domain_set_must_match():
    with pytest.raises(SchemaError, match=r"\['math'\] come from no change"):
        map_runs(_old(), DomainChanges(), domains=("web", "python", "java", "wiki", "math"))


def test_every_run_dropped_is_refused():
    t = _old().select_runs(["d"])
    with pytest.raises(SchemaError, match="every old run was dropped"):
        map_runs(t, DomainChanges(removed=["wiki"]))


def test_config_section_domains_changes(tmp_path):
    runs = tmp_path / "runs.csv"
    old = tmp_path / "old.csv"
    _old().frame.write_csv(old)
    raw = {"data": {"runs": str(runs)}, "compute": {"flops": 1e20},
           "objectives": {"optimize": ["loss:web"]},
           "domains": {"web": {"floor": 0.1}, "changes": {"runs": "old.csv", "added": ["math"],
                                                          "split": {"web": {"web_hq": 0.5, "web_lq": 0.5}}}}}
    runs.write_text("run,params,tokens,loss:web\nx,1,1,1\n")
    cfg = config_from_dict(raw, base_dir=tmp_path)
    assert cfg.changes is not None and cfg.changes.added == ("math",) and cfg.changes.runs == old
    assert "changes" not in cfg.domains
    raw["domains"]["changes"] = {"added": ["math"], "split": {"web": {"web_hq": 0.5, "web_lq": 0.6}}, "removd": ["x"]}
    with pytest.raises(ConfigError, match=r"(?s)unknown key domains.changes.removd.*proportions must sum to 1"):
        config_from_dict(raw, base_dir=tmp_path)
