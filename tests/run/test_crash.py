"""Crash safety on the local executor: the apply process SIGKILLed at named points, then
`hpcx refresh` and `hpcx apply` again. Every desired run ends with exactly one successful
execution; none is lost, none doubled, and the history has no gap."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import pytest
from support.cli import PY, clean_env, hpcx
from support.projects import (
    CRASH,
    assert_history_has_no_gap,
    claims,
    log_lines,
    manifest,
    query,
    run_folders,
    runs,
    successes_in,
)

N = 3


@pytest.mark.parametrize(
    ("point", "reconciled"),
    [
        # Nothing reached the queue: the submission is marked failed, its runs lost.
        ("before-submit", "lost"),
        # The queue file exists but its foreground runner (the apply process) is dead: the
        # submission is adopted, and its never-started runs are seen lost.
        ("after-submit", "adopted"),
    ],
)
def test_sigkill_during_local_apply_loses_nothing_and_doubles_nothing(
    project, tmp_path: Path, point: str, reconciled: str
) -> None:
    log = tmp_path / "executions.log"
    root = project(
        {
            "crash": manifest(
                "crash",
                ["--log", str(log), "--metric", "v", "{params.x}"],
                params={"x": 0},
                grid={"x": list(range(N))},
            )
        }
    )
    proc = subprocess.run(
        [PY, CRASH, point, "apply", "--yes"],
        cwd=root,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    # The intent was recorded before anything left the process; nothing ran.
    subs = query(root, "SELECT state, json_array_length(run_ids) FROM submissions")
    assert subs == [("intent", N)]
    assert {r["status"] for r in runs(root).values()} == {"pending"}
    assert log_lines(log) == []
    # The lock the killed process held is on this host with a dead pid: taken over below.
    assert (root / ".hpcx" / "state.duckdb.lock").exists()

    out = hpcx(root, "refresh", check=True)
    assert f": {reconciled}" in out.stdout
    state = runs(root)
    assert {r["status"] for r in state.values()} == {"lost"}, state
    plan = hpcx(root, "plan")
    assert f"{N} to retry" in plan.stdout

    hpcx(root, "apply", "--yes", check=True)
    state = runs(root)
    assert len(state) == N
    assert {r["status"] for r in state.values()} == {"succeeded"}
    # Exactly one execution per run: the programs' own log, the claims, the status files.
    lines = log_lines(log)
    assert sorted(ln.split()[0] for ln in lines) == sorted(state)
    for folder in run_folders(root, "crash"):
        assert successes_in(folder) == 1
        assert len(claims(folder)) == 1
    assert query(root, "SELECT count(*) FROM metrics WHERE name = 'v'")[0][0] == N
    assert (
        query(
            root, "SELECT count(*) FROM runs WHERE status IN ('pending', 'submitted', 'running')"
        )[0][0]
        == 0
    )
    states = sorted(r[0] for r in query(root, "SELECT state FROM submissions"))
    assert states == (["failed", "submitted"] if reconciled == "lost" else ["submitted"] * 2)
    assert_history_has_no_gap(root)
    assert "Nothing to apply." in hpcx(root, "apply", "--yes", check=True).stdout
    assert len(log_lines(log)) == N


def test_sigkill_while_local_runs_execute_keeps_them_and_reruns_only_the_unstarted(
    project, tmp_path: Path
) -> None:
    """The apply process dies mid-queue: the running run finishes on its own (own session)
    and is harvested; the runs the queue never started are lost and retried, once."""
    log = tmp_path / "executions.log"
    started = tmp_path / "started"
    root = project(
        {
            "mid": manifest(
                "mid",
                ["--log", str(log), "--touch-started", str(started), "--sleep", "{params.s}"],
                params={"s": 0},
                grid={"s": [1.5, 0, 0]},
                executor={"type": "local", "max_parallel": 1},
            )
        }
    )
    from support.cli import spawn
    from support.projects import wait_for

    apply = spawn(root, [str(Path(PY).with_name("hpcx")), "apply", "--yes"])
    wait_for(lambda: started.exists() and any(started.iterdir()), 30, "the first run to start")
    apply.kill()
    apply.wait(timeout=10)
    first = next(started.iterdir()).name
    wait_for(lambda: len(log_lines(log)) >= 1, 10, "the first run to log")

    def first_done() -> bool:
        folder = next(f for f in run_folders(root, "mid") if f.name == first)
        return successes_in(folder) == 1

    wait_for(first_done, 30, "the running run to finish without its queue")
    hpcx(root, "refresh", check=True)
    state = runs(root)
    assert state[first]["status"] == "succeeded"
    assert {r["status"] for rid, r in state.items() if rid != first} == {"lost"}
    hpcx(root, "apply", "--yes", check=True)
    state = runs(root)
    assert {r["status"] for r in state.values()} == {"succeeded"}
    assert state[first]["attempts"] == 1
    assert sorted(ln.split()[0] for ln in log_lines(log)) == sorted(state)
    for folder in run_folders(root, "mid"):
        assert successes_in(folder) == 1
    assert_history_has_no_gap(root)


def test_sigkill_after_a_detached_submit_adopts_the_running_queue_without_resubmitting(
    project, tmp_path: Path
) -> None:
    log = tmp_path / "executions.log"
    root = project(
        {
            "det": manifest(
                "det",
                ["--log", str(log), "--metric", "v", "{params.x}"],
                params={"x": 0},
                grid={"x": list(range(N))},
            )
        }
    )
    proc = subprocess.run(
        [PY, CRASH, "after-submit", "apply", "--yes", "--detach"],
        cwd=root,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    out = hpcx(root, "refresh", check=True)
    assert ": adopted" in out.stdout

    def done() -> bool:
        hpcx(root, "refresh", check=True)
        return {r["status"] for r in runs(root).values()} == {"succeeded"}

    from support.projects import wait_for

    wait_for(done, 60, "the detached runs to be harvested", interval=0.3)
    state = runs(root)
    assert {r["attempts"] for r in state.values()} == {1}
    assert sorted(ln.split()[0] for ln in log_lines(log)) == sorted(state)
    assert "Nothing to apply." in hpcx(root, "apply", "--yes", check=True).stdout
    assert query(root, "SELECT count(*) FROM metrics WHERE name = 'v'")[0][0] == N
    assert_history_has_no_gap(root)
