"""The shared real files read as they are, through the command line (skipped where absent)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mixopt.cli import main
from tests.conftest import needs_data

SHARED = Path(__file__).parents[2].parent / "shared" / "data"
pytestmark = needs_data(SHARED)

# (loss file, mixture file, params, tokens, runs, mixture domains, loss domains): SCHEMA.md sizes
REGMIX = [
    ("train_pile_loss_1m.csv", "train_mixture_1m.csv", "1e6", "1.05e9", 512),
    ("test_pile_loss_1m.csv", "test_mixture_1m.csv", "1e6", "1.05e9", 256),
    ("test_pile_loss_60m.csv", "test_mixture_60m.csv", "60e6", "1e9", 256),
    ("test_pile_loss_1B.csv", "test_mixture_1B.csv", "1.1e9", "25e9", 64),
]
# (swarm file stem, runs, mixture domains)
OLMIX = [("dclm", 127, 24), ("full_recomputation", 512, 64), ("full_reuse_update_5_seed_0", 64, 22)]


def _inspect(argv: list[str], capsys: pytest.CaptureFixture[str]) -> dict:
    assert main(["inspect", *argv, "--json"]) == 0, capsys.readouterr().err
    return json.loads(capsys.readouterr().out)


@pytest.mark.parametrize(("loss", "mix", "n", "d", "runs"), REGMIX, ids=[r[0] for r in REGMIX])
def test_regmix_files_as_published(loss: str, mix: str, n: str, d: str, runs: int, capsys: pytest.CaptureFixture[str]) -> None:
    rd = SHARED / "regmix"
    info = _inspect(["--runs", str(rd / loss), "--ratios", str(rd / mix), "--params-default", n, "--tokens-default", d], capsys)
    assert info["runs"] == info["checkpoints"] == runs
    assert len(info["domains"]) == 17 and len(info["loss_domains"]) == 13
    assert info["missing"] == {} and info["params"] == [float(n)] * 2


@pytest.mark.parametrize(("stem", "runs", "k"), OLMIX, ids=[o[0] for o in OLMIX])
def test_olmix_swarms_as_published(stem: str, runs: int, k: int, capsys: pytest.CaptureFixture[str]) -> None:
    od = SHARED / "olmix"
    info = _inspect(
        ["--runs", str(od / f"{stem}_metrics.csv"), "--ratios", str(od / f"{stem}_ratios.csv"), "--params-default", "30e6", "--tokens-default", "3e9"],
        capsys,
    )
    assert info["runs"] == runs and len(info["domains"]) == k
    assert len(info["benchmarks"]) == 110 and info["loss_domains"] == [] and info["missing"] == {}
