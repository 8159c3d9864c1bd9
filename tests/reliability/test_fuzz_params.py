"""Parameter strings with quotes, $(), backquotes, newlines, NUL, unicode and very long values,
through validate, plan and a local `hpcx apply --yes` of a command manifest whose program
writes its argv as JSON: the values reach the program byte for byte; a refused value changes
nothing (no state, or its serial unchanged)."""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from reliability_helpers import dump_yaml
from support.cli import run_cli

from hpcx.manifest.loader import validate_paths

PROGRAM = (
    "import json, sys\n"
    "open(sys.argv[1] + '/argv.json', 'w', encoding='utf-8', errors='surrogateescape')"
    ".write(json.dumps(sys.argv[2:]))\n"
)

NASTY = st.sampled_from(
    [
        "'",
        '"',
        "$(rm -rf ~)",
        "`id`",
        "\\",
        "\n",
        "\r\n",
        "$HOME",
        "${x}",
        "; ls",
        "&&",
        "|",
        "*",
        "?",
        "~",
        "-",
        "--flag",
        "{params.v}",
        "{{",
        "}}",
        "%s",
        "\t",
        " ",
        "\u00e9",
        "\u4e2d",
        "\U0001f600",
        "\u202e",
        "\u2028",
        "\u0085",
        "\ufeff",
        "#",
        "!",
        "null",
        "true",
        "1e3",
    ]
)
VALUE = (
    st.lists(NASTY | st.text(max_size=20), min_size=1, max_size=6)
    .map("".join)
    .filter(lambda v: "\x00" not in v and v not in ("",))
)
LONG = st.integers(10_000, 100_000).map(lambda n: ("a'b\"c$(x)`y`\n\u00e9" * (n // 12 + 1))[:n])


def _manifest(values: list[str]) -> str:
    # Strings that look like placeholders are placeholders: `{{`/`}}` stand for braces; and
    # `${...}` is interpolation, which `$${` escapes (hpcx.manifest.interpolate.escape).
    from hpcx.manifest.interpolate import escape

    values = [escape(v) for v in values]
    return dump_yaml(
        {
            "apiVersion": "hpcx/v1",
            "kind": "Experiment",
            "metadata": {"name": "argv"},
            "spec": {
                "command": [sys.executable, "-c", PROGRAM, "{run_dir}", "{params.v}"],
                "params": {"v": values[0]},
                "sweep": {"grid": {"v": values}},
                "resources": {"cpus": 1, "time": 5},
            },
        }
    )


def _workdir() -> Path:
    d = Path(tempfile.mkdtemp(prefix="hpcx-fuzz-"))
    (d / ".hpcx").mkdir()
    return d


def _apply(values: list[str]) -> None:
    values = list(dict.fromkeys(values))
    root = _workdir()
    old = os.getcwd()
    try:
        os.chdir(root)
        path = root / "m.yaml"
        path.write_text(_manifest(values), encoding="utf-8")
        assert validate_paths([path]) == []
        res = run_cli("plan", str(path))
        assert res.code == 0 and f"{len(values)} to create" in res.out, res
        res = run_cli("apply", "--yes", "--quiet", str(path))
        assert res.code == 0, res
        got = sorted(
            json.loads(p.read_text(encoding="utf-8"))[0] for p in (root / "runs").rglob("argv.json")
        )
        assert got == sorted(values)
    finally:
        os.chdir(old)
        shutil.rmtree(root, ignore_errors=True)


def _fuzz(n: int) -> Any:
    return settings(
        max_examples=n,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


@_fuzz(8)
@given(values=st.lists(VALUE, min_size=1, max_size=6))
def test_hostile_values_reach_the_program_byte_for_byte(values: list[str]) -> None:
    _apply(values)


@pytest.mark.slow
@_fuzz(150)
@given(values=st.lists(VALUE | LONG, min_size=1, max_size=8))
def test_hostile_values_reach_the_program_byte_for_byte_long(values: list[str]) -> None:
    _apply(values)


def test_very_long_values_reach_the_program() -> None:
    _apply(["x" * 100_000, "a'b\"c$(x)`y`\n\u00e9" * 5000])


def test_fixed_nasty_values_reach_the_program() -> None:
    _apply(
        [
            "$(touch /tmp/hpcx-pwned)",
            "`touch /tmp/hpcx-pwned`",
            "a\nb",
            "'\"",
            "\u202e\U0001f600",
            "${env:HOME}",
            "$${x}",
            "${x",
        ]
    )
    assert not Path("/tmp/hpcx-pwned").exists()


def test_nul_in_a_value_is_refused_before_anything_is_recorded(project: Path) -> None:
    path = project / "m.yaml"
    path.write_text(_manifest(["ok", "a\x00b"]), encoding="utf-8")
    problems = validate_paths([path])
    state = project / ".hpcx" / "state.duckdb"
    res = run_cli("apply", "--yes", "--quiet", str(path))
    assert not state.exists() and not (project / "runs").exists()
    assert res.code == 1 and "Traceback" not in res.err
    assert problems and any("NUL" in str(p) or "null" in str(p) for p in problems)


def test_refused_manifest_changes_no_state(project: Path, state: Path) -> None:
    from reliability_helpers import serial_of

    serial, before = serial_of(state), state.read_bytes()
    path = project / "m.yaml"
    path.write_text(_manifest(["ok"]).replace('"cpus": 1', '"cpus": -1, "bogus": 1'))
    res = run_cli("apply", "--yes", str(path))
    assert res.code == 1 and "Traceback" not in res.err and "error: " in res.err
    assert serial_of(state) == serial and state.read_bytes() == before
