"""``import mixopt`` and the surrogates import only what they use (no torch, scipy.stats, ray, fastapi)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "scipy.stats", "ray", "fastapi", "optuna")


def _loaded(code: str) -> dict[str, bool]:
    """Which of HEAVY (and numpy, polars) a fresh interpreter has loaded after ``code``."""
    probe = code + "\nimport json, sys\nprint(json.dumps({m: m in sys.modules for m in %r}))" % (HEAVY + ("numpy", "polars"),)
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, cwd=ROOT, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_import_mixopt_loads_no_heavy_package() -> None:
    loaded = _loaded("import mixopt")
    assert not any(loaded.values()), f"import mixopt loaded {[m for m, v in loaded.items() if v]}"


def test_public_names_load_on_first_use() -> None:
    loaded = _loaded("import mixopt\nassert mixopt.RunTable.__name__ == 'RunTable' and callable(mixopt.make_surrogate)")
    assert loaded["polars"] and not any(loaded[m] for m in HEAVY), loaded
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        import mixopt

        mixopt.nope  # noqa: B018


@pytest.mark.parametrize("module", ["mixopt.surrogate.flp", "mixopt.surrogate.flpm", "mixopt.surrogate.baselines"])
def test_surrogates_import_no_torch_or_scipy_stats(module: str) -> None:
    loaded = _loaded(f"import {module}")
    assert not any(loaded[m] for m in HEAVY), f"{module} loaded {[m for m in HEAVY if loaded[m]]}"


@pytest.mark.slow
def test_the_main_job_imports_no_torch_or_scipy_stats(tmp_path: Path) -> None:
    """``mixopt optimize configs/example.toml`` (FLP-M auto on 60 runs) loads neither torch nor scipy.stats."""
    import shutil

    shutil.copytree(ROOT / "configs", tmp_path / "configs")
    shutil.copytree(ROOT / "mixopt" / "examples", tmp_path / "mixopt" / "examples")
    code = ("import json, sys\nfrom mixopt.cli.main import main\n"
            "rc = main(['optimize', 'configs/example.toml', '--no-progress', '--json', '--trials', '256'])\n"
            "print(json.dumps({'rc': rc, 'loaded': [m for m in %r if m in sys.modules]}))" % (HEAVY,))
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    info = json.loads(out.stdout.strip().splitlines()[-1])
    assert info["rc"] == 0 and not {"torch", "scipy.stats", "fastapi"} & set(info["loaded"]), info
