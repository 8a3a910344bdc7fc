"""Olmix learning curves of ``regmix`` variants (issue 24): which surrogate learns faster at ~128 runs.

    python benchmarks/bench_regmix_variants.py --data-dir ../shared/data [--seeds 0,1,2] [--variants a,b]

Pool and test: ``real_olmix``'s fixed 20 % holdout of ``full_recomputation`` (410 / 102 runs, 64
domains, 110 task BPBs). Each variant is fitted on the first 32 / 64 / 128 runs of the seeded
random orders of ``bench_plan.py``'s Olmix section (``default_rng([seed, 0x6F6C])``) and on all
410, and scored by the mean relative error over the held-out runs and tasks (``real_olmix``'s
``mre``). CPU seconds per variant (``time.process_time``).

Variants (:data:`VARIANTS`): ``regmix`` (the kind's default, ``transform="auto"``) and
``regmix-log`` (``transform="log"``: the tasks, scores, fitted linearly) through
``make_surrogate``; the rest reuse its building blocks (:mod:`mixopt.surrogate.baselines`: the
linear ridge + RBF kernel ridge with exact leave-one-out choices) per task, on its features
``[r, log(r + 1e-3)]`` standardised:

* sharing across tasks, linear targets, tasks standardised: ``shared`` (one ridge penalty and one
  kernel for every task, chosen by the leave-one-out error pooled over tasks), ``rotated`` (the
  tasks rotated to their principal components, each component fitted on its own), ``rank10`` /
  ``rank20`` (per-task fits projected on the top 10 / 20 components of the fitted values);
* ``groups``: ``regmix-log`` plus, per domain-name prefix shared by several domains
  (``dclm:``, ``s2pdf:``, ``stack-edu:``), the prefix's total share and its log;
* transforms, per task: ``log`` (``log BPB``), ``shift0.9`` (``log(BPB - 0.9 min)``, no clip),
  ``auto-hard`` (``regmix``'s choice of the shift with a hard clip instead of the soft one).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from mixopt.surrogate import Targets, make_surrogate
from mixopt.surrogate.baselines import (
    CLIP_SPAN,
    LENGTH_SCALES,
    NOISE_RATIOS,
    RIDGE_PENALTIES,
    SHIFTS,
    RegMixRegression,
    _decompose,
    _fit_output,
    _loo_residuals,
)

sys.path.insert(0, str(Path(__file__).resolve().parent))  # real_olmix (holdout, scores)

BUDGETS = (32, 64, 128)
VARIANTS = ("regmix", "regmix-log", "shared", "rotated", "rank10", "rank20", "groups", "log", "shift0.9", "auto-hard")


def _features(R: np.ndarray) -> np.ndarray:
    return np.column_stack([R, np.log(R + 1e-3)])


def _kernel_predict(Zt: np.ndarray, Z: np.ndarray, fit: dict) -> np.ndarray:
    d = ((Zt[:, None, :] - Z[None, :, :]) ** 2).sum(axis=2) / Z.shape[1]
    return fit["intercept"] + Zt @ fit["coef"] + np.exp(-d / (2 * fit["length"] ** 2)) @ fit["alpha"]


def _per_task(Rtr, Ytr, Rte, transform: str) -> np.ndarray:
    """Each task on its own: ``log``, ``shift0.9`` or ``auto-hard`` (module docstring)."""
    X, Xt = _features(Rtr), _features(Rte)
    mu, sd = X.mean(0), np.where(X.std(0) > 1e-12, X.std(0), 1.0)
    Z, Zt = (X - mu) / sd, (Xt - mu) / sd
    dec = _decompose(Z)
    P = np.empty((Rte.shape[0], Ytr.shape[1]))
    for j in range(Ytr.shape[1]):
        v = Ytr[:, j]
        shifts = {"log": [0.0], "shift0.9": [0.9 * v.min()], "auto-hard": [None] + [c * v.min() for c in SHIFTS]}[transform]
        best = (np.inf, None)
        for s in shifts:
            z = v if s is None else np.log(v - s)
            fit = _fit_output(Z, z, dec)
            span = z.max() - z.min()
            bounds = (z.min() - CLIP_SPAN * span, z.max() + CLIP_SPAN * span) if transform == "auto-hard" else (-np.inf, np.inf)
            zl = np.clip(z - _loo_residuals(Z, z, dec, fit), *bounds)
            e = float(np.mean((((zl if s is None else np.exp(zl) + s) - v) / v) ** 2))
            if e < best[0]:
                zp = np.clip(_kernel_predict(Zt, Z, fit), *bounds)
                best = (e, zp if s is None else np.exp(zp) + s)
        P[:, j] = best[1]
    return P


def _shared(Rtr, Ytr, Rte, how: str) -> np.ndarray:
    """Sharing across tasks (module docstring), on standardised linear targets."""
    X, Xt = _features(Rtr), _features(Rte)
    mu, sd = X.mean(0), np.where(X.std(0) > 1e-12, X.std(0), 1.0)
    Z, Zt = (X - mu) / sd, (Xt - mu) / sd
    ym, ys = Ytr.mean(0), Ytr.std(0)
    Y = (Ytr - ym) / ys
    Q = np.linalg.svd(Y, full_matrices=False)[2].T if how == "rotated" else np.eye(Y.shape[1])
    W = Y @ Q
    n = Z.shape[0]
    if how in ("rotated", "rank10", "rank20"):  # each column its own choices: regmix's per-output fit
        dec = _decompose(Z)
        fits = [_fit_output(Z, W[:, j], dec) for j in range(W.shape[1])]
        P = np.column_stack([_kernel_predict(Zt, Z, f) for f in fits])
        if how != "rotated":
            F = np.column_stack([_kernel_predict(Z, Z, f) for f in fits])
            k = int(how[4:])
            V = np.linalg.svd(F, full_matrices=False)[2][:k]
            P = P @ V.T @ V
        return ym + (P @ Q.T) * ys
    # shared: one ridge penalty, then one (length, noise), by the pooled exact leave-one-out error
    U, s, Vt = np.linalg.svd(Z, full_matrices=False)
    UtW = U.T @ W
    errs = []
    for lam in RIDGE_PENALTIES:
        d = s**2 / (s**2 + lam)
        h = np.einsum("ij,j,ij->i", U, d, U) + 1.0 / n
        errs.append(float(np.mean(((W - U @ (d[:, None] * UtW)) / np.maximum(1 - h, 1e-9)[:, None]) ** 2)))
    lam = RIDGE_PENALTIES[int(np.argmin(errs))]
    coef = Vt.T @ ((s / (s**2 + lam))[:, None] * UtW)
    res = W - Z @ coef
    D = ((Z[:, None, :] - Z[None, :, :]) ** 2).sum(axis=2) / Z.shape[1]
    Dt = ((Zt[:, None, :] - Z[None, :, :]) ** 2).sum(axis=2) / Z.shape[1]
    best = (np.inf, None)
    for ls in LENGTH_SCALES:
        w, V = np.linalg.eigh(np.exp(-D / (2 * ls**2)))
        w = np.maximum(w, 0.0)
        VR = V.T @ res
        for nz in NOISE_RATIOS:
            inv_diag = (V**2) @ (1 / (w + nz))
            e = float(np.mean(((V @ (VR / (w + nz)[:, None])) / inv_diag[:, None]) ** 2))
            if e < best[0]:
                best = (e, (ls, nz))
    ls, nz = best[1]
    alpha = np.linalg.solve(np.exp(-D / (2 * ls**2)) + nz * np.eye(n), res)
    P = Zt @ coef + np.exp(-Dt / (2 * ls**2)) @ alpha
    return ym + (P @ Q.T) * ys


class _Groups(RegMixRegression):
    """``regmix-log`` with each shared name prefix's total share and its log as features."""

    kind = "regmix-groups-bench"  # not registered: used directly

    def _raw_features(self, flops: np.ndarray, R: np.ndarray) -> np.ndarray:
        prefix = [d.split(":")[0] for d in self.domains_]
        groups = sorted({p for p in prefix if prefix.count(p) > 1})
        G = np.array([[p == g for p in prefix] for g in groups], dtype=np.float64).T
        S = R @ G
        return np.column_stack([super()._raw_features(flops, R), S, np.log(S + float(self.log_floor))])


def main() -> None:
    from real_olmix import holdout, scores

    from mixopt.data.public import load_olmix

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", default=str(Path(__file__).resolve().parents[2] / "shared" / "data"))
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--variants", default=",".join(VARIANTS))
    a = ap.parse_args()
    variants = [v for v in a.variants.split(",") if v]
    bad = [v for v in variants if v not in VARIANTS]
    if bad:
        ap.error(f"--variants: unknown {bad}; choose from {list(VARIANTS)}")
    seeds = [int(x) for x in a.seeds.split(",")]
    full = load_olmix(a.data_dir, "full_recomputation").final()
    tr, te = holdout(full.n_runs)
    pool, test = full.select_runs(full.run_ids()[tr]), full.select_runs(full.run_ids()[te])
    Rp, Yp = pool.mixture(), pool.scores(pool.benchmark_names)
    Rt, Yt = test.mixture(pool.domains), test.scores(test.benchmark_names)
    c = 6 * float(np.median(full.params())) * float(np.median(full.tokens()))
    names = [f"score:{b}" for b in pool.benchmark_names]

    def predict(variant: str, idx: np.ndarray) -> np.ndarray:
        if variant in ("regmix", "regmix-log", "groups"):
            sub = pool.select_runs(pool.run_ids()[idx])
            model = _Groups(transform="log") if variant == "groups" else make_surrogate("regmix", transform="log" if variant == "regmix-log" else "auto")
            model.fit(sub)
            pred = model.predict(Targets(flops=np.full(test.n_runs, c), mixture=Rt, domains=pool.domains), intervals=False)
            return np.column_stack([pred.get(q) for q in names])
        if variant in ("log", "shift0.9", "auto-hard"):
            return _per_task(Rp[idx], Yp[idx], Rt, variant)
        return _shared(Rp[idx], Yp[idx], Rt, variant)

    print(f"Olmix full_recomputation: {pool.n_runs} pool runs, {test.n_runs} held out, {len(names)} tasks; seeds {seeds}")
    print(f"| variant | {' | '.join(f'{b} random' for b in BUDGETS)} | all {pool.n_runs} | CPU-s |")
    print("|---|" + "---|" * (len(BUDGETS) + 2))
    for v in variants:
        t0 = time.process_time()
        cells = []
        for b in BUDGETS:
            errs = [scores(predict(v, np.sort(np.random.default_rng([s, 0x6F6C]).permutation(pool.n_runs)[:b])), Yt)["mre"] for s in seeds]
            cells.append(f"{np.mean(errs):.4f}")
        cells.append(f"{scores(predict(v, np.arange(pool.n_runs)), Yt)['mre']:.4f}")
        print(f"| {v} | {' | '.join(cells)} | {time.process_time() - t0:.1f} |", flush=True)


if __name__ == "__main__":
    main()
