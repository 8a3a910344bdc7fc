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


# -- data options shared by several commands ----------------------------------------------
def _add_data_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--runs", required=True, help="run table: CSV/Parquet/JSONL (mixopt wide format), or the metrics/loss file of a two-file RegMix/Olmix table")
    p.add_argument("--ratios", help="mixture-ratios file to join with --runs on the run id (RegMix/Olmix style)")
    p.add_argument("--format", default="auto", choices=["auto", "mixopt", "regmix", "olmix"], help="input layout (default: detect)")
    p.add_argument("--params-default", type=float, default=None, help="parameter count N for files without a params column")
    p.add_argument("--tokens-default", type=float, default=None, help="training tokens D for files without a tokens column")
    p.add_argument("--chance", default=None, help="chance level per benchmark, e.g. mybench=0.25,gen=0")


def _read(args: argparse.Namespace):
    from mixopt.data.readers import read_runs

    return read_runs(
        args.runs,
        ratios=args.ratios,
        format=args.format,
        params=args.params_default,
        tokens=args.tokens_default,
        chance=_pairs(args.chance, "--chance") or None,
    )


def _settings(text: str | None) -> dict[str, Any]:
    if not text:
        return {}
    try:
        s = json.loads(text)
    except json.JSONDecodeError as e:
        raise _UsageError(f"--settings must be a JSON object like '{{\"stage1\": \"pure_power\"}}', got {text!r} ({e}).") from None
    if not isinstance(s, dict):
        raise _UsageError(f"--settings must be a JSON object, got {type(s).__name__}.")
    return s


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

    runs = _read(args)
    model = make_surrogate(args.method, **_settings(args.settings)).fit(runs)
    out = save_surrogate(model, args.out)
    info = {"model": str(out), "method": model.kind, "outputs": list(model.outputs_), "domains": list(model.domains_),
            "unpredictable": dict(model.unpredictable_), "runs": runs.n_runs}
    if getattr(model, "selection_", None) is not None:  # flp: auto choices
        info["selection"] = model.selection_.to_dicts()
    if args.json:
        _emit_json(info)
    else:
        print(f"fitted {model.kind} on {runs.n_runs} runs ({len(runs)} checkpoints); saved to {out}")
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
        settings={m: _settings(args.settings) for m in methods} if args.settings else None,
        level=args.level,
        holdout_min_params=args.holdout_min_params,
        holdout_runs=[r for r in args.holdout_runs.split(",") if r] if args.holdout_runs else None,
        holdout_mixtures=mixtures,
        seed=args.seed,
    )
    if not results:
        raise FitError(f"None of the methods {methods} could be fitted on the training runs (see the warnings above).")
    if args.json:
        _emit_json({"results": [r.to_json() for r in results], "comparison": table.to_dicts()})
        return 0
    print(f"held out: {results[0].split}")
    for r in results:
        _print_frame(r.summary(), f"\n{r.method}: relative error on held-out runs ({r.level:.0%} interval coverage)")
        for q, why in r.unpredictable.items():
            print(f"  not predictable: {q}: {why}")
    if len(results) > 1:
        _print_frame(table, "\nmedian relative error by method (lower wins):")
    return 0


def cmd_optimize(args: argparse.Namespace) -> int:
    from mixopt.config import load_config
    from mixopt.search import run_search

    cfg = load_config(args.config, overrides=_overrides(args))
    result = run_search(cfg, progress=not args.no_progress and not args.json)
    written = result.write(cfg.output) if getattr(cfg, "output", None) else []
    if args.json:
        _emit_json(result.to_json() | {"written": [str(p) for p in written]})
        return 0
    print(result.report())
    for p in written:
        print(f"wrote {p}")
    return 0


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    o: dict[str, Any] = {}
    for key in ("trials", "seed", "storage", "ray_address", "executor", "output", "study_name", "sampler"):
        v = getattr(args, key, None)
        if v is not None:
            o[key] = v
    return o


# -- parser --------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mixopt", description="Data-mixture optimisation for LLM pre-training (FLP / FLP-M + Optuna/Ray search).")
    p.add_argument("-v", "--verbose", action="store_true", help="log progress (INFO)")
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
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_simulate)

    f = sub.add_parser("fit", help="fit a surrogate on a run table and save it")
    _add_data_args(f)
    f.add_argument("--method", default="flp", help="flp, fp, flpm, dml or regmix")
    f.add_argument("--settings", help="JSON object of method settings, e.g. '{\"stage1\": \"pure_power\"}'")
    f.add_argument("--out", required=True, help="model directory to write")
    f.add_argument("--json", action="store_true")
    f.set_defaults(func=cmd_fit)

    q = sub.add_parser("predict", help="predict losses and scores of target models with a saved surrogate")
    q.add_argument("--model", required=True, help="model directory written by `mixopt fit`")
    q.add_argument("--params", help="target parameter count(s) N, comma-separated")
    q.add_argument("--tokens", help="target training tokens D, comma-separated")
    q.add_argument("--flops", help="target compute (instead of --params/--tokens)")
    q.add_argument("--mix", help="mixture, e.g. web=0.6,code=0.3,math=0.1 (mixture-aware models)")
    q.add_argument("--level", type=float, default=0.9, help="interval coverage (default 0.9)")
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=cmd_predict)

    b = sub.add_parser("backtest", help="hold out runs, fit on the rest, report predicted vs actual")
    _add_data_args(b)
    b.add_argument("--method", default="flp,fp", help="method or comma-separated methods to compare (flp, fp, flpm, dml, regmix)")
    b.add_argument("--settings", help="JSON settings applied to every method")
    b.add_argument("--holdout-min-params", type=float, help="hold out every run with at least this many parameters")
    b.add_argument("--holdout-runs", help="comma-separated run ids to hold out")
    b.add_argument("--holdout-mixtures", help="an int (that many random mixtures) or mixtures 'web=0.5,code=0.5;web=1'")
    b.add_argument("--level", type=float, default=0.9)
    b.add_argument("--seed", type=int, default=0)
    b.add_argument("--json", action="store_true")
    b.set_defaults(func=cmd_backtest)

    o = sub.add_parser("optimize", help="run a mixture search from a config file (see configs/)")
    o.add_argument("config", help="TOML config file")
    o.add_argument("--trials", type=int, help="override the number of trials")
    o.add_argument("--seed", type=int, help="override the seed")
    o.add_argument("--storage", help="override the study storage (SQLite path or SQLAlchemy URL)")
    o.add_argument("--study-name", dest="study_name", help="override the study name")
    o.add_argument("--sampler", help="override the sampler (nsga2, tpe, gp, random, qmc)")
    o.add_argument("--executor", choices=["local", "ray"], help="override the executor")
    o.add_argument("--ray-address", dest="ray_address", help="connect to this Ray cluster instead of starting a local one")
    o.add_argument("--output", help="override the output file for the Pareto table")
    o.add_argument("--no-progress", action="store_true", help="no progress bar")
    o.add_argument("--json", action="store_true")
    o.set_defaults(func=cmd_optimize)

    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        return int(args.func(args) or 0)
    except FitError as e:
        print(f"mixopt {args.command}: fit failed: {e}", file=sys.stderr)
        return EXIT_FIT_FAILED
    except MixoptError as e:
        print(f"mixopt {args.command}: error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print(f"mixopt {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
