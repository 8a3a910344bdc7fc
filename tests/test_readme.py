"""The README's commands do what they claim: every ``mixopt ...`` line of its bash blocks parses, and
the ones runnable offline run end to end on small data.

The README and the reference pages it links in ``docs/`` (``docs/*.md``, read after the README,
in the order it links them) are read at test time: ``MIXOPT_README=/path/to/README.md`` points the tests at another
README (its ``docs/`` folder is read then). Commands run in a scratch copy of the repository layout
(``configs/``, ``mixopt/examples/``, and ``../shared`` linked when it exists), in README order, so a
``fit --out model/`` feeds the next ``predict --model model/``. Small data by substitution:

* ``mixopt optimize`` gets ``--trials`` scaled by ``MIXOPT_README_TRIALS / 2000`` (default 256 / 2000,
  so the example's 2,000 trials become 256 and a "raise it to 4,000" resume example stays twice as
  large), or ``--trials MIXOPT_README_TRIALS`` when it has none;
* optional parts written ``[--json]`` are dropped; commands that need a running Ray cluster
  (``--ray-address``) or an installation step are skipped;
* commands reading ``../shared/data`` run only in the slow test and only when the data is there.

Running them all fits FLP-M several times (about 1-3 minutes on 2 loaded cores), so the
running tests are marked ``slow``: ``python -m pytest -m slow tests/test_readme.py``. The parsing
test is fast and runs by default.
"""

from __future__ import annotations

import math
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import needs_data

REPO = Path(__file__).resolve().parents[1]
README = Path(os.environ.get("MIXOPT_README", REPO / "README.md"))
#: The reference pages the README links (methods, search, training, API, ...): checked like the README.
DOCS = README.parent / "docs"
TRIALS = int(os.environ.get("MIXOPT_README_TRIALS", "256"))
SHARED = REPO.parent / "shared"
#: Longest README: quick start, data contract, command line and layout; the rest is in docs/.
README_MAX_LINES = 350
#: Seconds one command may take before the test fails.
COMMAND_TIMEOUT_S = 900


def readme_commands(text: str) -> list[str]:
    """Every ``mixopt ...`` command in the ```bash blocks of ``text``, continuation lines joined,
    comments and ``[optional]`` parts removed, in order."""
    out: list[str] = []
    for block in re.findall(r"```(?:bash|sh|shell|console)[^\n]*\n(.*?)```", text, re.S):
        joined = re.sub(r"\\\n\s*", " ", block)
        for line in joined.splitlines():
            line = line.strip().removeprefix("$ ")
            try:
                words = shlex.split(line, comments=True)
            except ValueError:
                continue
            # a line may chain commands: `pip install -e . && mixopt optimize ...`
            segments: list[list[str]] = [[]]
            for w in words:
                if w in ("&&", ";", "||", "|"):
                    segments.append([])
                else:
                    segments[-1].append(w)
            for seg in segments:
                if seg and seg[0] == "mixopt":
                    cmd = shlex.join(seg)
                    out.append(re.sub(r"\s*'?\[[^\]]*\]'?", "", cmd).strip())
    return out


def small(cmd: str) -> list[str]:
    """The command's arguments (after ``mixopt``) with small trial counts."""
    args = shlex.split(cmd)[1:]
    if args and args[0] == "optimize":
        if "--trials" in args:
            i = args.index("--trials")
            args[i + 1] = str(max(1, math.ceil(int(args[i + 1]) * TRIALS / 2000)))
        else:
            args += ["--trials", str(TRIALS)]
        if "--no-progress" not in args:
            args.append("--no-progress")
    return args


def needs_shared(cmd: str) -> bool:
    return "../shared/" in cmd or "shared/data" in cmd


#: Commands that train models for minutes (ladder, validate, the loop config), serve forever, or
#: install system packages: documented, but run by their own tests (tests/train, tests/api).
LONG_OR_SERVING = ("mixopt serve", "mixopt ladder", "mixopt validate", "ladder_search.toml")


def runnable_offline(cmd: str) -> bool:
    if any(k in cmd for k in LONG_OR_SERVING):
        return False
    if cmd.startswith("mixopt corpus build") and "--fixture" not in cmd:
        return False
    return "--ray-address" not in cmd


def doc_pages() -> list[Path]:
    """The README, then the ``docs/*.md`` pages in the order of the README's list of them (then any others
    by name): a page's commands may use files that an earlier page's commands wrote."""
    text = README.read_text(encoding="utf-8") if README.is_file() else ""
    linked = [DOCS / n for n in dict.fromkeys(re.findall(r"^- \[docs/([\w.-]+\.md)\]", text, re.M)) if (DOCS / n).is_file()]
    return [README, *linked, *(p for p in sorted(DOCS.glob("*.md")) if p not in linked)]


def _commands() -> list[str]:
    if not README.is_file():
        pytest.skip(f"no README at {README}")
    cmds = [c for page in doc_pages() for c in readme_commands(page.read_text(encoding="utf-8"))]
    if not cmds:
        pytest.skip(f"{README} and {DOCS} have no mixopt commands in bash blocks")
    return cmds


def test_readme_is_short_and_links_every_docs_page() -> None:
    """README keeps quick start, data contract, CLI and layout; the reference lives in docs/."""
    text = README.read_text(encoding="utf-8")
    assert len(text.splitlines()) <= README_MAX_LINES, f"{README} has {len(text.splitlines())} lines; move reference to docs/"
    pages = sorted(DOCS.glob("*.md"))
    assert pages, f"no reference pages in {DOCS}"
    unlinked = [p.name for p in pages if f"docs/{p.name}" not in text]
    assert not unlinked, f"README does not link {unlinked}"


def test_every_relative_link_of_the_docs_resolves() -> None:
    broken = []
    for page in doc_pages():
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", page.read_text(encoding="utf-8")):
            if "://" in target:
                continue
            if not (page.parent / target).exists():
                broken.append(f"{page.name}: {target}")
    assert not broken, f"links to missing files: {broken}"


def test_extraction_joins_continuations_and_drops_optional_parts() -> None:
    text = "```bash\npip install x && mixopt optimize c.toml [--trials N] # run it\n" \
           "mixopt backtest --runs a.csv \\\n    --method flp,fp [--json]\n```\n```python\nmixopt fit\n```"
    assert readme_commands(text) == ["mixopt optimize c.toml", "mixopt backtest --runs a.csv --method flp,fp"]
    assert small("mixopt optimize c.toml --trials 4000")[-3:] == ["--trials", str(math.ceil(4000 * TRIALS / 2000)),
                                                                  "--no-progress"]


def test_every_readme_command_parses() -> None:
    from mixopt.cli.main import _join_negative_values, build_parser

    parser = build_parser()
    for cmd in _commands():
        try:
            parser.parse_args(_join_negative_values(small(cmd)))
        except SystemExit:
            pytest.fail(f"README command does not parse: {cmd}")


def _workspace(tmp: Path) -> Path:
    ws = tmp / "repo"
    shutil.copytree(REPO / "configs", ws / "configs")
    shutil.copytree(REPO / "mixopt" / "examples", ws / "mixopt" / "examples")
    shutil.copytree(REPO / "tests" / "data" / "fixtures", ws / "tests" / "data" / "fixtures")  # "Bring your own data"
    if SHARED.exists():
        (tmp / "shared").symlink_to(SHARED)
    return ws


def _run(cmd: str, cwd: Path) -> None:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    r = subprocess.run([sys.executable, "-m", "mixopt", *small(cmd)], cwd=cwd, env=env, capture_output=True, text=True,
                       timeout=COMMAND_TIMEOUT_S)
    assert r.returncode == 0, f"README command failed ({r.returncode}): {cmd}\n{r.stderr[-3000:]}"
    assert "Traceback" not in r.stderr, f"{cmd}\n{r.stderr[-3000:]}"


@pytest.mark.slow
def test_readme_offline_commands_run(tmp_path) -> None:
    ws = _workspace(tmp_path)
    ran = 0
    for cmd in _commands():
        if needs_shared(cmd) or not runnable_offline(cmd):
            continue
        _run(cmd, ws)
        ran += 1
    assert ran > 0


@pytest.mark.slow
@needs_data(SHARED / "data")
def test_readme_shared_data_commands_run(tmp_path) -> None:
    cmds = [c for c in _commands() if needs_shared(c) and runnable_offline(c)]
    if not cmds:
        pytest.skip("the README has no command on ../shared/data")
    ws = _workspace(tmp_path)
    for cmd in cmds:
        _run(cmd, ws)
