"""The package's layout is its data flow: imports go one way, from a later stage to an earlier.

The stage order is the one docs/design.md writes down; this test reads every ``import`` in
``hpcx/`` (module level, inside functions and under TYPE_CHECKING alike: a lazy import is still
a dependency) and fails on an import against that order and on any cycle between modules.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

import hpcx

ROOT = Path(hpcx.__file__).parent

#: Stages, earliest first. A module may import its own stage and earlier ones, never later.
STAGES: list[tuple[str, tuple[str, ...]]] = [
    ("base", ("hpcx", "hpcx.errors", "hpcx.metrics", "hpcx.checkpoint", "hpcx.util")),
    ("node", ("hpcx.node",)),
    ("workloads", ("hpcx.workloads",)),
    ("cluster", ("hpcx.cluster",)),
    ("manifest", ("hpcx.manifest",)),
    ("project", ("hpcx.project",)),
    ("state", ("hpcx.state",)),
    ("plan", ("hpcx.plan",)),
    ("run", ("hpcx.run", "hpcx.job")),
    ("results", ("hpcx.results",)),
    ("cli", ("hpcx.cli", "hpcx.__main__")),
]

#: The package root re-exports the metrics helpers lazily for ``hpcx.log_metric``: the public
#: façade, not a stage, so its own imports are exempt (imports *of* it count as base).
FACADE = "hpcx"


def _modules() -> dict[str, Path]:
    mods = {}
    for path in ROOT.rglob("*.py"):
        parts = path.relative_to(ROOT.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        mods[name] = path
    return mods


MODULES = _modules()


def stage_of(module: str) -> int:
    best = (-1, -1)  # (length of the longest matching prefix, stage index)
    for index, (_, prefixes) in enumerate(STAGES):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best[0]:
                best = (len(prefix), index)
    if best[1] < 0:
        raise AssertionError(f"{module} belongs to no stage: add it to STAGES and docs/design.md")
    return best[1]


def _resolve(module: str, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".")
    if MODULES[module].name != "__init__.py":
        base = base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


def imports_of(module: str) -> Iterator[tuple[str, int]]:
    """(imported hpcx module, line) for every import in ``module``."""
    tree = ast.parse(MODULES[module].read_text(), str(MODULES[module]))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "hpcx":
                    yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            target = _resolve(module, node)
            if target.split(".")[0] != "hpcx":
                continue
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                yield (sub if sub in MODULES else target), node.lineno


def _graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for module in MODULES:
        if module == FACADE:
            continue
        graph[module] = {t for t, _ in imports_of(module) if t in MODULES and t != module}
    return graph


def test_every_module_has_a_stage() -> None:
    for module in MODULES:
        stage_of(module)


def test_imports_follow_the_stage_order() -> None:
    wrong = []
    for module in sorted(MODULES):
        if module == FACADE:
            continue
        mine = stage_of(module)
        for target, line in imports_of(module):
            if target == FACADE:
                continue
            theirs = stage_of(target)
            if theirs > mine:
                wrong.append(
                    f"{MODULES[module]}:{line}: {module} "
                    f"({STAGES[mine][0]}) imports {target} ({STAGES[theirs][0]})"
                )
    assert not wrong, "imports against the stage order:\n" + "\n".join(wrong)


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
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
                found.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


#: Cycles being taken apart; the test fails when one is gone and still listed, so this only shrinks.
KNOWN_CYCLES: list[list[str]] = []


def test_no_import_cycles() -> None:
    # A package's __init__ re-exports its modules, so an import of a submodule from its own
    # package's __init__ back again is a cycle like any other.
    cycles = _cycles(_graph())
    new = [c for c in cycles if c not in KNOWN_CYCLES]
    assert not new, "import cycles:\n" + "\n".join(" <-> ".join(c) for c in new)
    gone = [c for c in KNOWN_CYCLES if c not in cycles]
    assert not gone, f"no longer cycles, take them off KNOWN_CYCLES: {gone}"


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("from hpcx.run import rundir\n", "hpcx.run.rundir"),
        ("from hpcx.state.store import StateStore\n", "hpcx.state.store"),
        ("import hpcx.results.query\n", "hpcx.results.query"),
    ],
)
def test_the_walker_sees_imports(source: str, expected: str, tmp_path: Path) -> None:
    # The checks above are only as good as the walker: it must see each form of import.
    module = "hpcx.cli.probe"
    original = MODULES[module]
    fake = tmp_path / "probe.py"
    fake.write_text(source)
    MODULES[module] = fake
    try:
        assert [t for t, _ in imports_of(module)] == [expected]
    finally:
        MODULES[module] = original


def test_a_backward_import_is_caught(tmp_path: Path) -> None:
    fake = tmp_path / "store.py"
    fake.write_text("def f():\n    from hpcx.run.apply import apply_plan\n")
    module = "hpcx.state.store"
    original = MODULES[module]
    MODULES[module] = fake
    try:
        with pytest.raises(AssertionError, match=r"hpcx.state.store \(state\) imports"):
            test_imports_follow_the_stage_order()
    finally:
        MODULES[module] = original
