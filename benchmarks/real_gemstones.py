"""Gemstones (McLeish et al. 2025, ../shared/data/gemstones): FLP default vs paper preset vs FP.

22 models (48M-2B active params), 35 checkpoints each, FineWeb-Edu validation loss, 9
accuracies. Fit on every model below 1B params, predict the final checkpoints of the models
>= 1B. Every model trains on the same 350B tokens, so the final checkpoints cannot separate N
and D (the Chinchilla forms drop out of ``auto`` with that reason). Gemstones' main runs use a
constant learning rate with separate cool-down branches, so their intermediate checkpoints are
"hot" (not cooled down): ``schedule="constant"`` lets ``auto`` consider them (row
``default_constant``). No published anchor law is computable from these files (their fits use
W&B training-loss curves that are absent from the snapshot).

Section ``gemstones-ladder``: fit on the models <= 120M only, predict the >= 1B ones (8-17x the
largest fitted compute), the default beside ``selection_at="largest"`` (the stage-1 choice before
it was judged at the target's distance).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from real_common import section, with_candidate


def run(quick: bool, candidate: Mapping[str, Any] | None = None, data_dir: str | None = None) -> dict[str, Any]:
    from mixopt.data.public import default_data_dir, load_gemstones

    logging.getLogger("mixopt").setLevel(logging.ERROR)
    root = __import__("pathlib").Path(__file__).resolve().parents[1]
    data = __import__("pathlib").Path(data_dir) if data_dir else default_data_dir(root)
    if not (data / "gemstones").is_dir():
        print(f"section gemstones: {data}/gemstones not found")
        return {"status": "no data"}
    nb = 50 if quick else 200
    runs = load_gemstones(data)
    methods = with_candidate(
        {
            "default": ("flp", {"n_bootstrap": nb}),
            "default_constant": ("flp", {"n_bootstrap": nb, "schedule": "constant"}),
            "paper": ("flp", {"preset": "paper", "n_bootstrap": nb}),
            "fp": ("fp", {"n_bootstrap": nb}),
        },
        candidate,
    )
    out = {"gemstones": section(runs, methods, 1e9, "gemstones")}
    # the ~10x ladder: fit on the models <= 120M, predict the >= 1B ones (8-17x the largest fitted compute); the
    # default (stage-1 form judged at the target's distance) beside selection_at="largest" (leave-largest-out)
    ladder = with_candidate(
        {
            "default": ("flp", {"n_bootstrap": nb}),
            "largest": ("flp", {"n_bootstrap": nb, "selection_at": "largest"}),
            "default_constant": ("flp", {"n_bootstrap": nb, "schedule": "constant"}),
            "largest_constant": ("flp", {"n_bootstrap": nb, "schedule": "constant", "selection_at": "largest"}),
        },
        candidate,
    )
    fin = runs.final()
    keep = fin.run_ids().astype(str)[(fin.params() < 1.2e8) | (fin.params() >= 1e9)].tolist()
    print()
    out["gemstones-ladder"] = section(runs.select_runs(keep), ladder, 1e9, "gemstones-ladder")
    return out
