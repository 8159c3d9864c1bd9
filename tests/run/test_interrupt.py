"""Ctrl-C during a foreground local apply: exit 130, stopped runs recorded cancelled (none
left running or submitted, no program left behind), and the next apply runs them again."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

from support.cli import HPCX, hpcx, spawn
from support.projects import (
    assert_history_has_no_gap,
    log_lines,
    manifest,
    run_folders,
    runs,
    wait_for,
)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False


def test_ctrl_c_cancels_cleanly_and_the_next_apply_takes_the_runs_up_again(
    project, tmp_path: Path
) -> None:
    started = tmp_path / "started"
    fast = tmp_path / "fast"
    log = tmp_path / "executions.log"
    root = project(
        {
            "sleepy": manifest(
                "sleepy",
                [
                    "--log",
                    str(log),
                    "--touch-started",
                    str(started),
                    "--sleep-unless",
                    str(fast),
                    "60",
                    "{params.i}",
                ],
                params={"i": 0},
                grid={"i": [0, 1, 2]},
                executor={"type": "local", "max_parallel": 2},
            )
        }
    )
    apply = spawn(root, [HPCX, "apply", "--yes"])
    wait_for(
        lambda: started.exists() and len(list(started.iterdir())) == 2, 30, "two runs to start"
    )
    program_pids = [int(ln.split()[2]) for ln in log_lines(log)]
    assert len(program_pids) == 2
    apply.send_signal(signal.SIGINT)
    out, err = apply.communicate(timeout=60)
    assert apply.returncode == 130, (out, err)
    assert "Traceback" not in err
    assert "interrupted" in err

    state = runs(root)
    assert {r["status"] for r in state.values()} == {"cancelled"}, state
    # No program outlives the Ctrl-C, and the folders say cancelled too.
    wait_for(lambda: not any(_alive(p) for p in program_pids), 15, "the programs to exit")
    for folder in run_folders(root, "sleepy"):
        if (folder / "status.json").exists():
            assert json.loads((folder / "status.json").read_text())["state"] == "cancelled"
        else:
            assert (folder / ".stop-1").read_text().strip() == "cancelled"  # never started

    assert "3 to retry" in hpcx(root, "plan").stdout
    fast.write_text("")
    again = hpcx(root, "apply", "--yes", check=True)
    assert "3 to retry" in again.stdout and "Finished: 3 succeeded" in again.stdout
    state = runs(root)
    assert {r["status"] for r in state.values()} == {"succeeded"}
    assert {r["attempts"] for r in state.values()} == {2}
    assert_history_has_no_gap(root)
