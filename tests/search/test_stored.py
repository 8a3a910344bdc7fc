"""A finished study's stored result (:mod:`mixopt.search.stored`): read back exactly, and used by a
resume only while the study, the config and the code are unchanged."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from mixopt.config import load_config
from mixopt.errors import SearchError
from mixopt.search.results import SearchResult
from mixopt.search.stored import load_result, save_result, stored_key
from mixopt.workflows.optimize import optimize, result_cache_dir
from tests._configs import write_search_config

from .conftest import LinearMixSurrogate

ROOT = Path(__file__).resolve().parents[2]


def _config(tmp_path: Path, runs: Path, *, objectives: str = "", trials: int = 192) -> Path:
    return write_search_config(
        tmp_path / "c.toml", runs, flops="[1e20, 1e22]", trials=trials, batch_size=64, study_name="stored", objectives=objectives, search='storage = "study.log"\noutput = "out/pareto.csv"'
    )


def _outputs(tmp_path: Path) -> dict[str, bytes]:
    """The written files, with the summary's ``elapsed_s`` (this run's wall time) blanked."""
    out = {p.name: p.read_bytes() for p in sorted((tmp_path / "out").iterdir())}
    summary = json.loads(out["pareto.summary.json"])
    summary["elapsed_s"] = None
    out["pareto.summary.json"] = json.dumps(summary, indent=1).encode()
    return out


def _timeless(report: str) -> str:
    """A terminal report without this run's wall time."""
    return re.sub(r"by this run in [0-9.]+ s", "by this run in - s", report)


def _assert_same(a: SearchResult, b: SearchResult) -> None:
    """Every field equal, type for type (tables: values, dtypes and column order), but ``elapsed_s``."""
    for f in dataclasses.fields(SearchResult):
        x, y = getattr(a, f.name), getattr(b, f.name)
        if f.name == "elapsed_s":
            continue
        if isinstance(x, pl.DataFrame):
            assert x.schema == y.schema and x.equals(y), f.name
        else:
            assert type(x) is type(y) and json.dumps(x, default=str) == json.dumps(y, default=str), f.name


def _refuse_assembly(monkeypatch) -> None:
    import mixopt.search.runner as runner

    monkeypatch.setattr(runner, "build_result", lambda *a, **k: pytest.fail("the result was assembled again"))


def test_a_resume_reads_the_stored_result_and_writes_the_same_files(tmp_path, runs_file, monkeypatch) -> None:
    cfg = _config(tmp_path, runs_file)
    first = optimize(load_config(cfg), progress=False)
    folder = result_cache_dir(load_config(cfg))
    assert stored_key(folder) is not None
    # the resume as it was: the stored result moved away, the journal replayed and the decision re-assembled
    shutil.move(folder, tmp_path / "kept")
    replayed = optimize(load_config(cfg), progress=False)
    files = _outputs(tmp_path)
    assert replayed.result.n_new == 0 and replayed.result.executor == "nothing to run"
    shutil.rmtree(folder)
    shutil.move(tmp_path / "kept", folder)
    # the resume now: no refit, no assembly; the same result field for field and the same files byte for byte
    monkeypatch.setattr(LinearMixSurrogate, "_fit", lambda self, runs: pytest.fail("refitted on resume"))
    _refuse_assembly(monkeypatch)
    stored = optimize(load_config(cfg), progress=False)
    _assert_same(stored.result, replayed.result)
    assert 0 < stored.result.elapsed_s < 0.05 and stored.result.trials_per_s == 0.0  # "in 0.0 s", as replayed
    assert _timeless(stored.result.report()) == _timeless(replayed.result.report())
    assert _outputs(tmp_path) == files
    assert stored.surrogate.coef_ == pytest.approx(first.surrogate.coef_, rel=0, abs=0)
    # and the first run's own result differs only in what a run that ran trials says of itself
    for name in ("pareto", "shortlist", "trials", "candidates"):
        assert getattr(first.result, name).equals(getattr(stored.result, name)), name
    assert first.result.decision == stored.result.decision and first.result.best == stored.result.best
    assert first.result.n_new == 192 and first.result.executor != "nothing to run"


def test_a_new_trial_or_another_setting_misses_the_stored_result(tmp_path, runs_file, monkeypatch) -> None:
    cfg = _config(tmp_path, runs_file)
    optimize(load_config(cfg), progress=False)
    folder = result_cache_dir(load_config(cfg))
    key = stored_key(folder)
    more = optimize(load_config(cfg, overrides={"trials": 256}), progress=False)  # the journal grows: recomputed
    assert more.result.n_new == 64 and more.result.n_trials == 256
    assert stored_key(folder) not in (None, key)
    # another decision setting over the same trials: recomputed with it, not read back
    other = write_search_config(
        tmp_path / "c.toml", runs_file, flops="[1e20, 1e22]", trials=256, batch_size=64, study_name="stored", objectives="epsilon = 0.02", search='storage = "study.log"\noutput = "out/pareto.csv"'
    )
    res = optimize(load_config(other), progress=False).result
    assert res.decision["epsilon"] == 0.02 and more.result.decision["epsilon"] == 0.005
    # the same config again: read back (nothing assembled)
    _refuse_assembly(monkeypatch)
    again = optimize(load_config(other), progress=False).result
    _assert_same(again, res)


def test_edited_code_misses_the_stored_result(tmp_path, runs_file, monkeypatch) -> None:
    import mixopt.search.runner as runner

    wo = sys.modules["mixopt.workflows.optimize"]  # the module (the package's ``optimize`` is the function)
    cfg = _config(tmp_path, runs_file)
    optimize(load_config(cfg), progress=False)
    calls = []
    real = runner.build_result
    monkeypatch.setattr(runner, "build_result", lambda *a, **k: (calls.append(1), real(*a, **k))[1])
    optimize(load_config(cfg), progress=False)
    assert calls == []  # read back
    monkeypatch.setattr(wo, "_code_fingerprint", lambda: "another version of mixopt")
    optimize(load_config(cfg), progress=False)
    assert calls == [1]  # recomputed (and stored under the new key)


def test_a_stored_resume_still_respects_the_study_lock(tmp_path, runs_file) -> None:
    from mixopt.search.storage import StudyLock, storage_url

    cfg = _config(tmp_path, runs_file)
    optimize(load_config(cfg), progress=False)
    with StudyLock(storage_url(str(tmp_path / "study.log")), "stored"):
        with pytest.raises(SearchError, match="in use by another mixopt run"):
            optimize(load_config(cfg), progress=False)


def test_changed_run_data_is_refused_not_served_from_the_store(tmp_path, runs_file, monkeypatch) -> None:
    data = tmp_path / "runs.csv"
    shutil.copy(runs_file, data)
    cfg = _config(tmp_path, data)
    optimize(load_config(cfg), progress=False)
    lines = data.read_text().splitlines()
    data.write_text("\n".join(lines[:-1]) + "\n")  # one checkpoint fewer: other data, another surrogate key
    with pytest.raises(SearchError, match="fitted on other data or settings"):
        optimize(load_config(cfg), progress=False)
    # in a new study the changed table is fitted again (the cached model is for the old bytes)
    fits = []
    real = LinearMixSurrogate._fit
    monkeypatch.setattr(LinearMixSurrogate, "_fit", lambda self, runs: (fits.append(runs.frame.height), real(self, runs))[1])
    res = optimize(load_config(cfg, overrides={"storage": str(tmp_path / "other.log")}), progress=False).result
    assert fits == [len(lines) - 2] and res.n_new == 192


def test_a_damaged_stored_result_is_ignored_and_rewritten(tmp_path, runs_file, caplog) -> None:
    cfg = _config(tmp_path, runs_file)
    first = optimize(load_config(cfg), progress=False).result
    folder = result_cache_dir(load_config(cfg))
    p = folder / "shortlist.arrow"
    p.write_bytes(p.read_bytes()[:-8])
    with caplog.at_level("WARNING"):
        again = optimize(load_config(cfg), progress=False).result
    assert "damaged stored result" in caplog.text
    for name in ("pareto", "shortlist"):
        assert getattr(again, name).equals(getattr(first, name))
    assert load_result(folder, stored_key(folder)) is not None  # stored again, whole


def test_the_resume_of_a_finished_study_imports_no_optuna(tmp_path, runs_file) -> None:
    cfg = _config(tmp_path, runs_file)
    optimize(load_config(cfg), progress=False)
    code = f"import json, sys\nfrom mixopt.cli.main import main\nrc = main(['optimize', {str(cfg)!r}, '--no-progress', '--json'])\nprint(json.dumps({{'rc': rc, 'optuna': 'optuna' in sys.modules}}))"
    # the stand-in surrogate is registered by this folder's conftest; the child registers it the same way
    code = f"import sys\nsys.path.insert(0, {str(ROOT)!r})\nimport tests.search.conftest\n" + code
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    info = json.loads(out.stdout.strip().splitlines()[-1])
    assert info == {"rc": 0, "optuna": False}


# -- the store itself ---------------------------------------------------------------------------------
def _result(**kw) -> SearchResult:
    frame = pl.DataFrame({"trial": [3, 1], "mix:a": [0.25, float("nan")], "ok": [True, None], "note": ["x", None]})
    base = dict(
        pareto=frame,
        trials=frame.with_columns(pl.lit("COMPLETE").alias("state")),
        objectives=(("score:x", "maximize"),),
        constraints=("data",),
        domains=("a", "b"),
        hypervolume=0.5,
        reference_point={"score:x": 0.1},
        weights={"score:x": 1.0},
        best={"trial": 3, "mix:a": 0.25},
        notes=("a note",),
        shortlist=frame.head(0),
        hypervolume_history=({"run": 1, "hypervolume": float("inf")},),
        decision={"picks": [{"p": float("nan")}], "x": None},
        candidates=pl.DataFrame(),
    )
    return SearchResult(**{**base, **kw})


def test_the_store_round_trips_exactly_type_for_type(tmp_path) -> None:
    res = _result()
    assert save_result(res, tmp_path / "r", "k1")
    back = load_result(tmp_path / "r", "k1")
    _assert_same(back, res)
    assert back.objectives == (("score:x", "maximize"),) and isinstance(back.notes, tuple)
    assert np.isnan(back.decision["picks"][0]["p"]) and back.hypervolume_history[0]["hypervolume"] == float("inf")
    assert load_result(tmp_path / "r", "k2") is None and load_result(tmp_path / "absent", "k1") is None
    assert save_result(_result(hypervolume=0.25), tmp_path / "r", "k2")  # replaced whole
    assert load_result(tmp_path / "r", "k1") is None and load_result(tmp_path / "r", "k2").hypervolume == 0.25
    assert [p.name for p in tmp_path.iterdir()] == ["r"]  # no temporary folder left


def test_a_result_that_would_not_round_trip_is_not_stored(tmp_path) -> None:
    for bad in ({"p": np.float64(0.5)}, {"p": (1, 2)}, {1: "int key"}):
        assert not save_result(_result(decision=bad), tmp_path / "r", "k")
        assert not (tmp_path / "r").exists()


def test_a_tampered_file_is_not_read(tmp_path, caplog) -> None:
    assert save_result(_result(), tmp_path / "r", "k")
    p = tmp_path / "r" / "result.json"
    p.write_text(p.read_text().replace("0.5", "0.7"))
    with caplog.at_level("WARNING"):
        assert load_result(tmp_path / "r", "k") is None
    assert "result.json does not match its SHA-256" in caplog.text
