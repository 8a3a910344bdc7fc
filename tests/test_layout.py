"""The package layout: imports run one way, and the few heavy or special imports stay in their place.

Direction (see each package's ``__init__`` docstring)::

    errors, _json <- _files, _terminal, _ray <- progress <- data <- laws <- surrogate <- search | train | backtest | testing
        <- report | config <- workflows <- api | client <- cli

Imports are read from the source with ``ast`` (module-level and function-level alike; imports
under ``if TYPE_CHECKING:`` are type hints only and are skipped), so a lazy import cannot hide
a back edge.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "mixopt"

#: Rank of each top-level unit of ``mixopt``: a unit may import only units of a lower rank.
#: Units of one rank (e.g. search and train) must not import each other.
RANK = {
    "errors": 0, "_json": 0, "_params": 0, "_normal": 0, "_rowwise": 0,  # _normal: the normal quantile, _rowwise: per-draw constants over rows (numpy only)
    "_files": 0.5, "_terminal": 0.5,  # atomic writes (raise errors.OutputError) and terminal tables/progress
    "_ray": 0.5,  # the one Ray start-up (raises errors.ClusterError)
    "progress": 0.7,  # step progress of long commands (plain lines from _terminal off a terminal)
    "data": 1,
    "laws": 2,
    "surrogate": 3,
    "__init__": 4,  # ``import mixopt``: public re-exports of data, errors and surrogate only
    "search": 5, "train": 5, "backtest": 5, "testing": 5,
    "report": 6, "config": 6,
    "workflows": 7,
    "api": 8, "client": 8,
    "cli": 9,
    "__main__": 10,
}

#: Where each special third-party package may be imported (prefix of the importing module).
ONLY_IN = {
    "argparse": ("mixopt.cli",),
    "fastapi": ("mixopt.api",),
    "fastapi_offline": ("mixopt.api",),
    "starlette": ("mixopt.api",),
    "uvicorn": ("mixopt.api",),
    # one Ray start: every executor (search trials, training jobs, the service's jobs) goes through
    # mixopt._ray.start_or_connect and uses the module it hands back
    "ray": ("mixopt._ray",),
}


def _module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    name = ".".join(rel.parts)
    return name.removesuffix(".__init__")


def _unit(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip.update(id(n) for n in ast.walk(node))
    return skip


def _imports(path: Path, modules: set[str]) -> list[tuple[str, int, bool]]:
    """``(imported module, line, at module level)`` for every import in ``path`` (type-only ones skipped)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skip = _type_checking_nodes(tree)
    top = {id(n) for n in tree.body} | {id(n) for s in tree.body if isinstance(s, (ast.If, ast.Try)) for n in ast.walk(s)}
    out = []
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            out += [(a.name, node.lineno, id(node) in top) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for a in node.names:  # ``from pkg import submodule`` imports the submodule
                sub = f"{node.module}.{a.name}"
                out.append((sub if sub in modules else node.module, node.lineno, id(node) in top))
    return out


def _tree() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def test_every_unit_has_a_rank() -> None:
    units = {_unit(m) for m in _tree()}
    assert units <= set(RANK), f"give these new top-level modules or packages a rank in RANK: {sorted(units - set(RANK))}"


def test_imports_run_one_way() -> None:
    tree = _tree()
    bad = []
    for mod, path in tree.items():
        for target, line, _ in _imports(path, set(tree)):
            if not target.startswith("mixopt.") and target != "mixopt":
                continue
            a, b = _unit(mod), _unit(target)
            if a != b and RANK.get(b, 99) >= RANK.get(a, -1):
                bad.append(f"{path.relative_to(PACKAGE.parent)}:{line}: {mod} ({a}, rank {RANK.get(a)}) imports "
                           f"{target} ({b}, rank {RANK.get(b)})")
    assert not bad, "imports against the direction:\n" + "\n".join(bad)


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def test_no_import_circles_at_module_level() -> None:
    """Module-level imports form no circle (lazy imports inside functions may register plugins)."""
    tree = _tree()
    edges: dict[str, set[str]] = defaultdict(set)
    for mod, path in tree.items():
        for target, _, top in _imports(path, set(tree)):
            if top and target in tree and target != mod:
                edges[mod].add(target)
    # a package imports its own submodules in __init__; a submodule importing its package is the circle
    assert not _cycles(edges), f"module-level import circles: {_cycles(edges)}"


def test_cycle_finder_finds_a_circle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


@pytest.mark.parametrize("package", sorted(ONLY_IN))
def test_special_imports_stay_in_their_place(package: str) -> None:
    tree = _tree()
    allowed = ONLY_IN[package]
    bad = []
    for mod, path in tree.items():
        for target, line, _ in _imports(path, set(tree)):
            if (target == package or target.startswith(package + ".")) and not mod.startswith(allowed):
                bad.append(f"{path.relative_to(PACKAGE.parent)}:{line}: imports {target}")
    assert not bad, f"{package} may be imported only in {allowed}:\n" + "\n".join(bad)


def test_every_package_states_its_rule() -> None:
    """Each package's ``__init__`` docstring says what it may import."""
    missing = []
    for init in sorted(PACKAGE.rglob("__init__.py")):
        if init.parent == PACKAGE or init.parent.name == "routes":
            continue
        doc = ast.get_docstring(ast.parse(init.read_text(encoding="utf-8"))) or ""
        if "Package rule" not in doc:
            missing.append(str(init.relative_to(PACKAGE.parent)))
    assert not missing, f"write the package rule ('Package rule: ... may import ...') in: {missing}"
