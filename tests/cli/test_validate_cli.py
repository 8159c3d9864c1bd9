"""hpcx validate exit codes and output; hpcx schema prints the schema as JSON."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from support.manifests import simple
from typer.testing import CliRunner

from hpcx.cli import app

REPO = Path(__file__).resolve().parents[2]
runner = CliRunner()


def test_validate_ok_exits_0(write) -> None:
    f = write("e.yaml", simple(sweep="grid: {batch_size: [1, 2]}"))
    result = runner.invoke(app, ["validate", str(f)])
    assert result.exit_code == 0, result.output
    assert "exp (2 runs)" in result.output


def test_validate_problems_exit_1_one_per_line(write) -> None:
    f = write("e.yaml", simple() + "  retries: x\n  colour: red\n")
    result = runner.invoke(app, ["validate", str(f)])
    assert result.exit_code == 1
    lines = [line for line in result.stdout.splitlines() if line.startswith("e.yaml:")]
    assert len(lines) == 2
    assert lines[0] == 'e.yaml:7:12: $.spec.retries: expected an integer, got string "x"'
    assert lines[1].startswith("e.yaml:8:3: $.spec.colour: unknown key 'colour'")


def test_validate_json_and_set(write) -> None:
    f = write("e.yaml", simple())
    result = runner.invoke(app, ["validate", str(f), "--json", "--set", "params.batch_size=[8]"])
    doc = json.loads(result.stdout)
    assert result.exit_code == 0 and doc["ok"] and doc["runs"] == 1
    result = runner.invoke(app, ["validate", str(f), "--json", "--set", "oops"])
    assert (
        result.exit_code == 1 and json.loads(result.stdout)["problems"][0]["file"] == "--set oops"
    )


def test_validate_max_runs(write) -> None:
    f = write("e.yaml", simple(sweep="grid: {batch_size: [1, 2, 3]}"))
    assert runner.invoke(app, ["validate", str(f), "--max-runs", "2"]).exit_code == 1


def test_schema_prints_valid_json() -> None:
    result = runner.invoke(app, ["schema"])
    assert result.exit_code == 0
    schema = json.loads(result.stdout)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["properties"]["apiVersion"]["enum"] == ["hpcx/v1"]


def test_validate_repo_manifests_as_a_process() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "hpcx", "validate", "manifests"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "no problems" in proc.stdout
