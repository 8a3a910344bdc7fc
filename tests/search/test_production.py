"""A search a team can run in production (issue 14): checks before work, nothing lost at the end,
one runner per study, fast resumes, persisted trials, a fixed hypervolume reference, the shortlist."""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

import numpy as np
import optuna
import polars as pl
import pytest

from mixopt.config import load_config
from mixopt.errors import SearchError
from mixopt.search import StudyLock, run_study, shortlist, study_history
from mixopt.search.storage import LEASE_ATTR, storage_url
from mixopt.workflows import run_search
from mixopt.workflows.optimize import model_cache_dir, write_result
from tests._configs import write_search_config

from .conftest import LinearMixSurrogate, analytic_problem, fitted_analytic

#: A path no process can create, even as root (tests run as root in CI containers).
UNWRITABLE = Path("/proc/mixopt-no-such-dir/pareto.csv")


def config(tmp_path: Path, runs: Path, *, search: str = "", objectives: str = "", name: str = "c.toml") -> Path:
    return write_search_config(tmp_path / name, runs, flops="[1e20, 1e22]", objectives=objectives, search=search,
                               sections="[tokens]\navailable = { code = 2e10 }", trials=256, batch_size=64, study_name="prod")


@pytest.fixture
def no_fit(monkeypatch):
    """Fail the test if any surrogate is fitted."""
    monkeypatch.setattr(LinearMixSurrogate, "_fit", lambda self, runs: pytest.fail("the surrogate was fitted"))


# -- 1. checks before the work; nothing lost after it ----------------------------------------------
def test_unwritable_output_is_refused_before_any_fit(tmp_path, runs_file, no_fit) -> None:
    cfg = load_config(config(tmp_path, runs_file), overrides={"output": str(UNWRITABLE), "storage": "memory"})
    with pytest.raises(SearchError, match=r"Cannot create the folder /proc/mixopt-no-such-dir .*output file"):
        run_search(cfg, progress=False)


def test_output_that_would_overwrite_an_input_is_refused(tmp_path, runs_file, no_fit) -> None:
    cfg = load_config(config(tmp_path, runs_file), overrides={"output": str(runs_file), "storage": "memory"})
    with pytest.raises(SearchError, match=r"would overwrite the run table"):
        run_search(cfg, progress=False)
    cfg = load_config(config(tmp_path, runs_file), overrides={"storage": str(runs_file)})
    with pytest.raises(SearchError, match=r"study storage .* is the run table"):
        run_search(cfg, progress=False)


def test_unwritable_storage_is_refused_before_any_fit(tmp_path, runs_file, no_fit) -> None:
    cfg = load_config(config(tmp_path, runs_file), overrides={"storage": "/proc/mixopt-no-such-dir/study.log"})
    with pytest.raises(SearchError, match=r"study storage"):
        run_search(cfg, progress=False)


def test_output_folder_is_created_on_purpose(tmp_path, runs_file) -> None:
    out = tmp_path / "new" / "deeper" / "front.csv"
    cfg = load_config(config(tmp_path, runs_file), overrides={"output": str(out), "storage": "memory"})
    res = run_search(cfg, progress=False)
    written, failed = write_result(res, cfg.output)
    assert failed is None and out.is_file() and (out.parent / "front.shortlist.csv").is_file()


def test_a_write_that_fails_after_the_work_lands_somewhere_safe(analytic, monkeypatch) -> None:
    res = run_study(analytic_problem(analytic), trials=128, batch_size=64, progress=False)
    written, failed = write_result(res, UNWRITABLE)
    assert failed is not None and "pareto.csv" in written[0].name
    assert all(p.is_file() for p in written) and written[0].parent != UNWRITABLE.parent
    assert pl.read_csv(written[0]).height == res.pareto.height


def test_cli_optimize_reports_where_the_results_went(tmp_path, runs_file, monkeypatch, capsys) -> None:
    from mixopt.cli import main
    from mixopt.search.results import SearchResult

    cfg = config(tmp_path, runs_file, search='storage = "memory"\noutput = "out/front.csv"')
    real = SearchResult.write
    calls = []

    def flaky(self, path, **kw):  # the disk fills up after the search: the first write fails
        calls.append(path)
        if len(calls) == 1:
            raise OSError(28, "No space left on device")
        return real(self, path, **kw)

    monkeypatch.setattr(SearchResult, "write", flaky)
    assert main(["optimize", str(cfg), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "No space left on device" in err and "the results were saved to" in err
    saved = Path(err.split("the results were saved to ")[1].split(" instead")[0])
    assert (saved / "front.csv").is_file()


# -- 3. one runner per study ----------------------------------------------------------------------
def test_second_runner_on_a_study_is_refused_before_fitting(tmp_path, runs_file, no_fit) -> None:
    cfg = load_config(config(tmp_path, runs_file, search='storage = "study.log"'))
    holder = StudyLock(storage_url(cfg.search.storage), "prod").acquire()  # another process, as far as flock is concerned
    try:
        with pytest.raises(SearchError, match=r"in use by another mixopt run \(pid \d+ on .* since .*\)"):
            run_search(cfg, progress=False)
    finally:
        holder.release()


def test_second_process_is_refused_and_counts_stay_true(tmp_path, runs_file) -> None:
    import subprocess

    cfg_path = config(tmp_path, runs_file, search='storage = "study.log"')
    url = storage_url(load_config(cfg_path).search.storage)
    code = textwrap.dedent(f"""
        import sys, time
        from mixopt.search import StudyLock
        lock = StudyLock({url!r}, "prod").acquire()
        print("locked", flush=True)
        sys.stdin.readline()
    """)
    p = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline().strip() == "locked"
        with pytest.raises(SearchError, match=rf"pid {p.pid}"):
            run_search(load_config(cfg_path), progress=False)
    finally:
        p.communicate("\n", timeout=30)
    first = run_search(load_config(cfg_path), progress=False)  # free again: runs, then resumes to a global target
    second = run_search(load_config(cfg_path, overrides={"trials": 320}), progress=False)
    assert (first.n_trials, first.n_new, second.n_trials, second.n_new) == (256, 256, 320, 64)


def test_database_lease_refuses_a_live_holder_and_takes_over_a_lapsed_one() -> None:
    import time

    class FakeStudy:
        def __init__(self):
            self.user_attrs = {}

        def set_user_attr(self, k, v):
            self.user_attrs[k] = v

    st = FakeStudy()
    a = StudyLock("postgresql://db/x", "s")
    a.attach(st)
    b = StudyLock("postgresql://db/x", "s")
    with pytest.raises(SearchError, match="is being run by pid"):
        b.attach(st)
    lease = json.loads(st.user_attrs[LEASE_ATTR])
    lease["heartbeat"] = time.time() - 10_000
    st.user_attrs[LEASE_ATTR] = json.dumps(lease)
    b.attach(st)  # lapsed: taken over
    assert json.loads(st.user_attrs[LEASE_ATTR])["token"] == b._token
    b.release()
    assert st.user_attrs[LEASE_ATTR] == ""


# -- 4. fast resume ----------------------------------------------------------------------------------
def test_resume_uses_the_cached_model_and_starts_nothing(tmp_path, runs_file, monkeypatch) -> None:
    cfg_path = config(tmp_path, runs_file, search='storage = "study.log"\nexecutor = "ray"')
    first = run_search(load_config(cfg_path), progress=False)
    assert first.executor.startswith("in-process")  # 256 fast trials: cheaper than starting Ray
    cache = model_cache_dir(load_config(cfg_path))
    assert [p.name for p in cache.iterdir()] and (next(cache.iterdir()) / "manifest.json").is_file()
    monkeypatch.setattr(LinearMixSurrogate, "_fit", lambda self, runs: pytest.fail("refitted on resume"))
    import mixopt.search.executors as ex

    monkeypatch.setattr(ex.RayExecutor, "__init__", lambda *a, **k: pytest.fail("Ray started with nothing to run"))
    again = run_search(load_config(cfg_path), progress=False)
    assert again.n_new == 0 and again.executor == "nothing to run"
    assert again.pareto.equals(first.pareto)


def test_problem_mismatch_is_refused_before_any_fit(tmp_path, runs_file, monkeypatch) -> None:
    cfg_path = config(tmp_path, runs_file, search='storage = "study.log"')
    run_search(load_config(cfg_path), progress=False)
    for p in model_cache_dir(load_config(cfg_path)).iterdir():  # even without a cached model
        import shutil

        shutil.rmtree(p)
    monkeypatch.setattr(LinearMixSurrogate, "_fit", lambda self, runs: pytest.fail("fitted before the check"))
    other = config(tmp_path, runs_file, search='storage = "study.log"', objectives='constraints = ["score:gsm8k >= 0.1"]',
                   name="other.toml")
    with pytest.raises(SearchError, match=r"different search problem \(the config differs in \[objectives\]; checked before fitting\)"):
        run_search(load_config(other), progress=False)


def test_other_data_is_refused_before_any_fit(tmp_path, runs_file, monkeypatch) -> None:
    import shutil

    data = tmp_path / "runs.csv"
    shutil.copy(runs_file, data)
    cfg_path = config(tmp_path, data, search='storage = "study.log"')
    run_search(load_config(cfg_path), progress=False)
    data.write_text(data.read_text().replace("\n", "\n", 1) + "")  # same bytes: same key, resumes
    run_search(load_config(cfg_path, overrides={"trials": 320}), progress=False)
    lines = data.read_text().splitlines()
    data.write_text("\n".join(lines[:-1]) + "\n")  # one checkpoint fewer: other data
    monkeypatch.setattr(LinearMixSurrogate, "_fit", lambda self, runs: pytest.fail("fitted before the check"))
    with pytest.raises(SearchError, match=r"fitted on other data or settings"):
        run_search(load_config(cfg_path, overrides={"trials": 400}), progress=False)


# -- 5. persisted trials: the journal file ------------------------------------------------------------
def test_journal_storage_is_the_default_and_an_ordinary_optuna_study(tmp_path, analytic) -> None:
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    log = tmp_path / "s.log"
    res = run_study(analytic_problem(analytic), trials=300, batch_size=64, storage=str(log), study_name="j", progress=False)
    assert res.storage == f"journal:{log.resolve()}"
    st = optuna.load_study(study_name="j", storage=JournalStorage(JournalFileBackend(str(log))))
    done = [t for t in st.trials if t.state.is_finished()]
    assert len(done) == 300
    np.testing.assert_allclose(sorted(t.values[0] for t in done), sorted(res.trials["obj:score:x"].to_list()))
    more = run_study(analytic_problem(analytic), trials=400, batch_size=64, storage=str(log), study_name="j",
                     progress=False)
    assert (more.n_trials, more.n_new) == (400, 100)


def test_batched_journal_writes_once_per_batch(tmp_path, analytic, monkeypatch) -> None:
    from optuna.storages.journal import JournalFileBackend

    from mixopt.search.storage import make_batched_backend

    appends: list[int] = []
    real = JournalFileBackend.append_logs
    monkeypatch.setattr(JournalFileBackend, "append_logs", lambda self, logs: appends.append(len(logs)) or real(self, logs))
    batched = type(make_batched_backend(tmp_path / "probe.log"))  # held-back records are written by its own _write
    real_batch = batched._write
    monkeypatch.setattr(batched, "_write", lambda self, logs: appends.append(len(logs)) or real_batch(self, logs))
    run_study(analytic_problem(analytic), trials=256, batch_size=64, storage=str(tmp_path / "b.log"), progress=False)
    trial_writes = [n for n in appends if n >= 64]
    assert len(trial_writes) == 4  # one append per batch of 64 trials, not one per trial
    assert len(appends) < 16


def test_interrupted_run_keeps_every_told_batch_in_the_journal(tmp_path) -> None:
    p = analytic_problem(fitted_analytic(fail_when=None))
    calls = {"n": 0}
    real = type(p).__call__

    def stop_on_third(self, u):
        calls["n"] += u.shape[0] == 64  # batches (the study's 8-point fingerprint is not one)
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(self, u)

    type(p).__call__ = stop_on_third
    try:
        with pytest.raises(KeyboardInterrupt):
            run_study(p, trials=640, batch_size=64, storage=str(tmp_path / "i.log"), progress=False)
    finally:
        type(p).__call__ = real
    res = run_study(p, trials=640, batch_size=64, storage=str(tmp_path / "i.log"), progress=False)
    assert res.n_trials == 640 and res.n_new == 640 - 128


# -- 7. the Pareto set people can act on ---------------------------------------------------------------
def test_hypervolume_reference_is_fixed_by_the_first_run_and_history_never_falls(tmp_path, analytic) -> None:
    p = analytic_problem(analytic)
    log = str(tmp_path / "hv.log")
    hvs = []
    for n in (128, 256, 512):
        res = run_study(p, trials=n, batch_size=64, storage=log, study_name="hv", progress=False)
        hvs.append(res.hypervolume)
        assert res.reference_source == "study"
    h = study_history(log, "hv")
    assert [e["n_trials"] for e in h["hypervolume_history"]] == [128, 256, 512]
    assert [e["hypervolume"] for e in h["hypervolume_history"]] == pytest.approx(hvs)
    assert np.all(np.diff(hvs) >= 0)
    assert res.reference_point == pytest.approx(h["reference_point"])
    assert len(res.hypervolume_history) == 3


def test_shortlist_is_k_diverse_knee_rows(analytic) -> None:
    res = run_study(analytic_problem(analytic), trials=1024, batch_size=64, seed=0, progress=False)
    s = res.shortlist
    assert s.height == 5 and s["rank"].to_list() == [1, 2, 3, 4, 5]
    assert set(s["trial"].to_list()) <= set(res.pareto["trial"].to_list())
    assert s["knee_distance"][0] == pytest.approx(s["knee_distance"].min())
    # drawn from the best quarter of the front by knee distance
    from mixopt.search.shortlist import knee_distance

    d = knee_distance(res.pareto.select("obj:score:x", "obj:score:y").to_numpy(), ["maximize", "maximize"])
    assert s["knee_distance"].max() <= np.quantile(d, 0.25) + 1e-12
    # diverse: no two picks closer than the typical spacing of neighbouring front points
    mix = s.select("mix:a", "mix:b").to_numpy()
    gaps = [np.linalg.norm(mix[i] - mix[j]) for i in range(5) for j in range(i)]
    assert min(gaps) > 0.01


def test_shortlist_unit_cases() -> None:
    front = pl.DataFrame({"mix:a": [1.0, 0.75, 0.5, 0.25, 0.0], "mix:b": [0.0, 0.25, 0.5, 0.75, 1.0],
                          "obj:x": [1.0, 0.9, 0.7, 0.4, 0.0], "obj:y": [0.0, 0.4, 0.7, 0.9, 1.0]})
    objs = [("x", "maximize"), ("y", "maximize")]
    s = shortlist(front, objs, ["a", "b"], k=3, knee_fraction=1.0)
    assert s["mix:a"][0] == 0.5  # the balanced point is the knee
    assert set(s["mix:a"][1:].to_list()) == {1.0, 0.0}  # then the farthest apart
    assert shortlist(front, objs, ["a", "b"], k=9).height == 5
    with pytest.raises(SearchError, match="integer >= 1"):
        shortlist(front, objs, ["a", "b"], k=0)


def test_every_row_has_tokens_and_epochs_per_domain(analytic) -> None:
    from mixopt.search import DataBudget

    p = analytic_problem(analytic, flops=(1e19, 1e20), data=DataBudget(available={"a": 5e9}))
    res = run_study(p, trials=256, batch_size=64, progress=False)
    for frame in (res.trials, res.pareto, res.shortlist):
        tok = frame.select("tokens:a", "tokens:b", "tokens:c").to_numpy()
        np.testing.assert_allclose(tok.sum(axis=1), frame["tokens"].to_numpy(), rtol=1e-12)
        np.testing.assert_allclose(frame["epochs:a"].to_numpy(), frame["tokens:a"].to_numpy() / 5e9, rtol=1e-12)
        assert frame["epochs:b"].null_count() == frame.height  # unlimited supply: no epoch count


def test_report_shows_compute_in_flops_and_the_shortlist(analytic) -> None:
    p = analytic_problem(analytic, objectives=("score:x", "compute"), flops=(1e20, 1e22))
    res = run_study(p, trials=256, batch_size=64, progress=False)
    text = res.report()
    assert "compute (min, log10 FLOPs)" in text and "FLOPs" in text and "shortlist: 5 mixtures ranked by P(best)" in text
    assert not res.constraints and "con:* <= 0 means satisfied" not in text  # no constraint: no constraint line
    from mixopt.search import DataBudget

    capped = run_study(analytic_problem(analytic, flops=(1e19, 1e20), data=DataBudget(available={"a": 5e9})),
                       trials=32, batch_size=32, progress=False)
    assert "data" in capped.constraints
    assert "constraints (con:* <= 0 means satisfied): data (no domain repeated more than max_epochs)" in capped.report()


def test_signals_are_held_during_storage_writes() -> None:
    import os
    import signal

    from mixopt.search.storage import signals_deferred

    # set the disposition here: pytest started from a background job inherits SIGINT as ignored
    inherited = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        reached = []
        with pytest.raises(KeyboardInterrupt):
            with signals_deferred():
                os.kill(os.getpid(), signal.SIGINT)
                reached.append("the write finished")  # not interrupted half-way
        assert reached == ["the write finished"]
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handler restored

        seen = []
        signal.signal(signal.SIGINT, lambda signum, _frame: seen.append((signum, list(reached))))
        with signals_deferred():
            os.kill(os.getpid(), signal.SIGINT)
            reached.append("second write")
            assert not seen  # held while the block runs
        assert seen == [(signal.SIGINT, ["the write finished", "second write"])]  # delivered once, after

        signal.signal(signal.SIGINT, signal.SIG_IGN)
        with signals_deferred():
            os.kill(os.getpid(), signal.SIGINT)
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN  # an ignored signal stays ignored
    finally:
        signal.signal(signal.SIGINT, inherited)


@pytest.mark.parametrize("flag", [False, True])
def test_ray_dashboard_only_when_asked(monkeypatch, flag) -> None:
    ray = pytest.importorskip("ray")
    from mixopt.search.executors import make_executor

    seen = {}
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", lambda **kw: seen.update(kw))
    monkeypatch.setattr(ray, "cluster_resources", lambda: {"CPU": 2})
    monkeypatch.setattr(ray, "remote", lambda **kw: (lambda f: f))
    make_executor("ray", dashboard=flag)
    assert seen["include_dashboard"] is flag and seen["log_to_driver"] is False
