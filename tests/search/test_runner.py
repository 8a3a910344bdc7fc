"""The batched ask/tell runner: fronts, constraints, failures, resume, samplers, warm starts."""

from __future__ import annotations

import numpy as np
import optuna
import pytest

from mixopt.errors import SearchError
from mixopt.search import LocalExecutor, run_study
from mixopt.search.runner import ERROR_ATTR, PROBLEM_ATTR

from .conftest import AnalyticSurrogate, analytic_problem, fitted_analytic

# The (x, y) front of the analytic surrogate at fixed compute is r_a + r_b = 1:
# x + y = 0.3 + 0.3 + 0.5 + 2 bump. A found front point is within this of it.
FRONT_ATOL = 0.02


def _front_gap(res) -> np.ndarray:
    r = res.pareto.select("mix:a", "mix:b").to_numpy()
    return 1.0 - r.sum(axis=1)  # = r_c on the front


def test_finds_the_known_front(analytic) -> None:
    res = run_study(analytic_problem(analytic), trials=1024, batch_size=64, seed=0, progress=False)
    assert res.n_trials == 1024 and res.n_complete == 1024 and res.n_failed == 0
    assert res.pareto.height >= 20
    gap = _front_gap(res)  # the front's ends converge last
    assert np.median(gap) < FRONT_ATOL / 2 and gap.max() < 2.5 * FRONT_ATOL
    # the front's table carries the model, objectives, predictions with intervals and feasibility
    for col in ("trial", "mix:a", "mix:b", "mix:c", "flops", "params", "tokens", "obj:score:x", "obj:score:y",
                "score:x", "score:x:lower", "score:x:upper", "loss:a", "feasible"):
        assert col in res.pareto.columns, col
    lo, hi = res.pareto["score:x:lower"].to_numpy(), res.pareto["score:x:upper"].to_numpy()
    assert np.all(lo < res.pareto["score:x"].to_numpy()) and np.all(res.pareto["score:x"].to_numpy() < hi)
    assert res.best is not None and res.hypervolume > 0
    # mixtures on the simplex
    mix = res.trials.select("mix:a", "mix:b", "mix:c").to_numpy()
    np.testing.assert_allclose(mix.sum(axis=1), 1.0, atol=1e-9)


def test_same_seed_same_result_other_seed_differs(analytic) -> None:
    p = analytic_problem(analytic)
    a = run_study(p, trials=512, batch_size=64, seed=3, progress=False)
    b = run_study(p, trials=512, batch_size=64, seed=3, progress=False)
    c = run_study(p, trials=512, batch_size=64, seed=4, progress=False)
    cols = ["mix:a", "mix:b", "obj:score:x"]
    np.testing.assert_array_equal(a.trials.select(cols).to_numpy(), b.trials.select(cols).to_numpy())
    assert not np.array_equal(a.trials.select(cols).to_numpy(), c.trials.select(cols).to_numpy())


@pytest.mark.parametrize("sampler", ["nsga2", "nsga2-optuna", "nsga3", "tpe", "random", "qmc"])
def test_every_sampler_runs_seeded(sampler: str, analytic) -> None:
    p = analytic_problem(analytic)
    a = run_study(p, trials=96, batch_size=32, sampler=sampler, seed=1, progress=False)
    b = run_study(p, trials=96, batch_size=32, sampler=sampler, seed=1, progress=False)
    assert a.n_complete == 96
    np.testing.assert_array_equal(a.trials["mix:a"].to_numpy(), b.trials["mix:a"].to_numpy())


@pytest.mark.slow
def test_gp_sampler_runs(analytic) -> None:
    res = run_study(analytic_problem(analytic), trials=24, batch_size=8, sampler="gp", seed=0, progress=False)
    assert res.n_complete == 24


def test_cmaes_is_single_objective_only(analytic) -> None:
    pytest.importorskip("cmaes")
    with pytest.raises(SearchError, match="single-objective"):
        run_study(analytic_problem(analytic), trials=10, sampler="cmaes", progress=False)
    res = run_study(analytic_problem(analytic, objectives=["score:x"]), trials=64, batch_size=16, sampler="cmaes",
                    progress=False)
    assert res.pareto["mix:a"].max() > 0.9


def test_constraints_are_respected_by_the_front(analytic) -> None:
    p = analytic_problem(analytic, constraints=["score:y >= 0.55", "loss:a <= 1.7"])  # r_b >= 0.48, r_a >= 0.3
    res = run_study(p, trials=768, batch_size=128, seed=0, progress=False)
    assert 0 < res.n_feasible < res.n_complete
    f = res.pareto
    assert f.height > 0 and f["feasible"].all()
    assert np.all(f["score:y"].to_numpy() >= 0.55) and np.all(f["loss:a"].to_numpy() <= 1.7)
    assert np.all(f["con:score:y >= 0.55"].to_numpy() <= 0)
    # the constraint values reached Optuna (new v5 API): infeasible trials carry positive values
    cons = res.trials["con:score:y >= 0.55"].to_numpy()
    assert np.array_equal(res.trials["feasible"].to_numpy(), np.all(res.trials.select(
        "con:score:y >= 0.55", "con:loss:a <= 1.7").to_numpy() <= 0, axis=1))
    assert (cons > 0).any()


def test_infeasible_everywhere_reports_the_least_violating(analytic) -> None:
    p = analytic_problem(analytic, constraints=["score:x >= 0.95"])  # max is 0.82
    res = run_study(p, trials=128, batch_size=64, progress=False)
    assert res.pareto.height == 0 and res.best is None and res.n_feasible == 0
    assert any("'score:x >= 0.95' binds" in n and "closest trial" in n for n in res.notes)
    inf = res.decision["infeasible"]
    assert res.infeasible and inf["binding"][0]["constraint"] == "score:x >= 0.95"
    closest = 0.95 - res.trials["con:score:x >= 0.95"].min()  # how close the search came: the best score:x reached
    assert inf["binding"][0]["closest_value"] == pytest.approx(closest) and 0.7 < closest <= 0.8 + 1e-9
    assert "no feasible mixture" in res.report() and res.report().startswith("NO FEASIBLE MIXTURE")


def test_failing_evaluation_marks_trials_failed_and_goes_on(caplog) -> None:
    p = analytic_problem(fitted_analytic(fail_when="high_a"))
    res = run_study(p, trials=512, batch_size=4, seed=0, max_failed_batches=100, progress=False)
    assert res.n_failed > 0 and res.n_complete > 0 and res.n_trials == 512
    assert res.pareto["mix:a"].max() <= 0.6
    assert "marked FAIL and the search goes on" in caplog.text
    failed = res.trials.filter(res.trials["state"] == "FAIL")
    assert failed.height == res.n_failed and failed["feasible"].sum() == 0


def test_non_finite_rows_fail_individually() -> None:
    p = analytic_problem(fitted_analytic(fail_when="nan_b"))
    res = run_study(p, trials=256, batch_size=64, sampler="random", progress=False)
    failed = res.trials.filter(res.trials["state"] == "FAIL")
    assert failed.height > 0 and np.all(failed["mix:b"].to_numpy() > 0.8)
    assert res.n_complete == 256 - failed.height


def test_evaluation_that_always_fails_stops_after_max_failed_batches() -> None:
    p = analytic_problem(fitted_analytic(fail_when="always"))
    with pytest.raises(SearchError, match="3 batches in a row failed completely.*forced failure"):
        run_study(p, trials=1000, batch_size=10, max_failed_batches=3, progress=False)


def test_resume_from_sqlite_loses_nothing(tmp_path, analytic) -> None:
    db = tmp_path / "study.db"
    p = analytic_problem(analytic)
    first = run_study(p, trials=200, batch_size=64, storage=db, study_name="s", seed=0, progress=False)
    assert first.n_trials == 200 and first.n_new == 200
    stored = optuna.load_study(study_name="s", storage=f"sqlite:///{db}")
    assert len(stored.trials) == 200 and stored.user_attrs[PROBLEM_ATTR]
    first_ids = [(t.number, tuple(t.values)) for t in stored.trials]
    second = run_study(p, trials=500, batch_size=64, storage=db, study_name="s", seed=0, progress=False)
    assert second.n_trials == 500 and second.n_new == 300
    stored = optuna.load_study(study_name="s", storage=f"sqlite:///{db}")
    assert len(stored.trials) == 500
    assert [(t.number, tuple(t.values)) for t in stored.trials[:200]] == first_ids  # nothing lost or changed
    assert sorted(t.number for t in stored.trials) == list(range(500))
    again = run_study(p, trials=500, batch_size=64, storage=db, study_name="s", progress=False)
    assert again.n_new == 0 and again.n_trials == 500


def test_resume_from_a_journal_file(tmp_path, analytic) -> None:
    p = analytic_problem(analytic)
    st = f"journal:{tmp_path / 'study.log'}"
    run_study(p, trials=128, batch_size=64, storage=st, study_name="j", progress=False)
    res = run_study(p, trials=256, batch_size=64, storage=st, study_name="j", progress=False)
    assert res.n_trials == 256 and res.n_new == 128 and res.storage == st


def test_a_finished_study_resumes_without_a_sampler_and_gives_the_same_result(tmp_path, analytic, monkeypatch) -> None:
    """Nothing left to run: no sampler, no in-memory copy, and the same tables as the run that finished it."""
    import mixopt.search.runner as runner

    p = analytic_problem(analytic)
    st = f"journal:{tmp_path / 'study.log'}"
    first = run_study(p, trials=128, batch_size=64, storage=st, study_name="f", progress=False)
    monkeypatch.setattr(runner, "make_sampler", lambda *a, **k: pytest.fail("a sampler was built for a finished study"))
    again = run_study(p, trials=128, batch_size=64, storage=st, study_name="f", progress=False)
    assert again.n_new == 0 and again.executor == "nothing to run" and again.n_trials == first.n_trials
    assert again.pareto.equals(first.pareto) and again.trials.equals(first.trials)
    assert again.hypervolume == first.hypervolume


def test_interrupted_batch_is_saved(tmp_path, analytic) -> None:
    """A Ctrl-C during evaluation: every batch told before it is in the storage."""
    db = tmp_path / "study.db"
    p = analytic_problem(analytic)

    class Interrupting(LocalExecutor):
        calls = 0

        def submit(self, problem, u):
            Interrupting.calls += 1
            if Interrupting.calls == 4:
                raise KeyboardInterrupt
            return super().submit(problem, u)

    with pytest.raises(KeyboardInterrupt):
        run_study(p, trials=1000, batch_size=50, storage=db, study_name="s", executor=Interrupting(), progress=False)
    stored = optuna.load_study(study_name="s", storage=f"sqlite:///{db}")
    assert len(stored.trials) == 150 and all(t.state.is_finished() for t in stored.trials)
    res = run_study(p, trials=300, batch_size=50, storage=db, study_name="s", progress=False)
    assert res.n_trials == 300 and res.n_new == 150


def test_resuming_another_problem_is_refused(tmp_path, analytic) -> None:
    db = tmp_path / "study.db"
    run_study(analytic_problem(analytic), trials=20, batch_size=10, storage=db, study_name="s", progress=False)
    other = analytic_problem(analytic, objectives=["score:x", "score:z"])
    with pytest.raises(SearchError, match="different search problem.*objectives"):
        run_study(other, trials=40, storage=db, study_name="s", progress=False)


def test_resuming_with_a_surrogate_that_predicts_differently_is_refused(tmp_path) -> None:
    db = tmp_path / "study.db"
    run_study(analytic_problem(fitted_analytic()), trials=20, batch_size=10, storage=db, study_name="s", progress=False)
    run_study(analytic_problem(fitted_analytic()), trials=30, batch_size=10, storage=db, study_name="s", progress=False)
    class Shifted(AnalyticSurrogate):
        """The same outputs and domains (same problem description), predictions 0.01 higher."""

        def _predict(self, targets, *, intervals, level):
            pred = super()._predict(targets, intervals=intervals, level=level)
            return type(pred)(names=pred.names, mean=pred.mean + 0.01, lower=pred.lower, upper=pred.upper,
                              std=pred.std, level=pred.level)

    s = Shifted()
    s._fit(None)
    s.fitted_ = True
    with pytest.raises(SearchError, match="surrogate that predicts differently"):
        run_study(analytic_problem(s), trials=40, storage=db, study_name="s", progress=False)


def test_failed_trials_keep_their_error_in_storage(tmp_path) -> None:
    db = tmp_path / "study.db"
    p = analytic_problem(fitted_analytic(fail_when="high_a"))
    run_study(p, trials=64, batch_size=4, sampler="random", storage=db, study_name="f", progress=False)
    stored = optuna.load_study(study_name="f", storage=f"sqlite:///{db}")
    failed = [t for t in stored.trials if t.state == optuna.trial.TrialState.FAIL]
    assert failed and all("r_a > 0.6" in t.user_attrs[ERROR_ATTR] for t in failed)


def test_warm_start_is_evaluated_first(analytic) -> None:
    p = analytic_problem(analytic, flops=(1e20, 1e22))
    warm = [{"a": 0.2, "b": 0.3, "c": 0.5, "flops": 1e21}, {"a": 1.0}]
    res = run_study(p, trials=64, batch_size=32, warm_start=warm, progress=False)
    first = res.trials.sort("trial").head(2)
    np.testing.assert_allclose(first.select("mix:a", "mix:b", "mix:c").to_numpy(), [[0.2, 0.3, 0.5], [1, 0, 0]], atol=1e-9)
    np.testing.assert_allclose(first["flops"].to_numpy(), [1e21, 1e21], rtol=1e-9)
    with pytest.raises(SearchError, match="unknown domain"):
        run_study(p, trials=8, warm_start=[{"zz": 1.0}], progress=False)


def test_compute_objective_and_data_limits(analytic) -> None:
    from mixopt.search import DataBudget

    # domain a has 5e9 unique tokens x 4 epochs = 2e10; D = sqrt(20 C / 6), so r_a = 1 is possible up to
    # D = 2e10, C = 1.2e20; beyond, r_a (and score:x) must fall: the front ends there
    p = analytic_problem(analytic, objectives=["score:x", "compute"], flops=(6e19, 6e21),
                         data=DataBudget(available={"a": 5e9}))
    res = run_study(p, trials=1024, batch_size=128, progress=False)
    f = res.pareto
    assert f.height > 0
    used = f["mix:a"].to_numpy() * f["tokens"].to_numpy()
    assert np.all(used <= 4 * 5e9 * (1 + 1e-9))
    np.testing.assert_allclose(f["epochs:a"].to_numpy(), used / 5e9, rtol=1e-12)
    assert f["flops"].max() <= 1.2e20 * (1 + 1e-6) and f["flops"].min() < 0.7e20  # trades compute for score


def test_result_files(tmp_path, analytic) -> None:
    import json

    import polars as pl

    res = run_study(analytic_problem(analytic), trials=128, batch_size=64, progress=False)
    for ext in ("parquet", "csv", "json"):
        written = res.write(tmp_path / f"front.{ext}", trials=True)
        assert [p.name for p in written] == [f"front.{ext}", f"front.shortlist.{ext}", f"front.trials.{ext}",
                                             "front.summary.json"]
    back = pl.read_parquet(tmp_path / "front.parquet")
    assert back.equals(res.pareto)
    summary = json.loads((tmp_path / "front.summary.json").read_text())
    assert summary["n_trials"] == 128 and summary["pareto_file"] == "front.json"
    assert len(json.loads((tmp_path / "front.json").read_text())) == res.pareto.height
    assert json.dumps(res.to_json())
    with pytest.raises(SearchError, match=r"\.parquet, \.csv or \.json"):
        res.write(tmp_path / "front.xlsx")


def test_reference_point_and_weights(analytic) -> None:
    p = analytic_problem(analytic)
    ref = {"score:x": 0.3, "score:y": 0.3}
    res = run_study(p, trials=1024, batch_size=64, reference_point=ref, weights={"score:x": 1.0}, progress=False)
    assert res.reference_point == ref
    # shifted by the reference, the front is x' + y' = 0.52 with x', y' in [0.01, 0.51]: the dominated
    # area is the triangle 0.52^2 / 2 minus two corners of 0.01^2 / 2
    exact = 0.52**2 / 2 - 0.01**2
    assert 0.95 * exact < res.hypervolume <= exact * (1 + 1e-12)  # the front sits on a face: slow at the ends
    assert res.best["mix:a"] > 0.9  # weight on x only
    assert res.hypervolume_at(ref) == pytest.approx(res.hypervolume)
