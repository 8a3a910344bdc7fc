"""The loop section of a report: the optimise -> validate -> refit loop, round by round.

:func:`read_loop` reads the ``round_<r>/round.json`` files that ``mixopt optimize`` writes
with ``[validate] rounds`` (see :mod:`mixopt.workflows.loop`); :func:`loop_section` renders

* **rounds**: runs fitted, mixtures validated, the rank-1 mixture and its predicted
  objectives (90 % interval), the previous round's pick predicted before and after the
  refit, whether the pick changed and the L1 distance between the picks, and the proposed
  (and, with ``train_next``, trained) sampling run with its own gap;
* **gaps**: per round and quantity, validated runs, median and max relative error, mean
  signed gap (measured - predicted) and interval coverage;
* **runs**: every validated mixture's predicted mean [interval] vs measured per quantity;
* a figure of the median relative error and the coverage per quantity across rounds.

A loop written before these records existed (no ``validation`` in round.json) is read from
its ``validation.csv``; what it cannot show (the decision's change) is said in a note.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl

from mixopt.errors import SchemaError
from mixopt.report._plot import PALETTE, _figure, _interval_text, _list, fmt, style
from mixopt.report.document import FigureItem, Note, Section, TableItem

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure

_VALIDATION_SCHEMA = {"round": pl.Int64, "run": pl.String, "kind": pl.String, "quantity": pl.String, "params": pl.Float64,
                      "predicted": pl.Float64, "lower": pl.Float64, "upper": pl.Float64, "measured": pl.Float64,
                      "gap": pl.Float64, "rel_error": pl.Float64, "covered": pl.Boolean}


@dataclass(frozen=True)
class LoopData:
    """A loop's rounds (each round.json, in order) and the folder they came from."""

    rounds: tuple[Mapping[str, Any], ...]
    folder: Path | None = None

    @classmethod
    def from_rounds(cls, rounds: Sequence[Mapping[str, Any]], folder: Path | None = None) -> LoopData:
        if not rounds:
            raise SchemaError("A loop report needs at least one round; got none.")
        return cls(tuple(sorted(rounds, key=lambda r: int(r.get("round", 0)))), folder)

    def validation(self) -> pl.DataFrame:
        """Every validated mixture's (and trained proposal's) predicted vs measured, one row per quantity."""
        rows: list[dict[str, Any]] = []
        for rd in self.rounds:
            r = int(rd["round"])
            for kind, items in (("validation", rd.get("validation") or []),
                                ("proposal", (rd.get("next_trained") or {}).get("comparison") or [])):
                for x in items:
                    pred, meas = _num(x.get("predicted")), _num(x.get("measured"))
                    lo, hi = _num(x.get("lower")), _num(x.get("upper"))
                    cov = x.get("covered")
                    rows.append({"round": r, "run": str(x.get("run")), "kind": kind, "quantity": str(x.get("quantity")),
                                 "params": _num(x.get("params")), "predicted": pred, "lower": lo, "upper": hi, "measured": meas,
                                 "gap": meas - pred, "rel_error": abs(meas - pred) / abs(meas) if meas else math.nan,
                                 "covered": (lo <= meas <= hi) if cov is None and math.isfinite(lo) and math.isfinite(hi) else cov})
        return pl.DataFrame(rows, schema=_VALIDATION_SCHEMA)

    def gaps(self) -> pl.DataFrame:
        """Per round and quantity of the validated mixtures: n, median / max relative error, mean gap, coverage."""
        v = self.validation().filter((pl.col("kind") == "validation") & pl.col("predicted").is_finite())
        return (v.group_by(["round", "quantity"], maintain_order=True)
                 .agg(pl.len().alias("n"), pl.col("rel_error").median().alias("median_rel_error"),
                      pl.col("rel_error").max().alias("max_rel_error"), pl.col("gap").mean().alias("mean_gap"),
                      pl.col("covered").cast(pl.Float64).mean().alias("coverage"))
                 .sort(["round"], maintain_order=True))

    def objectives(self) -> list[str]:
        for rd in self.rounds:
            obj = rd.get("objectives")
            if obj:
                return [str(o[0]).strip() for o in obj]
            pick = ((rd.get("decision") or {}).get("pick") or {}).get("predicted")
            if pick:
                return list(pick)
        return []

    def rounds_table(self) -> pl.DataFrame:
        """One row per round: runs fitted, validated, the pick, its change, the proposal."""
        names = self.objectives()
        rows = []
        for rd in self.rounds:
            dec = rd.get("decision") or {}
            pick = dec.get("pick") or {}
            prev = dec.get("previous") or {}
            nxt = rd.get("next_trained") or {}
            prop = rd.get("proposal") or {}
            row: dict[str, Any] = {"round": int(rd["round"]), "runs fitted": rd.get("runs"),
                                   "validated": len(rd.get("validated") or _ids(rd.get("validation"))),
                                   "pick": _mix_text(pick.get("mixture"))}
            for q in names:
                row[f"pick {q}"] = _pred_text((pick.get("predicted") or {}).get(q))
            for q in names:
                b, a = (prev.get("before_refit") or {}).get(q), (prev.get("after_refit") or {}).get(q)
                row[f"previous pick {q}: before -> after refit"] = (f"{_pred_text(b)} -> {_pred_text(a)}" if b or a else "-")
            row["pick changed"] = "-" if "changed" not in dec else ("yes" if dec["changed"] else "no")
            row["L1 to previous pick"] = dec.get("l1")
            row["proposal"] = _proposal_text(prop)
            comp = nxt.get("comparison") or []
            errs = [abs(_num(x["measured"]) - _num(x["predicted"])) / abs(_num(x["measured"])) for x in comp
                    if str(x.get("quantity", "")).startswith("loss") and _num(x.get("measured"))]
            row["proposal trained"] = nxt.get("run") if comp else ("failed" if nxt.get("failed") else "no")
            row["proposal loss median rel. error"] = float(sorted(errs)[len(errs) // 2]) if errs else None
            rows.append(row)
        return pl.DataFrame(rows)


def _num(v: Any) -> float:
    try:
        x = float(v)
    except (TypeError, ValueError):
        return math.nan
    return x


def _ids(rows: Any) -> list[str]:
    return list(dict.fromkeys(str(x.get("run")) for x in rows or []))


def _mix_text(mix: Mapping[str, float] | None) -> str:
    return ", ".join(f"{d} {float(x):.2f}" for d, x in (mix or {}).items()) or "-"


def _pred_text(p: Mapping[str, Any] | None) -> str:
    if not p:
        return "-"
    return _interval_text(_num(p.get("mean")), _num(p.get("lower")), _num(p.get("upper")), 4)


def _proposal_text(p: Mapping[str, Any]) -> str:
    if not p or not p.get("mixture"):
        return "-"
    rule = p.get("rule", "?")
    text = f"{rule}: {_mix_text(p['mixture'])} at N={fmt(p.get('params'), 3)}, D={fmt(p.get('tokens'), 3)}"
    return text + (" (plan failed: uncertainty rule)" if p.get("plan_error") else "")


def read_loop(folder: str | Path) -> LoopData:
    """The rounds of a loop's ``[validate] output`` folder (``round_<r>/round.json``).

    Raises:
        SchemaError: no such folder, no round in it, or an unreadable round file.
    """
    base = Path(folder)
    if not base.is_dir():
        raise SchemaError(f"Loop folder {str(base)!r} not found: give the [validate] output folder of a `mixopt optimize` loop "
                          "(it holds round_1/, round_2/, ...).")
    files = sorted(base.glob("round_*/round.json"), key=lambda p: int(p.parent.name.split("_")[-1]) if p.parent.name.split("_")[-1].isdigit() else 0)
    if not files:
        raise SchemaError(f"{base} holds no round_<r>/round.json: run `mixopt optimize CONFIG` with [validate] rounds >= 1 "
                          "and output pointing here first.")
    rounds = []
    for f in files:
        try:
            rd = json.loads(f.read_text())
        except (OSError, ValueError) as e:
            raise SchemaError(f"Cannot read round file {f}: {e}; re-run the loop (it rewrites each round's file).") from e
        if not isinstance(rd, dict) or "round" not in rd:
            raise SchemaError(f"{f} is not a loop round file (a JSON object with a 'round' key); got {type(rd).__name__}.")
        if not rd.get("validation") and (f.parent / "validation.csv").is_file():  # a loop written before round.json kept it
            rd = {**rd, "validation": pl.read_csv(f.parent / "validation.csv").to_dicts()}
        rounds.append(rd)
    return LoopData.from_rounds(rounds, base)


def _gap_figure(data: LoopData) -> tuple[Figure, dict[str, Any]] | None:
    g = data.gaps()
    if g.height == 0:
        return None
    qs = list(dict.fromkeys(g["quantity"].to_list()))
    with style():
        fig, axes = _figure(2, ncols=2, height=3.2)
        out: dict[str, Any] = {"kind": "loop_gaps", "series": []}
        for i, q in enumerate(qs):
            t = g.filter(pl.col("quantity") == q).sort("round")
            x = t["round"].to_numpy()
            err, cov = t["median_rel_error"].to_numpy().astype(float), t["coverage"].to_numpy().astype(float)
            c = PALETTE[i % len(PALETTE)]
            axes[0].plot(x, 100 * err, "o-", color=c, label=q, gid=f"loop_gaps/error/{q}")
            axes[1].plot(x, 100 * cov, "o-", color=c, label=q, gid=f"loop_gaps/coverage/{q}")
            out["series"].append({"quantity": q, "round": [int(v) for v in x], "median_rel_error": _list(err), "coverage": _list(cov)})
        axes[0].set_ylabel("median |measured - predicted| / measured (%)")
        axes[1].set_ylabel("validated runs inside the interval (%)")
        axes[1].set_ylim(-5, 105)
        for ax, title in zip(axes, ("gap per round", "interval coverage per round"), strict=True):
            ax.set_xlabel("round")
            ax.set_xticks(sorted(set(g["round"].to_list())))
            ax.set_title(title)
        axes[0].legend(fontsize=7, frameon=False)
    return fig, out


def loop_section(data: LoopData) -> Section:
    """The report's ``loop`` section (see the module docstring)."""
    sec = Section("loop", "Loop: round by round",
                  "Each round refits the surrogate on every run so far, searches, trains the chosen mixtures at the target and "
                  "compares them with the prediction; the decision is the round's rank-1 mixture.")
    sec.items.append(TableItem("loop_rounds", "Rounds: runs fitted, the pick and its change, the proposed sampling run",
                               data.rounds_table(), wrap=True,
                               caption="before -> after refit: the previous round's pick predicted by the previous round's surrogate "
                                       "and by this round's (mean [90 % interval])."))
    if not any((rd.get("decision") or {}).get("pick") for rd in data.rounds):
        sec.items.append(Note("These round files have no decision record (written by an older mixopt): re-run the loop to record "
                              "the pick and its change between rounds.", "warn"))
    g = data.gaps()
    if g.height:
        r = _gap_figure(data)
        if r is not None:
            sec.items.append(FigureItem("loop_gaps", "Predicted vs measured across rounds", r[0], r[1]))
        sec.items.append(TableItem("loop_gaps_table", "Gap per round and quantity (validated mixtures)", g,
                                   percent=("median_rel_error", "max_rel_error", "coverage")))
        v = data.validation()
        t = v.select("round", "run", "kind", "quantity",
                     pl.struct("predicted", "lower", "upper").map_elements(
                         lambda s: _interval_text(s["predicted"], s["lower"], s["upper"], 4), return_dtype=pl.String).alias("predicted [interval]"),
                     "measured", "gap", "rel_error", "covered")
        sec.items.append(TableItem("loop_runs", "Trained runs: predicted vs measured", t, percent=("rel_error",)))
    else:
        sec.items.append(Note("No round has a validated run yet (every training job failed or none was chosen).", "warn"))
    return sec


__all__ = ["LoopData", "loop_section", "read_loop"]
