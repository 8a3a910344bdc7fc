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


def _copy(path, dest):
    import shutil

    shutil.copytree(path, dest)
    return dest


def test_manifest_lists_the_sha256_of_every_file(saved_flpm):
    import hashlib

    _, path, _ = saved_flpm
    man = json.loads((path / "manifest.json").read_text())
    assert man["version"] == 2 and sorted(man["files"]) == ["arrays.npz", "model.json"]
    for name, sha in man["files"].items():
        assert hashlib.sha256((path / name).read_bytes()).hexdigest() == sha


def test_edited_settings_in_model_json_are_refused(saved_flpm, tmp_path):
    # the case: a changed setting in model.json was accepted silently (only arrays were hashed)
    _, path, _ = saved_flpm
    bad = _copy(path, tmp_path / "edited")
    meta = json.loads((bad / "model.json").read_text())
    meta["settings"]["n_members"] = 7
    (bad / "model.json").write_text(json.dumps(meta, indent=1) + "\n")
    with pytest.raises(ModelFileError, match=r"model\.json does not match the SHA-256"):
        load_surrogate(bad)


def test_whitespace_only_edit_is_refused_too(saved_flpm, tmp_path):
    _, path, _ = saved_flpm
    bad = _copy(path, tmp_path / "ws")
    (bad / "model.json").write_text((bad / "model.json").read_text() + " ")
    with pytest.raises(ModelFileError, match="edited or damaged"):
        load_surrogate(bad)


def test_old_format_without_manifest_is_refused_clearly(saved_flpm, tmp_path):
    _, path, _ = saved_flpm
    bad = _copy(path, tmp_path / "v1")
    meta = json.loads((bad / "model.json").read_text())
    meta["version"] = 1
    (bad / "model.json").write_text(json.dumps(meta))
    (bad / "manifest.json").unlink()
    with pytest.raises(ModelFileError, match=r"format version 1.*reads version 2.*Refit"):
        load_surrogate(bad)


def test_other_format_version_is_refused(saved_flpm, tmp_path):
    _, path, _ = saved_flpm
    bad = _copy(path, tmp_path / "v999")
    man = json.loads((bad / "manifest.json").read_text())
    man["version"] = 999
    (bad / "manifest.json").write_text(json.dumps(man))
    with pytest.raises(ModelFileError, match="version 999"):
        load_surrogate(bad)


def test_tampered_weights_are_refused(saved_flpm, tmp_path):
    _, path, _ = saved_flpm
    bad = _copy(path, tmp_path / "tampered")
    blob = bytearray((bad / "arrays.npz").read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    (bad / "arrays.npz").write_bytes(bytes(blob))
    with pytest.raises(ModelFileError, match="arrays.npz does not match"):
        load_surrogate(bad)


def test_missing_or_garbage_files(tmp_path):
    with pytest.raises(ModelFileError, match="not a mixopt model directory"):
        load_surrogate(tmp_path)
    (tmp_path / "model.json").write_text("{not json")
    (tmp_path / "arrays.npz").write_bytes(b"")
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(ModelFileError, match="not valid JSON"):
        load_surrogate(tmp_path)


def test_save_refuses_a_file_or_a_foreign_directory_and_replaces_a_model(saved_flpm, tmp_path):
    model, path, targets = saved_flpm
    f = tmp_path / "runs.csv"
    f.write_text("precious")
    with pytest.raises(ModelFileError, match="existing file"):
        save_surrogate(model, f)
    assert f.read_text() == "precious"
    d = tmp_path / "notes"
    d.mkdir()
    (d / "keep.txt").write_text("x")
    with pytest.raises(ModelFileError, match="not a mixopt model"):
        save_surrogate(model, d)
    again = save_surrogate(model, _copy(path, tmp_path / "m2"))  # an existing model is replaced
    np.testing.assert_array_equal(load_surrogate(again).predict(targets, intervals=False).mean,
                                  model.predict(targets, intervals=False).mean)
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []  # no temp leftovers


def test_unknown_domain_in_target_mixture_is_refused(saved_flpm):
    model, _, _ = saved_flpm
    t = Targets(flops=np.array([1e20]), mixture=np.array([[0.5, 0.3, 0.1, 0.1]]), domains=(*model.domains_, "books"))
    with pytest.raises(Exception, match="never saw"):
        model.predict(t)


def test_a_model_file_with_the_retired_wall_time_budget_loads_and_predicts_the_same(saved_flpm, tmp_path):
    # written by a mixopt whose FLP-M had a max_seconds setting (its manifest hashes that model.json)
    import hashlib

    model, path, targets = saved_flpm
    old = _copy(path, tmp_path / "old")
    meta = json.loads((old / "model.json").read_text())
    meta["settings"]["max_seconds"] = 120.0
    (old / "model.json").write_text(json.dumps(meta, indent=1) + "\n")
    man = json.loads((old / "manifest.json").read_text())
    man["files"]["model.json"] = hashlib.sha256((old / "model.json").read_bytes()).hexdigest()
    (old / "manifest.json").write_text(json.dumps(man, indent=1) + "\n")
    loaded = load_surrogate(old)
    assert "max_seconds" not in loaded.get_params()
    np.testing.assert_array_equal(loaded.predict(targets, intervals=False).mean, model.predict(targets, intervals=False).mean)
