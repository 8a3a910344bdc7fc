"""Settings are read back one way: ``mixopt._params.init_params`` (surrogates, LawFitter, trainers)."""

from __future__ import annotations

import pytest

from mixopt._params import init_params
from mixopt.laws.fitter import LawFitter
from mixopt.laws.forms import PurePowerLaw
from mixopt.surrogate.base import make_surrogate
from mixopt.train.external import CommandTrainer


class _Stores:
    def __init__(self, a: int, *args: int, b: str = "x", **kw: int) -> None:
        self.a = a
        self.b = b


class _Forgets:
    def __init__(self, a: int, c: int = 0) -> None:
        self.a = a


def test_init_params_reads_named_arguments_only() -> None:
    assert init_params(_Stores(1, 2, 3, b="y", z=4)) == {"a": 1, "b": "y"}


def test_an_argument_not_stored_is_an_error_naming_it() -> None:
    with pytest.raises(AttributeError, match=r"_Forgets.__init__ takes 'c' but does not store it as self.c"):
        init_params(_Forgets(1))


def test_law_fitter_surrogate_and_trainer_settings_rebuild_them() -> None:
    f = LawFitter(PurePowerLaw(1e18), loss="squared", n_starts=3, maxiter=50)
    assert LawFitter(**f.get_params()).get_params() == f.get_params()
    assert f.get_params()["loss"] == "squared" and f.get_params()["at_iteration_cap"] == "raise"
    m = make_surrogate("fp", emergence_margin=0.1, n_bootstrap=5)
    assert make_surrogate("fp", **m.get_params()).get_params() == m.get_params()
    t = CommandTrainer(["echo", "{run_id}"], timeout_s=5.0, chance={"arc": 0.25})
    assert t.settings() == {"command": ["echo", "{run_id}"], "shell": False, "results": "results.csv",
                            "timeout_s": 5.0, "cwd": None, "chance": {"arc": 0.25}}
    assert CommandTrainer(**t.settings()).settings() == t.settings()
