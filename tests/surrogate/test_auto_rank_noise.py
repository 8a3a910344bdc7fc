"""FLP-M auto: rankings of a fold's few held-out mixtures that differ within noise do not outweigh the errors.

Regression found by bisecting the issue-11 table (docs/figures.md): since commit a095407 the
stage-1 score adds ``1 - ρ`` divided by its best value over the candidates; on the scale folds of
``mixopt simulate --world mixture --domains 3 --mixtures 12 --sizes 2e7,5e7,1e8,3e8,1e9 --seed 6``
one swapped pair among 9 held-out mixtures (1 - ρ 0.017 vs 0.039) outweighed a 1.7x larger log
error, ``dml_nd`` was chosen over ``flpm`` and the held-out humaneval error went 2.2% -> 11%.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from mixopt.backtest import evaluate, make_split
from mixopt.surrogate import make_surrogate
from mixopt.surrogate.flpm_auto import RANK_GAP_FLOOR, Evidence, _combined_scores, _ranks_apart
from mixopt.testing import mixture_world, random_mixtures


def _evidence(err: float, pred: list[np.ndarray], actual: list[np.ndarray]) -> Evidence:
    from mixopt.surrogate.decision import spearman

    gaps = [1.0 - spearman(p, a) for p, a in zip(pred, actual, strict=True)]
    return Evidence(
        err_sum=err * 27, n_err=27, gaps=gaps, errs=[err] * 27, err_domain=[0] * 27, gap_domain=list(range(len(gaps))), ranked=[(p.copy(), a.copy()) for p, a in zip(pred, actual, strict=True)]
    )


def _rankings(swaps: tuple[int, ...], seed: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Rankings of 9 mixtures, one per entry of ``swaps``; the prediction swaps that many adjacent pairs."""
    rng = np.random.default_rng(seed)
    actual = [np.sort(rng.uniform(2.0, 3.0, 9)) for _ in swaps]
    pred = [a.copy() for a in actual]
    for p, n in zip(pred, swaps, strict=True):
        for k in range(n):
            p[[2 * k, 2 * k + 1]] = p[[2 * k + 1, 2 * k]]
    return pred, actual


def test_swapped_pairs_do_not_outweigh_a_larger_error():
    """World 6's numbers: a has the best error and 1 - ρ 0.039 (7 swapped pairs over 3 rankings of 9),
    b 1.7x the error and 1 - ρ 0.017 (3 pairs). Before the noise rule b won (2.53 against 2.94)."""
    pa, act = _rankings((3, 2, 2), seed=0)
    pb, _ = _rankings((1, 1, 1), seed=0)
    a, b = _evidence(0.006, pa, act), _evidence(0.0102, pb, act)
    assert a.rank_gap - b.rank_gap >= RANK_GAP_FLOOR  # beyond the floor: only the noise test ties them
    assert not _ranks_apart(b, a, seed=0)
    sa, sb = _combined_scores([a, b])
    assert sa < sb, (sa, sb)


def test_rankings_apart_beyond_noise_still_count():
    """A ranking that is reversed against one that is perfect: apart, and the rank term decides."""
    rng = np.random.default_rng(1)
    act = [np.sort(rng.uniform(2.0, 3.0, 12)) for _ in range(3)]
    good = [x.copy() for x in act]
    bad = [x[::-1].copy() for x in act]
    a, b = _evidence(0.006, bad, act), _evidence(0.0065, good, act)
    assert _ranks_apart(b, a, seed=0)
    sa, sb = _combined_scores([a, b])
    assert sb < sa, (sa, sb)


def _issue11_fit(seed: int):
    """``mixopt simulate --world mixture --domains 3 --mixtures 12 --sizes 2e7,5e7,1e8,3e8,1e9 --seed S``, the
    1e9 runs and 3 mixtures held out, the default FLP-M fitted on the rest; its held-out 1e9 humaneval rows."""
    w = mixture_world(n_domains=3, n_benchmarks=4, seed=seed)
    runs = w.sample_runs([2e7, 5e7, 1e8, 3e8, 1e9], random_mixtures(12, 3, seed=seed), tokens_per_param=20.0, n_checkpoints=10, loss_noise=0.005, score_noise=0.005, seed=seed)
    split = make_split(runs, holdout_min_params=1e9, holdout_mixtures=3)
    model = make_surrogate("flpm", seed=0).fit(split.train)
    rows = evaluate(model, split.test, level=0.9).rows
    sc = rows.filter((pl.col("params") >= 1e9) & (pl.col("quantity") == "score:humaneval"))
    assert "score:humaneval" not in model.weak_ and sc.height == 12
    return model, float(sc["rel_error"].median())


def test_issue11_world_6_keeps_its_score_error():
    """The bisected world: held-out 1e9 humaneval error 2.2% before a095407, 11% after; bound 5%."""
    model, err = _issue11_fit(6)
    assert err <= 0.05, f"held-out humaneval median error {err:.3f} (2.2% before commit a095407; {model.config_})"


def test_issue11_world_7_stage2_not_judged_on_weak_rows():
    """World 7: the internal fold predicts every benchmark on weak evidence only. Judged on those rows the stage-2
    race took ``inputs=observed`` (since bae3546) and the held-out humaneval error went 2.3% -> 5.4%; bound 3.5%."""
    model, err = _issue11_fit(7)
    s2 = model.selection_.filter(pl.col("step") == "stage2")
    assert s2.filter(pl.col("status") == "chosen")["candidate"].to_list() == ["stage2=logistic, inputs=fitted"], s2.to_dicts()
    assert err <= 0.035, f"held-out humaneval median error {err:.3f} (2.3% before commit bae3546; {model.config_})"
