"""The batched journal's fast path writes what Optuna would write and replays to what Optuna would replay."""

from __future__ import annotations

import numpy as np
import optuna
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend

from mixopt.search import run_study
from mixopt.search.storage import batched_writes, open_storage

from .conftest import analytic_problem, fitted_analytic


def _view(trials: list[optuna.trial.FrozenTrial]) -> list[tuple]:
    return [(t.number, t.state, t.values, t.params, t.distributions, t.user_attrs, t.system_attrs,
             t.datetime_start, t.datetime_complete) for t in trials]


def test_fast_path_file_and_replay_match_optunas_own(tmp_path) -> None:
    p = analytic_problem(fitted_analytic(fail_when="high_a"), flops=(1e20, 1e22))
    res = run_study(p, trials=200, batch_size=8, seed=3, storage=str(tmp_path / "a.log"), study_name="s",
                    max_failed_batches=100, progress=False)
    assert res.n_failed > 0 and res.n_complete > 0  # FAIL trials (user attrs, no values) go the same way
    mine = optuna.load_study(study_name="s", storage=JournalStorage(JournalFileBackend(str(tmp_path / "a.log")))).trials

    # the same finished trials copied by Optuna's own JournalStorage, one CREATE_TRIAL each
    stock = JournalStorage(JournalFileBackend(str(tmp_path / "b.log")))
    study = optuna.create_study(storage=stock, study_name="s", directions=["maximize", "maximize"])
    study.add_trials(mine)
    theirs = optuna.load_study(study_name="s", storage=JournalStorage(JournalFileBackend(str(tmp_path / "b.log")))).trials
    assert _view(mine) == _view(theirs)
    np.testing.assert_array_equal([t.number for t in mine], np.arange(200))


def test_fast_path_replay_state_equals_a_fresh_read(tmp_path) -> None:
    """What the writing process holds after its batched adds is what a reader gets from the file."""
    mem = optuna.create_study(directions=["maximize", "maximize"])
    mem.add_trials([optuna.trial.create_trial(params={"x": float(i) / 10}, distributions={"x": optuna.distributions.FloatDistribution(0, 10)},
                                              values=[float(i), float(-i)], user_attrs={"k": [i]}) for i in range(20)])
    url = f"journal:{tmp_path / 'c.log'}"
    st = open_storage(url)
    study = optuna.create_study(storage=st, study_name="c", directions=["maximize", "maximize"])
    with batched_writes(st):
        study.add_trials(mem.trials[:10])
    study.add_trials(mem.trials[10:15])  # outside a batch: Optuna's own path, interleaved
    with batched_writes(st):
        study.add_trials(mem.trials[15:])
    held = study.get_trials(deepcopy=False)
    fresh = optuna.load_study(study_name="c", storage=JournalStorage(JournalFileBackend(str(tmp_path / "c.log")))).trials
    assert _view(held) == _view(fresh)
    assert [t.number for t in fresh] == list(range(20)) and [t.params["x"] for t in fresh] == [i / 10 for i in range(20)]
