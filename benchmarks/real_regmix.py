"""RegMix (Liu et al. 2025) on mixopt: FLP-M default vs paper preset vs comparators vs LightGBM.

Module for ``benchmarks/bench_real.py`` (``run(quick) -> dict``, prints markdown tables);
also runnable alone::

    python benchmarks/real_regmix.py [--quick] [--transfer 16] [--domains pile_cc,github]

Data: ``../shared/data/regmix`` (512 ``train_1m`` + 256 ``test_1m`` models at 1M params,
256 at 60M and 64 TinyLlama-1.1B models, 13 Pile validation losses). Every method is
fitted on ``train_1m`` (one compute scale: mixture-only laws) and

(a) predicts the 256 held-out ``test_1m`` mixtures: Spearman ρ per domain (Pile-CC, the
    paper's headline, and the mean over domains), median relative error, and the 90 %
    interval coverage (methods with intervals);
(b) RegMix's protocol: predicts at the 1M compute for the mixtures of the 60M (same 256
    mixtures) and 1.1B (64) models and rank-correlates with their actual losses;

and reports, for every split, the **decisions** the predictions imply per domain
(:mod:`mixopt.surrogate.decision`): Spearman ρ, the actual rank of the predicted-best
mixture (1 = the true best of 256 / 64) and its regret (nats), and the pairwise decision
accuracy. With ``--transfer N`` (default 16) the default and the paper preset are also fitted
on train_1m + N seeded 60M runs (a table with a few runs at a second, larger scale: ``auto``
uses them as its transfer fold) and score the other 60M runs and the 1.1B models at their
own compute.

Anchor: LightGBM with RegMix's recipe (gradient-boosted trees on the raw ratios, regression
objective, 1000 iterations at learning rate 0.01, seed 42, one model per domain), computed
here in the same run when the optional ``lightgbm`` package is installed
(``pip install -e '.[bench]'``); RegMix reports ρ 0.986 / 0.962 on Pile-CC.
``--quick`` fits 4 of the 13 domains (``--domains a,b`` any subset).
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from mixopt.data.table import RunTable
from mixopt.errors import MixoptError
from mixopt.surrogate import Targets, make_surrogate

QUICK_DOMAINS = ("pile_cc", "github", "arxiv", "wikipedia_en")
REPORTED = {"test_1m": 0.986, "test_1b": 0.962}  # RegMix paper, Pile-CC, LightGBM
DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"

#: methods: name -> (surrogate kind, settings)
METHODS: dict[str, tuple[str, dict[str, Any]]] = {
    "flpm (default)": ("flpm", {}),
    "flpm (paper)": ("flpm", {"preset": "paper"}),
    # the default's stage 1 with the free residual in full (what auto chose here before it judged transfer)
    "flpm (hybrid)": ("flpm", {"stage1": "flpm", "family": "hybrid"}),
    "dml": ("dml", {}),
    "regmix-style (kernel ridge)": ("regmix", {}),
    # its recipe before 2026-12-04 (losses in log, no shifted-log choice, no clipping)
    "regmix-style (log)": ("regmix", {"transform": "log"}),
}


def _lightgbm(train: RunTable, domains: tuple[str, ...]):
    """One LightGBM regressor per domain (RegMix's recipe), or None when not installed."""
    try:
        import lightgbm as lgb
    except ImportError:
        return None
    X = train.final().mixture()
    params = {"objective": "regression", "boosting_type": "gbdt", "learning_rate": 1e-2, "seed": 42, "verbose": -1,
              "num_threads": 1}
    models = {}
    for d in domains:
        y = train.final().column("loss:" + d)
        models[d] = lgb.train(params, lgb.Dataset(X, y), num_boost_round=1000)
    return models


def _decisions(name: str, on: str, domains: tuple[str, ...], pred, tab: RunTable) -> list[dict[str, Any]]:
    """Per domain: Spearman ρ, pairwise accuracy, the pick's actual rank and regret among ``tab``'s mixtures."""
    from mixopt.surrogate.decision import choice_metrics

    out = []
    for d in domains:
        act = tab.column("loss:" + d)
        m = choice_metrics(np.asarray(pred(d), dtype=float), act, lower_better=True)
        out.append({"method": name, "domain": d, "on": on, "n": tab.n_runs, "spearman": m["spearman"],
                    "pairwise_accuracy": m["pairwise_accuracy"], "pick_rank": m["chosen_rank"], "regret": m["regret"]})
    return out


def _fit(name: str, kind: str, settings: dict[str, Any], train: RunTable, fit_s: dict[str, float],
         chosen: dict[str, Any], failed: dict[str, str]):
    t0, c0 = time.perf_counter(), time.process_time()
    try:
        model = make_surrogate(kind, seed=0, **settings).fit(train)
    except MixoptError as e:
        failed[name] = str(e).splitlines()[0][:300]
        print(f"  {name} could not be fitted: {failed[name]}", flush=True)
        return None
    fit_s[name] = time.perf_counter() - t0
    cpu_s = time.process_time() - c0  # CPU-s of this process (load does not inflate it much; BLAS threads add up)
    if hasattr(model, "config_"):
        chosen[name] = dict(model.config_)
    print(f"  fitted {name} in {fit_s[name]:.1f}s wall, {cpu_s:.1f} CPU-s; chose {chosen.get(name, '-')}", flush=True)
    return model


def _predictor(model, tab: RunTable, *, at_flops: float | None, intervals: bool):
    fl = np.full(tab.n_runs, at_flops) if at_flops is not None else tab.flops()
    p = model.predict(Targets(flops=fl, mixture=tab.mixture(), domains=tab.domains), intervals=intervals, level=0.9)
    return p


def _summary(df: pl.DataFrame, order: list[str]) -> pl.DataFrame:
    summary = df.group_by("method", "on").agg(
        pl.col("spearman").filter(pl.col("domain") == "pile_cc").first().alias("rho_pile_cc"),
        pl.col("spearman").mean().alias("rho_mean"),
        pl.col("pick_rank").filter(pl.col("domain") == "pile_cc").first().alias("pick_rank_pile_cc"),
        pl.col("regret").filter(pl.col("domain") == "pile_cc").first().alias("regret_pile_cc"),
        pl.col("pairwise_accuracy").mean().alias("pairwise_mean"),
        pl.col("n").first().alias("n"),
        pl.col("median_rel_err").mean().alias("median_rel_err"),
        pl.col("coverage90").mean().alias("coverage90"),
    )
    rank = {m: i for i, m in enumerate(order)}
    return summary.with_columns(pl.col("method").replace_strict(rank, default=99).alias("_o")).sort("on", "_o").drop("_o")


def _print_summary(summary: pl.DataFrame, fit_s: dict[str, float], title: str) -> None:
    print(title + "\n")
    print("| method | on | n | rho Pile-CC | rho mean | pick rank Pile-CC | regret Pile-CC | pairwise acc. mean | "
          "median rel err | 90% coverage | fit s |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in summary.iter_rows(named=True):
        f = lambda v, p=3: "" if v is None else f"{v:.{p}f}"  # noqa: E731
        print(f"| {r['method']} | {r['on']} | {r['n']} | {f(r['rho_pile_cc'])} | {f(r['rho_mean'])} | {r['pick_rank_pile_cc']} | "
              f"{f(r['regret_pile_cc'], 4)} | {f(r['pairwise_mean'])} | {f(r['median_rel_err'], 4)} | {f(r['coverage90'], 2)} | "
              f"{fit_s.get(r['method'], float('nan')):.1f} |")


def run(quick: bool = False, data_dir: Path | str = DATA, transfer: int = 16, only_domains: tuple[str, ...] = (),
        methods: tuple[str, ...] = ()) -> dict[str, Any]:
    """Fit every method on train_1m and score (a) and (b); prints markdown tables, returns the figures.

    ``transfer > 0``: also the transfer protocol -- move that many (seeded) of the 256 60M runs
    into the fit of the default and the paper preset, and score the other 60M runs and the
    1.1B models at their own compute (LightGBM, mixture-only, is refitted on 1M runs alone).
    """
    from mixopt.data.public import load_regmix

    data_dir = Path(data_dir)
    if not (data_dir / "regmix").is_dir():
        print(f"RegMix skipped: {data_dir / 'regmix'} not found.")
        return {"skipped": "no data"}
    train = load_regmix(data_dir, "train_1m")
    if quick or only_domains:
        keep = only_domains or QUICK_DOMAINS
        drop = [c for c in train.frame.columns if c.startswith("loss:") and c[5:] not in keep]
        train = RunTable(train.frame.drop(drop), train.benchmarks)
    domains = tuple(train.loss_domains)
    splits = {s: load_regmix(data_dir, s).final() for s in ("test_1m", "test_60m", "test_1b")}
    c1m = float(np.median(train.final().flops()))
    rows: list[dict[str, Any]] = []
    fit_s: dict[str, float] = {}
    chosen: dict[str, Any] = {}
    failed: dict[str, str] = {}

    def score(name: str, predict) -> None:
        te = splits["test_1m"]
        out = predict(te, intervals=True)
        for r in _decisions(name, "test_1m", domains, lambda d: out(d)[0], te):
            mean, lo, hi = out(r["domain"])
            act = te.column("loss:" + r["domain"])
            r["median_rel_err"] = float(np.median(np.abs(mean / act - 1)))
            r["coverage90"] = float(np.mean((lo <= act) & (act <= hi))) if lo is not None else None
            rows.append(r)
        for s in ("test_60m", "test_1b"):
            big = splits[s]
            o = predict(big, intervals=False, at_flops=c1m)
            rows.extend({**r, "median_rel_err": None, "coverage90": None} for r in _decisions(name, s, domains, lambda d: o(d)[0], big))

    for name, (kind, settings) in METHODS.items():
        if methods and name not in methods:
            continue
        model = _fit(name, kind, settings, train, fit_s, chosen, failed)
        if model is None:
            continue

        def predict(tab: RunTable, intervals: bool, at_flops: float | None = None, model=model):
            p = _predictor(model, tab, at_flops=at_flops, intervals=intervals)
            return lambda d: (p.get("loss:" + d), *(p.interval("loss:" + d) if intervals else (None, None)))

        score(name, predict)
    lgbm_note = ""
    t0 = time.perf_counter()
    lg = _lightgbm(train, domains) if not methods or "lightgbm" in methods else None
    if lg is None:
        lgbm_note = "LightGBM not installed (pip install -e '.[bench]'): its rows are missing."
    else:
        fit_s["lightgbm (RegMix recipe)"] = time.perf_counter() - t0

        def predict_lg(tab: RunTable, intervals: bool, at_flops: float | None = None):
            X = tab.mixture(train.domains)
            return lambda d: (lg[d].predict(X), None, None)

        score("lightgbm (RegMix recipe)", predict_lg)
    df = pl.DataFrame(rows, schema_overrides={"median_rel_err": pl.Float64, "coverage90": pl.Float64})
    order = [*METHODS, "lightgbm (RegMix recipe)"]
    summary = _summary(df, order)
    _print_summary(summary, fit_s, f"### RegMix: fit on train_1m ({train.n_runs} runs, {len(domains)} domains); Spearman rho, "
                   "pick rank (actual rank of the predicted-best mixture, 1 = best), regret (nats) and pairwise accuracy of "
                   "predicted vs actual loss")
    print(f"\nRegMix reports (LightGBM, Pile-CC): test_1m {REPORTED['test_1m']}, test_1b {REPORTED['test_1b']}. {lgbm_note}")
    print(f"FLP-M auto chose: {chosen}. Fit times measured on a loaded shared 2-core machine.")
    for name, why in failed.items():
        print(f"{name}: not fitted ({why})")
    out = {"summary": summary.to_dicts(), "fit_seconds": fit_s, "chosen": chosen, "failed": failed, "note": lgbm_note}
    if transfer > 0:
        out["transfer"] = _transfer(train, splits, domains, transfer, lg, methods)
    return out


def _transfer(train: RunTable, splits: dict[str, RunTable], domains: tuple[str, ...], n_move: int, lg,
              methods: tuple[str, ...] = ()) -> dict[str, Any]:
    """The transfer protocol of :func:`run` (``transfer > 0``)."""
    from real_common import md

    big = splits["test_60m"]
    ids = big.run_ids().astype(str)
    moved = np.sort(np.random.default_rng(0).choice(ids.size, size=n_move, replace=False))
    keep = np.setdiff1d(np.arange(ids.size), moved)
    fit_60m = big.select_runs(ids[moved].tolist())
    fit_60m = RunTable(fit_60m.frame.select(train.frame.columns), train.benchmarks)
    table = train.concat(fit_60m)
    rest = big.select_runs(ids[keep].tolist())
    rows: list[dict[str, Any]] = []
    fit_s: dict[str, float] = {}
    chosen: dict[str, Any] = {}
    failed: dict[str, str] = {}
    for name, (kind, settings) in {k: METHODS[k] for k in ("flpm (default)", "flpm (paper)") if not methods or k in methods}.items():
        model = _fit(name, kind, settings, table, fit_s, chosen, failed)
        if model is None:
            continue
        for on, tab in (("test_60m (rest)", rest), ("test_1b", splits["test_1b"])):
            p = _predictor(model, tab, at_flops=None, intervals=False)
            rows.extend({**r, "median_rel_err": float(np.median(np.abs(p.get("loss:" + r["domain"]) / tab.column("loss:" + r["domain"]) - 1))),
                         "coverage90": None} for r in _decisions(name, on, domains, lambda d, p=p: p.get("loss:" + d), tab))
        sel = getattr(model, "selection_", None)
        if sel is not None:
            print(f"\n{name}: selection on 1M + {n_move} 60M runs\n")
            print(md(sel.select("step", "candidate", "status", "score", "reason")))
    if lg is not None:
        for on, tab in (("test_60m (rest)", rest), ("test_1b", splits["test_1b"])):
            X = tab.mixture(train.domains)
            rows.extend({**r, "median_rel_err": None, "coverage90": None}
                        for r in _decisions("lightgbm (RegMix recipe, 1M only)", on, domains, lambda d, X=X: lg[d].predict(X), tab))
    df = pl.DataFrame(rows, schema_overrides={"median_rel_err": pl.Float64, "coverage90": pl.Float64})
    summary = _summary(df, ["flpm (default)", "flpm (paper)", "lightgbm (RegMix recipe, 1M only)"])
    _print_summary(summary, fit_s, f"\n### RegMix transfer: fit on train_1m + {n_move} of the 256 60M runs (seed 0), "
                   f"score the other {keep.size} 60M runs and the 64 1.1B models at their own compute")
    return {"summary": summary.to_dicts(), "fit_seconds": fit_s, "chosen": chosen, "failed": failed,
            "moved": ids[moved].tolist()}


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="4 of the 13 domains")
    ap.add_argument("--data-dir", default=str(DATA))
    ap.add_argument("--transfer", type=int, default=16,
                    help="also fit on train_1m + this many 60M runs and score the rest and the 1.1B models (0: skip)")
    ap.add_argument("--domains", default="", help="comma-separated loss domains to fit (default: all 13; --quick: 4)")
    ap.add_argument("--methods", default="", help=f"comma-separated subset of {[*METHODS, 'lightgbm']} (default: all)")
    a = ap.parse_args()
    logging.basicConfig(level=logging.ERROR)
    run(a.quick, a.data_dir, a.transfer, tuple(d.strip() for d in a.domains.split(",") if d.strip()),
        tuple(m.strip() for m in a.methods.split(",") if m.strip()))
