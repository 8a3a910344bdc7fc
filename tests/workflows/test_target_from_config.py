"""The request's compute in ``[compute]`` reaches the FLP fit (``target_flops``), so its model choice is
judged at the request's distance from the runs: from a config file, from Python and through the CLI path."""

from __future__ import annotations

import math

import polars as pl
import pytest

from mixopt.config import load_config
from mixopt.data.readers import write_runs
from mixopt.testing import single_domain_world
from mixopt.workflows.optimize import config_target_flops, fit_surrogate, surrogate_key
from tests._configs import write_search_config


@pytest.fixture(scope="module")
def ladder(tmp_path_factory):
    w = single_domain_world(seed=1)
    runs = w.sample_runs([2e7, 5e7, 1e8, 2e8, 4e8, 7e8], None, n_checkpoints=4, seed=1)
    return write_runs(runs, tmp_path_factory.mktemp("data") / "ladder.csv")


def test_flops_range_gives_the_fit_its_target(tmp_path, ladder):
    cfg = load_config(write_search_config(tmp_path / "c.toml", ladder, method="flp", flops="[1e21, 4e21]",
                                          optimize=("score:hellaswag",)))
    assert config_target_flops(cfg) == pytest.approx(2e21)
    model = fit_surrogate(cfg)
    assert model.target_flops == pytest.approx(2e21)
    folds = model.selection_.filter((pl.col("stage") == "stage1") & (pl.col("candidate") == "folds"))["reason"][0]
    assert "ratio-matched to the request" in folds or "request" in folds, folds


def test_a_target_in_the_settings_wins_and_params_tokens_give_6nd(tmp_path, ladder):
    cfg = load_config(write_search_config(tmp_path / "c.toml", ladder, method="flp", flops="1e21",
                                          optimize=("score:hellaswag",),
                                          sections="[surrogate.settings]\ntarget_flops = 3e20\nn_bootstrap = 0"))
    assert fit_surrogate(cfg).target_flops == pytest.approx(3e20)
    text = (tmp_path / "c.toml").read_text().replace("flops = 1e21", "params = 1e9\ntokens = 2e10")
    (tmp_path / "d.toml").write_text(text)
    assert config_target_flops(load_config(tmp_path / "d.toml")) == pytest.approx(6 * 1e9 * 2e10)


def test_the_model_cache_key_follows_the_target(tmp_path, ladder):
    a = load_config(write_search_config(tmp_path / "a.toml", ladder, method="flp", flops="1e21", optimize=("score:hellaswag",)))
    b = load_config(write_search_config(tmp_path / "b.toml", ladder, method="flp", flops="1e22", optimize=("score:hellaswag",)))
    assert surrogate_key(a) != surrogate_key(b)
    assert math.isfinite(config_target_flops(a))
