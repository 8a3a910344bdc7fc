"""The HTML report and the commands that write it: sections, embedded data, offline, errors."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from mixopt.cli import main
from mixopt.errors import SchemaError
from mixopt.report import build_report, read_backtest, read_search
from mixopt.report.inputs import sha256_file

RTOL = 1e-9


class _Scan(HTMLParser):
    """Collects ids, external references and the embedded JSON of an HTML document."""

    def __init__(self) -> None:
        super().__init__()
        self.ids: list[str] = []
        self.external: list[str] = []
        self.scripts: list[dict[str, str | None]] = []
        self._in_data = False
        self.data = ""

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if "id" in a:
            self.ids.append(a["id"])
        for k in ("src", "href", "xlink:href"):
            v = a.get(k)
            if v and not v.startswith(("#", "data:")):
                self.external.append(f"{tag} {k}={v}")
        if tag == "link":
            self.external.append(f"link {a}")
        if tag == "script":
            self.scripts.append(a)
            self._in_data = a.get("id") == "mixopt-data"

    def handle_endtag(self, tag):
        if tag == "script":
            self._in_data = False

    def handle_data(self, data):
        if self._in_data:
            self.data += data


def scan(path: Path) -> _Scan:
    s = _Scan()
    s.feed(path.read_text(encoding="utf-8"))
    return s


def test_full_report_is_self_contained_and_carries_its_data(tmp_path, flp, single_runs, backtest, search_files):
    val = pl.DataFrame({"run": ["v1", "v2"], "quantity": ["score:humaneval"] * 2, "predicted": [0.3, 0.4],
                        "measured": [0.31, 0.37], "lower": [0.25, 0.33], "upper": [0.35, 0.47]})
    rep = build_report(model=flp, runs=single_runs, backtest=backtest, search=search_files["result"], validation=val,
                       files={"pareto": search_files["pareto"]})
    out = rep.write_html(tmp_path / "r.html")
    s = scan(out)
    # offline: no external reference of any kind, and no executable script
    assert s.external == []
    assert all(sc.get("type") == "application/json" for sc in s.scripts)
    for section in ("summary", "fits", "benchmarks", "backtests", "search", "validation", "provenance"):
        assert section in s.ids
    for fig in ("fit_curves", "score_maps", "parity", "coverage", "shortlist", "pareto_front", "parallel_coordinates",
                "hypervolume", "validation"):
        assert f"fig-{fig}" in s.ids
    assert len(s.ids) == len(set(s.ids)), "duplicate ids in the document"
    data = json.loads(s.data)
    assert set(data["figures"]) == set(rep.figures)
    # data points match the inputs
    np.testing.assert_allclose(data["figures"]["fit_curves"]["panels"][0]["runs"]["loss"], single_runs.final().column("loss"),
                               rtol=RTOL)
    vs = data["figures"]["validation"]["panels"][0]["series"][0]
    assert vs["actual"] == [0.31, 0.37] and vs["id"] == ["v1", "v2"]
    files = {f["role"]: f for f in data["provenance"]["files"]}
    assert files["pareto"]["sha256"] == sha256_file(search_files["pareto"])
    assert data["provenance"]["seeds"] == {"surrogate": 0, "search": 0}


def test_figures_for_slides_are_png_files(tmp_path, backtest):
    rep = build_report(backtest=backtest)
    written = rep.write_figures(tmp_path / "figs", "png")
    assert {p.stem for p in written} == set(rep.figures) == {"parity", "coverage"}
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in written)
    with pytest.raises(SchemaError, match="png"):
        rep.write_figures(tmp_path / "figs", "pdf")


def test_nothing_to_report_and_bad_files_are_clear_errors(tmp_path):
    with pytest.raises(SchemaError, match="Nothing to report"):
        build_report()
    bad = tmp_path / "bt.json"
    bad.write_text(json.dumps({"rows": []}))
    with pytest.raises(SchemaError, match="results"):
        read_backtest(bad)
    with pytest.raises(SchemaError, match="does not exist"):
        read_search(tmp_path / "missing.csv")
    rows = tmp_path / "bt.csv"
    pl.DataFrame({"method": ["flp"], "quantity": ["loss"]}).write_csv(rows)
    with pytest.raises(SchemaError, match=r"lack column\(s\) \['predicted', 'actual'\]"):
        read_backtest(rows)


def test_backtest_out_and_report_round_trip(tmp_path, single_runs, capsys):
    from mixopt.data.readers import write_runs

    runs = write_runs(single_runs, tmp_path / "runs.csv")
    args = ["backtest", "--runs", str(runs), "--method", "flp,fp", "--holdout-min-params", "1e9"]
    assert main([*args, "--out", str(tmp_path / "bt.json"), "--report", str(tmp_path / "bt.html")]) == 0
    assert f"wrote {tmp_path / 'bt.html'}" in capsys.readouterr().out
    assert main([*args, "--out", str(tmp_path / "bt.csv"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["written"] == [str(tmp_path / "bt.csv")]
    a, b = read_backtest(tmp_path / "bt.json"), read_backtest(tmp_path / "bt.csv")
    assert a.methods == b.methods
    key = ["method", "run", "quantity"]
    ra, rb = a.rows.sort(key), b.rows.sort(key)
    np.testing.assert_allclose(ra["predicted"].to_numpy(), rb["predicted"].to_numpy(), rtol=RTOL)
    np.testing.assert_allclose(ra["actual"].to_numpy(), rb["actual"].to_numpy(), rtol=RTOL)
    assert ra["covered"].to_list() == rb["covered"].to_list()
    s = scan(tmp_path / "bt.html")
    assert "backtests" in s.ids and "fig-parity" in s.ids
    # the report command reads the file back
    assert main(["report", "--backtest", str(tmp_path / "bt.csv"), "--out", str(tmp_path / "r2.html")]) == 0
    assert "fig-coverage" in scan(tmp_path / "r2.html").ids


def test_report_command_from_model_runs_and_pareto(tmp_path, search_files, capsys):
    sf = search_files
    out = tmp_path / "report.html"
    code = main(["report", "--model", str(sf["model"]), "--runs", str(sf["runs"]), "--pareto", str(sf["pareto"]),
                 "--out", str(out), "--json"])
    assert code == 0
    info = json.loads(capsys.readouterr().out)
    assert info["written"] == [str(out)]
    assert {"fit_curves", "score_maps", "shortlist", "pareto_front", "hypervolume"} <= set(info["figures"])
    data = json.loads(scan(out).data)
    # the target is the search's best row, read from the summary next to the Pareto file
    best = json.loads(sf["pareto"].with_name("pareto.summary.json").read_text())["best"]
    assert data["figures"]["fit_curves"]["target"]["flops"] == pytest.approx(best["flops"], rel=RTOL)
    # the history comes from the trials file written next to the Pareto table
    assert data["figures"]["hypervolume"]["hypervolume"][-1] == pytest.approx(sf["result"].hypervolume, rel=1e-9)
    # figures for slides
    assert main(["report", "--model", str(sf["model"]), "--runs", str(sf["runs"]), "--format", "svg",
                 "--out", str(tmp_path / "figs")]) == 0
    assert sorted(p.name for p in (tmp_path / "figs").iterdir()) == ["fit_curves.svg", "score_maps.svg"]
    # bad input: exit 2 with a message
    assert main(["report", "--model", str(sf["model"]), "--runs", str(sf["runs"]), "--mix", "web=0.5,code=0.5",
                 "--out", str(tmp_path / "x.html")]) == 2
    assert "target compute" in capsys.readouterr().err
    assert main(["report", "--out", str(tmp_path / "y.html")]) == 2


def test_report_from_config_and_optimize_report(tmp_path, search_files, capsys):
    sf = search_files
    out = tmp_path / "cfg.html"
    assert main(["report", "--config", str(sf["config"]), "--out", str(out)]) == 0
    s = scan(out)
    assert {"fits", "search", "provenance"} <= set(s.ids)
    data = json.loads(s.data)
    assert data["provenance"]["settings"]["search"]["trials"] == 96
    roles = {f["role"] for f in data["provenance"]["files"]}
    assert {"config", "runs", "pareto"} <= roles
    # optimize --report writes the report of the run it just did (history from its own trials)
    rep = tmp_path / "opt.html"
    assert main(["optimize", str(sf["config"]), "--trials", "64", "--output", str(tmp_path / "p.csv"), "--storage", "memory",
                 "--no-progress", "--report", str(rep)]) == 0
    assert f"wrote {rep}" in capsys.readouterr().out
    d2 = json.loads(scan(rep).data)
    assert d2["figures"]["hypervolume"]["trials"][-1] == 64
    assert re.search(r"mixopt optimize", d2["provenance"]["command"])


def test_backtest_section_shows_decisions_among_held_out_mixtures(tmp_path, mix_runs):
    from mixopt.backtest import compare

    results, table = compare(mix_runs, ["regmix"], holdout_mixtures=3, seed=1)
    rep = build_report(backtest=(results, table))
    rep.write_html(tmp_path / "r.html")
    s = scan(tmp_path / "r.html")
    assert "tab-decisions" in s.ids
    from mixopt.report.inputs import BacktestData

    dec = BacktestData.from_results(results, table).decisions()
    assert dec.height == results[0].decisions().height > 0
    np.testing.assert_allclose(dec["spearman"].to_numpy(), results[0].decisions()["spearman"].to_numpy())
