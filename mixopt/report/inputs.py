"""What a report is drawn from: backtest results, search results, validation tables, provenance.

Each reader turns a file into a small, normalised object and is *tolerant*: it renders what
is present (columns added by newer mixopt versions are used when they exist, missing
optional ones are skipped) and raises :class:`~mixopt.errors.SchemaError` naming the file,
what was expected and what was found when a required piece is missing.

File formats read here:

* **backtest results**: the JSON written by ``mixopt backtest --json`` or ``--out FILE.json``
  (``{"results": [{"method", "split", "level", "unpredictable", "rows", "summary"}],
  "comparison": [...]}``), or a CSV written by ``--out FILE.csv`` (one row per held-out
  run, method and quantity, with a ``method`` column).
* **search results**: the Pareto table written by ``mixopt optimize`` (``.csv``,
  ``.parquet`` or ``.json``) and, next to it, ``<stem>.summary.json`` (objectives with their
  directions, reference point, weights, best row, seed, storage) and optionally
  ``<stem>.trials.<ext>`` (every trial, for the dominated points and the hypervolume history).
* **validation tables**: predicted vs measured scores of trained mixtures, long format with
  columns ``quantity``, ``predicted`` (or ``mean``/``prediction``), ``measured`` (or
  ``actual``/``observed``), optional ``lower``/``upper`` and an id column (``run``,
  ``trial``, ``mixture`` or ``name``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from mixopt.errors import SchemaError

logger = logging.getLogger(__name__)


# -- generic file helpers --------------------------------------------------------------------
def read_frame(path: str | Path, what: str) -> pl.DataFrame:
    """Read a CSV / Parquet / JSON (list of objects) / JSONL table.

    Raises:
        SchemaError: missing file, unknown extension or unreadable content.
    """
    p = Path(path)
    if not p.is_file():
        raise SchemaError(f"{what} file {str(p)!r} does not exist; check the path.")
    ext = p.suffix.lower()
    try:
        if ext == ".csv":
            return pl.read_csv(p, infer_schema_length=10_000)
        if ext == ".parquet":
            return pl.read_parquet(p)
        if ext == ".jsonl":
            return pl.read_ndjson(p)
        if ext == ".json":
            data = json.loads(p.read_text())
            if isinstance(data, dict) and "rows" in data:
                data = data["rows"]
            if not isinstance(data, list):
                raise SchemaError(f"{what} file {p.name} must hold a JSON list of row objects, got {type(data).__name__}.")
            return pl.DataFrame(data, infer_schema_length=None) if data else pl.DataFrame()
    except SchemaError:
        raise
    except Exception as e:  # noqa: BLE001 - any parser failure is bad input
        raise SchemaError(f"{what} file {p.name} could not be read as {ext[1:].upper()} ({type(e).__name__}: {e}).") from None
    raise SchemaError(f"{what} file {p.name} must end in .csv, .parquet, .json or .jsonl, got {ext or 'no extension'!r}.")


def sha256_file(path: str | Path) -> str:
    """SHA-256 hex digest of a file (streamed)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def file_record(path: str | Path, role: str) -> dict[str, Any]:
    """``{role, path, bytes, sha256}`` of a file, or of every file in a directory."""
    p = Path(path)
    if p.is_dir():
        return {"role": role, "path": str(p), "files": [file_record(c, role) for c in sorted(p.iterdir()) if c.is_file()]}
    if not p.is_file():
        return {"role": role, "path": str(p), "bytes": None, "sha256": None}
    return {"role": role, "path": str(p), "bytes": p.stat().st_size, "sha256": sha256_file(p)}


def _num(x: Any) -> float:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return math.nan
    return v


# -- backtests -------------------------------------------------------------------------------
@dataclass(frozen=True)
class BacktestData:
    """Backtest results of one or more methods on one split.

    Attributes:
        methods: method names in order.
        rows: one row per (method, held-out run, quantity): ``method``, ``run``,
            ``quantity``, ``predicted``, ``lower``, ``upper``, ``actual``, ``rel_error``,
            ``covered`` (and whatever else the file had: params, flops, mix:<d>, ...).
        level: nominal interval coverage.
        split: description of the held-out runs.
        unpredictable: method -> {quantity: reason}.
        comparison: per quantity, each method's median relative error and the winner
            (None when it cannot be computed).
        source: file it came from (None when built in memory).
        lower_better: quantities whose lower values are better beyond losses (BPB-like
            benchmarks), for :meth:`decisions`.
    """

    methods: tuple[str, ...]
    rows: pl.DataFrame
    level: float
    split: str = ""
    unpredictable: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    comparison: pl.DataFrame | None = None
    source: Path | None = None
    lower_better: Mapping[str, bool] = field(default_factory=dict)

    def summary(self) -> pl.DataFrame:
        """Per method and quantity: n, median / mean relative error, interval coverage."""
        if self.rows.height == 0:
            return pl.DataFrame()
        return (
            self.rows.group_by("method", "quantity", maintain_order=True)
            .agg(
                pl.len().alias("n"),
                pl.col("rel_error").median().alias("median_rel_error"),
                pl.col("rel_error").mean().alias("mean_rel_error"),
                pl.col("covered").cast(pl.Float64).mean().alias("coverage"),
            )
        )

    def decisions(self) -> pl.DataFrame:
        """Per method, quantity and held-out scale with >= 3 held-out mixtures: Spearman ρ, pairwise
        accuracy, the pick's actual rank and regret (:func:`mixopt.surrogate.decision.decision_metrics`)."""
        from mixopt.surrogate.decision import DECISION_SCHEMA, decision_metrics

        frames = []
        for m in self.methods:
            sub = self.rows.filter(pl.col("method") == m)
            if sub.height:
                d = decision_metrics(sub, lower_better=self.lower_better)
                if d.height:
                    frames.append(d.select(pl.lit(m, dtype=pl.String).alias("method"), pl.all()))
        return pl.concat(frames, how="vertical") if frames else pl.DataFrame(schema={"method": pl.String, **DECISION_SCHEMA})

    @classmethod
    def from_results(cls, results: Sequence[Any], comparison: pl.DataFrame | None = None,
                     source: Path | None = None) -> BacktestData:
        """From :class:`mixopt.backtest.BacktestResult` objects or their ``to_json()`` dicts."""
        dicts = [r.to_json() if hasattr(r, "to_json") else dict(r) for r in results]
        if not dicts:
            raise SchemaError("No backtest results to report (the list is empty): run `mixopt backtest` with at least one method that fits.")
        frames = []
        for d in dicts:
            rows = d.get("rows") or []
            if isinstance(rows, pl.DataFrame):
                f = rows
            else:
                f = pl.DataFrame(rows, infer_schema_length=None) if rows else pl.DataFrame()
            if f.height:
                frames.append(f.with_columns(pl.lit(str(d.get("method", "?"))).alias("method")))
        rows = _normalise_backtest_rows(pl.concat(frames, how="diagonal_relaxed") if frames else pl.DataFrame(), source)
        level = _num(dicts[0].get("level", 0.9))
        return cls(
            methods=tuple(str(d.get("method", "?")) for d in dicts),
            rows=rows,
            level=level if math.isfinite(level) else 0.9,
            split=str(dicts[0].get("split", "")),
            unpredictable={str(d.get("method", "?")): dict(d.get("unpredictable") or {}) for d in dicts},
            comparison=comparison,
            source=source,
            lower_better={str(k): bool(v) for d in dicts for k, v in dict(d.get("lower_is_better") or {}).items()},
        )


_BACKTEST_REQUIRED = ("quantity", "predicted", "actual")


def _normalise_backtest_rows(rows: pl.DataFrame, source: Path | None) -> pl.DataFrame:
    if rows.height == 0:
        return pl.DataFrame(schema={"method": pl.String, "run": pl.String, "quantity": pl.String, "predicted": pl.Float64,
                                    "lower": pl.Float64, "upper": pl.Float64, "actual": pl.Float64,
                                    "rel_error": pl.Float64, "covered": pl.Boolean})
    missing = [c for c in (*_BACKTEST_REQUIRED, "method") if c not in rows.columns]
    if missing:
        where = f" in {source.name}" if source else ""
        raise SchemaError(
            f"Backtest rows{where} lack column(s) {missing}; expected {['method', *_BACKTEST_REQUIRED]} "
            f"(+ lower, upper, rel_error, covered), got {rows.columns}. Write the file with `mixopt backtest --out FILE`."
        )
    out = rows
    for c in ("predicted", "actual", "lower", "upper", "rel_error"):
        if c in out.columns:
            out = out.with_columns(pl.col(c).cast(pl.Float64, strict=False))
        else:
            out = out.with_columns(pl.lit(None, dtype=pl.Float64).alias(c))
    if rows.schema.get("rel_error") is None or out["rel_error"].null_count() == out.height:
        out = out.with_columns(((pl.col("predicted") - pl.col("actual")).abs() / pl.col("actual").abs()).alias("rel_error"))
    if "covered" not in out.columns:
        out = out.with_columns(((pl.col("lower") <= pl.col("actual")) & (pl.col("actual") <= pl.col("upper"))).alias("covered"))
    else:
        out = out.with_columns(pl.col("covered").cast(pl.Boolean, strict=False))
    if "run" not in out.columns:
        out = out.with_columns(pl.int_range(pl.len()).cast(pl.String).alias("run"))
    return out.with_columns(pl.col("run").cast(pl.String), pl.col("method").cast(pl.String), pl.col("quantity").cast(pl.String))


def read_backtest(path: str | Path) -> BacktestData:
    """Read backtest results written by ``mixopt backtest --json`` / ``--out`` (JSON or CSV)."""
    p = Path(path)
    if p.suffix.lower() == ".json":
        if not p.is_file():
            raise SchemaError(f"Backtest results file {str(p)!r} does not exist; write one with `mixopt backtest ... --out {p.name}`.")
        try:
            data = json.loads(p.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise SchemaError(f"Backtest results file {p.name} is not valid JSON ({e}).") from None
        if not isinstance(data, dict) or not isinstance(data.get("results"), list):
            raise SchemaError(
                f"Backtest results file {p.name} must be the JSON of `mixopt backtest --json` "
                f"(an object with a 'results' list); got {type(data).__name__} with keys {list(data)[:8] if isinstance(data, dict) else '-'}."
            )
        comp = data.get("comparison")
        comparison = pl.DataFrame(comp, infer_schema_length=None) if comp else None
        return BacktestData.from_results(data["results"], comparison=comparison, source=p)
    rows = read_frame(p, "Backtest results")
    if "method" not in rows.columns:
        rows = rows.with_columns(pl.lit(p.stem).alias("method"))
    rows = _normalise_backtest_rows(rows, p)
    methods = tuple(dict.fromkeys(rows["method"].to_list()))
    level = float(rows["level"][0]) if "level" in rows.columns and rows.height else 0.9
    return BacktestData(methods=methods, rows=rows, level=level, source=p)


def comparison_table(data: BacktestData) -> pl.DataFrame:
    """Per quantity: each method's median relative error, and the winner (lowest)."""
    if data.comparison is not None and data.comparison.height:
        return data.comparison
    s = data.summary()
    if s.height == 0:
        return pl.DataFrame()
    wide = s.pivot(on="method", index="quantity", values="median_rel_error")
    cols = [c for c in wide.columns if c != "quantity"]
    winner = [min(((r[c], c) for c in cols if r[c] is not None and math.isfinite(r[c])), default=(None, None))[1]
              for r in wide.iter_rows(named=True)]
    return wide.with_columns(pl.Series("winner", winner, dtype=pl.String))


# -- searches --------------------------------------------------------------------------------
@dataclass(frozen=True)
class SearchData:
    """A finished search: the Pareto set, its summary and (optionally) every trial.

    Attributes:
        pareto: the Pareto table (``trial``, ``mix:<d>``, ``flops``, ``obj:<o>``,
            ``<q>``/``<q>:lower``/``<q>:upper``, ...).
        objectives: ``(name, direction)`` per objective.
        domains: mixture domains.
        summary: the summary JSON (may be empty).
        trials: every finished trial (``trial``, ``obj:<o>``, ``feasible``), or None.
        history: ``(trials, hypervolume)`` pairs of the optimisation history, or None.
        source: the Pareto file (None when built in memory).
        shortlist: the search's own shortlist (rows of the front with a ``rank``), or None
            (then the report picks one, see :func:`mixopt.report.figures.shortlist_rows`).
    """

    pareto: pl.DataFrame
    objectives: tuple[tuple[str, str], ...]
    domains: tuple[str, ...]
    summary: Mapping[str, Any] = field(default_factory=dict)
    trials: pl.DataFrame | None = None
    history: pl.DataFrame | None = None
    source: Path | None = None
    shortlist: pl.DataFrame | None = None

    @property
    def best(self) -> Mapping[str, Any] | None:
        b = self.summary.get("best")
        return b if isinstance(b, Mapping) else None

    @property
    def level(self) -> float:
        v = _num(self.summary.get("level", 0.9))
        return v if math.isfinite(v) else 0.9

    @property
    def reference_point(self) -> dict[str, float] | None:
        r = self.summary.get("reference_point")
        if isinstance(r, Mapping) and all(n in r for n, _ in self.objectives):
            return {n: float(r[n]) for n, _ in self.objectives}
        return None

    @classmethod
    def from_result(cls, result: Any) -> SearchData:
        """From an in-memory :class:`mixopt.search.SearchResult`."""
        summary = result.to_json()
        summary.pop("pareto", None)
        summary.pop("shortlist", None)
        trials = result.trials if getattr(result, "trials", None) is not None and result.trials.height else None
        short = getattr(result, "shortlist", None)
        short = short if isinstance(short, pl.DataFrame) and short.height else None
        hist = getattr(result, "hypervolume_history", None)
        if hist and "hypervolume_history" not in summary:
            summary["hypervolume_history"] = [dict(h) for h in hist]
        data = cls(pareto=result.pareto, objectives=tuple((str(n), str(d)) for n, d in result.objectives),
                   domains=tuple(result.domains), summary=summary, trials=trials, shortlist=short)
        return data.with_history()

    def with_history(self) -> SearchData:
        """Fill ``history``: recomputed per block of trials when the trials are known (finer), else the
        per-run history the search recorded in its summary."""
        if self.history is not None:
            return self
        hist = None
        if self.trials is not None:
            hist = hypervolume_history(self.trials, self.objectives, self.reference_point)
        if hist is None:
            hist = _history_from_summary(self.summary)
        return dataclasses.replace(self, history=hist)


def _history_from_summary(summary: Mapping[str, Any]) -> pl.DataFrame | None:
    """A hypervolume history recorded by the search itself (several layouts accepted)."""
    for key in ("hypervolume_history", "history"):
        h = summary.get(key)
        if not h:
            continue
        try:
            if isinstance(h, Mapping):
                t = h.get("trials") or h.get("n_trials") or h.get("trial")
                v = h.get("hypervolume") or h.get("hv")
                if t is not None and v is not None:
                    return pl.DataFrame({"trials": [int(x) for x in t], "hypervolume": [float(x) for x in v]})
            elif isinstance(h, list) and h:
                first = h[0]
                if isinstance(first, Mapping):
                    tk = next(k for k in ("trials", "n_trials", "trial", "n") if k in first)
                    vk = next(k for k in ("hypervolume", "hv") if k in first)
                    return pl.DataFrame({"trials": [int(r[tk]) for r in h], "hypervolume": [_num(r[vk]) for r in h]})
                if isinstance(first, (list, tuple)) and len(first) >= 2:
                    return pl.DataFrame({"trials": [int(r[0]) for r in h], "hypervolume": [_num(r[1]) for r in h]})
        except (StopIteration, TypeError, ValueError):
            logger.warning("summary %r has an unreadable layout; the hypervolume history is recomputed if possible", key)
    return None


def hypervolume_history(trials: pl.DataFrame, objectives: Sequence[tuple[str, str]],
                        reference_point: Mapping[str, float] | None, n_points: int = 60) -> pl.DataFrame | None:
    """Hypervolume of the feasible front after each block of trials (in trial-number order).

    Uses the search's final reference point so that the curve ends at the reported
    hypervolume; None when the trials lack objective columns or no reference is known.
    """
    from mixopt.search.results import default_reference, hypervolume, pareto_mask

    cols = [f"obj:{n}" for n, _ in objectives]
    if not cols or any(c not in trials.columns for c in cols) or trials.height == 0:
        return None
    dirs = [d for _, d in objectives]
    t = trials.sort("trial") if "trial" in trials.columns else trials
    vals = t.select(cols).to_numpy().astype(np.float64)
    ok = np.all(np.isfinite(vals), axis=1)
    if "feasible" in t.columns:
        ok &= t["feasible"].cast(pl.Boolean, strict=False).fill_null(False).to_numpy()
    if not ok.any():
        return None
    if reference_point is not None:
        ref = np.array([float(reference_point[n]) for n, _ in objectives])
    else:
        fv = vals[ok]
        ref = default_reference(fv[pareto_mask(fv, dirs)], dirs)
    n = vals.shape[0]
    ends = np.unique(np.linspace(0, n, min(n_points, n) + 1).round().astype(int)[1:])
    front = np.zeros((0, len(cols)))
    start = 0
    xs, hv = [], []
    for e in ends:
        block = vals[start:e][ok[start:e]]
        if block.size:
            cand = np.vstack([front, block])
            front = cand[pareto_mask(cand, dirs)]
        start = e
        xs.append(int(e))
        hv.append(hypervolume(front, ref, dirs) if front.size else 0.0)
    return pl.DataFrame({"trials": xs, "hypervolume": hv})


def _objectives_from(summary: Mapping[str, Any], pareto: pl.DataFrame) -> tuple[tuple[str, str], ...]:
    objs = summary.get("objectives")
    out: list[tuple[str, str]] = []
    if isinstance(objs, list):
        for o in objs:
            if isinstance(o, Mapping) and "name" in o:
                out.append((str(o["name"]), str(o.get("direction", "maximize"))))
            elif isinstance(o, (list, tuple)) and len(o) == 2:
                out.append((str(o[0]), str(o[1])))
    if out:
        return tuple(out)
    # no summary: every obj:<o> column, maximised unless it is compute or a loss
    for c in pareto.columns:
        if c.startswith("obj:"):
            n = c[4:]
            out.append((n, "minimize" if n == "compute" or n.startswith("loss") else "maximize"))
    return tuple(out)


def read_search(path: str | Path, *, trials: str | Path | None = None, storage_history: bool = True) -> SearchData:
    """Read the Pareto table written by ``mixopt optimize`` and the files next to it.

    Args:
        path: the Pareto table (``.csv``, ``.parquet`` or ``.json``).
        trials: a trials table; default ``<stem>.trials.<ext>`` next to ``path`` if present.
        storage_history: when no trials table and no recorded history exist, read the
            trials from the study's storage named in the summary (a local SQLite file) to
            recompute the hypervolume history.
    """
    p = Path(path)
    pareto = read_frame(p, "Pareto table")
    summary: dict[str, Any] = {}
    sp = p.with_name(f"{p.stem}.summary.json")
    if sp.is_file():
        try:
            summary = json.loads(sp.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise SchemaError(f"Search summary {sp.name} is not valid JSON ({e}); rerun `mixopt optimize` to rewrite it.") from None
    else:
        logger.warning("no %s next to %s: objective directions are guessed from the column names", sp.name, p.name)
    objectives = _objectives_from(summary, pareto)
    if pareto.height and not objectives:
        raise SchemaError(f"Pareto table {p.name} has no obj:<objective> columns and no summary; got columns {pareto.columns[:12]}.")
    domains = tuple(summary.get("domains") or [c[4:] for c in pareto.columns if c.startswith("mix:")])
    tpath = Path(trials) if trials is not None else next(
        (q for q in (p.with_name(f"{p.stem}.trials{p.suffix}"),) if q.is_file()), None)
    tframe = read_frame(tpath, "Trials table") if tpath is not None else None
    spath = p.with_name(f"{p.stem}.shortlist{p.suffix}")
    short = read_frame(spath, "Shortlist table") if spath.is_file() else None
    if tframe is None and storage_history:
        tframe = _trials_from_storage(summary, p.parent)
    data = SearchData(pareto=pareto, objectives=objectives, domains=domains, summary=summary, trials=tframe, source=p,
                      shortlist=short if short is not None and short.height else None)
    return data.with_history()


def _trials_from_storage(summary: Mapping[str, Any], base: Path) -> pl.DataFrame | None:
    """Every finished trial's objective values and feasibility, read from the study's local storage file."""
    storage, name = summary.get("storage"), summary.get("study_name")
    if not storage or not name or str(storage) == "memory":
        return None
    url = str(storage)
    local = None
    for prefix in ("sqlite:///", "journal:"):
        if url.startswith(prefix):
            local = Path(url[len(prefix):])
    if local is None:
        return None  # a database server: not read from a report
    if not local.is_absolute():
        local = base / local
    url = f"journal:{local}" if url.startswith("journal:") else f"sqlite:///{local}"
    if not local.is_file():
        return None
    try:
        import optuna

        from mixopt.search.runner import open_storage

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        study = optuna.load_study(study_name=str(name), storage=open_storage(url))
        rows = []
        objs = [o["name"] for o in summary.get("objectives", []) if isinstance(o, Mapping)]
        for t in study.get_trials(deepcopy=False):
            if not t.state.is_finished():
                continue
            vals = t.values if t.values is not None else [math.nan] * len(objs)
            tc = getattr(t, "constraints", None)
            cons = list(tc.values()) if isinstance(tc, Mapping) else list(tc or [])
            feasible = t.values is not None and all(_num(c) <= 0 for c in cons)
            rows.append({"trial": t.number, **{f"obj:{o}": float(v) for o, v in zip(objs, vals, strict=False)},
                         "feasible": feasible})
        return pl.DataFrame(rows) if rows else None
    except Exception as e:  # noqa: BLE001 - the history is optional; say why it is missing
        logger.warning("could not read the trials of study %r from %s (%s: %s); no hypervolume history", name, local,
                       type(e).__name__, e)
        return None


# -- validation ------------------------------------------------------------------------------
_PRED_ALIASES = ("predicted", "prediction", "pred", "mean")
_MEAS_ALIASES = ("measured", "actual", "observed", "value")
_ID_ALIASES = ("run", "trial", "mixture", "name", "id")


def read_validation(path: str | Path) -> pl.DataFrame:
    """Predicted vs measured quantities of trained (validation) mixtures.

    Returns a frame with ``id``, ``quantity``, ``predicted``, ``measured``, ``lower``,
    ``upper`` (NaN when absent). A wide table with ``<q>:predicted`` / ``<q>:measured``
    column pairs is accepted too.
    """
    p = Path(path)
    frame = read_frame(p, "Validation table")
    return normalise_validation(frame, p.name)


def normalise_validation(frame: pl.DataFrame, name: str = "validation table") -> pl.DataFrame:
    cols = frame.columns
    idc = next((c for c in _ID_ALIASES if c in cols), None)
    if "quantity" not in cols:
        pairs = [c[: -len(":predicted")] for c in cols if c.endswith(":predicted") and f"{c[:-len(':predicted')]}:measured" in cols]
        if not pairs:
            raise SchemaError(
                f"{name} must be long (columns quantity, predicted, measured[, lower, upper, run]) or wide "
                f"(<quantity>:predicted and <quantity>:measured pairs); got columns {cols[:15]}."
            )
        parts = []
        for q in pairs:
            sel = {
                "id": (frame[idc].cast(pl.String) if idc else pl.Series([str(i) for i in range(frame.height)])),
                "quantity": pl.Series([q] * frame.height),
                "predicted": frame[f"{q}:predicted"].cast(pl.Float64, strict=False),
                "measured": frame[f"{q}:measured"].cast(pl.Float64, strict=False),
                "lower": frame[f"{q}:lower"].cast(pl.Float64, strict=False) if f"{q}:lower" in cols else pl.Series([math.nan] * frame.height),
                "upper": frame[f"{q}:upper"].cast(pl.Float64, strict=False) if f"{q}:upper" in cols else pl.Series([math.nan] * frame.height),
            }
            parts.append(pl.DataFrame(sel))
        return pl.concat(parts, how="vertical_relaxed")
    pc = next((c for c in _PRED_ALIASES if c in cols), None)
    mc = next((c for c in _MEAS_ALIASES if c in cols), None)
    missing = [w for w, c in (("predicted", pc), ("measured", mc)) if c is None]
    if missing:
        raise SchemaError(
            f"{name} lacks the {' and '.join(missing)} column(s): expected one of {list(_PRED_ALIASES)} and one of "
            f"{list(_MEAS_ALIASES)} next to 'quantity'; got columns {cols[:15]}."
        )
    n = frame.height
    return pl.DataFrame({
        "id": frame[idc].cast(pl.String) if idc else pl.Series([str(i) for i in range(n)]),
        "quantity": frame["quantity"].cast(pl.String),
        "predicted": frame[pc].cast(pl.Float64, strict=False),
        "measured": frame[mc].cast(pl.Float64, strict=False),
        "lower": frame["lower"].cast(pl.Float64, strict=False) if "lower" in cols else pl.Series([math.nan] * n),
        "upper": frame["upper"].cast(pl.Float64, strict=False) if "upper" in cols else pl.Series([math.nan] * n),
    })


__all__ = [
    "BacktestData",
    "SearchData",
    "comparison_table",
    "file_record",
    "hypervolume_history",
    "normalise_validation",
    "read_backtest",
    "read_frame",
    "read_search",
    "read_validation",
    "sha256_file",
]
