"""The state has one front door: no SQL outside ``hpcx/state/`` and the read-only query engine.

Every read and write a command needs is a named method of ``StateStore`` or its
``Transaction``; this test reads every module of ``hpcx/`` and fails on SQL in a string, on a
``.execute(`` call, on ``.connection`` and on importing DuckDB (``duckdb``, ``_duckdb``,
``hpcx.state.engine``) anywhere else, so the rule
stays a rule. ``hpcx/results/`` runs the user's (and its reports') SQL through the read-only
engine's ``query`` over its views; only ``hpcx/results/query.py`` talks to DuckDB itself.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

import hpcx

ROOT = Path(hpcx.__file__).parent

#: Where SQL is at home: the state package, and the read-only engine over its views.
STATE = "hpcx/state/"
ENGINE = "hpcx/results/query.py"
#: Modules that run read-only SQL through the engine (``QueryEngine.query``) only.
OVER_THE_ENGINE = "hpcx/results/"

SQL = re.compile(
    r"\b(SELECT\b.*\bFROM\b|INSERT\s+INTO\b|UPDATE\s+\w+\s+SET\b|DELETE\s+FROM\b"
    r"|(CREATE|ALTER|DROP)\s+(OR\s+REPLACE\s+)?(TEMP\s+|TEMPORARY\s+)?(TABLE|VIEW|INDEX)\b"
    r"|COPY\s+[\w(])",
    re.S,
)
#: A user-facing example (a hint naming a command to type) is text, not a query hpcx runs.
EXAMPLE = re.compile(r"hpcx query \"")


def _rel(path: Path) -> str:
    return path.relative_to(ROOT.parent).as_posix()


def _text(node: ast.AST) -> str | None:
    """The text of a string literal (an f-string's literal parts joined), else None."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(
            v.value for v in node.values if isinstance(v, ast.Constant) and isinstance(v.value, str)
        )
    return None


def _is_duckdb(module: str) -> bool:
    """DuckDB's package, its engine extension, or the state's door to that extension."""
    return module.split(".")[0] in ("duckdb", "_duckdb") or module == "hpcx.state.engine"


def offences(path: Path, source: str) -> list[str]:
    """Each way ``source`` (the module at ``path``) reaches the database other than through
    the state's methods."""
    rel = _rel(path)
    if rel.startswith(STATE) or rel == ENGINE:
        return []
    tree = ast.parse(source, rel)
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            if node.func.attr in ("execute", "executemany", "sql"):
                out.append(f"{rel}:{node.lineno}: .{node.func.attr}(...) call")
        elif isinstance(node, ast.Attribute) and node.attr == "connection":
            out.append(f"{rel}:{node.lineno}: .connection (the raw DuckDB connection)")
        elif isinstance(node, ast.Import | ast.ImportFrom):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module]
            if any(_is_duckdb(n or "") for n in names):
                out.append(f"{rel}:{node.lineno}: import duckdb")
    if rel.startswith(OVER_THE_ENGINE):
        return out  # SQL text over the engine's views is this package's job
    for node in ast.walk(tree):
        text = _text(node)
        if text is None or id(node) in docstrings:
            continue
        if SQL.search(text) and not EXAMPLE.search(text):
            out.append(f"{rel}:{node.lineno}: SQL in a string: {text[:60]!r}")
    return out


def test_no_sql_outside_the_state_package_and_the_query_engine() -> None:
    found = []
    for path in sorted(ROOT.rglob("*.py")):
        found += offences(path, path.read_text())
    assert not found, (
        "SQL outside hpcx/state/ (add a method to StateStore or Transaction instead):\n"
        + "\n".join(found)
    )


@pytest.mark.parametrize(
    "source",
    [
        'def f(store):\n    store.connection.execute("SELECT 1")\n',
        'def f(con):\n    con.execute("UPDATE runs SET status = ?", ["lost"])\n',
        "Q = \"SELECT run_id FROM runs WHERE status = 'pending'\"\n",
        'def f(key):\n    return f"DELETE FROM runs WHERE run_id = {key}"\n',
        "import duckdb\n",
        "def f():\n    from duckdb import connect\n",
        "import _duckdb\n",
        "def f():\n    from hpcx.state.engine import duckdb\n",
    ],
)
def test_the_scan_catches_each_way_in(source: str) -> None:
    # The rule is only as good as the scan: each form of reaching the database is seen.
    assert offences(ROOT / "run" / "harvest.py", source)


@pytest.mark.parametrize(
    "source",
    [
        "HINT = 'try: hpcx query \"SELECT status, count(*) FROM runs GROUP BY 1\"'\n",
        'class Action:\n    UPDATE = "update"\n',
        'def f():\n    """Select the runs from the state and update them."""\n',
    ],
)
def test_text_that_is_not_a_query_passes(source: str) -> None:
    assert not offences(ROOT / "cli" / "query.py", source)


def test_the_state_package_and_the_engine_are_where_sql_lives() -> None:
    sql = 'def f(con):\n    con.execute("SELECT 1 FROM runs")\n'
    assert not offences(ROOT / "state" / "store.py", sql)
    assert not offences(ROOT / "results" / "query.py", sql)
    # The rest of hpcx/results/ writes SQL for the engine, but never opens DuckDB itself.
    assert offences(ROOT / "results" / "report.py", sql)
    assert not offences(ROOT / "results" / "report.py", 'Q = "SELECT 1 FROM runs"\n')
