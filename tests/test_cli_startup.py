"""`hpcx --help` must stay instant: the CLI's import graph may not pull in heavy modules."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ["duckdb", "torch", "numpy", "hpcx._native", "vit_pytorch", "jsonschema"]


def _modules_after(code: str) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-c", code + "\nimport sys, json; print(json.dumps(sorted(sys.modules)))"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return set(json.loads(out.splitlines()[-1]))


def test_importing_the_cli_imports_no_heavy_module() -> None:
    loaded = _modules_after("import hpcx.cli")
    assert not loaded & set(HEAVY), f"heavy modules imported at CLI start: {loaded & set(HEAVY)}"


def test_help_lists_the_commands_and_exits_zero() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "hpcx", "--help"], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0
    assert "Usage" in proc.stdout


def test_version_prints_the_package_version() -> None:
    import hpcx

    proc = subprocess.run(
        [sys.executable, "-m", "hpcx", "--version"], capture_output=True, text=True, check=True
    )
    assert proc.stdout.strip() == f"hpcx {hpcx.__version__}"


def test_unknown_command_is_an_error_not_a_traceback() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "hpcx", "no-such-command"], capture_output=True, text=True
    )
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
