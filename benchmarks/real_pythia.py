"""Pythia (Biderman et al. 2023, ../shared/data/pythia): FLP default vs paper preset vs FP.

16 models (70M-12B, standard and deduplicated Pile), 27 checkpoints each, zero-shot accuracies.
There is no pre-training validation loss in the files: the loss FLP models is LAMBADA's
ln(perplexity) (nats/token on LAMBADA's last words), the only loss-like column. Fit on the
models below 6B params, predict the final checkpoints of 6.9B and 12B, separately for the
standard and deduplicated suites. Every model sees the same 300B tokens on a cosine schedule,
so only final checkpoints are usable for stage 1 and the N,D forms drop out (constant D).
No published anchor law for these numbers is computable here.

Sections ``pythia-ladder``/``pythia-ladder-deduped``: fit on the 4 models <= 1B only, predict 6.9B
and 12B (7-12x the largest fitted compute), the default beside ``selection_at="largest"`` (the
stage-1 choice before it was judged at the target's distance).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import polars as pl
from real_common import section, with_candidate

#: Pythia zero-shot columns -> (benchmark, chance)
TASKS = {
    "piqa__acc": ("piqa", 0.5),
    "arc_easy__acc": ("arc_easy", 0.25),
    "arc_challenge__acc": ("arc_challenge", 0.25),
    "sciq__acc": ("sciq", 0.25),
    "winogrande__acc": ("winogrande", 0.5),
    "logiqa__acc": ("logiqa", 0.25),
    "lambada_openai__acc": ("lambada", 0.0),
    "mmlu_0shot_acc_mean57": ("mmlu", 0.25),
}


def load_pythia(data: Any, deduped: bool) -> Any:
    from mixopt.data.table import Benchmark, RunTable

    raw = pl.read_csv(data / "pythia" / "derived_pythia_zeroshot_flat.csv").filter((pl.col("deduped") == deduped) & (pl.col("step") > 0))
    frame = raw.select(
        pl.col("model").alias("run"),
        pl.col("params_total").cast(pl.Float64).alias("params"),
        pl.col("tokens").cast(pl.Float64),
        pl.col("flops_6ND_total").cast(pl.Float64).alias("flops"),
        "step",
        pl.col("lambada_openai__ppl").log().alias("loss"),
        *[pl.col(c).cast(pl.Float64).alias(f"score:{b}") for c, (b, _) in TASKS.items()],
    ).filter(pl.col("loss").is_finite())
    return RunTable(frame, [Benchmark(name=b, chance=ch) for b, ch in TASKS.values()])


def run(quick: bool, candidate: Mapping[str, Any] | None = None, data_dir: str | None = None) -> dict[str, Any]:
    from mixopt.data.public import default_data_dir

    logging.getLogger("mixopt").setLevel(logging.ERROR)
    root = __import__("pathlib").Path(__file__).resolve().parents[1]
    data = __import__("pathlib").Path(data_dir) if data_dir else default_data_dir(root)
    if not (data / "pythia").is_dir():
        print(f"section pythia: {data}/pythia not found")
        return {"status": "no data"}
    nb = 50 if quick else 200
    methods = with_candidate(
        {
            "default": ("flp", {"n_bootstrap": nb}),
            "paper": ("flp", {"preset": "paper", "n_bootstrap": nb}),
            "fp": ("fp", {"n_bootstrap": nb}),
        },
        candidate,
    )
    out = {}
    for dedup in (False, True):
        label = "pythia-deduped" if dedup else "pythia"
        out[label] = section(load_pythia(data, dedup), methods, 6e9, label)
        print()
    # the 7-13x ladder: fit <= 1B (4 sizes), predict 6.9B and 12B (6.8x and 11.7x the compute of 1B); `auto` judges
    # the stage-1 form at the target's distance (default) beside the leave-largest-out choice (selection_at="largest")
    ladder = with_candidate({"default": ("flp", {"n_bootstrap": nb}), "largest": ("flp", {"n_bootstrap": nb, "selection_at": "largest"})}, candidate)
    for dedup in (False, True):
        label = "pythia-ladder-deduped" if dedup else "pythia-ladder"
        runs = load_pythia(data, dedup)
        fin = runs.final()
        keep = fin.run_ids().astype(str)[(fin.params() < 1.2e9) | (fin.params() >= 6e9)].tolist()
        out[label] = section(runs.select_runs(keep), ladder, 6e9, label)
        print()
    return out
