"""The loop section: round files -> the round-by-round tables (gaps, coverage, the pick's change)."""

from __future__ import annotations

import json

import pytest

from mixopt.errors import SchemaError
from mixopt.report import build_report, read_loop


def _row(run, q, pred, lo, hi, meas):
    return {"run": run, "quantity": q, "params": 2.5e5, "predicted": pred, "lower": lo, "upper": hi, "measured": meas}


def _write_rounds(folder):
    pick1 = {"mixture": {"a": 0.6, "b": 0.4}, "params": 1.0, "tokens": 1.0, "predicted": {"loss:a": {"mean": 2.0, "lower": 1.9, "upper": 2.1}}}
    pick2 = {"mixture": {"a": 0.5, "b": 0.5}, "params": 1.0, "tokens": 1.0, "predicted": {"loss:a": {"mean": 2.05, "lower": 2.0, "upper": 2.1}}}
    rounds = [
        {"round": 1, "runs": 20, "validated": ["v1", "v2"], "objectives": [["loss:a", "minimize"]],
         "validation": [_row("v1", "loss:a", 2.0, 1.9, 2.1, 2.2), _row("v2", "loss:a", 2.0, 1.9, 2.1, 2.05)],
         "decision": {"pick": pick1}, "proposal": {"rule": "plan", "mixture": {"a": 0.1, "b": 0.9}, "params": 4e4, "tokens": 1.6e6},
         "next_trained": {"run": "next_r1_s0", "comparison": [_row("next_r1_s0", "loss:a", 3.0, 2.8, 3.2, 3.3)]}},
        {"round": 2, "runs": 23, "validated": ["v3"], "objectives": [["loss:a", "minimize"]],
         "validation": [_row("v3", "loss:a", 2.1, 2.0, 2.2, 2.15)],
         "decision": {"pick": pick2, "previous": {"mixture": pick1["mixture"], "before_refit": pick1["predicted"],
                                                   "after_refit": {"loss:a": {"mean": 2.12, "lower": 2.05, "upper": 2.2}}},
                      "changed": True, "l1": 0.2}},
    ]
    for rd in rounds:
        (folder / f"round_{rd['round']}").mkdir(parents=True)
        (folder / f"round_{rd['round']}" / "round.json").write_text(json.dumps(rd))


def test_loop_tables_round_by_round(tmp_path):
    _write_rounds(tmp_path)
    data = read_loop(tmp_path)
    g = data.gaps()
    r1 = g.filter(g["round"] == 1).row(0, named=True)
    assert r1["n"] == 2 and r1["coverage"] == pytest.approx(0.5)  # 2.2 is outside [1.9, 2.1], 2.05 inside
    assert r1["mean_gap"] == pytest.approx((0.2 + 0.05) / 2)
    assert r1["median_rel_error"] == pytest.approx((0.2 / 2.2 + 0.05 / 2.05) / 2)
    t = data.rounds_table()
    assert t["runs fitted"].to_list() == [20, 23] and t["validated"].to_list() == [2, 1]
    assert t["pick changed"].to_list() == ["-", "yes"] and t["L1 to previous pick"].to_list() == [None, 0.2]
    assert t["previous pick loss:a: before -> after refit"][1] == "2 [1.9, 2.1] -> 2.12 [2.05, 2.2]"
    assert t["proposal trained"].to_list() == ["next_r1_s0", "no"]
    assert t["proposal loss median rel. error"][0] == pytest.approx(0.3 / 3.3)
    v = data.validation()
    assert v.filter(v["kind"] == "proposal")["run"].to_list() == ["next_r1_s0"]
    html = build_report(loop=tmp_path).to_html()
    assert "Loop: round by round" in html and "next_r1_s0" in html


def test_read_loop_refuses_what_is_not_a_loop(tmp_path):
    with pytest.raises(SchemaError, match="not found"):
        read_loop(tmp_path / "missing")
    with pytest.raises(SchemaError, match="no round_<r>/round.json"):
        read_loop(tmp_path)
    (tmp_path / "round_1").mkdir()
    (tmp_path / "round_1" / "round.json").write_text("[1, 2]")
    with pytest.raises(SchemaError, match="not a loop round file"):
        read_loop(tmp_path)


def test_old_round_files_read_validation_csv_and_say_what_is_missing(tmp_path):
    (tmp_path / "round_1").mkdir()
    (tmp_path / "round_1" / "round.json").write_text(json.dumps({"round": 1, "runs": 20}))
    (tmp_path / "round_1" / "validation.csv").write_text(
        "run,quantity,params,predicted,lower,upper,measured\nv1,loss:a,1,2.0,1.9,2.1,2.0\n")
    data = read_loop(tmp_path)
    assert data.gaps()["n"].to_list() == [1]
    html = build_report(loop=data).to_html()
    assert "no decision record" in html
