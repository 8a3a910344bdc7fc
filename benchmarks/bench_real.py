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

Run:  python benchmarks/bench_real.py [--only gadre,pythia] [--quick] [--json out.json] [--data-dir ../shared/data]
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
    ap.add_argument("--data-dir", help="folder holding the public data sets (default ../shared/data of the checkout); "
                                       "passed to the sections that take one (regmix)")
    args = ap.parse_args(argv)
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
        takes_dir = "data_dir" in inspect.signature(mod.run).parameters
        headline[name] = mod.run(args.quick, data_dir=args.data_dir) if takes_dir and args.data_dir else mod.run(args.quick)
        print(f"\n(section {name}: {time.perf_counter() - t0:.0f} s wall on a loaded shared machine)")
    print("\n## headline figures\n")
    print(json.dumps(headline, indent=1, default=str))
    if args.json:
        Path(args.json).write_text(json.dumps(headline, indent=1, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
