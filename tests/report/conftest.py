"""Synthetic worlds, fitted surrogates, a backtest and a real small search for the report tests.

Everything is module/session scoped and small: the whole report suite must stay fast.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from mixopt.backtest import compare
from mixopt.data.readers import write_runs
from mixopt.surrogate import make_surrogate, save_surrogate
from mixopt.testing import mixture_world, random_mixtures, single_domain_world

#: the mixture-aware surrogate of these tests: the RegMix-style regression fits in well under a
#: second and needs no torch (FLP-M would cost the suite seconds of torch import); the report
#: only uses the surrogate interface, so what it draws does not depend on the method
MIX_METHOD = "regmix"


@pytest.fixture(scope="session")
def single_runs():
    world = single_domain_world(seed=0)
    return world.sample_runs([2e7, 5e7, 1e8, 2e8, 4e8, 7e8, 1e9, 2e9], None, n_checkpoints=8, seed=0)


@pytest.fixture(scope="session")
def flp(single_runs):
    return make_surrogate("flp", n_bootstrap=40).fit(single_runs)


@pytest.fixture(scope="session")
def flp_strict(single_runs):
    """FLP with a 15-point emergence margin and the paper's linear stage 2: hellaswag (chance 0.25) cannot be
    predicted (the default's chance-anchored stage 2 would predict it on weak evidence)."""
    model = make_surrogate("flp", n_bootstrap=20, emergence_margin=0.15, stage2="linear").fit(single_runs)
    assert "score:hellaswag" in model.unpredictable_
    return model


@pytest.fixture(scope="session")
def backtest(single_runs):
    return compare(single_runs, ["flp", "fp"], holdout_min_params=1e9)


@pytest.fixture(scope="session")
def mix_world():
    return mixture_world(n_domains=2, n_benchmarks=2, seed=0)


@pytest.fixture(scope="session")
def mix_runs(mix_world):
    return mix_world.sample_runs([2e7, 5e7, 1e8, 3e8], random_mixtures(6, 2, seed=0), n_checkpoints=6, seed=0)


@pytest.fixture(scope="session")
def mixmodel(mix_runs):
    return make_surrogate(MIX_METHOD).fit(mix_runs)


@pytest.fixture(scope="session")
def search_files(tmp_path_factory, mix_runs, mixmodel):
    """A real (small, in-process) search over the mixture world: config, runs, model, result."""
    from mixopt.config import load_config
    from mixopt.workflows import run_search

    d = tmp_path_factory.mktemp("search")
    write_runs(mix_runs, d / "runs.csv")
    save_surrogate(mixmodel, d / "model")
    cfg_path = d / "search.toml"
    cfg_path.write_text(textwrap.dedent("""
        [data]
        runs = "runs.csv"
        [surrogate]
        model = "model"
        [compute]
        flops = [1e20, 1e21]
        tokens_per_param = 20
        [domains.web]
        floor = 0.2
        [objectives]
        optimize = ["score:hellaswag", "loss:code", "compute"]
        weights = { "score:hellaswag" = 1, "loss:code" = 1, compute = 0.5 }
        [search]
        trials = 96
        batch_size = 32
        seed = 0
        storage = "memory"
        executor = "local"
        output = "out/pareto.csv"
    """))
    cfg = load_config(cfg_path)
    result = run_search(cfg, mixmodel, progress=False)
    result.write(cfg.output, trials=True)
    return {"dir": d, "config": cfg_path, "cfg": cfg, "result": result, "pareto": Path(cfg.output), "model": d / "model",
            "runs": d / "runs.csv"}
