"""`hpcx plan` end to end: real manifests, a real state file, the real CLI process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from support.locks import held_by_another_process

from hpcx.errors import StalePlanError
from hpcx.manifest.loader import load_desired
from hpcx.plan.planner import load_saved_plan
from hpcx.state.store import SCHEMA_VERSION, StateStore

HPCX = str(Path(sys.executable).with_name("hpcx"))

SWEEP = textwrap.dedent(
    """\
    apiVersion: hpcx/v1
    kind: Experiment
    metadata:
      name: toy
    spec:
      command: [python, -c, "print(1)", "{params.lr}", "{params.width}"]
      params: {lr: 0.1, width: 8}
      sweep:
        grid:
          lr: [0.1, 0.2, 0.3]
          width: [8, 16]
      resources: {cpus: 1, time: 5}
    """
)


def _git(root: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", *args],
        cwd=root,
        check=True,
        capture_output=True,
    )


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "proj"
    (root / "manifests").mkdir(parents=True)
    (root / "manifests" / "toy.yaml").write_text(SWEEP)
    _git(root, "init", "-q", "-b", "main")
    _git(root, "add", ".")
    _git(root, "commit", "-qm", "init")
    return root


def hpcx(
    root: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    e = {k: v for k, v in os.environ.items() if k != "HPCX_STATE"}
    e.update(env or {})
    return subprocess.run(
        [HPCX, *args], cwd=root, capture_output=True, text=True, env=e, timeout=120
    )


def _record(root: Path, status: str, count: int | None = None) -> list[str]:
    """Put the toy sweep's runs (the first ``count``) into the state with ``status``."""
    desired = load_desired([root / "manifests"], project_root=root)
    runs = desired.runs[:count] if count is not None else desired.runs
    with StateStore.open(root / ".hpcx" / "state.duckdb") as s:
        s.record_runs(runs)
        if status != "pending":
            s.set_status([r.run_id for r in runs], status, event="test")
    return [r.run_id for r in runs]


def test_plan_of_fresh_project_creates_all_and_does_not_create_state(project: Path) -> None:
    res = hpcx(project, "plan")
    assert res.returncode == 0, res.stderr
    assert (
        "Plan: 6 to create, 0 to retry, 0 to update, 0 stale, 0 orphaned, 0 unchanged."
        in res.stdout
    )
    assert "varies: params.lr, params.width" in res.stdout and "lr=0.1 width=8" in res.stdout
    assert "none yet" in res.stdout
    assert not (project / ".hpcx").exists()


def test_detailed_exitcode_is_2_with_changes_0_without_1_on_error(project: Path) -> None:
    assert hpcx(project, "plan", "--detailed-exitcode").returncode == 2
    _record(project, "succeeded")
    res = hpcx(project, "plan", "--detailed-exitcode")
    assert res.returncode == 0, res.stderr
    assert "6 unchanged" in res.stdout
    (project / "manifests" / "toy.yaml").write_text(SWEEP.replace("grid:", "grdi:"))
    res = hpcx(project, "plan", "--detailed-exitcode")
    assert res.returncode == 1
    assert "toy.yaml" in res.stderr and "Traceback" not in res.stderr


def test_plan_reads_state_read_only_and_reports_actions(project: Path) -> None:
    ids = _record(project, "failed", count=2)
    state = project / ".hpcx" / "state.duckdb"
    before = state.read_bytes()
    res = hpcx(project, "plan")
    assert res.returncode == 0, res.stderr
    assert "Plan: 4 to create, 2 to retry," in res.stdout
    assert f"↻ {ids[0][:12]}" in res.stdout
    assert state.read_bytes() == before


def test_json_and_markdown_outputs(project: Path) -> None:
    _record(project, "succeeded", count=1)
    res = hpcx(project, "plan", "--json")
    doc = json.loads(res.stdout)
    assert doc["summary"] == {
        "create": 5,
        "noop": 1,
        "retry": 0,
        "update": 0,
        "stale": 0,
        "orphan": 0,
    }
    assert doc["state"]["exists"] is True and doc["state"]["serial"] == 2
    assert doc["manifests"]["digests"] and doc["git"]["dirty"] is False
    assert len(doc["changes"]) == 6 and doc["changes"][0]["params"]["lr"] == 0.1
    md = hpcx(project, "plan", "--markdown").stdout
    assert "| `toy` | 5 | 0 | 0 | 0 | 0 | 1 |" in md


def test_uncommitted_manifest_changes_are_reported(project: Path) -> None:
    (project / "manifests" / "toy.yaml").write_text(SWEEP.replace("[8, 16]", "[8, 16, 32]"))
    res = hpcx(project, "plan")
    assert "manifests have uncommitted changes" in res.stdout
    assert "manifests/toy.yaml" in res.stdout
    assert json.loads(hpcx(project, "plan", "--json").stdout)["git"]["dirty"] is True


def test_set_override_of_a_setting_plans_updates_not_reruns(project: Path) -> None:
    _record(project, "succeeded")
    res = hpcx(project, "plan", "--set", "resources.cpus=4")
    assert res.returncode == 0, res.stderr
    assert "Plan: 0 to create, 0 to retry, 6 to update," in res.stdout
    assert "settings changed" in res.stdout
    doc = json.loads(hpcx(project, "plan", "--set", "resources.cpus=4", "--json").stdout)
    assert doc["overrides"] == ["resources.cpus=4"]
    assert {c["reason"] for c in doc["changes"]} == {"settings-changed"}


def test_state_override_by_flag_and_environment(project: Path, tmp_path: Path) -> None:
    other = tmp_path / "elsewhere.duckdb"
    with StateStore.open(other):
        pass
    res = hpcx(project, "plan", "--state", str(other), "--json")
    assert json.loads(res.stdout)["state"]["exists"] is True
    res = hpcx(project, "plan", "--json", env={"HPCX_STATE": str(other)})
    assert json.loads(res.stdout)["state"]["exists"] is True
    assert not (project / ".hpcx").exists()


def test_saved_plan_round_trip_and_staleness_through_cli(project: Path) -> None:
    _record(project, "succeeded", count=3)
    out = project / "plan.json"
    res = hpcx(project, "plan", "--out", str(out))
    assert res.returncode == 0, res.stderr
    with StateStore.open(project / ".hpcx" / "state.duckdb", read_only=True) as s:
        plan = load_saved_plan(out, s)
    assert plan.counts()["create"] == 3 and plan.serial == 2
    assert all(c.run is not None for c in plan.changes if c.action.value == "create")
    # The state moves on: refused.
    _record(project, "running", count=None)
    with (
        StateStore.open(project / ".hpcx" / "state.duckdb", read_only=True) as s,
        pytest.raises(StalePlanError, match="state serial moved from 2 to 4"),
    ):
        load_saved_plan(out, s)


def test_saved_plan_goes_stale_when_manifest_edited(project: Path) -> None:
    out = project / "plan.json"
    assert hpcx(project, "plan", "--out", str(out)).returncode == 0
    assert load_saved_plan(out, None).counts()["create"] == 6
    (project / "manifests" / "toy.yaml").write_text(SWEEP + "# edited\n")
    with pytest.raises(StalePlanError, match=r"toy\.yaml"):
        load_saved_plan(out, None)


def test_orphans_shown_for_default_manifests_and_scoped_for_explicit_paths(project: Path) -> None:
    _record(project, "succeeded")
    other = project / "manifests" / "toy.yaml"
    other.write_text(SWEEP.replace("[0.1, 0.2, 0.3]", "[0.1]"))
    res = hpcx(project, "plan")
    assert "4 orphaned" in res.stdout and "results kept" in res.stdout
    # Explicit paths of another experiment: toy's runs are not its orphans.
    (project / "more").mkdir()
    (project / "more" / "b.yaml").write_text(
        SWEEP.replace("name: toy", "name: other").replace("print(1)", "print(2)")
    )
    res = hpcx(project, "plan", "more")
    assert "0 orphaned" in res.stdout, res.stdout + res.stderr


def test_plan_on_locked_state_names_pid_without_traceback(project: Path) -> None:
    _record(project, "succeeded", count=1)
    state = project / ".hpcx" / "state.duckdb"
    with held_by_another_process(state) as holder:
        # Past the readers' wait (plan waits out a writer's short window, as they do).
        res = hpcx(project, "plan", "--detailed-exitcode", env={"HPCX_READER_WAIT": "0.5"})
        assert res.returncode == 1
        assert f"locked by pid {holder.pid}" in res.stderr and "Traceback" not in res.stderr


def test_not_a_state_file_gets_clear_error(project: Path) -> None:
    bad = project / "bad.duckdb"
    bad.write_text("garbage" * 1000)
    res = hpcx(project, "plan", "--state", str(bad))
    assert res.returncode == 1
    assert "bad.duckdb is not a DuckDB state file" in res.stderr and "Traceback" not in res.stderr


def test_state_info_reports_counts(project: Path) -> None:
    _record(project, "succeeded", count=2)
    res = hpcx(project, "state", "info", "--json")
    info = json.loads(res.stdout)
    assert info["runs"] == 2 and info["serial"] == 2
    assert info["schema_version"] == SCHEMA_VERSION
    assert info["runs_by_status"] == {"succeeded": 2}


def test_runs_two_experiments_share_are_listed_once_and_noted_under_the_other(tmp_path) -> None:
    import subprocess
    import sys

    (tmp_path / "manifests").mkdir()
    body = (
        "apiVersion: hpcx/v1\nkind: Experiment\nmetadata: {{name: {name}}}\nspec:\n"
        '  command: [echo, "{{params.x}}"]\n  params: {{x: 1}}\n  sweep: {{grid: {{x: {xs}}}}}\n'
    )
    (tmp_path / "manifests" / "a.yaml").write_text(body.format(name="a", xs="[1, 2, 3]"))
    (tmp_path / "manifests" / "b.yaml").write_text(body.format(name="b", xs="[2, 3, 4]"))
    (tmp_path / "manifests" / "c.yaml").write_text(body.format(name="c", xs="[1, 2]"))
    proc = subprocess.run(
        [sys.executable, "-m", "hpcx", "plan"], cwd=tmp_path, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "b  (1 runs: 1 to create)" in out
    assert "also asks for 2 run(s) listed under a" in out
    assert "c  (no runs of its own)" in out and "asks for 2 run(s) listed under a" in out
    assert "Plan: 4 to create" in out


def test_plan_e_narrows_to_one_experiment_and_names_a_typo(project: Path) -> None:
    other = SWEEP.replace("name: toy", "name: other-study")
    other = other.replace("lr: [0.1, 0.2, 0.3]", "lr: [9]")
    _record(project, "succeeded")  # toy's runs
    (project / "manifests" / "other_study.yaml").write_text(other)
    res = hpcx(project, "plan", "-e", "other-study", "--json")
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    assert {c["experiment"] for c in doc["changes"]} == {"other-study"}
    # toy's recorded runs are not reported orphaned by a plan of another experiment.
    assert doc["summary"]["orphan"] == 0 and doc["summary"]["create"] == 2
    res = hpcx(project, "plan", "-e", "other_study")
    assert res.returncode == 1
    assert "did you mean 'other-study'?" in res.stderr and "is a manifest file" in res.stderr
