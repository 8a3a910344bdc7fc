"""Model directories: round trip in another process, and refusal of foreign or altered files."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from mixopt import ModelFileError, Targets, load_surrogate, make_surrogate, save_surrogate
from mixopt.testing import mixture_world, random_mixtures


@pytest.fixture(scope="module")
def saved_flpm(tmp_path_factory):
    world = mixture_world(n_domains=3, n_benchmarks=2, seed=4)
    runs = world.sample_runs([5e7, 2e8, 1e9], random_mixtures(6, 3, seed=1), n_checkpoints=6, seed=2)
    model = make_surrogate("flpm", n_bootstrap=4, n_members=2, max_epochs=200, seed=0).fit(runs)
    path = save_surrogate(model, tmp_path_factory.mktemp("m") / "flpm")
    targets = Targets.grid(random_mixtures(5, 3, seed=9), np.array([1e20, 1e21]), world.domains)
    return model, path, targets


def test_reload_in_another_process_gives_identical_predictions(saved_flpm, tmp_path):
    model, path, targets = saved_flpm
    np.save(tmp_path / "mix.npy", targets.mixture)
    np.save(tmp_path / "flops.npy", targets.flops)
    code = f"""
import numpy as np
from mixopt import Targets, load_surrogate
m = load_surrogate({str(path)!r})
t = Targets(flops=np.load({str(tmp_path / 'flops.npy')!r}), mixture=np.load({str(tmp_path / 'mix.npy')!r}), domains=m.domains_)
np.save({str(tmp_path / 'out.npy')!r}, m.predict(t, intervals=False).mean)
"""
    subprocess.run([sys.executable, "-c", code], check=True)
    np.testing.assert_array_equal(np.load(tmp_path / "out.npy"), model.predict(targets, intervals=False).mean)


def test_other_format_version_is_refused(saved_flpm, tmp_path):
    _, path, _ = saved_flpm
    meta = json.loads((path / "model.json").read_text())
    meta["version"] = 999
    bad = tmp_path / "v999"
    bad.mkdir()
    (bad / "model.json").write_text(json.dumps(meta))
    (bad / "arrays.npz").write_bytes((path / "arrays.npz").read_bytes())
    with pytest.raises(ModelFileError, match="version 999"):
        load_surrogate(bad)


def test_tampered_weights_are_refused(saved_flpm, tmp_path):
    _, path, _ = saved_flpm
    bad = tmp_path / "tampered"
    bad.mkdir()
    (bad / "model.json").write_text((path / "model.json").read_text())
    blob = bytearray((path / "arrays.npz").read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    (bad / "arrays.npz").write_bytes(bytes(blob))
    with pytest.raises(ModelFileError, match="altered"):
        load_surrogate(bad)


def test_missing_or_garbage_files(tmp_path):
    with pytest.raises(ModelFileError, match="not a mixopt model directory"):
        load_surrogate(tmp_path)
    (tmp_path / "model.json").write_text("{not json")
    (tmp_path / "arrays.npz").write_bytes(b"")
    with pytest.raises(ModelFileError, match="not valid JSON"):
        load_surrogate(tmp_path)


def test_unknown_domain_in_target_mixture_is_refused(saved_flpm):
    model, _, _ = saved_flpm
    t = Targets(flops=np.array([1e20]), mixture=np.array([[0.5, 0.3, 0.1, 0.1]]), domains=(*model.domains_, "books"))
    with pytest.raises(Exception, match="never saw"):
        model.predict(t)
