"""Loaders of the real public data sets (skipped where ../shared/data is absent)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mixopt.data import read_runs
from mixopt.data.public import (
    OLMIX_TOKENS,
    default_data_dir,
    load_gadre,
    load_gemstones,
    load_olmix,
    load_regmix,
)
from mixopt.errors import SchemaError
from tests.conftest import needs_data

DATA = Path(__file__).parents[2].parent / "shared" / "data"
pytestmark = needs_data(DATA)

ATOL_RATIO = 1e-12


def test_default_data_dir_is_next_to_the_repo() -> None:
    assert default_data_dir().resolve() == DATA.resolve()
    assert default_data_dir("/x/repo") == Path("/x/shared/data")


def test_gadre() -> None:
    t = load_gadre(DATA)
    assert t.n_runs == 104 and len(t) == 104
    assert len(t.benchmarks) == 46 and len(t.loss_domains) == 8
    assert t.benchmark("piqa").chance == 0.5 and t.benchmark("jeopardy").chance == 0.0
    assert t.benchmark("mmlu").chance == 0.25
    np.testing.assert_allclose(t.overall_loss(), t.losses(["c4_val"])[:, 0], rtol=0, atol=0)
    np.testing.assert_allclose(t.flops(), 6 * t.params() * t.tokens(), rtol=1e-12, atol=0)
    rpj = load_gadre(DATA / "gadre-scaling", dataset="rpj", loss="loss_openlm")
    assert set(rpj.frame["dataset"].to_list()) == {"rpj"} and rpj.n_runs < 104
    with pytest.raises(SchemaError, match="choose one of"):
        load_gadre(DATA, loss="loss_nope")
    with pytest.raises(SchemaError, match="dataset"):
        load_gadre(DATA, dataset="pile")


def test_gemstones() -> None:
    t = load_gemstones(DATA)
    assert t.n_runs == 22 and len(t) == 770
    assert t.loss_domains == ("fineweb_edu", "dclm")
    assert t.benchmark("commonsense_qa").chance == 0.2
    np.testing.assert_allclose(t.flops(), 6 * t.params() * t.tokens(), rtol=1e-12, atol=0)
    d = load_gemstones(DATA, loss="dclm")
    np.testing.assert_allclose(d.overall_loss(), d.losses(["dclm"])[:, 0], rtol=0, atol=0)


@pytest.mark.parametrize(
    ("split", "n", "params", "tokens"),
    [("train_1m", 512, 1e6, 1001 * 512 * 2048), ("test_1m", 256, 1e6, 1001 * 512 * 2048), ("test_60m", 256, 60e6, 1e9), ("test_1b", 64, 1.1e9, 25e9)],
)
def test_regmix(split: str, n: int, params: float, tokens: float) -> None:
    t = load_regmix(DATA, split)  # type: ignore[arg-type]
    assert t.n_runs == n and len(t.domains) == 17 and len(t.loss_domains) == 13
    assert not t.has_overall_loss and t.benchmarks == ()
    assert all(r.startswith(split + "/") for r in t.runs)
    np.testing.assert_allclose(t.mixture().sum(axis=1), 1.0, rtol=0, atol=ATOL_RATIO)
    assert set(t.params()) == {params} and set(t.tokens()) == {tokens}


def test_regmix_60m_uses_the_1m_test_mixtures() -> None:
    a, b = load_regmix(DATA, "test_1m"), load_regmix(DATA, "test_60m")
    np.testing.assert_allclose(a.mixture(), b.mixture(), rtol=0, atol=ATOL_RATIO)


def test_regmix_auto_detection_equals_explicit_format() -> None:
    d = DATA / "regmix"
    auto = read_runs(d / "test_pile_loss_1B.csv", ratios=d / "test_mixture_1B.csv", params=1.1e9, tokens=25e9)
    explicit = read_runs(d / "test_pile_loss_1B.csv", ratios=d / "test_mixture_1B.csv", format="regmix", params=1.1e9, tokens=25e9)
    assert auto.frame.equals(explicit.frame)


@pytest.mark.parametrize(("swarm", "n", "k"), [("dclm", 127, 24), ("full_recomputation", 512, 64), ("reuse", 64, 22)])
def test_olmix(swarm: str, n: int, k: int) -> None:
    t = load_olmix(DATA, swarm)
    assert t.n_runs == n and len(t.domains) == k and len(t.benchmarks) == 110
    assert all(b.chance is None and not b.higher_is_better for b in t.benchmarks)
    assert set(t.tokens()) == {OLMIX_TOKENS}
    assert not {"", "name", "index"} & set(t.frame.columns)


def test_olmix_auto_detection_equals_explicit_format() -> None:
    d = DATA / "olmix"
    auto = read_runs(d / "dclm_metrics.csv", ratios=d / "dclm_ratios.csv", params=30e6, tokens=3e9)
    assert auto.frame.equals(load_olmix(DATA, "dclm").frame)
    assert auto.benchmarks == load_olmix(DATA, "dclm").benchmarks


def test_mismatched_real_files_are_refused() -> None:
    d = DATA / "regmix"
    with pytest.raises(SchemaError, match="256 of 512 row"):
        read_runs(d / "train_pile_loss_1m.csv", ratios=d / "test_mixture_1m.csv", params=1e6, tokens=1e9)


def test_unknown_names_and_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(SchemaError, match="split"):
        load_regmix(DATA, "val")  # type: ignore[arg-type]
    with pytest.raises(SchemaError, match="swarm"):
        load_olmix(DATA, "nope")
    with pytest.raises(SchemaError, match="does not exist"):
        load_gadre(tmp_path / "nowhere")
