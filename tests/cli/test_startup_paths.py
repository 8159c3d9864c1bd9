"""What ``hpcx.cli.main`` loads for a command line, and that the shortcuts change nothing seen.

``hpcx --help`` prints a stored copy of typer's help (hpcx.cli._help); a command loads only the
module that registers it (hpcx.cli.COMMAND_MODULES). Both must agree with typer itself.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import hpcx.cli
from hpcx.cli import COMMAND_MODULES, _help

HPCX = str(Path(sys.executable).with_name("hpcx"))


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.endswith("_COMPLETE")}
    env.pop("COLUMNS", None)
    env.update(extra)
    return env


def test_the_stored_help_is_typers_help() -> None:
    # On failure: python -m hpcx.cli._help rewrites the stored copy.
    assert _help.render_with_typer() == "Usage: hpcx" + _help.HELP_AFTER_PROG


@pytest.mark.parametrize(
    "argv",
    [
        [HPCX, "--help"],
        [sys.executable, "-m", "hpcx", "--help"],
        [sys.executable, "-c", "from hpcx.cli import main; main()", "--help"],
    ],
    ids=["script", "python -m", "python -c"],
)
@pytest.mark.parametrize("columns", ["80", "120", "60"])
def test_help_prints_what_typer_prints(argv: list[str], columns: str) -> None:
    fast = subprocess.run(argv, capture_output=True, text=True, env=_env(COLUMNS=columns))
    # The same command line through typer: the fast path is off while a completion variable
    # is set, and the variable below is one no shell completion reads.
    slow = subprocess.run(
        argv, capture_output=True, text=True, env=_env(COLUMNS=columns, _HPCX_TEST_COMPLETE="")
    )
    assert (fast.returncode, fast.stdout, fast.stderr) == (slow.returncode, slow.stdout, "")
    assert fast.returncode == 0 and "Usage:" in fast.stdout


def test_version_matches_typers() -> None:
    fast = subprocess.run([HPCX, "--version"], capture_output=True, text=True, env=_env())
    slow = subprocess.run(
        [HPCX, "--version"], capture_output=True, text=True, env=_env(_HPCX_TEST_COMPLETE="")
    )
    assert (fast.returncode, fast.stdout) == (slow.returncode, slow.stdout) == (0, "hpcx 0.1.0\n")


def test_every_command_is_in_the_table() -> None:
    app = hpcx.cli.app
    found: dict[str, str] = {}
    for info in app.registered_commands:
        assert info.callback is not None
        found[info.name or info.callback.__name__.replace("_", "-")] = info.callback.__module__
    for group in app.registered_groups:
        inner = group.typer_instance.registered_commands[0].callback
        assert group.name is not None and inner is not None
        found[group.name] = inner.__module__
    assert {name: f"hpcx.cli.{m}" for name, m in COMMAND_MODULES.items()} == found


def _modules_after(*args: str) -> set[str]:
    code = (
        "import sys, json\n"
        f"sys.argv = ['hpcx', *{list(args)!r}]\n"
        "from hpcx.cli import main\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=_env()
    ).stdout
    return set(json.loads(out.splitlines()[-1]))


def test_help_imports_neither_typer_nor_anything_heavy() -> None:
    loaded = _modules_after("--help")
    assert not {m.split(".")[0] for m in loaded} & {
        "typer",
        "click",
        "pydantic",
        "rich",
        "duckdb",
        "torch",
        "jsonschema",
        "typing",
    }


@pytest.mark.parametrize(
    "args",
    [
        ["status", "--state", "/nonexistent/state.duckdb", "-e", "x"],
        ["query", "--state", "/nonexistent/state.duckdb", "--timeout", "5", "SELECT 1"],
        ["validate", "-q", "/nonexistent.yaml", "--max-runs", "10"],
        ["plan", "--state", "/nonexistent/state.duckdb", "/nonexistent.yaml"],
    ],
    ids=lambda a: a[0],
)
def test_a_command_loads_its_own_module_and_no_pydantic(args: list[str]) -> None:
    loaded = _modules_after(*args)
    assert not {m.split(".")[0] for m in loaded} & {"pydantic", "rich"}
    own = f"hpcx.cli.{COMMAND_MODULES[args[0]]}"
    assert own in loaded
    others = {f"hpcx.cli.{m}" for m in COMMAND_MODULES.values()} - {own, "hpcx.cli.apply"}
    assert not loaded & others


def test_an_unknown_command_still_gets_suggestions() -> None:
    proc = subprocess.run([HPCX, "stauts"], capture_output=True, text=True, env=_env())
    assert proc.returncode == 2
    assert "No such command 'stauts'" in proc.stderr


def test_a_state_never_created_is_no_state_for_status_and_query(tmp_path: Path) -> None:
    # A DuckDB file whose creation never committed (no table): what a reader says is asked
    # only after its open (hpcx.state.store.open_reader, QuerySession.open), same words.
    import duckdb
    from support.cli import run_cli

    path = tmp_path / "state.duckdb"
    duckdb.connect(str(path)).close()
    status = run_cli("status", "--state", str(path))
    assert status.code == 1 and f"error: no state at {path} yet" in status.err
    query = run_cli("query", "--state", str(path), "SELECT 1")
    assert query.code == 1 and f"error: no state at {path}" in query.err
    assert "hpcx apply" in query.err


def test_plan_takes_a_state_never_created_for_none(tmp_path: Path) -> None:
    import duckdb
    from support.cli import run_cli

    manifest = tmp_path / "m.yaml"
    manifest.write_text(
        "apiVersion: hpcx/v1\nkind: Experiment\nmetadata: {name: e}\n"
        'spec:\n  command: ["true"]\n  params: {x: 0}\n  sweep:\n    grid:\n      x: [1, 2]\n'
    )
    path = tmp_path / "state.duckdb"
    duckdb.connect(str(path)).close()
    res = run_cli("plan", "--state", str(path), str(manifest))
    assert res.code == 0, res.err
    assert "2 to create" in res.out


def test_commands_keep_their_order_after_loading_one_first() -> None:
    code = (
        "import sys, json\n"
        "from hpcx import cli\n"
        "{first}"
        "app = cli.load_commands()\n"
        "names = [c.name or c.callback.__name__ for c in app.registered_commands]\n"
        "print(json.dumps([names, [g.name for g in app.registered_groups]]))\n"
    )

    def order(first: str) -> list[list[str]]:
        out = subprocess.run(
            [sys.executable, "-c", code.format(first=first)],
            capture_output=True,
            text=True,
            check=True,
            env=_env(),
        ).stdout
        result: list[list[str]] = json.loads(out)
        return result

    fresh = order("")
    assert order("cli.load_commands('status'); cli.load_commands('cluster')\n") == fresh
    assert fresh[0][:3] == ["validate", "schema", "plan"]
