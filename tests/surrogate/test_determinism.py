"""Determinism: ``auto`` FLP and FLP-M choose the same and predict the same on any machine.

Every fit budget counts iterations, never seconds, so neither the thread count nor the
machine's load (here: a clock that jumps by hours at every reading) may change which
candidate wins or what it predicts. Each fit runs in a fresh subprocess with
``OMP_NUM_THREADS`` (and the BLAS thread counts; torch takes its own from it) set, and in-process with
``time.monotonic`` / ``time.perf_counter`` / ``time.time`` / ``time.process_time``
monkeypatched to jump.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

#: predictions of two fits that must be identical may differ by floating-point noise only
#: (a BLAS at another thread count may sum in another order)
RTOL_SAME = 1e-8
ATOL_SAME = 1e-10
#: the fake clock advances this many seconds at every reading
CLOCK_JUMP_S = 3.0 * 3600

ROOT = Path(__file__).resolve().parents[2]

#: builds both tables, fits both models and prints what must not change (JSON)
SCRIPT = r"""
import json, sys
import numpy as np
from mixopt.surrogate import Targets
from mixopt.surrogate.flp import FLP
from mixopt.surrogate.flpm import FLPM
from mixopt.testing import mixture_world, single_domain_world

def fingerprint(model, targets):
    sel = model.selection_
    rows = [] if sel is None else [
        {k: (None if v is None or (isinstance(v, float) and v != v) else (round(v, 12) if isinstance(v, float) else v))
         for k, v in r.items() if k not in ("seconds",)} for r in sel.to_dicts()]
    pred = model.predict(targets, intervals=True, level=0.9)
    out = {}
    for q in pred.names:
        mean = np.asarray(pred.get(q), dtype=float)
        lo, hi = pred.interval(q)
        out[q] = [mean.tolist(), np.asarray(lo, dtype=float).tolist(), np.asarray(hi, dtype=float).tolist()]
    config = getattr(model, "config_", None)
    return {"selection": rows, "config": config, "predictions": out}

def run():
    single = single_domain_world(seed=1)
    runs = single.sample_runs([2e7, 5e7, 1e8, 2e8, 4e8, 7e8], n_checkpoints=5, seed=2)
    t_single = Targets.from_params_tokens(np.array([1e9, 3e9]), np.array([2e10, 6e10]))
    flp = FLP(n_bootstrap=10, seed=0).fit(runs)
    world = mixture_world(n_domains=3, n_benchmarks=3, seed=0)
    mruns = world.sample_runs([5e7, 1e8, 2e8, 5e8, 1e9], world.random_mixtures(10, seed=100), n_checkpoints=5,
                              loss_noise=0.005, score_noise=0.005, seed=200)
    mix = world.random_mixtures(4, seed=400)
    t_mix = Targets.from_params_tokens(np.full(4, 2e9), np.full(4, 4e10), mix, world.domains)
    flpm = FLPM(n_bootstrap=6, n_starts=4, seed=0, stage2="logistic").fit(mruns)
    return {"flp": fingerprint(flp, t_single), "flpm": fingerprint(flpm, t_mix)}

if __name__ == "__main__":
    # OMP_NUM_THREADS (set by the caller) also sets torch's intra-op threads, were torch used
    print("FINGERPRINT " + json.dumps(run()))
"""


def _fingerprint_in_subprocess(threads: int, tmp_path: Path) -> dict[str, Any]:
    script = tmp_path / "determinism_fit.py"
    script.write_text(SCRIPT)
    env = dict(os.environ)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env[var] = str(threads)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    out = subprocess.run([sys.executable, str(script), str(threads)], env=env, capture_output=True, text=True,
                         timeout=900, cwd=str(tmp_path))
    assert out.returncode == 0, out.stderr[-4000:]
    line = [ln for ln in out.stdout.splitlines() if ln.startswith("FINGERPRINT ")]
    assert line, out.stdout[-2000:]
    return json.loads(line[-1][len("FINGERPRINT "):])


def _assert_same(a: dict[str, Any], b: dict[str, Any]) -> None:
    for kind in ("flp", "flpm"):
        fa, fb = a[kind], b[kind]
        assert fa["config"] == fb["config"], kind
        assert len(fa["selection"]) == len(fb["selection"]), kind
        for ra, rb in zip(fa["selection"], fb["selection"], strict=True):
            for key in ra:
                va, vb = ra[key], rb[key]
                if isinstance(va, float) and isinstance(vb, float):
                    assert va == pytest.approx(vb, rel=RTOL_SAME, abs=ATOL_SAME), (kind, key, ra, rb)
                else:
                    assert va == vb, (kind, key, ra, rb)
        assert sorted(fa["predictions"]) == sorted(fb["predictions"]), kind
        for q, parts in fa["predictions"].items():
            for pa, pb in zip(parts, fb["predictions"][q], strict=True):
                np.testing.assert_allclose(np.array(pa, dtype=float), np.array(pb, dtype=float), rtol=RTOL_SAME,
                                           atol=ATOL_SAME, err_msg=f"{kind} {q}")


@pytest.fixture(scope="module")
def one_thread(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return _fingerprint_in_subprocess(1, tmp_path_factory.mktemp("threads1"))


def test_selection_and_predictions_do_not_depend_on_the_thread_count(one_thread: dict[str, Any], tmp_path: Path) -> None:
    two = _fingerprint_in_subprocess(2, tmp_path)
    _assert_same(one_thread, two)
    # the fingerprint is not empty: both models chose something and predicted every target
    for kind in ("flp", "flpm"):
        assert one_thread[kind]["selection"], kind
        assert any(np.isfinite(np.array(p[0], dtype=float)).all() for p in one_thread[kind]["predictions"].values()), kind


def test_a_jumping_clock_changes_nothing(one_thread: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    namespace: dict[str, Any] = {"__name__": "determinism_fit"}
    exec(compile(SCRIPT, "determinism_fit", "exec"), namespace)  # noqa: S102 - the same script, in-process
    state = {"t": time.time()}

    def jumping() -> float:
        state["t"] += CLOCK_JUMP_S
        return state["t"]

    def jumping_ns() -> int:
        return int(jumping() * 1e9)

    for name in ("monotonic", "perf_counter", "time", "process_time"):
        monkeypatch.setattr(time, name, jumping)
    for name in ("monotonic_ns", "perf_counter_ns", "time_ns"):
        monkeypatch.setattr(time, name, jumping_ns)
    slowed = namespace["run"]()
    monkeypatch.undo()
    assert state["t"] > time.time() + CLOCK_JUMP_S  # the fits did read the clock, and it jumped
    _assert_same(one_thread, json.loads(json.dumps(slowed)))
