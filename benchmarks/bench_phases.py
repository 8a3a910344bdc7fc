"""Schedules on the synthetic phases world (issue 25): prediction of held-out schedules and the best schedule found.

World: ``phases_world(3 domains, 4 benchmarks, seed S)`` (true recency λ = 0 for web, 2-6 for
code and math), as ``mixopt simulate --world phases`` builds it: 24 training schedules (half
two-phase, the last phase 10-40 % of the tokens; half constant) at sizes 1e8, 2e8, 4e8, 8e8
(20 tokens/param, 10 checkpoints, 0.5 % loss / 0.005 score noise).

Held out: 24 new two-phase schedules at the largest size, 1.6e9 parameters (2x the largest
fitted size, 4x its compute). Per seed, for the phase-aware FLP-M (default ``auto``: the
recency law ``flpm_recency`` competes with the constant-mixture forms) and, in the same run,
today's default that ignores the schedule (FLP-M ``auto`` fitted on the overall mixtures
only, the schedule columns dropped):

* median relative error of the per-domain losses (every held-out schedule x domain; target
  <= 3 %), and of the scores over (schedule, benchmark) pairs whose true score is above
  chance + 0.05 (target <= 5 %; pairs at chance are left out, their relative error is noise;
  the median absolute score error over every pair is printed beside it);
* 90 % interval coverage of the held-out losses;
* the schedule each model recommends for the lowest overall loss (the mean of the domain
  losses, the world's fixed-weight validation set) at the target size: the model scores a
  dense candidate set (two-phase schedules: both phases on the simplex grid of step 0.1,
  boundaries 0.6, 0.7, 0.8, 0.9; plus every constant mixture of step 0.05) and its best is
  evaluated with the truth. Margin recovered = (true loss of the best constant mixture - true
  loss of the pick) / (true loss of the best constant mixture - true loss of the best
  candidate schedule), the best constant mixture taken on the step-0.01 grid (target >= 80 %).
  The model fitted on overall mixtures cannot tell schedules apart: its pick is its best
  constant mixture (what mixopt recommended before schedules), so its margin is <= 0.

Run:  python benchmarks/bench_phases.py [--quick] [--seeds 10]
"""

from __future__ import annotations

import argparse
import itertools
import time

import numpy as np
import polars as pl

from mixopt.data.table import RunTable
from mixopt.surrogate.base import Targets
from mixopt.surrogate.flpm import FLPM
from mixopt.testing.phases_world import PhasedWorld, phases_world

SIZES = [1e8, 2e8, 4e8, 8e8]
TARGET = 1.6e9
TOKENS_PER_PARAM = 20.0
N_TRAIN, N_HELD = 24, 24
EMERGED = 0.05


def simplex_grid(k: int, step: float) -> np.ndarray:
    """Every mixture of ``k`` domains on the grid of ``step`` (rows sum to 1)."""
    n = int(round(1 / step))
    pts = [c for c in itertools.product(range(n + 1), repeat=k - 1) if sum(c) <= n]
    return np.array([[*c, n - sum(c)] for c in pts], dtype=np.float64) / n


def candidates(k: int) -> tuple[np.ndarray, np.ndarray]:
    """The dense candidate set: two-phase schedules on the 0.1 grid x 4 boundaries, and constant mixtures (step 0.05)."""
    g = simplex_grid(k, 0.1)
    i, j = np.meshgrid(np.arange(len(g)), np.arange(len(g)), indexing="ij")
    i, j = i.ravel(), j.ravel()
    ends = np.array([0.6, 0.7, 0.8, 0.9])
    P = np.stack([g[i], g[j]], axis=1)
    P = np.repeat(P, len(ends), axis=0)
    E = np.tile(ends, len(i))[:, None]
    c = simplex_grid(k, 0.05)
    P = np.concatenate([P, np.stack([c, c], axis=1)])
    E = np.concatenate([E, np.full((len(c), 1), 0.8)])
    return P, E


def targets(w: PhasedWorld, P: np.ndarray, E: np.ndarray, size: float = TARGET) -> Targets:
    n = P.shape[0]
    N = np.full(n, size)
    D = TOKENS_PER_PARAM * N
    return Targets(flops=6 * N * D, params=N, tokens=D, domains=w.domains, phases=P, phase_end=E)


def constant_table(runs: RunTable) -> RunTable:
    """The same runs as today's tables hold them: the overall mixture only (schedule columns dropped)."""
    drop = [c for c in runs.frame.columns if c.startswith(("mix@", "phase_end@")) or c == "run_tokens"]
    return RunTable(runs.frame.drop(drop), runs.benchmarks)


def evaluate(name: str, model: FLPM, w: PhasedWorld, held: Targets, cands: Targets, truth: dict, *,
             constant_only: bool = False) -> dict:
    pred = model.predict(held)
    L = np.column_stack([pred.get("loss:" + d) for d in w.loss_domains])
    lo = np.column_stack([pred.interval("loss:" + d)[0] for d in w.loss_domains])
    hi = np.column_stack([pred.interval("loss:" + d)[1] for d in w.loss_domains])
    tl, ts = truth["losses"], truth["scores"]
    row: dict = {"method": name, "stage1": model.config_.get("stage1"), "family": model.config_.get("family")}
    row["loss_err_%"] = 100 * float(np.median(np.abs(L / tl - 1)))
    row["loss_cover_%"] = 100 * float(np.mean((tl >= lo) & (tl <= hi)))
    S = np.column_stack([pred.get("score:" + b.name) if "score:" + b.name in pred.names else np.full(len(held), np.nan)
                         for b in w.benchmarks])
    chance = np.array([b.chance or 0.0 for b in w.benchmarks])
    em = (ts >= chance + EMERGED) & np.isfinite(S)
    row["score_err_%"] = 100 * float(np.median(np.abs(S[em] / ts[em] - 1))) if em.any() else float("nan")
    row["score_pairs"] = int(em.sum())
    ok = np.isfinite(S)
    row["score_abs_err"] = float(np.median(np.abs(S[ok] - ts[ok]))) if ok.any() else float("nan")
    # the recommended schedule: lowest predicted overall loss over the candidates, judged by the truth
    m = model.predict(cands, intervals=False)
    overall = np.column_stack([m.get("loss:" + d) for d in w.loss_domains]) @ w.base.overall_weights
    assert cands.phases is not None
    if constant_only:  # a model blind to schedules recommends a constant mixture
        overall = np.where(np.abs(cands.phases[:, 0] - cands.phases[:, 1]).max(axis=1) > 1e-9, np.inf, overall)
    pick = int(np.argmin(overall))
    true_pick = float(truth["cand_overall"][pick])
    row["pick_two_phase"] = bool(np.abs(cands.phases[pick, 0] - cands.phases[pick, 1]).max() > 1e-9)
    margin = truth["best_const"] - truth["best_sched"]
    row["true_margin_%"] = 100 * margin / truth["best_const"]
    row["margin_recovered_%"] = 100 * (truth["best_const"] - true_pick) / margin if margin > 0 else float("nan")
    # the schedule-vs-constant decision (mixopt.search.phased): the pick against the best predicted constant on joint draws
    from mixopt.laws.recency import SCHEDULE_LAWS
    from mixopt.search.phased import recommend

    const = np.abs(cands.phases[:, 0] - cands.phases[:, 1]).max(axis=1) <= 1e-9
    best_c = int(np.flatnonzero(const)[np.argmin(overall[const])])
    rec = "constant" if const[pick] else None
    if rec is None:
        pair = cands.rows(np.array([pick, best_c]))
        dr = model.predict_draws(pair, n_draws=256, seed=0)
        od = np.stack([np.asarray(dr["loss:" + d]) for d in w.loss_domains], axis=2) @ w.base.overall_weights
        rec, _ = recommend(model.config_.get("stage1") in SCHEDULE_LAWS, float(np.mean(od[:, 0] < od[:, 1])))
    rec_i = pick if rec == "schedule" else best_c
    row["recommended"] = rec
    row["recommended_margin_%"] = 100 * (truth["best_const"] - float(truth["cand_overall"][rec_i])) / margin if margin > 0 else float("nan")
    if model.config_.get("stage1") in ("flpm_recency", "dml_recency"):
        row["recency"] = "/".join(f"{v:.2f}" for v in model.stage1_params_[:, -1])
    return row


def one_seed(seed: int, n_bootstrap: int) -> list[dict]:
    w = phases_world(n_domains=3, n_benchmarks=4, seed=seed)
    P, E = w.random_schedules(N_TRAIN, seed=seed)
    runs = w.sample_runs(SIZES, (P, E), tokens_per_param=TOKENS_PER_PARAM, n_checkpoints=10, loss_noise=0.005,
                         score_noise=0.005, seed=seed)
    Ph, Eh = w.random_schedules(N_HELD, seed=seed + 1000, two_phase=1.0)
    held = targets(w, Ph, Eh)
    Pc, Ec = candidates(w.k)
    cands = targets(w, Pc, Ec)
    fine = simplex_grid(w.k, 0.01)
    C = float(cands.flops[0])
    truth = {
        "losses": w.true_losses(held.flops, Ph, Eh),
        "scores": w.true_scores(held.flops, Ph, Eh),
        "cand_overall": w.true_overall_loss(C, Pc, Ec),
        "best_const": float(w.true_overall_loss(C, fine[:, None, :], None).min()),
    }
    truth["best_sched"] = float(truth["cand_overall"].min())
    rows = []
    for name, table in (("flpm (schedules)", runs), ("flpm (overall mixture only)", constant_table(runs))):
        t0 = time.process_time()
        model = FLPM(n_bootstrap=n_bootstrap, seed=seed).fit(table)
        fit_s = time.process_time() - t0
        row = evaluate(name, model, w, held, cands, truth, constant_only=table is not runs)
        row.update(seed=seed, fit_cpu_s=fit_s, true_recency="/".join(f"{v:.2f}" for v in w.recency))
        rows.append(row)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="3 seeds, fewer bootstrap draws")
    ap.add_argument("--seeds", type=int, default=10)
    args = ap.parse_args()
    n_seeds = 3 if args.quick else args.seeds
    n_boot = 10 if args.quick else 20
    t0 = time.process_time()
    rows = [r for s in range(n_seeds) for r in one_seed(s, n_boot)]
    df = pl.DataFrame(rows, infer_schema_length=None)
    pl.Config.set_tbl_rows(100)
    pl.Config.set_tbl_width_chars(250)
    pl.Config.set_tbl_cols(-1)
    pl.Config.set_float_precision(3)
    print(df.select("seed", "method", "stage1", "family", "loss_err_%", "loss_cover_%", "score_err_%", "score_pairs",
                    "score_abs_err", "true_margin_%", "margin_recovered_%", "pick_two_phase", "recommended", "recommended_margin_%", *(["recency"] if "recency" in df.columns else []),
                    "true_recency", "fit_cpu_s"))
    summary = df.group_by("method", maintain_order=True).agg(
        pl.col("loss_err_%").median().alias("median loss err %"),
        pl.col("loss_err_%").max().alias("worst seed loss err %"),
        pl.col("score_err_%").median().alias("median score err %"),
        pl.col("score_abs_err").median().alias("median abs score err"),
        pl.col("loss_cover_%").median().alias("loss coverage %"),
        pl.col("margin_recovered_%").median().alias("median margin recovered %"),
        pl.col("margin_recovered_%").min().alias("worst seed margin %"),
        (pl.col("stage1") == "flpm_recency").sum().alias("seeds choosing flpm_recency"),
        (pl.col("recommended") == "constant").sum().alias("seeds recommending constant"),
        pl.col("recommended_margin_%").median().alias("median margin recovered by the recommended %"),
        pl.col("fit_cpu_s").sum().alias("fit CPU s"),
    )
    print(f"\n{n_seeds} seeds; held out: {N_HELD} two-phase schedules at {TARGET:.2g} params (fitted sizes {SIZES})")
    print(summary)
    print(f"targets: loss <= 3 %, score <= 5 %, margin recovered >= 80 %; total CPU {time.process_time() - t0:.0f} s")


if __name__ == "__main__":
    main()
