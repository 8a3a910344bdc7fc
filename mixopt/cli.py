"""``mixopt`` command line: thin commands over the library.

Exit codes: 0 success; 2 bad input (data, config, model file, options); 3 a fit that
cannot succeed on the data given; 1 anything unexpected (a bug: please report it).
Every command takes ``--json`` for machine-readable output on stdout.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import re
import signal
import sys
from collections.abc import Sequence
from typing import Any

import numpy as np

from mixopt.errors import FitError, MixoptError

EXIT_BAD_INPUT = 2
EXIT_FIT_FAILED = 3


class _UsageError(MixoptError, ValueError):
    """A command-line option is malformed."""


def _floats(text: str, what: str) -> list[float]:
    try:
        vals = [float(v) for v in str(text).replace(";", ",").split(",") if v.strip()]
    except ValueError:
        raise _UsageError(f"{what} must be a number or comma-separated numbers (e.g. 1e9 or 1e9,7e9), got {text!r}.") from None
    if not vals:
        raise _UsageError(f"{what} is empty; give a number like 1e9.")
    return vals


def _pairs(text: str | None, what: str) -> dict[str, float]:
    """Parse ``a=0.5,b=0.5`` into a dict."""
    if not text:
        return {}
    out: dict[str, float] = {}
    for part in text.split(","):
        if not part.strip():
            continue
        if "=" not in part:
            raise _UsageError(f"{what} must look like name=value,name=value (e.g. web=0.6,code=0.4); got {part!r} in {text!r}.")
        k, v = part.split("=", 1)
        try:
            out[k.strip()] = float(v)
        except ValueError:
            raise _UsageError(f"{what}: value of {k.strip()!r} must be a number, got {v!r}.") from None
    return out


def _jsonable(x: Any) -> Any:
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.generic):
        return _jsonable(x.item())
    return x


def _emit_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(_jsonable(obj), indent=1) + "\n")


def _print_frame(frame: Any, title: str | None = None) -> None:
    import polars as pl

    if title:
        print(title)
    with pl.Config(tbl_rows=200, tbl_cols=40, tbl_width_chars=200, fmt_str_lengths=60, float_precision=4):
        print(frame)


# -- data options shared by several commands (owner: tables) ----------------------------
def _add_data_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("data", "how to read the run table (README: 'Bring your own data')")
    g.add_argument("--runs", required=True, help="run table: CSV/TSV/TXT/Parquet/JSONL (mixopt wide format), the metrics/loss file of a two-file RegMix/Olmix table, or a long-format file")
    g.add_argument("--ratios", help="mixture-ratios file to join with --runs on the run id (RegMix/Olmix style)")
    g.add_argument("--format", default="auto", choices=["auto", "mixopt", "regmix", "olmix", "long"], help="input layout (default: detect; 'long' = one row per checkpoint x domain)")
    g.add_argument("--params-default", type=float, default=None, help="parameter count N for files without a params column")
    g.add_argument("--tokens-default", type=float, default=None, help="training tokens D for files without a tokens column")
    g.add_argument("--chance", default=None, help="chance level per benchmark, e.g. mybench=0.25,gen=0")
    g.add_argument("--columns", default=None, help="rename columns: old=new,... with {field} or * patterns, e.g. 'weight_{d}=mix:{d},{d}_loss=loss:{d},model_size=params'")
    g.add_argument("--run-id", dest="run_id", default=None, help="build run ids from these columns when the file has none, e.g. params,mix (mix = all mix:<d> columns)")
    g.add_argument("--tokens-per-step", dest="tokens_per_step", type=float, default=None, help="tokens = step x this (batch size x sequence length), for files with a step column and no tokens")
    g.add_argument("--on", default=None, help="join column of --runs and --ratios (default: index for RegMix, run otherwise)")
    g.add_argument("--join", default="exact", choices=["exact", "inner"], help="exact (default): both files must list the same runs; inner: keep the runs found in both")
    g.add_argument("--checkpoint-pattern", dest="checkpoint_pattern", default=None, help="long format: parse checkpoint paths, e.g. '{run}/step{step}' or '{params}_{_}-{mix}/{step}'")
    g.add_argument("--name-pattern", dest="name_pattern", default=None, help="long format: parse domain names, e.g. 'pythia-pile.valid.{name}.bin'")
    g.add_argument("--mix-domains", dest="mix_domains", default=None, help="long format: domain names of a {mix} field, in order, e.g. Github,Books3,Pile-CC")
    g.add_argument("--long-columns", dest="long_columns", default=None, help="long format: role=column for run, step, name, value, checkpoint (default: found by usual names)")
    g.add_argument("--long-kind", dest="long_kind", default=None, choices=["loss", "score", "raw"], help="long format: names become loss:<name> (default), score:<name>, or stay raw")


def _mapping(text: str | None, what: str) -> dict[str, str]:
    """Parse ``a=b,c=d`` into ``{"a": "b", "c": "d"}`` (values are text)."""
    if not text:
        return {}
    out: dict[str, str] = {}
    for part in text.split(","):
        if not part.strip():
            continue
        if "=" not in part:
            raise _UsageError(f"{what} must look like old=new,old=new (e.g. model_size=params,weight_{{d}}=mix:{{d}}); got {part!r} in {text!r}.")
        k, v = part.split("=", 1)
        if not k.strip() or not v.strip():
            raise _UsageError(f"{what}: both sides of {part!r} must be non-empty.")
        out[k.strip()] = v.strip()
    return out


def _nonnegative_int(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 0, got {text!r}") from None
    if n < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {n}")
    return n


def _names(text: str | None) -> list[str] | None:
    if text is None:
        return None
    names = [v.strip() for v in text.split(",") if v.strip()]
    return names or None


def _read(args: argparse.Namespace):
    """Read the run table of a command; say how many cells are empty (stdout, or stderr with --json)."""
    runs = _read_quiet(args)
    line = runs.missing_summary()
    if line:
        json_out = bool(getattr(args, "json", False))
        print(f"{'mixopt: ' if json_out else ''}missing values: {line}; each value is used where present "
              "(README: 'Bring your own data')", file=sys.stderr if json_out else sys.stdout)
    return runs


def _read_quiet(args: argparse.Namespace):
    from mixopt.data.options import cli_option_names
    from mixopt.data.readers import read_runs

    long = {
        k: v
        for k, v in {
            "checkpoint_pattern": args.checkpoint_pattern,
            "name_pattern": args.name_pattern,
            "mix_domains": _names(args.mix_domains),
            "columns": _mapping(args.long_columns, "--long-columns") or None,
            "kind": args.long_kind,
        }.items()
        if v is not None
    }
    run_id = _names(args.run_id)
    if args.run_id is not None and not run_id:
        raise _UsageError("--run-id needs column names, e.g. --run-id params,mix.")
    with cli_option_names():  # messages name --params-default, not params=
        return read_runs(
            args.runs,
            ratios=args.ratios,
            format=args.format,
            params=args.params_default,
            tokens=args.tokens_default,
            chance=_pairs(args.chance, "--chance") or None,
            columns=_mapping(args.columns, "--columns") or None,
            run_id=run_id,
            tokens_per_step=args.tokens_per_step,
            on=args.on,
            how=args.join,
            long=long or None,
        )


def _data_info(runs: Any) -> dict[str, Any]:
    """What was read: sizes, domains, benchmarks and the empty cells (``mixopt inspect``)."""
    return {
        "runs": runs.n_runs,
        "checkpoints": len(runs),
        "domains": list(runs.domains),
        "loss_domains": list(runs.loss_domains),
        "benchmarks": list(runs.benchmark_names),
        "missing": runs.missing_counts(),
        "final_missing": {c: list(r) for c, r in runs.final_missing().items()},
    }


def cmd_inspect(args: argparse.Namespace) -> int:
    runs = _read_quiet(args)
    info = _data_info(runs)
    f = runs.frame
    info |= {
        "params": [float(f["params"].min()), float(f["params"].max())],
        "tokens": [float(f["tokens"].min()), float(f["tokens"].max())],
        "run_ids": list(runs.runs[: args.show]),
    }
    if args.json:
        _emit_json(info)
        return 0
    print(f"read {info['runs']} runs / {info['checkpoints']} checkpoints from {args.runs}" + (f" + {args.ratios}" if args.ratios else ""))
    print(f"  params {info['params'][0]:.3g} .. {info['params'][1]:.3g}; tokens {info['tokens'][0]:.3g} .. {info['tokens'][1]:.3g}")
    print(f"  mixture domains ({len(runs.domains)}): {', '.join(runs.domains) or '(none)'}")
    print(f"  loss domains ({len(runs.loss_domains)}): {', '.join(runs.loss_domains) or '(none)'}" + ("; overall loss" if runs.has_overall_loss else ""))
    print(f"  benchmarks ({len(runs.benchmarks)}): {', '.join(runs.benchmark_names) or '(none)'}")
    if runs.missing_summary():
        print(f"  missing values: {runs.missing_summary()}; each value is used where present")
    _print_frame(f.head(args.show), f"first {min(args.show, len(runs))} checkpoint(s):")
    return 0


def _settings_json(text: str, what: str) -> dict[str, Any]:
    try:
        v = json.loads(text)
    except json.JSONDecodeError as e:
        raise _UsageError(f"{what} must be a JSON object like '{{\"stage1\": \"pure_power\"}}', got {text!r} ({e}).") from None
    if not isinstance(v, dict):
        raise _UsageError(f"{what} must be a JSON object, got {type(v).__name__}: {text!r}.")
    return v


def _method_settings(items: Sequence[str] | str | None, methods: Sequence[str]) -> dict[str, dict[str, Any]]:
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
                raise _UsageError(f"--settings names method {m!r}, which is not among --method {list(methods)}; "
                                  "fix the name or add the method.")
            out.setdefault(m, {}).update(_settings_json(rest, f"--settings {m}=..."))
            continue
        obj = _settings_json(text, "--settings")
        if obj and all(k in methods for k in obj) and all(isinstance(v, dict) for v in obj.values()):
            for m, v in obj.items():
                out.setdefault(m, {}).update(v)
        elif len(methods) == 1:
            out.setdefault(methods[0], {}).update(obj)
        else:
            raise _UsageError(
                f"--settings {text!r} does not say which method it is for, and --method lists {list(methods)}: "
                "settings of one method would silently change the others. Give them per method, e.g. "
                f"--settings {methods[0]}='{{...}}' (repeatable), or a JSON object keyed by method."
            )
    return out


# -- commands ------------------------------------------------------------------------------
def cmd_simulate(args: argparse.Namespace) -> int:
    from mixopt.data.readers import write_runs
    from mixopt.testing import mixture_world, random_mixtures, single_domain_world, two_domain_code_world

    if args.world == "single":
        world = single_domain_world(seed=args.seed)
        mixtures = None
    else:
        world = two_domain_code_world() if args.world == "code" else mixture_world(
            n_domains=args.domains, n_benchmarks=args.benchmarks, seed=args.seed
        )
        mixtures = random_mixtures(args.mixtures, len(world.domains), seed=args.seed)
    params = _floats(args.sizes, "--sizes")
    table = world.sample_runs(
        params,
        mixtures,
        tokens_per_param=args.tokens_per_param,
        n_checkpoints=args.checkpoints,
        loss_noise=args.loss_noise,
        score_noise=args.score_noise,
        seed=args.seed,
    )
    path = write_runs(table, args.out)
    info = {"out": str(path), "runs": table.n_runs, "checkpoints": len(table), "domains": list(table.domains),
            "loss_domains": list(table.loss_domains), "benchmarks": list(table.benchmark_names)}
    if args.json:
        _emit_json(info)
    else:
        print(f"wrote {info['runs']} runs / {info['checkpoints']} checkpoints to {path}")
        print(f"  domains: {info['domains'] or '(single domain)'}; benchmarks: {info['benchmarks']}")
    return 0


def cmd_fit(args: argparse.Namespace) -> int:
    from mixopt.surrogate import make_surrogate, save_surrogate
    from mixopt.surrogate.base import check_model_out

    from mixopt.progress import step_bar  # [metric] progress on long fits, quiet with --json

    out_dir = check_model_out(args.out)  # before reading or fitting anything
    with step_bar(["read the run table", f"fit {args.method}", "save"], enabled=not args.json, desc="mixopt fit") as done:
        runs = _read(args)
        done()
        model = make_surrogate(args.method, **_method_settings(args.settings, [args.method]).get(args.method, {})).fit(runs)
        done()
        out = save_surrogate(model, out_dir)
        done()
    info = {"model": str(out), "method": args.method, "outputs": list(model.outputs_), "domains": list(model.domains_),
            "unpredictable": dict(model.unpredictable_), "runs": runs.n_runs}
    if getattr(model, "selection_", None) is not None:  # flp: auto choices
        info["selection"] = model.selection_.to_dicts()
    if args.json:
        _emit_json(info)
    else:
        print(f"fitted {args.method} on {runs.n_runs} runs ({len(runs)} checkpoints); saved to {out}")
        print(f"  predicts: {', '.join(q for q in model.outputs_ if q not in model.unpredictable_)}")
        for q, why in model.unpredictable_.items():
            print(f"  not predictable: {q}: {why}")
        # flp: what `auto` chose and each candidate's internal backtest score
        selection = getattr(model, "selection_", None)
        if selection is not None and selection.height:
            _print_frame(selection, "\nchoices (internal leave-largest-out backtest; score = held-out error, lower wins):")
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from mixopt.surrogate import Targets, load_surrogate

    model = load_surrogate(args.model)
    if args.flops is not None:
        flops = np.asarray(_floats(args.flops, "--flops"))
        params = tokens = None
    else:
        if args.params is None or args.tokens is None:
            raise _UsageError("Give the target model as --params N --tokens D (or --flops C).")
        params, tokens = np.broadcast_arrays(np.asarray(_floats(args.params, "--params")), np.asarray(_floats(args.tokens, "--tokens")))
        flops = 6.0 * params * tokens
    mix = _pairs(args.mix, "--mix")
    if model.uses_mixture:
        if not mix:
            raise _UsageError(f"This {model.kind} model predicts per mixture: give --mix over its domains {list(model.domains_)} (e.g. --mix {model.domains_[0]}=1).")
        row = Targets.from_mapping(mix, model.domains_)
        s = row.sum()
        if abs(s - 1) > 1e-6:
            raise _UsageError(f"--mix ratios must sum to 1, got {s:.6g} for {mix}; fix the ratios (domains left out count as 0).")
        targets = Targets(flops=flops, params=params, tokens=tokens, mixture=np.tile(row, (len(flops), 1)), domains=model.domains_)
    else:
        if mix:
            logging.getLogger(__name__).warning("--mix ignored: a %s model does not depend on the mixture", model.kind)
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
        _emit_json({"method": model.kind, "level": args.level, "mix": mix or None, "predictions": rows})
    else:
        import polars as pl

        _print_frame(pl.DataFrame(rows).drop("note"), f"{model.kind} predictions ({args.level:.0%} intervals):")
        for q, why in model.unpredictable_.items():
            print(f"  not predictable: {q}: {why}")
    return 0


def cmd_backtest(args: argparse.Namespace) -> int:
    from mixopt.backtest import compare

    runs = _read(args)
    methods = [m.strip() for m in args.method.split(",") if m.strip()]
    mixtures: Any = None
    if args.holdout_mixtures:
        hm = args.holdout_mixtures.strip()
        mixtures = int(hm) if hm.isdigit() else [_pairs(m, "--holdout-mixtures") for m in hm.split(";") if m.strip()]
    results, table = compare(
        runs,
        methods,
        settings=_method_settings(args.settings, methods) or None,
        level=args.level,
        holdout_min_params=args.holdout_min_params,
        holdout_runs=[r for r in args.holdout_runs.split(",") if r] if args.holdout_runs else None,
        holdout_mixtures=mixtures,
        seed=args.seed,
    )
    if not results:
        raise FitError(f"None of the methods {methods} could be fitted on the training runs (see the warnings above).")
    # -- report engineer: --out / --report (files written before printing) --
    extra = _backtest_files(args, results, table)
    if args.json:
        _emit_json({"results": [r.to_json() for r in results], "comparison": table.to_dicts()} | extra)
        return 0
    for p in extra.get("written", []):
        print(f"wrote {p}")
    print(f"held out: {results[0].split}")
    for r in results:
        _print_frame(r.summary(), f"\n{r.method}: relative error on held-out runs ({r.level:.0%} interval coverage)")
        for q, why in r.unpredictable.items():
            print(f"  not predictable: {q}: {why}")
    if len(results) > 1:
        _print_frame(table, "\nmedian relative error by method (lower wins):")
    return 0


def cmd_optimize(args: argparse.Namespace) -> int:
    # -- [validate] rounds >= 1: the optimise -> validate -> refit loop (mixopt.train) --
    from mixopt.train.commands import optimize_loop

    rc = optimize_loop(args)
    if rc is not None:
        return rc
    # -- end of the loop hook --
    from mixopt.config import load_config
    from mixopt.search import run_search
    from mixopt.search.api import write_result

    cfg = load_config(args.config, overrides=_overrides(args))
    result = run_search(cfg, progress=not args.no_progress and not args.json)
    written, failed = write_result(result, cfg.output) if getattr(cfg, "output", None) else ([], None)
    if getattr(args, "report", None):  # report engineer: the report of this run (its surrogate from the study's cache)
        from mixopt.report.commands import search_report, search_surrogate, write

        rep = search_report(cfg, search_surrogate(cfg), result, command=_command(args))
        written = [*written, *write(rep, args.report)]
    if args.json:
        _emit_json(result.to_json() | {"written": [str(p) for p in written], "write_error": failed})
    else:
        print(result.report())
        for p in written:
            print(f"wrote {p}")
    if failed:
        print(f"mixopt optimize: error: could not write {cfg.output} ({failed}); the results were saved to "
              f"{written[0].parent} instead (the study itself is in {result.storage or 'memory only'}).", file=sys.stderr)
        return EXIT_BAD_INPUT
    return 0


# -- serve (HTTP API; mixopt.api) -------------------------------------------------------------
def cmd_serve(args: argparse.Namespace) -> int:
    from mixopt.api.server import serve
    from mixopt.api.settings import Settings

    keys = tuple(k.strip() for k in args.api_keys.split(",") if k.strip()) if args.api_keys else None
    serve(Settings.from_env(host=args.host, port=args.port, data_dir=args.data_dir, database_url=args.database_url,
                            executor=args.executor, ray_address=args.ray_address, api_keys=keys,
                            log_level="debug" if args.verbose else None))
    return 0


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    o: dict[str, Any] = {}
    for key in ("trials", "seed", "storage", "ray_address", "executor", "output", "study_name", "sampler",
                "batch_size", "shortlist"):
        v = getattr(args, key, None)
        if v is not None:
            o[key] = v
    if getattr(args, "ray_dashboard", False):
        o["ray_dashboard"] = True
    return o


# -- reports (report engineer) -------------------------------------------------------------
def _command(args: argparse.Namespace) -> list[str]:
    """The command and its options, for the report's provenance."""
    opts = [f"--{k.replace('_', '-')}={v}" for k, v in sorted(vars(args).items())
            if k not in ("func", "command", "json") and v not in (None, False)]
    return ["mixopt", str(args.command), *opts]


def _backtest_files(args: argparse.Namespace, results: list[Any], table: Any) -> dict[str, Any]:
    from mixopt.report.commands import backtest_outputs

    written = backtest_outputs(results, table, out=args.out, report=args.report, runs_files=(args.runs, args.ratios),
                               command=_command(args))
    return {"written": [str(p) for p in written]} if written else {}


def cmd_report(args: argparse.Namespace) -> int:
    from mixopt.report.commands import run_report

    info = run_report(args, mix=_pairs(args.mix, "--mix"), chance=_pairs(args.chance, "--chance") or None, command=_command(args))
    if args.json:
        _emit_json(info)
    else:
        for p in info["written"]:
            print(f"wrote {p}")
    return 0


# -- parser --------------------------------------------------------------------------------
def _common(sp: argparse.ArgumentParser) -> None:
    """Options accepted both before and after the command (``mixopt --json simulate`` and
    ``mixopt simulate --json``): SUPPRESS keeps a subcommand from resetting what was given before it."""
    sp.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="machine-readable output on stdout")
    sp.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help="log progress (INFO)")


#: A negative number (possibly a comma-separated list), e.g. -6e10 or -1,2: argparse would read it as an option.
_NEGATIVE = re.compile(r"^-(\d|\.\d|inf|nan)", re.IGNORECASE)


def _join_negative_values(argv: Sequence[str]) -> list[str]:
    """``--tokens -6e10`` -> ``--tokens=-6e10`` so the value reaches the command's own check
    (a clear "must be > 0" error) instead of argparse's "expected one argument"."""
    out: list[str] = []
    argv = list(argv)
    i = 0
    while i < len(argv):
        tok = argv[i]
        if tok.startswith("--") and "=" not in tok and i + 1 < len(argv) and _NEGATIVE.match(argv[i + 1]):
            out.append(f"{tok}={argv[i + 1]}")
            i += 2
            continue
        out.append(tok)
        i += 1
    return out


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mixopt", description="Data-mixture optimisation for LLM pre-training (FLP / FLP-M + Optuna/Ray search).")
    p.add_argument("-v", "--verbose", action="store_true", help="log progress (INFO)")
    p.add_argument("--json", action="store_true", help="machine-readable output on stdout (before or after the command)")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    s = sub.add_parser("simulate", help="write a synthetic run table from a seeded ground-truth world")
    s.add_argument("--out", required=True, help="output file (.parquet, .csv or .jsonl)")
    s.add_argument("--world", default="mixture", choices=["single", "mixture", "code"], help="single-domain, k-domain mixture world, or the paper's web+code world")
    s.add_argument("--domains", type=int, default=3, help="number of domains of a mixture world")
    s.add_argument("--benchmarks", type=int, default=4, help="number of benchmarks of a mixture world")
    s.add_argument("--mixtures", type=int, default=12, help="number of random mixtures (mixture worlds)")
    s.add_argument("--sizes", default="2e7,5e7,1e8,2e8,4e8", help="parameter counts of the sampling runs")
    s.add_argument("--tokens-per-param", type=float, default=20.0, help="training tokens per parameter")
    s.add_argument("--checkpoints", type=int, default=10, help="evaluated checkpoints per run")
    s.add_argument("--loss-noise", type=float, default=0.005, help="relative noise on losses")
    s.add_argument("--score-noise", type=float, default=0.005, help="absolute noise on scores")
    s.add_argument("--seed", type=int, default=0)
    _common(s)
    s.set_defaults(func=cmd_simulate)

    f = sub.add_parser("fit", help="fit a surrogate on a run table and save it")
    _add_data_args(f)
    f.add_argument("--method", default="flp", help="flp, fp, flpm, flpm_additive (FLP-M with the paper's additive stage 1), dml or regmix")
    f.add_argument("--settings", action="append", help="JSON object of method settings, e.g. '{\"stage1\": \"pure_power\"}' (or METHOD='{...}')")
    f.add_argument("--out", required=True, help="model directory to write (new, empty, or an existing model to replace)")
    _common(f)
    f.set_defaults(func=cmd_fit)

    q = sub.add_parser("predict", help="predict losses and scores of target models with a saved surrogate")
    q.add_argument("--model", required=True, help="model directory written by `mixopt fit`")
    q.add_argument("--params", help="target parameter count(s) N, comma-separated")
    q.add_argument("--tokens", help="target training tokens D, comma-separated")
    q.add_argument("--flops", help="target compute (instead of --params/--tokens)")
    q.add_argument("--mix", help="mixture, e.g. web=0.6,code=0.3,math=0.1 (mixture-aware models)")
    q.add_argument("--level", type=float, default=0.9, help="interval coverage (default 0.9)")
    _common(q)
    q.set_defaults(func=cmd_predict)

    b = sub.add_parser("backtest", help="hold out runs, fit on the rest, report predicted vs actual")
    _add_data_args(b)
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
    _common(b)
    b.set_defaults(func=cmd_backtest)

    i = sub.add_parser("inspect", help="read a run table as fit/backtest would and show what was read (runs, domains, missing cells)")
    _add_data_args(i)
    i.add_argument("--show", type=_nonnegative_int, default=5, help="checkpoints (rows) and run ids to show")
    i.add_argument("--json", action="store_true")
    i.set_defaults(func=cmd_inspect)

    o = sub.add_parser("optimize", help="run a mixture search from a config file (see configs/)")
    o.add_argument("config", help="TOML config file")
    o.add_argument("--trials", type=int, help="override the number of trials")
    o.add_argument("--seed", type=int, help="override the seed")
    o.add_argument("--storage", help="override the study storage (journal .log file, SQLite .db file, SQLAlchemy URL, or memory)")
    o.add_argument("--study-name", dest="study_name", help="override the study name")
    o.add_argument("--sampler", help="override the sampler (nsga2, tpe, gp, random, qmc)")
    o.add_argument("--executor", choices=["local", "ray"], help="override the executor")
    o.add_argument("--ray-address", dest="ray_address", help="connect to this Ray cluster instead of starting a local one")
    o.add_argument("--output", help="override the output file for the Pareto table")
    o.add_argument("--batch-size", dest="batch_size", type=int, help="override the batch size")
    o.add_argument("--shortlist", type=int, help="rows on the shortlist of diverse knee-region recommendations (default 5)")
    o.add_argument("--ray-dashboard", dest="ray_dashboard", action="store_true",
                   help="start the Ray dashboard (port 8265) with a local Ray; off by default")
    o.add_argument("--no-progress", action="store_true", help="no progress bar")
    o.add_argument("--report", help="also write an HTML report (fits at the best mixture, Pareto front, shortlist, history) to this file")
    _common(o)
    o.set_defaults(func=cmd_optimize)

    from mixopt.report.commands import add_report_arguments  # report engineer

    r = sub.add_parser("report", help="write a report (fits, backtests, searches) as one offline HTML file, or its figures")
    add_report_arguments(r)
    _common(r)
    r.set_defaults(func=cmd_report)

    v = sub.add_parser("serve", help="run the HTTP API (settings from MIXOPT_* environment variables; flags override)")
    v.add_argument("--host", help="interface to listen on (default 127.0.0.1)")
    v.add_argument("--port", type=int, help="TCP port (default 8000)")
    v.add_argument("--data-dir", dest="data_dir", help="the server's folder for its database, uploads, models and results")
    v.add_argument("--database-url", dest="database_url", help="SQLAlchemy URL (default SQLite in the data dir), e.g. postgresql://u@host/db")
    v.add_argument("--executor", choices=["ray", "thread"], help="where jobs run (default ray)")
    v.add_argument("--ray-address", dest="ray_address", help="Ray cluster address (default: start a local Ray)")
    v.add_argument("--api-keys", dest="api_keys", help="comma-separated bearer keys (prefer MIXOPT_API_KEYS: flags show in ps)")
    _common(v)
    v.set_defaults(func=cmd_serve)

    # -- training jobs: corpus build, ladder, validate (mixopt.train.commands) --
    from mixopt.train.commands import add_train_commands

    add_train_commands(sub)
    # -- end of training jobs --

    return p


class _Terminated(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl-C so that every ``finally`` runs (batches written, Ray shut down)."""


def _terminate_as_interrupt() -> Any:
    """Install the SIGTERM handler; returns the previous one (restored by :func:`main`)."""
    def handler(signum: int, _frame: Any) -> None:
        raise _Terminated(f"signal {signum}")

    try:
        return signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread (e.g. called from a test runner thread)
        return None


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(_join_negative_values(sys.argv[1:] if argv is None else argv))
    previous = _terminate_as_interrupt()
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        return int(args.func(args) or 0)
    except FitError as e:
        print(f"mixopt {args.command}: fit failed: {e}", file=sys.stderr)
        return EXIT_FIT_FAILED
    except MixoptError as e:
        print(f"mixopt {args.command}: error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt as e:
        what = "terminated" if isinstance(e, _Terminated) else "interrupted"
        print(f"mixopt {args.command}: {what}; finished batches are saved in the study (resume by running it again)",
              file=sys.stderr)
        return 143 if isinstance(e, _Terminated) else 130
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
