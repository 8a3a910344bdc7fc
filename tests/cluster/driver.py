"""The driver of the two-node test, run as its own process (``python -m tests.cluster.driver``).

It connects to the cluster at ``--address`` the way a user's job does (``[trainer] ray_address``
in a ladder config; ``RayExecutor(address)`` for the search), trains a small ladder, then runs a
search whose study lives in the PostgreSQL database at ``--storage``. Every evaluation batch
appends ``<node id> <unix time>`` to ``--record`` (the test kills the worker node once it
has seen batches there). Prints one JSON line with what happened.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import textwrap
import time
from pathlib import Path

from mixopt.testing import WorldSurrogate


class NodeRecordingSurrogate(WorldSurrogate):
    """The world's truth, slowed by ``delay_s`` per batch, recording the node each batch ran on."""

    def __init__(self, world, *, record: str, delay_s: float) -> None:
        super().__init__(world, delay_s=delay_s)
        self.record = record

    def _predict(self, targets, *, intervals, level):
        import ray

        out = super()._predict(targets, intervals=intervals, level=level)
        with open(self.record, "a") as f:
            f.write(f"{ray.get_runtime_context().get_node_id()} {time.time():.3f} {os.getpid()}\n")
        return out


def _alive_nodes(ray) -> list[str]:
    return [n["NodeID"] for n in ray.nodes() if n["Alive"]]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--address", required=True)
    ap.add_argument("--storage", required=True)
    ap.add_argument("--record", required=True)
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--trials", type=int, default=384)
    ap.add_argument("--batch", type=int, default=16)
    args = ap.parse_args()

    from ray import cloudpickle

    from mixopt.config import load_train_config
    from mixopt.search import ComputeSpace, MixtureSpace, Problem, RayExecutor, SearchSpace, run_study
    from mixopt.testing import mixture_world
    from mixopt.train.corpus import fixture_corpus
    from mixopt.train.ladder import run_ladder

    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the wrapper travels with the problem
    work = Path(args.workdir)
    ex = RayExecutor(args.address, workers=2)  # one batch in flight per node
    ray = ex._session.ray
    deadline = time.time() + 120
    while len(_alive_nodes(ray)) < 2 and time.time() < deadline:
        time.sleep(0.5)
    head = ray.get_runtime_context().get_node_id()  # the driver runs on the head node
    nodes = _alive_nodes(ray)

    # a ladder of two tiny reference-trainer runs, through a ladder config that names the cluster
    corpus = fixture_corpus(work / "corpus")
    (work / "ladder.toml").write_text(textwrap.dedent(f"""
        [trainer]
        kind = "reference"
        executor = "ray"
        ray_address = "{args.address}"
        max_parallel = 2
        cpus_per_job = 1
        timeout_s = 300
        workdir = "{work / 'jobs'}"
        [trainer.options]
        corpus = "{corpus}"
        threads = 1
        cloze_items = 20
        eval_windows = 8
        [ladder]
        sizes = [2e4]
        tokens = 2e4
        seeds = [0, 1]
        checkpoints = 1
        output = "{work / 'ladder.csv'}"
        [ladder.mixtures]
        even = {{ prose = 0.25, code = 0.25, docs = 0.25, math = 0.25 }}
    """))
    rep = run_ladder(load_train_config(work / "ladder.toml"))
    ladder = [{"run_id": r.spec.run_id, "status": r.status, "node": r.node, "message": r.message[:300]} for r in rep.results]

    world = mixture_world(n_domains=4, n_benchmarks=2, seed=0)
    surrogate = NodeRecordingSurrogate(world, record=args.record, delay_s=0.4)
    problem = Problem(SearchSpace(MixtureSpace(world.domains), ComputeSpace(flops=(1e20, 1e22))), surrogate,
                      [f"score:{b}" for b in world.benchmark_names])
    t0 = time.time()
    res = run_study(problem, trials=args.trials, batch_size=args.batch, seed=0, executor=ex, storage=args.storage,
                    study_name="two-node", progress=False)
    ex.close()
    print(json.dumps({"head": head, "nodes_at_start": nodes, "ladder": ladder, "search_started": t0,
                      "n_trials": res.n_trials, "n_complete": res.n_complete, "n_failed": res.n_failed}))


if __name__ == "__main__":
    main()
