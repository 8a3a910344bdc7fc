"""``mixopt fit``, ``predict`` and ``backtest``: surrogates fitted, used and judged on held-out runs."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

import numpy as np

from mixopt._files import check_writable
from mixopt.cli._output import UsageError, command_line, common, emit_json, floats, pairs, print_frame, settings_json
from mixopt.cli.data_args import add_data_args, read_runs_args
from mixopt.data.table import training_flops
from mixopt.errors import FitError


def method_settings(items: Sequence[str] | str | None, methods: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Settings per method from ``--settings`` (repeatable).

    Accepted forms: ``--settings METHOD='{json}'`` (one per method); a JSON object keyed by
    method (``'{"flpm": {...}, "dml": {...}}'``); or a plain JSON object when exactly one
    method is given. A plain object with several methods is refused: one method's settings
    would silently change another method (e.g. turn ``dml`` into another law).
    """
    if not items:
        return {}
    if isinstance(items, str):
        items = [items]
    out: dict[str, dict[str, Any]] = {}
    for item in items:
        text = item.strip()
        head, sep, rest = text.partition("=")
        if sep and not text.startswith("{") and head.strip() and "{" not in head:
            m = head.strip()
            if m not in methods:
                raise UsageError(f"--settings names method {m!r}, which is not among --method {list(methods)}; "
                                  "fix the name or add the method.")
            out.setdefault(m, {}).update(settings_json(rest, f"--settings {m}=..."))
            continue
        obj = settings_json(text, "--settings")
        if obj and all(k in methods for k in obj) and all(isinstance(v, dict) for v in obj.values()):
            for m, v in obj.items():
                out.setdefault(m, {}).update(v)
        elif len(methods) == 1:
            out.setdefault(methods[0], {}).update(obj)
        else:
            raise UsageError(
                f"--settings {text!r} does not say which method it is for, and --method lists {list(methods)}: "
                "settings of one method would silently change the others. Give them per method, e.g. "
                f"--settings {methods[0]}='{{...}}' (repeatable), or a JSON object keyed by method."
            )
    return out


def cmd_fit(args: argparse.Namespace) -> int:
    from mixopt.progress import step_bar  # [metric] progress on long fits, quiet with --json
    from mixopt.surrogate.base import check_model_out
    from mixopt.workflows.fit import fit_model, save_model

    out_dir = check_model_out(args.out)  # before reading or fitting anything
    with step_bar(["read the run table", f"fit {args.method}", "save"], enabled=not args.json, desc="mixopt fit") as done:
        runs = read_runs_args(args)
        done()
        model = fit_model(runs, args.method, method_settings(args.settings, [args.method]).get(args.method, {}))
        done()
        out = save_model(model, out_dir)
        done()
    info = {"model": str(out), "method": args.method, "outputs": list(model.outputs_), "domains": list(model.domains_),
            "unpredictable": dict(model.unpredictable_), "runs": runs.n_runs}
    if getattr(model, "selection_", None) is not None:  # flp: auto choices
        info["selection"] = model.selection_.to_dicts()
    if args.json:
        emit_json(info)
    else:
        print(f"fitted {args.method} on {runs.n_runs} runs ({len(runs)} checkpoints); saved to {out}")
        print(f"  predicts: {', '.join(q for q in model.outputs_ if q not in model.unpredictable_)}")
        for q, why in model.unpredictable_.items():
            print(f"  not predictable: {q}: {why}")
        # flp: what `auto` chose and each candidate's internal backtest score
        selection = getattr(model, "selection_", None)
        if selection is not None and selection.height:
            print_frame(selection, "\nchoices (internal backtest on these runs; score = held-out error, lower wins):")
            _print_why(selection)
    return 0


def _print_why(selection: Any) -> None:
    """One line per choice: what was chosen, on which folds, and why (FLP-M / DML ``auto``)."""
    if "step" not in selection.columns:
        return
    folds = selection.filter(selection["step"] == "folds")
    if folds.height:
        print("folds: " + "; ".join(f"{r['candidate']}: {r['reason']}" for r in folds.iter_rows(named=True)))
    for r in selection.filter(selection["status"].is_in(["chosen", "excluded"])).iter_rows(named=True):
        print(f"{r['status']}: {r['candidate']}" + (f" ({r['reason']})" if r["reason"] else ""))


def cmd_predict(args: argparse.Namespace) -> int:
    from mixopt.surrogate import Targets, load_surrogate

    model = load_surrogate(args.model)
    if args.flops is not None:
        flops = np.asarray(floats(args.flops, "--flops"))
        params = tokens = None
    else:
        if args.params is None or args.tokens is None:
            raise UsageError("Give the target model as --params N --tokens D (or --flops C).")
        params, tokens = np.broadcast_arrays(np.asarray(floats(args.params, "--params")), np.asarray(floats(args.tokens, "--tokens")))
        flops = training_flops(params, tokens)
    mix = pairs(args.mix, "--mix")
    if model.uses_mixture:
        if not mix:
            raise UsageError(f"This {model.kind} model predicts per mixture: give --mix over its domains {list(model.domains_)} (e.g. --mix {model.domains_[0]}=1).")
        row = Targets.from_mapping(mix, model.domains_)
        s = row.sum()
        if abs(s - 1) > 1e-6:
            raise UsageError(f"--mix ratios must sum to 1, got {s:.6g} for {mix}; fix the ratios (domains left out count as 0).")
        targets = Targets(flops=flops, params=params, tokens=tokens, mixture=np.tile(row, (len(flops), 1)), domains=model.domains_)
    else:
        if mix:
            raise UsageError(f"--mix {args.mix} was given, but this {model.kind} model ({args.model}) does not depend on the "
                             "mixture: it was fitted without mixture columns, so a mixture cannot change its predictions. "
                             "Drop --mix, or fit a mixture-aware model (e.g. --method flpm on a table with mix:<domain> columns).")
        targets = Targets(flops=flops, params=params, tokens=tokens)
    pred = model.predict(targets, level=args.level)
    rows = []
    for i in range(len(targets)):
        for j, q in enumerate(pred.names):
            rows.append({
                "params": None if params is None else float(params[i]),
                "tokens": None if tokens is None else float(tokens[i]),
                "flops": float(flops[i]),
                "quantity": q,
                "mean": float(pred.mean[i, j]),
                "lower": float(pred.lower[i, j]),
                "upper": float(pred.upper[i, j]),
                "note": model.unpredictable_.get(q, ""),
            })
    if args.json:
        emit_json({"method": model.kind, "level": args.level, "mix": mix or None, "predictions": rows})
    else:
        import polars as pl

        print_frame(pl.DataFrame(rows).drop("note"), f"{model.kind} predictions ({args.level:.0%} intervals):")
        for q, why in model.unpredictable_.items():
            print(f"  not predictable: {q}: {why}")
    return 0


def _backtest_files(args: argparse.Namespace, results: list[Any], table: Any) -> dict[str, Any]:
    from mixopt.workflows.report import backtest_outputs

    written = backtest_outputs(results, table, out=args.out, report=args.report, runs_files=(args.runs, args.ratios),
                               command=command_line(args))
    return {"written": [str(p) for p in written]} if written else {}


def cmd_backtest(args: argparse.Namespace) -> int:
    from mixopt.backtest import compare, compare_decisions

    for out, what in ((args.out, "backtest results"), (args.report, "report")):
        if out:
            check_writable(out, what=what)  # before the fits
    runs = read_runs_args(args)
    methods = [m.strip() for m in args.method.split(",") if m.strip()]
    mixtures: Any = None
    if args.holdout_mixtures:
        hm = args.holdout_mixtures.strip()
        mixtures = int(hm) if hm.isdigit() else [pairs(m, "--holdout-mixtures") for m in hm.split(";") if m.strip()]
    results, table = compare(
        runs,
        methods,
        settings=method_settings(args.settings, methods) or None,
        level=args.level,
        holdout_min_params=args.holdout_min_params,
        holdout_runs=[r for r in args.holdout_runs.split(",") if r] if args.holdout_runs else None,
        holdout_mixtures=mixtures,
        seed=args.seed,
    )
    if not results:
        raise FitError(f"None of the methods {methods} could be fitted on the training runs (see the warnings above).")
    # --out / --report: the files are written before printing
    extra = _backtest_files(args, results, table)
    decisions = compare_decisions(results)
    if args.json:
        emit_json({"results": [r.to_json() for r in results], "comparison": table.to_dicts(),
                   "decisions": decisions.to_dicts()} | extra)
        return 0
    for p in extra.get("written", []):
        print(f"wrote {p}")
    print(f"held out: {results[0].split}")
    for r in results:
        print_frame(r.summary(), f"\n{r.method}: relative error on held-out runs ({r.level:.0%} interval coverage)")
        for q, why in r.unpredictable.items():
            print(f"  not predictable: {q}: {why}")
    if len(results) > 1:
        print_frame(table, "\nmedian relative error by method (lower wins):")
    if decisions.height:
        print_frame(decisions.drop("best_run"), "\ndecisions among held-out mixtures per scale (spearman and pairwise_accuracy: "
                    "higher is better; chosen_rank: actual rank of the model's pick, 1 = the true best; regret: how much worse "
                    "the pick actually is than the best, in the quantity's units):")
    else:
        print("\ndecisions: no held-out scale holds 3 or more mixtures (hold out mixtures, or sizes trained on several mixtures)")
    return 0


def register(sub: Any) -> None:
    """Add ``fit``, ``predict`` and ``backtest`` to the CLI's subparsers."""
    f = sub.add_parser("fit", help="fit a surrogate on a run table and save it")
    add_data_args(f)
    f.add_argument("--method", default="flp", help="flp, fp, flpm, flpm_additive (FLP-M with the paper's additive stage 1), dml or regmix")
    f.add_argument("--settings", action="append", help="JSON object of method settings, e.g. '{\"stage1\": \"pure_power\"}' (or METHOD='{...}')")
    f.add_argument("--out", required=True, help="model directory to write (new, empty, or an existing model to replace)")
    common(f)
    f.set_defaults(func=cmd_fit)

    q = sub.add_parser("predict", help="predict losses and scores of target models with a saved surrogate")
    q.add_argument("--model", required=True, help="model directory written by `mixopt fit`")
    q.add_argument("--params", help="target parameter count(s) N, comma-separated")
    q.add_argument("--tokens", help="target training tokens D, comma-separated")
    q.add_argument("--flops", help="target compute (instead of --params/--tokens)")
    q.add_argument("--mix", help="mixture, e.g. web=0.6,code=0.3,math=0.1 (mixture-aware models)")
    q.add_argument("--level", type=float, default=0.9, help="interval coverage (default 0.9)")
    common(q)
    q.set_defaults(func=cmd_predict)

    b = sub.add_parser("backtest", help="hold out runs, fit on the rest, report predicted vs actual")
    add_data_args(b)
    b.add_argument("--method", default="flp,fp", help="method or comma-separated methods to compare (flp, fp, flpm, flpm_additive, dml, regmix)")
    b.add_argument("--settings", action="append",
                   help="settings per method, repeatable: METHOD='{json}', or a JSON object keyed by method; "
                        "a plain JSON object only with a single --method")
    b.add_argument("--holdout-min-params", type=float, help="hold out every run with at least this many parameters")
    b.add_argument("--holdout-runs", help="comma-separated run ids to hold out")
    b.add_argument("--holdout-mixtures", help="an int (that many random mixtures) or mixtures 'web=0.5,code=0.5;web=1'")
    b.add_argument("--level", type=float, default=0.9)
    b.add_argument("--seed", type=int, default=0)
    b.add_argument("--out", help="also write the results to this file (.json: the --json payload; .csv: one row per run, method and quantity)")
    b.add_argument("--report", help="also write an HTML report of the backtest to this file")
    common(b)
    b.set_defaults(func=cmd_backtest)
