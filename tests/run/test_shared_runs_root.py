"""Two states never share one runs folder: the folder records its owner (lineage) on first
use, and another project's apply or refresh pointed at it is refused, naming both, before it
runs or adopts anything."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from support.cli import hpcx
from support.projects import log_lines, make_project, manifest, runs


def _projects(tmp_path: Path) -> tuple[Path, Path, dict[str, str], Path]:
    log = tmp_path / "executions.log"
    args = ["--log", str(log), "--", "{params.x}"]
    text = manifest("sh", args, params={"x": 0}, grid={"x": [0, 1]})
    a = make_project(tmp_path / "a", {"sh": text})
    b = make_project(tmp_path / "b", {"sh": text})
    shared = tmp_path / "shared-runs"
    return a, b, {"HPCX_RUNS_ROOT": str(shared)}, log


def test_a_second_project_on_a_runs_folder_is_refused_naming_both(tmp_path: Path) -> None:
    a, b, env, log = _projects(tmp_path)
    hpcx(a, "apply", "--yes", env=env, check=True)
    assert len(log_lines(log)) == 2
    owner = json.loads((Path(env["HPCX_RUNS_ROOT"]) / ".hpcx-owner.json").read_text())
    assert owner["state"] == str(a / ".hpcx" / "state.duckdb")

    out = hpcx(b, "apply", "--yes", env=env)
    assert out.returncode == 1 and "Traceback" not in out.stderr, out.stderr
    assert f"belongs to the state {a / '.hpcx' / 'state.duckdb'}" in out.stderr
    assert str(b / ".hpcx" / "state.duckdb") in out.stderr
    assert "--runs-root" in out.stderr and ".hpcx-owner.json" in out.stderr
    # The same runs (same ids) were neither run again nor adopted by the second project.
    assert len(log_lines(log)) == 2 and runs(b) == {}
    refresh = hpcx(b, "refresh", env=env)
    assert refresh.returncode == 1 and "belongs to the state" in refresh.stderr
    assert runs(b) == {}
    # The owner goes on as before.
    hpcx(a, "refresh", env=env, check=True)
    assert "Nothing to apply." in hpcx(a, "apply", "--yes", env=env, check=True).stdout


def test_a_state_made_anew_takes_the_folder_over_only_once_told(tmp_path: Path) -> None:
    a, _, env, log = _projects(tmp_path)
    hpcx(a, "apply", "--yes", env=env, check=True)
    shutil.rmtree(a / ".hpcx")  # the state is lost; a new one has a new lineage
    out = hpcx(a, "apply", "--yes", env=env)
    assert out.returncode == 1 and "belongs to the state" in out.stderr, out.stderr
    (Path(env["HPCX_RUNS_ROOT"]) / ".hpcx-owner.json").unlink()  # what the hint says
    hpcx(a, "refresh", env=env, check=True)
    # Its runs are adopted from the folder, not run again.
    assert {r["status"] for r in runs(a).values()} == {"succeeded"}
    assert "Nothing to apply." in hpcx(a, "apply", "--yes", env=env, check=True).stdout
    assert len(log_lines(log)) == 2
