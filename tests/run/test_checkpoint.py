"""The checkpoint contract end to end on the local executor (docs/checkpoint.md): a program
whose work is several times its time limit gets the warning signal, saves, exits, and resumes
in the next attempt of the same run, until its work is done once: no step repeated, none lost,
every attempt and its reason in the state, in `hpcx runs show` and in `hpcx query`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

from support.cli import PY, clean_env, hpcx
from support.projects import query, run_folders, runs, wait_for

COUNTER = str(Path(__file__).resolve().parents[1] / "support" / "progs" / "counter.py")


def _manifest(
    name: str, steps: int, step_s: float, *, time: str, checkpoint: dict[str, Any] | None,
    extra_args: tuple[str, ...] = (),
) -> str:  # fmt: skip
    spec: dict[str, Any] = {
        "command": [PY, COUNTER, "--steps", str(steps), "--step-s", str(step_s), *extra_args],
        "resources": {"time": time},
    }
    if checkpoint is not None:
        spec["checkpoint"] = checkpoint
    doc = {"apiVersion": "hpcx/v1", "kind": "Experiment", "metadata": {"name": name}, "spec": spec}
    return json.dumps(doc, indent=2) + "\n"


def _steps(folder: Path) -> list[tuple[int, int]]:
    """(step, attempt) for every step the program did, from its own log."""
    lines = (folder / "checkpoint" / "steps.log").read_text().split()
    return [(int(lines[i]), int(lines[i + 1])) for i in range(0, len(lines), 3)]


def _attempts(root: Path) -> list[tuple[Any, ...]]:
    return query(
        root,
        "SELECT attempt, state, requeue_reason, reason, job_id FROM attempts ORDER BY attempt",
    )


def test_a_run_several_times_its_limit_finishes_with_every_step_done_once(project) -> None:
    root = project(
        {
            "long": _manifest(
                "long", 30, 0.2, time="0:02",
                checkpoint={"signal": "USR1", "before": 1, "max_requeues": 20},
            )
        }
    )  # fmt: skip
    out = hpcx(root, "apply", "--yes", check=True)
    (run,) = runs(root).values()
    assert run["status"] == "succeeded", run
    assert f"{run['run_id']} attempt 1 requeued (time limit: " in out.stderr  # said as it goes
    (folder,) = run_folders(root, "long")
    done = _steps(folder)
    assert sorted(s for s, _ in done) == list(range(30))  # each step once: none lost, none twice
    attempts = _attempts(root)
    assert len(attempts) >= 3, attempts  # 6 s of work under a 2 s limit
    assert [a[0] for a in attempts] == list(range(1, len(attempts) + 1))
    for a in attempts[:-1]:
        assert a[1:3] == ("requeued", "time-limit"), a
        assert "SIGUSR1" in a[3] and "requeued" in a[3]
    assert attempts[-1][1] == "succeeded"
    assert run["attempts"] == len(attempts)
    # Each attempt did the steps its log says, and its metrics carry that attempt.
    per_attempt = Counter(a for _, a in done)
    rows = query(root, "SELECT step, attempt FROM metrics WHERE name = 'step_done' ORDER BY step")
    assert [(int(s), int(a)) for s, a in rows] == done
    # Every attempt but perhaps the last worked (a warning during the last step leaves an
    # attempt that resumes, finds the work done and exits at once: any exit after the
    # signal ends an attempt requeued).
    assert set(per_attempt) >= set(range(1, len(attempts)))
    # The results view counts the resumed try as one: the last step, whichever attempt did it.
    out = hpcx(root, "query", "SELECT step_done FROM results", "--format", "json", check=True)
    assert json.loads(out.stdout)[0]["step_done"] == 29
    shown = json.loads(hpcx(root, "runs", "show", run["run_id"], "--json", check=True).stdout)
    assert [a["state"] for a in shown["attempts"]][-1] == "succeeded"
    assert len(shown["attempts"]) == len(attempts)
    text = hpcx(root, "runs", "show", run["run_id"], check=True).stdout
    assert "attempt history:" in text and "requeued" in text
    status = hpcx(root, "status", check=True).stdout
    assert f"1 requeued ({len(attempts) - 1} requeue(s))" in status
    # A checkpointed run that finished is not new work.
    assert hpcx(root, "plan", "--detailed-exitcode").returncode == 0


def test_max_requeues_ends_the_run_at_its_time_limit_and_a_retry_resumes(project) -> None:
    root = project(
        {
            "capped": _manifest(
                "capped", 40, 0.2, time="0:02",
                checkpoint={"signal": "USR2", "before": 1, "max_requeues": 1},
            )
        }
    )  # fmt: skip
    assert hpcx(root, "apply", "--yes").returncode == 1  # a run timed out
    (run,) = runs(root).values()
    assert run["status"] == "timeout"
    assert "max_requeues 1" in run["end_reason"]
    assert [a[1] for a in _attempts(root)] == ["requeued", "timeout"]
    (folder,) = run_folders(root, "capped")
    first = _steps(folder)
    # The person's retry is a new try with its own requeues, resuming from the checkpoint.
    out = hpcx(root, "plan", "--json", check=True)
    assert [c["action"] for c in json.loads(out.stdout)["changes"]] == ["retry"]
    hpcx(root, "apply", "--yes")
    done = _steps(folder)
    assert len(done) > len(first)
    assert sorted(s for s, _ in done) == list(range(len(done)))  # still once each


def test_a_program_that_ignores_the_signal_is_stopped_at_the_limit(project) -> None:
    root = project(
        {
            "deaf": _manifest(
                "deaf", 1000, 0.2, time="0:02", extra_args=("--ignore",),
                checkpoint={"before": 1},
            )
        }
    )  # fmt: skip
    assert hpcx(root, "apply", "--yes").returncode == 1
    (run,) = runs(root).values()
    assert run["status"] == "timeout", run
    assert "did not exit within" in run["end_reason"] and "SIGUSR1" in run["end_reason"]
    assert [a[1] for a in _attempts(root)] == ["timeout"]  # never requeued


def test_a_run_without_checkpoint_still_times_out_once(project) -> None:
    root = project({"plain": _manifest("plain", 1000, 0.2, time="0:01", checkpoint=None)})
    assert hpcx(root, "apply", "--yes").returncode == 1
    (run,) = runs(root).values()
    assert run["status"] == "timeout"
    (folder,) = run_folders(root, "plain")
    assert not (folder / "checkpoint").exists()
    assert [a[1] for a in _attempts(root)] == ["timeout"]


def test_an_apply_killed_between_attempts_loses_no_step_and_repeats_none(project) -> None:
    """The queue dies while the program saves after the warning: that attempt still ends
    requeued (its wrapper lives on), nothing starts the next one, and the next apply runs it,
    resuming from the checkpoint."""
    root = project(
        {
            "killed": _manifest(
                "killed", 20, 0.2, time="0:03", extra_args=("--save-delay", "1"),
                checkpoint={"before": 2, "max_requeues": 20},
            )
        }
    )  # fmt: skip
    proc = subprocess.Popen(
        [PY, "-m", "hpcx", "apply", "--yes"],
        cwd=root,
        env=clean_env(),
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        marker = wait_for(
            lambda: next(iter(root.glob("runs/killed/*/checkpoint/signalled")), None),
            30,
            "the program to get its checkpoint signal",
            interval=0.02,
        )
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(10)
    folder = marker.parent.parent
    wait_for(
        lambda: json.loads((folder / "status.json").read_text()).get("state") == "requeued",
        20,
        "the orphaned wrapper to record its attempt requeued",
    )
    hpcx(root, "apply", "--yes")
    hpcx(root, "refresh")
    (run,) = runs(root).values()
    assert run["status"] == "succeeded", run
    done = _steps(folder)
    assert sorted(s for s, _ in done) == list(range(20))
    attempts = _attempts(root)
    assert [a[0] for a in attempts] == list(range(1, len(attempts) + 1))  # no duplicate attempt
    assert attempts[0][1] == "requeued"
    # Harvested once as lost (its queue gone), then again with its resumed try: each step's
    # metric is in the state once, with the attempt that did it.
    rows = query(root, "SELECT step, attempt FROM metrics WHERE name = 'step_done' ORDER BY step")
    assert [(int(s), int(a)) for s, a in rows] == sorted(done)
