"""Validation training: train a diverse K of the proposed mixtures and compare with the prediction.

:func:`pick_diverse` chooses ``K`` rows of a Pareto table: the search's own shortlist when it
has one (``<stem>.shortlist.<ext>`` beside the Pareto file, or a ``shortlist`` column), topped
up by farthest-point selection in mixture space (each next row is the one farthest, in L1
distance of the ratios, from those already chosen), so the K are not near-duplicates.
:func:`compare` puts the surrogate's prediction (mean and central interval, at the trained
model's actual parameters and tokens) next to what the trained model measured.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from mixopt.data.table import MIX_PREFIX, RunTable, training_flops
from mixopt.errors import SchemaError
from mixopt.train.spec import JobSpec

logger = logging.getLogger(__name__)


def read_pareto(path: str | Path) -> pl.DataFrame:
    """A Pareto table written by ``mixopt optimize`` (.csv, .parquet or .json)."""
    path = Path(path)
    if not path.is_file():
        raise SchemaError(f"Pareto file {str(path)!r} not found; run `mixopt optimize CONFIG` first (it writes [search] output).")
    ext = path.suffix.lower()
    if ext == ".csv":
        frame = pl.read_csv(path)
    elif ext == ".parquet":
        frame = pl.read_parquet(path)
    elif ext == ".json":
        frame = pl.read_json(path)
    else:
        raise SchemaError(f"Pareto file must be .csv, .parquet or .json, got {path.name!r}.")
    mix = [c for c in frame.columns if c.startswith(MIX_PREFIX)]
    missing = [c for c in ("params", "tokens") if c not in frame.columns]
    if not mix or missing or frame.height == 0:
        raise SchemaError(f"{path} is not a Pareto table of mixopt optimize: need mix:<d>, params and tokens columns and "
                          f"at least one row; got {frame.height} rows, columns {frame.columns[:12]}.")
    return frame


def read_shortlist(pareto_path: str | Path) -> pl.DataFrame | None:
    """The search's shortlist beside a Pareto file (``<stem>.shortlist<ext>``), if any."""
    p = Path(pareto_path)
    s = p.with_name(f"{p.stem}.shortlist{p.suffix}")
    if s.is_file():
        try:
            return read_pareto(s)
        except SchemaError:
            return None
    return None


#: L1 distance between mixtures below which a Pareto row counts as already validated
ALREADY_VALIDATED_L1 = 0.05


def pick_diverse(pareto: pl.DataFrame, k: int, *, shortlist: pl.DataFrame | None = None,
                 first: int | None = None, avoid: np.ndarray | None = None) -> pl.DataFrame:
    """``k`` rows of ``pareto``: the shortlist's rows first, then farthest-point picks.

    Args:
        pareto: the Pareto table (``mix:<d>`` columns).
        k: rows wanted (fewer if the table is smaller).
        shortlist: rows to take first (matched to ``pareto`` by their ratios).
        first: the row to start the farthest-point selection from (default: the first row of
            the shortlist, else the row nearest the front's centroid in mixture space).
        avoid: ``(m, k)`` mixtures already trained (e.g. validated in earlier rounds): rows
            within :data:`ALREADY_VALIDATED_L1` of one are skipped while enough others remain.

    Returns:
        The chosen rows, in selection order.
    """
    if k < 1:
        raise SchemaError(f"--top must be >= 1, got {k}.")
    mix_cols = [c for c in pareto.columns if c.startswith(MIX_PREFIX)]
    X = pareto.select(mix_cols).to_numpy().astype(float)
    n = X.shape[0]
    chosen: list[int] = []
    if "shortlist" in pareto.columns:
        col = pareto["shortlist"].cast(pl.Float64, strict=False).fill_null(0).to_numpy()
        chosen.extend(int(i) for i in np.flatnonzero(col > 0))
    if shortlist is not None and all(c in shortlist.columns for c in mix_cols):
        for row in shortlist.select(mix_cols).to_numpy().astype(float):
            i = int(np.argmin(np.abs(X - row).sum(1)))
            if i not in chosen:
                chosen.append(i)
    ok = np.ones(n, dtype=bool)
    if avoid is not None and len(avoid):
        near = np.min(np.abs(X[:, None, :] - np.asarray(avoid, dtype=float)[None, :, :]).sum(-1), axis=1) < ALREADY_VALIDATED_L1
        if (~near).sum() >= k:
            ok = ~near
    chosen = [i for i in chosen if ok[i]][:k]
    if not chosen:
        cand = np.flatnonzero(ok)
        chosen = [first if first is not None and ok[first] else int(cand[np.argmin(np.abs(X[cand] - X[cand].mean(0)).sum(1))])]
    while len(chosen) < min(k, int(ok.sum())):
        d = np.min(np.abs(X[:, None, :] - X[None, chosen, :]).sum(-1), axis=1)
        d[chosen] = -1
        d[~ok] = -1
        nxt = int(np.argmax(d))
        if d[nxt] <= 1e-9:  # only duplicates left
            break
        chosen.append(nxt)
    return pareto[chosen]


def jobs_from_rows(rows: pl.DataFrame, *, prefix: str, seed: int, checkpoints: int) -> list[JobSpec]:
    """One job per chosen row: its mixture, ``params`` and ``tokens`` (run id ``<prefix>_<trial>_s<seed>``)."""
    from mixopt.train.ladder import phases_from_row

    mix_cols = [c for c in rows.columns if c.startswith(MIX_PREFIX)]
    jobs = []
    for i, r in enumerate(rows.iter_rows(named=True)):
        tag = f"t{int(r['trial'])}" if r.get("trial") is not None else f"i{i}"
        phases = [{"end": ph["end"], "mixture": _normalised(ph["mixture"])} for ph in phases_from_row(r)]
        mix = {} if phases else _normalised({c[len(MIX_PREFIX):]: float(r[c]) for c in mix_cols})
        jobs.append(JobSpec(run_id=f"{prefix}_{tag}_s{seed}", mixture=mix, phases=phases, params=float(r["params"]),
                            tokens=float(r["tokens"]), seed=seed, checkpoints=checkpoints))
    return jobs


def _normalised(mix: dict[str, float]) -> dict[str, float]:
    """Ratios clipped at 0 and renormalised (a Pareto file's rounding must not fail the job's check)."""
    mix = {d: max(0.0, float(v)) for d, v in mix.items()}
    s = sum(mix.values())
    return {d: v / s for d, v in mix.items()}


def compare(surrogate: Any, measured: RunTable, *, level: float = 0.9) -> pl.DataFrame:
    """Predicted (mean, interval) vs measured at every trained run's final checkpoint.

    The prediction is made at the run's actual ``params``, ``tokens`` and mixture (a trainer
    builds the nearest model shape it can, so these can differ slightly from the request).

    Returns:
        One row per (run, quantity): ``run``, ``params``, ``tokens``, ``quantity``,
        ``predicted``, ``lower``, ``upper``, ``measured``, ``rel_error`` (|pred - meas| /
        |meas|), ``covered`` (measured inside the interval).
    """
    from mixopt.surrogate import Targets

    final = measured.final()
    params, tokens = final.params(), final.tokens()
    domains = tuple(getattr(surrogate, "domains_", ()) or ())
    mixture = final.mixture(domains) if domains else None
    if domains and final.is_phased:  # measured schedules: the surrogate gets their phases
        targets = Targets(flops=training_flops(params, tokens), params=params, tokens=tokens, domains=domains,
                          phases=final.phases(domains), phase_end=final.phase_end())
    else:
        targets = Targets(flops=training_flops(params, tokens), params=params, tokens=tokens, mixture=mixture, domains=domains)
    pred = surrogate.predict(targets, level=level)
    rows = []
    cols = set(final.frame.columns)
    for i, run in enumerate(final.run_ids()):
        for j, q in enumerate(pred.names):
            if q not in cols:
                continue
            meas = float(final.column(q)[i])
            mean = float(pred.mean[i, j])
            lo = float(pred.lower[i, j]) if pred.lower is not None else float("nan")
            hi = float(pred.upper[i, j]) if pred.upper is not None else float("nan")
            rows.append({"run": str(run), "params": float(params[i]), "tokens": float(tokens[i]), "quantity": q,
                         "predicted": mean, "lower": lo, "upper": hi, "measured": meas,
                         "rel_error": abs(mean - meas) / abs(meas) if meas else float("nan"),
                         "covered": bool(lo <= meas <= hi) if np.isfinite(lo) and np.isfinite(hi) and np.isfinite(mean) else None})
    return pl.DataFrame(rows, schema={"run": pl.String, "params": pl.Float64, "tokens": pl.Float64, "quantity": pl.String,
                                      "predicted": pl.Float64, "lower": pl.Float64, "upper": pl.Float64, "measured": pl.Float64,
                                      "rel_error": pl.Float64, "covered": pl.Boolean})


def summarize(comparison: pl.DataFrame) -> pl.DataFrame:
    """Median relative error and interval coverage per quantity kind (``loss:*``, ``score:*``)."""
    if comparison.height == 0:
        return pl.DataFrame()
    c = comparison.filter(pl.col("predicted").is_finite()).with_columns(pl.col("quantity").str.split(":").list.first().alias("kind"))
    return (c.group_by("kind", maintain_order=True)
             .agg(pl.len().alias("n"), pl.col("rel_error").median().alias("median_rel_error"),
                  pl.col("rel_error").max().alias("max_rel_error"), pl.col("covered").cast(pl.Float64).mean().alias("coverage")))


__all__ = ["compare", "jobs_from_rows", "pick_diverse", "read_pareto", "read_shortlist", "summarize"]

