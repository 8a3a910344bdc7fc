"""The loop's round records: predicted vs measured per quantity, the decision's change between
rounds, and (``[validate] train_next``) the proposed sampling run trained and refitted on.

The training command is the stand-in cluster job (tests/train/scripts/job.py): its "trained
models" report a known synthetic world's losses, so the orchestration runs for real in seconds.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from mixopt.cli import main
from mixopt.data.readers import read_runs
from mixopt.data.table import training_flops
from mixopt.errors import ConfigError
from mixopt.surrogate import Targets, load_surrogate
from tests._configs import job_command, write_loop_config


def _config(tmp_path: Path, *, rounds: int = 2, validate_extra: str = "") -> Path:
    return write_loop_config(tmp_path, job_command("ok"), rounds=rounds, extra=validate_extra, name="rounds")


def _round(tmp_path: Path, r: int) -> dict:
    return json.loads((tmp_path / "out" / "loop" / f"round_{r}" / "round.json").read_text())


def _mix(best: dict) -> dict[str, float]:
    return {k[4:]: float(v) for k, v in best.items() if k.startswith("mix:")}


def test_train_next_trains_the_proposal_and_the_next_round_refits_on_it(tmp_path, capsys):
    cfg = _config(tmp_path, validate_extra="train_next = true")
    assert main(["optimize", str(cfg), "--no-progress", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    r1, r2 = _round(tmp_path, 1), _round(tmp_path, 2)
    # the proposal of round 1 was trained at its own size and mixture, and compared with round 1's prediction there
    nxt = r1["next_trained"]
    assert nxt["run"] == "next_r1_s0" and nxt["rule"] == "plan" and nxt["added"] is True and not nxt["failed"]
    assert nxt["params"] == pytest.approx(r1["proposal"]["params"])
    assert nxt["mixture"] == pytest.approx(r1["proposal"]["mixture"], abs=1e-9)
    assert {x["run"] for x in nxt["comparison"]} == {"next_r1_s0"} and all(np.isfinite(x["gap"]) for x in nxt["comparison"])
    validated = read_runs(tmp_path / "out" / "validated.csv")
    assert {"next_r1_s0", "next_r2_s0"} <= set(validated.runs)
    # round 2 refits on round 1's validated runs AND its trained proposal; round 1 saw neither
    assert "next_r1_s0" in read_runs(tmp_path / "out" / "loop" / "round_2" / "runs.csv").runs
    assert not any(x.startswith(("next_", "val_")) for x in read_runs(tmp_path / "out" / "loop" / "round_1" / "runs.csv").runs)
    assert r2["runs"] == r1["runs"] + 2 + 1
    assert out["rounds"][0]["next_trained"]["run"] == "next_r1_s0"


def test_round_json_records_gaps_and_the_decision_change(tmp_path, capsys):
    cfg = _config(tmp_path)
    assert main(["optimize", str(cfg), "--no-progress", "--json"]) == 0
    capsys.readouterr()
    r1, r2 = _round(tmp_path, 1), _round(tmp_path, 2)
    for rd in (r1, r2):
        rows = rd["validation"]
        assert rows and {x["run"] for x in rows} == set(rd["validated"]) and len(rd["validated"]) == 2
        for x in rows:
            assert x["gap"] == pytest.approx(x["measured"] - x["predicted"])
            assert x["covered"] == (x["lower"] <= x["measured"] <= x["upper"])
        g = {x["quantity"]: x for x in rd["gaps"]}
        web = [x for x in rows if x["quantity"] == "loss:web"]
        assert g["loss:web"]["n"] == len(web) == 2
        assert g["loss:web"]["mean_gap"] == pytest.approx(np.mean([x["gap"] for x in web]))
        assert g["loss:web"]["median_rel_error"] == pytest.approx(np.median([x["rel_error"] for x in web]))
        assert rd["next_trained"] is None  # train_next is off by default: the proposal is only recorded
    # round 1: the pick, no change to report; round 2: the previous pick before and after the refit
    d1, d2 = r1["decision"], r2["decision"]
    assert "previous" not in d1 and "changed" not in d1
    assert d1["pick"]["mixture"] == pytest.approx(_mix(r1["best"]))
    assert d1["pick"]["predicted"]["loss:web"]["mean"] == pytest.approx(r1["best"]["loss:web"])
    prev = d2["previous"]
    assert prev["mixture"] == pytest.approx(d1["pick"]["mixture"])
    for q, v in d1["pick"]["predicted"].items():
        assert prev["before_refit"][q] == pytest.approx(v)
    l1 = sum(abs(d1["pick"]["mixture"][k] - d2["pick"]["mixture"][k]) for k in d1["pick"]["mixture"])
    assert d2["l1"] == pytest.approx(l1) and d2["changed"] == (l1 > 0.05)
    # "after refit" is round 2's surrogate at round 1's pick
    model = load_surrogate(tmp_path / "out" / "loop" / "round_2" / "surrogate")
    doms = model.domains_
    x = np.array([[prev["mixture"][d] for d in doms]])
    n, t = np.array([r1["best"]["params"]]), np.array([r1["best"]["tokens"]])
    pred = model.predict(Targets(flops=training_flops(n, t), params=n, tokens=t, mixture=x, domains=doms), level=r1["level"])
    j = pred.names.index("loss:code")
    assert prev["after_refit"]["loss:code"]["mean"] == pytest.approx(float(pred.mean[0, j]))
    assert prev["after_refit"]["loss:code"]["lower"] == pytest.approx(float(pred.lower[0, j]))


def test_loop_report_is_written_by_optimize(tmp_path, capsys):
    cfg = _config(tmp_path, rounds=2)
    rep = tmp_path / "loop.html"
    assert main(["optimize", str(cfg), "--no-progress", "--report", str(rep)]) == 0
    text = capsys.readouterr().out
    assert "rank-1 mixture:" in text and "from round 1 (L1" in text and "next sampling run (plan" in text
    html = rep.read_text()
    assert "Loop: round by round" in html and 'id="loop_rounds"' in html or "loop_rounds" in html


def test_train_next_is_checked(tmp_path):
    from mixopt.config import load_train_config

    p = tmp_path / "bad.toml"
    p.write_text('[validate]\nrounds = 1\ntrain_next = "yes"\n')
    with pytest.raises(ConfigError, match="validate.train_next"):
        load_train_config(p)
    p.write_text("[validate]\nrounds = 1\ntrain_next = true\npropose_next = false\n")
    with pytest.raises(ConfigError, match="needs propose_next = true"):
        load_train_config(p)
    p.write_text("[validate]\nrounds = 1\ntrain_next = true\n")
    assert load_train_config(p).validate.train_next is True
