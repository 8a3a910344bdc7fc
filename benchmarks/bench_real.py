"""Every real data set in ../shared/data: mixopt's default vs the paper preset vs the data set's own anchor.

Runs one section per data set from a module ``benchmarks/real_<name>.py`` (names: gadre,
pythia, gemstones, regmix, olmix). Each module exposes ``run(quick: bool) -> dict``: it
prints its markdown tables and returns its headline figures. A module missing from this
checkout is reported and skipped. The headline figures of every section are printed at the
end (and written as JSON with ``--json PATH``).

Every section with several mixtures at a larger scale (RegMix's 60M and 1.1B models, the
Olmix holdouts) also reports the decisions the predictions imply (Spearman ρ, the actual rank
and regret of the predicted-best mixture, pairwise accuracy), LightGBM and the paper preset
beside the default in the same run.

A candidate default is measured beside the current one with ``--settings JSON``: the settings update
the default FLP's in every section whose default is FLP (gadre, pythia, gemstones and their ladders),
as an extra row ``candidate`` fitted on the same splits in the same run; the header names them.
Sections whose default is FLP-M (regmix, olmix) ignore them and say so.

Run:  python benchmarks/bench_real.py [--only gadre,pythia] [--quick] [--json out.json] [--data-dir ../shared/data]
                                      [--settings '{"stage2_loss_x": "denoised"}']
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import json
import logging
import sys
import time
from pathlib import Path

SECTIONS = ("gadre", "pythia", "gemstones", "regmix", "olmix")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", help="comma-separated section names (default: all)")
    ap.add_argument("--quick", action="store_true", help="smaller settings (fewer bootstrap draws, fewer targets)")
    ap.add_argument("--json", help="write the headline figures of every section to this file")
    ap.add_argument("--data-dir", help="folder holding the public data sets (default ../shared/data of the checkout); passed to every section")
    ap.add_argument("--settings", help="JSON object of FLP settings: the default FLP with them is run beside the default (row 'candidate') in the sections whose default is FLP")
    args = ap.parse_args(argv)
    candidate = _candidate(args.settings)
    if isinstance(candidate, str):
        print(candidate, file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.ERROR)
    here = Path(__file__).resolve().parent
    if str(here) not in sys.path:
        sys.path.insert(0, str(here))
    names = SECTIONS if not args.only else tuple(n.strip() for n in args.only.split(",") if n.strip())
    unknown = [n for n in names if n not in SECTIONS]
    if unknown:
        print(f"unknown section(s) {unknown}; choose from {list(SECTIONS)}", file=sys.stderr)
        return 2
    headline: dict[str, object] = {}
    if candidate:
        print(f"candidate: the default FLP with {json.dumps(candidate, sort_keys=True)} (row 'candidate', beside 'default', same splits, same run)")
        headline["candidate_settings"] = candidate
    for name in names:
        print(f"\n## {name}\n")
        try:
            mod = importlib.import_module(f"real_{name}")
        except ModuleNotFoundError as e:
            if e.name != f"real_{name}":
                raise
            print(f"section {name}: not available in this checkout")
            headline[name] = "not available"
            continue
        t0 = time.perf_counter()
        params = inspect.signature(mod.run).parameters
        kwargs: dict[str, object] = {}
        if "data_dir" in params and args.data_dir:
            kwargs["data_dir"] = args.data_dir
        if candidate and "candidate" in params:
            kwargs["candidate"] = candidate
        elif candidate:
            print(f"section {name}: its default is not FLP; --settings not applied here")
        headline[name] = mod.run(args.quick, **kwargs)
        print(f"\n(section {name}: {time.perf_counter() - t0:.0f} s wall on a loaded shared machine)")
    print("\n## headline figures\n")
    print(json.dumps(headline, indent=1, default=str))
    if args.json:
        Path(args.json).write_text(json.dumps(headline, indent=1, default=str))
    return 0


def _candidate(text: str | None) -> dict[str, object] | str | None:
    """The ``--settings`` object checked against FLP's settings, or the error message to print."""
    if not text:
        return None
    try:
        settings = json.loads(text)
    except json.JSONDecodeError as e:
        return f'--settings must be a JSON object of FLP settings, e.g. \'{{"stage2_loss_x": "denoised"}}\'; got {text!r} ({e})'
    if not isinstance(settings, dict) or not settings:
        return f'--settings must be a non-empty JSON object of FLP settings, e.g. \'{{"stage2_loss_x": "denoised"}}\'; got {text!r}'
    from mixopt.errors import ConfigError, SchemaError
    from mixopt.surrogate import make_surrogate

    try:
        model = make_surrogate("flp", **settings)
        model._check_settings()  # the same check fit() runs, before the backtests
    except (ConfigError, SchemaError) as e:
        return f"--settings: {e}"
    return settings


if __name__ == "__main__":
    raise SystemExit(main())
