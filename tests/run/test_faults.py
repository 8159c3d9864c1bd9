"""Faults around apply: a time limit, cancelling detached runs (running and not yet
started), sbatch refusing a job, commands pointed at a state that does not exist."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from support.cli import hpcx
from support.projects import assert_history_has_no_gap, log_lines, manifest, runs, wait_for


def test_a_local_run_over_its_time_limit_is_recorded_timeout_and_retried(project) -> None:
    root = project(
        {"tl": manifest("tl", ["--sleep", "60"], params={"i": 0}, resources={"time": "00:00:01"})}
    )
    out = hpcx(root, "apply", "--yes", timeout=60)
    assert out.returncode == 1, out.stderr
    (r,) = runs(root).values()
    assert r["status"] == "timeout", r
    assert r["end_reason"] and "time limit" in r["end_reason"]
    assert "1 to retry" in hpcx(root, "plan").stdout


def test_cancel_stops_detached_runs_running_or_not_yet_started(project, tmp_path: Path) -> None:
    started = tmp_path / "started"
    log = tmp_path / "executions.log"
    root = project(
        {
            "bg": manifest(
                "bg",
                ["--log", str(log), "--touch-started", str(started), "--sleep", "60", "{params.i}"],
                params={"i": 0},
                grid={"i": [0, 1, 2]},
                executor={"type": "local", "max_parallel": 1},
            )
        }
    )
    hpcx(root, "apply", "--yes", "--detach", check=True)
    wait_for(lambda: started.exists() and any(started.iterdir()), 30, "the first run to start")
    out = hpcx(root, "cancel", "--all", check=True)
    assert out.stdout.startswith("Cancelled ")

    def all_cancelled() -> bool:
        hpcx(root, "refresh", check=True)
        return {r["status"] for r in runs(root).values()} == {"cancelled"}

    wait_for(all_cancelled, 30, "every run to be cancelled", interval=0.3)
    assert len(log_lines(log)) == 1  # the two that waited never ran
    assert "3 to retry" in hpcx(root, "plan").stdout
    assert_history_has_no_gap(root)


def test_logs_show_stdout_stderr_and_a_tail(project) -> None:
    root = project({"lg": manifest("lg", ["--fail-unless", "/nonexistent", "a", "b"])})
    hpcx(root, "apply", "--yes")
    (rid,) = runs(root)
    assert json.loads(hpcx(root, "logs", rid, check=True).stdout)["argv"][-2:] == ["a", "b"]
    assert hpcx(root, "logs", rid, "--stderr", check=True).stdout == "marker missing\n"
    assert hpcx(root, "logs", rid, "-n", "1", check=True).stdout.count("\n") == 1
    missing = hpcx(root, "logs", "ffffffff")
    assert missing.returncode == 1 and "no run 'ffffffff'" in missing.stderr


@pytest.mark.parametrize("cmd", [["status"], ["refresh"], ["show", "abc"], ["logs", "abc"]])
def test_commands_without_a_state_say_so(project, cmd: list[str]) -> None:
    root = project({"x": manifest("x", [])})
    out = hpcx(root, *cmd)
    assert out.returncode == 1
    assert "no state at" in out.stderr and "Traceback" not in out.stderr


@pytest.mark.slurm
def test_sbatch_refusing_a_job_records_not_submitted_and_the_plan_retries(
    slurm_cluster: Any, project
) -> None:
    env = {"SLURM_CONF": slurm_cluster.env["SLURM_CONF"]}
    text = manifest(
        "bp",
        ["{params.x}"],
        params={"x": 0},
        grid={"x": [0, 1]},
        executor={"type": "slurm"},
        resources={"partition": "nosuchpartition", "time": "00:05:00"},
    )
    root = project({"bp": text})
    out = hpcx(root, "apply", "--yes", env=env)
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert "NOT submitted" in out.stdout and "invalid partition" in out.stdout.lower()
    state = runs(root)
    assert {r["status"] for r in state.values()} == {"failed"}
    assert all("not submitted" in r["end_reason"] for r in state.values())
    (root / "manifests" / "bp.yaml").write_text(text.replace("nosuchpartition", "debug"))
    out = hpcx(root, "apply", "--yes", env=env, check=True)
    assert "2 to retry" in out.stdout
    wait_for(
        lambda: (
            hpcx(root, "refresh", env=env).returncode == 0
            and {r["status"] for r in runs(root).values()} == {"succeeded"}
        ),
        60,
        "the retried runs to succeed",
        interval=0.5,
    )
