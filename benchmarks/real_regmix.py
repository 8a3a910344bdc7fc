"""RegMix (Liu et al. 2025) on mixopt: FLP-M default vs paper preset vs comparators vs LightGBM.

Module for ``benchmarks/bench_real.py`` (``run(quick) -> dict``, prints markdown tables);
also runnable alone::

    python benchmarks/real_regmix.py [--quick]

Data: ``../shared/data/regmix`` (512 ``train_1m`` + 256 ``test_1m`` models at 1M params,
256 at 60M and 64 TinyLlama-1.1B models, 13 Pile validation losses). Every method is
fitted on ``train_1m`` (one compute scale: mixture-only laws) and

(a) predicts the 256 held-out ``test_1m`` mixtures: Spearman ρ per domain (Pile-CC, the
    paper's headline, and the mean over domains), median relative error, and the 90 %
    interval coverage (methods with intervals);
(b) RegMix's protocol: predicts at the 1M compute for the mixtures of the 60M (same 256
    mixtures) and 1.1B (64) models and rank-correlates with their actual losses.

Anchor: LightGBM with RegMix's recipe (gradient-boosted trees on the raw ratios, regression
objective, 1000 iterations at learning rate 0.01, seed 42, one model per domain), computed
here in the same run when the optional ``lightgbm`` package is installed
(``pip install -e '.[bench]'``); RegMix reports ρ 0.986 / 0.962 on Pile-CC.
``--quick`` fits 4 of the 13 domains.
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from scipy.stats import spearmanr

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
    "dml": ("dml", {}),
    "regmix-style (kernel ridge)": ("regmix", {}),
}


def _rho(a: np.ndarray, b: np.ndarray) -> float:
    return float(spearmanr(a, b)[0])


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


def run(quick: bool = False, data_dir: Path | str = DATA) -> dict[str, Any]:
    """Fit every method on train_1m and score (a) and (b); prints markdown tables, returns the figures."""
    from mixopt.data.public import load_regmix

    data_dir = Path(data_dir)
    if not (data_dir / "regmix").is_dir():
        print(f"RegMix skipped: {data_dir / 'regmix'} not found.")
        return {"skipped": "no data"}
    train = load_regmix(data_dir, "train_1m")
    if quick:
        drop = [c for c in train.frame.columns if c.startswith("loss:") and c[5:] not in QUICK_DOMAINS]
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
        for d in domains:
            mean, lo, hi = out(d)
            act = te.column("loss:" + d)
            rows.append({"method": name, "domain": d, "on": "test_1m", "spearman": _rho(mean, act),
                         "median_rel_err": float(np.median(np.abs(mean / act - 1))),
                         "coverage90": float(np.mean((lo <= act) & (act <= hi))) if lo is not None else None})
        for s in ("test_60m", "test_1b"):
            big = splits[s]
            o = predict(big, intervals=False, at_flops=c1m)
            for d in domains:
                rows.append({"method": name, "domain": d, "on": s, "spearman": _rho(o(d)[0], big.column("loss:" + d)),
                             "median_rel_err": None, "coverage90": None})

    for name, (kind, settings) in METHODS.items():
        t0 = time.perf_counter()
        try:
            model = make_surrogate(kind, seed=0, **settings).fit(train)
        except MixoptError as e:
            failed[name] = str(e).splitlines()[0][:300]
            print(f"  {name} could not be fitted: {failed[name]}", flush=True)
            continue
        fit_s[name] = time.perf_counter() - t0
        if hasattr(model, "config_"):
            chosen[name] = dict(model.config_)

        def predict(tab: RunTable, intervals: bool, at_flops: float | None = None, model=model):
            fl = np.full(tab.n_runs, at_flops) if at_flops is not None else tab.flops()
            p = model.predict(Targets(flops=fl, mixture=tab.mixture(), domains=tab.domains), intervals=intervals, level=0.9)
            return lambda d: (p.get("loss:" + d), *(p.interval("loss:" + d) if intervals else (None, None)))

        score(name, predict)
        print(f"  fitted {name} in {fit_s[name]:.1f}s; chose {chosen.get(name, '-')}", flush=True)
    lgbm_note = ""
    t0 = time.perf_counter()
    lg = _lightgbm(train, domains)
    if lg is None:
        lgbm_note = "LightGBM not installed (pip install -e '.[bench]'): its rows are missing."
    else:
        fit_s["lightgbm (RegMix recipe)"] = time.perf_counter() - t0

        def predict_lg(tab: RunTable, intervals: bool, at_flops: float | None = None):
            X = tab.mixture(train.domains)
            return lambda d: (lg[d].predict(X), None, None)

        score("lightgbm (RegMix recipe)", predict_lg)
    df = pl.DataFrame(rows, schema_overrides={"median_rel_err": pl.Float64, "coverage90": pl.Float64})
    summary = df.group_by("method", "on").agg(
        pl.col("spearman").filter(pl.col("domain") == "pile_cc").first().alias("rho_pile_cc"),
        pl.col("spearman").mean().alias("rho_mean"),
        pl.col("median_rel_err").mean().alias("median_rel_err"),
        pl.col("coverage90").mean().alias("coverage90"),
    )
    order = {m: i for i, m in enumerate([*METHODS, "lightgbm (RegMix recipe)"])}
    summary = summary.with_columns(pl.col("method").replace_strict(order, default=99).alias("_o")).sort("on", "_o").drop("_o")
    print(f"### RegMix: fit on train_1m ({train.n_runs} runs, {len(domains)} domains), Spearman rho of predicted vs actual loss\n")
    print("| method | on | rho Pile-CC | rho mean | median rel err | 90% coverage | fit s |")
    print("|---|---|---|---|---|---|---|")
    for r in summary.iter_rows(named=True):
        f = lambda v, p=3: "" if v is None else f"{v:.{p}f}"  # noqa: E731
        print(f"| {r['method']} | {r['on']} | {f(r['rho_pile_cc'])} | {f(r['rho_mean'])} | {f(r['median_rel_err'], 4)} | "
              f"{f(r['coverage90'], 2)} | {fit_s.get(r['method'], float('nan')):.1f} |")
    print(f"\nRegMix reports (LightGBM, Pile-CC): test_1m {REPORTED['test_1m']}, test_1b {REPORTED['test_1b']}. {lgbm_note}")
    print(f"FLP-M auto chose: {chosen}. Fit times measured on a loaded shared 2-core machine.")
    for name, why in failed.items():
        print(f"{name}: not fitted ({why})")
    return {"summary": summary.to_dicts(), "fit_seconds": fit_s, "chosen": chosen, "failed": failed, "note": lgbm_note}


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="4 of the 13 domains")
    ap.add_argument("--data-dir", default=str(DATA))
    a = ap.parse_args()
    logging.basicConfig(level=logging.ERROR)
    run(a.quick, a.data_dir)
