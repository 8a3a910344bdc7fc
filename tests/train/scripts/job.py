"""A stand-in for a user's cluster training command (used by the external-trainer tests).

    python job.py MODE --mix JSON --params N --tokens D --out DIR [--checkpoints C] [--seed S]

MODE ``ok`` writes ``DIR/results.csv`` (one row per checkpoint, losses from a known
synthetic world: ``mixopt.testing.mixture_world(n_domains=3, seed=0)``, with the chance levels
in ``results.benchmarks.json``); ``fail`` prints a message and exits 5; ``hang`` sleeps for
an hour; ``nofile`` exits 0 without writing results.
"""

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

p = argparse.ArgumentParser()
p.add_argument("mode", choices=["ok", "fail", "hang", "nofile"])
p.add_argument("--mix", required=True)
p.add_argument("--params", type=float, required=True)
p.add_argument("--tokens", type=float, required=True)
p.add_argument("--out", required=True)
p.add_argument("--checkpoints", type=int, default=3)
p.add_argument("--seed", type=int, default=0)
a = p.parse_args()
print(f"job.py {a.mode}: params={a.params:g} tokens={a.tokens:g} mix={a.mix}", flush=True)
if a.mode == "fail":
    print("CUDA out of memory (pretend)", flush=True)
    sys.exit(5)
if a.mode == "hang":
    time.sleep(3600)
if a.mode == "nofile":
    sys.exit(0)

from mixopt.testing import mixture_world  # noqa: E402

world = mixture_world(n_domains=3, n_benchmarks=4, seed=0)
mix = json.loads(a.mix)
r = np.array([[mix.get(d, 0.0) for d in world.domains]])
rng = np.random.default_rng(a.seed)
lines = ["tokens," + ",".join(f"loss:{d}" for d in world.domains) + "," + ",".join(f"score:{b.name}" for b in world.benchmarks)]
for k in range(1, a.checkpoints + 1):
    tokens = a.tokens * k / a.checkpoints
    flops = 6 * a.params * tokens
    losses = world.true_losses(flops, r)[0] * (1 + 0.002 * rng.standard_normal(len(world.domains)))
    scores = world.true_scores(flops, r)[0]
    lines.append(f"{tokens}," + ",".join(f"{x:.6f}" for x in losses) + "," + ",".join(f"{x:.6f}" for x in scores))
out = Path(a.out)
(out / "results.csv").write_text("\n".join(lines) + "\n")
(out / "results.benchmarks.json").write_text(json.dumps([b.to_dict() for b in world.benchmarks]))
