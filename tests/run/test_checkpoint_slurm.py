"""The checkpoint contract on the real one-node SLURM cluster: a job that reaches its time
limit and a job that is preempted are both requeued by SLURM, resumed by the next attempt of
the same run, and finished with every step done once, the reasons told apart by the
scheduler's own account and recorded per attempt."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.cli import PY, hpcx
from support.projects import PROG, log_lines, query, run_folders, runs, wait_for

pytestmark = pytest.mark.slurm

COUNTER = str(Path(__file__).resolve().parents[1] / "support" / "progs" / "counter.py")


def _env(cluster: Any) -> dict[str, str]:
    return {"SLURM_CONF": cluster.env["SLURM_CONF"]}


def _manifest(name: str, steps: int, step_s: float, resources: dict[str, Any],
              checkpoint: dict[str, Any], *args: str) -> str:  # fmt: skip
    spec = {
        "command": [PY, COUNTER, "--steps", str(steps), "--step-s", str(step_s), *args],
        "resources": resources,
        "checkpoint": checkpoint,
        "executor": {"type": "slurm"},
    }
    doc = {"apiVersion": "hpcx/v1", "kind": "Experiment", "metadata": {"name": name}, "spec": spec}
    return json.dumps(doc, indent=2) + "\n"


#: Seconds a requeued job waits (reason BeginTime) before eligible_at_once starts it.
_RESTART_AFTER_S = 15


@contextlib.contextmanager
def eligible_at_once(cluster: Any) -> Iterator[None]:
    """SLURM holds a requeued job about two minutes (reason BeginTime) before it may start
    again; as an admin could, make such jobs eligible sooner, so a test takes seconds. Not at
    once: a job restarted while its last start is still being cleaned up is refused ("Job
    credential revoked") and fails. The cluster's KillWait is 5 s; 8 s was not enough once
    under CI's load (the run recorded lost, "SLURM ended the job before the next attempt
    started"), so 15 s."""
    stop = threading.Event()
    seen: dict[str, float] = {}

    def poke() -> None:
        while not stop.is_set():
            out = cluster.run("squeue", "-h", "-r", "-o", "%i|%T|%r", check=False).stdout
            now = time.monotonic()
            for line in out.splitlines():
                jid, state, reason = [*line.split("|"), "", ""][:3]
                if state != "PENDING" or reason != "BeginTime":
                    seen.pop(jid, None)
                elif now - seen.setdefault(jid, now) >= _RESTART_AFTER_S:
                    cluster.run("scontrol", "update", f"JobId={jid}", "StartTime=now", check=False)
            stop.wait(0.5)

    thread = threading.Thread(target=poke, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(5)


def _preempt(cluster: Any) -> None:
    """A job of the higher tier that needs the whole node: it preempts ours."""
    cluster.run(
        "sbatch", "-p", "high", "-c", str(cluster.cpus), "-t", "1", "-o", "/dev/null",
        "--wrap", "sleep 1",
    )  # fmt: skip


def _refresh_until_final(root: Path, cluster: Any, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        hpcx(root, "refresh", env=_env(cluster), check=True)
        (run,) = runs(root).values()
        if run["status"] not in ("pending", "submitted", "running"):
            return run
        if time.monotonic() > deadline:
            raise AssertionError(f"run still {run['status']} after {timeout}s: {run}")
        time.sleep(1)


def _steps(folder: Path) -> list[tuple[int, int]]:
    words = (folder / "checkpoint" / "steps.log").read_text().split()
    return [(int(words[i]), int(words[i + 1])) for i in range(0, len(words), 3)]


def _attempts(root: Path) -> list[tuple[Any, ...]]:
    return query(
        root, "SELECT attempt, state, requeue_reason, reason, job_id FROM attempts ORDER BY attempt"
    )


def test_a_job_past_its_time_limit_checkpoints_requeues_itself_and_finishes(
    slurm_cluster: Any, project
) -> None:
    # 45 s of work under a 1-minute limit whose warning is due 50 s ahead of it: SLURM checks
    # time limits every 30 s or so, so the warning comes between 10 and about 40 s after the
    # start and there is at least one requeue. (A warning due 59 s ahead could come in the
    # job's first second, SLURM counting whole seconds, before the wrapper's handler exists:
    # USR1's default action then killed the job with nothing written, a flake seen once in CI.)
    root = project(
        {
            "tl": _manifest(
                "tl", 180, 0.25, {"partition": "debug", "cpus": 1, "time": "1"},
                {"signal": "USR1", "before": 50, "max_requeues": 20},
            )
        }
    )  # fmt: skip
    with eligible_at_once(slurm_cluster):
        hpcx(root, "apply", "--yes", env=_env(slurm_cluster), check=True)
        (folder,) = run_folders(root, "tl")
        assert "#SBATCH --signal=B:USR1@50" in (folder / "job.sbatch").read_text()
        run = _refresh_until_final(root, slurm_cluster, 240)
    assert run["status"] == "succeeded", run
    assert sorted(s for s, _ in _steps(folder)) == list(range(180))  # once each
    attempts = _attempts(root)
    assert len(attempts) >= 2, attempts
    assert [a[0] for a in attempts] == list(range(1, len(attempts) + 1))
    for a in attempts[:-1]:
        assert a[1:3] == ("requeued", "time-limit"), a
    assert attempts[-1][1] == "succeeded"
    assert len({a[4] for a in attempts}) == 1  # the same job, requeued (scontrol requeue)
    rows = query(root, "SELECT step, attempt FROM metrics WHERE name = 'step_done' ORDER BY step")
    assert [(int(s), int(a)) for s, a in rows] == _steps(folder)


def test_a_preempted_job_is_requeued_by_slurm_and_resumes(slurm_cluster: Any, project) -> None:
    cpus = slurm_cluster.cpus
    root = project(
        {
            "pre": _manifest(
                "pre", 100, 0.1, {"partition": "low", "cpus": cpus, "time": "10"},
                {"before": 60, "max_requeues": 3},
            )
        }
    )  # fmt: skip
    with eligible_at_once(slurm_cluster):
        hpcx(root, "apply", "--yes", env=_env(slurm_cluster), check=True)
        (folder,) = run_folders(root, "pre")
        log = folder / "checkpoint" / "steps.log"
        wait_for(lambda: log.exists() and len(log.read_text().split()) >= 20, 60, "10 steps")
        _preempt(slurm_cluster)
        run = _refresh_until_final(root, slurm_cluster, 180)
    assert run["status"] == "succeeded", run
    assert sorted(s for s, _ in _steps(folder)) == list(range(100))
    attempts = _attempts(root)
    assert attempts[0][1:3] == ("requeued", "preemption"), attempts
    assert "SLURM requeued the job" in attempts[0][3]
    assert attempts[-1][1] == "succeeded"
    assert len({a[4] for a in attempts}) == 1  # SLURM requeued the same job
    out = hpcx(root, "status", env=_env(slurm_cluster), check=True).stdout
    assert "requeued" in out


@pytest.mark.slow  # the preemption path is test_a_preempted_job_is_requeued_by_slurm_and_resumes
def test_a_preempted_run_without_checkpointing_is_requeued_from_scratch_never_cancelled(
    slurm_cluster: Any, project, tmp_path: Path
) -> None:
    cpus = slurm_cluster.cpus
    log, started = tmp_path / "executions.log", tmp_path / "started"
    spec = {
        "command": [PY, PROG, "--log", str(log), "--touch-started", str(started), "--sleep", "6"],
        "resources": {"partition": "low", "cpus": cpus, "time": "10"},
        "executor": {"type": "slurm"},
    }
    doc = {"apiVersion": "hpcx/v1", "kind": "Experiment", "metadata": {"name": "np"}, "spec": spec}
    root = project({"np": json.dumps(doc) + "\n"})
    with eligible_at_once(slurm_cluster):
        hpcx(root, "apply", "--yes", env=_env(slurm_cluster), check=True)
        wait_for(lambda: started.exists() and any(started.iterdir()), 60, "the run to start")
        _preempt(slurm_cluster)
        run = _refresh_until_final(root, slurm_cluster, 180)
    assert run["status"] == "succeeded", run
    # It ran twice, from scratch: attempt 1 (preempted) and attempt 2.
    assert [ln.split()[1] for ln in log_lines(log)] == ["1", "2"]
    attempts = _attempts(root)
    assert [a[1:3] for a in attempts] == [("requeued", "preemption"), ("succeeded", None)]


@pytest.mark.slow
def test_a_job_deaf_to_the_signal_is_stopped_at_its_limit_and_recorded(
    slurm_cluster: Any, project
) -> None:
    root = project(
        {
            "deaf": _manifest(
                "deaf", 10000, 0.25, {"partition": "debug", "cpus": 1, "time": "1"},
                {"before": 30}, "--ignore", "--ignore-term",
            )
        }
    )  # fmt: skip
    hpcx(root, "apply", "--yes", env=_env(slurm_cluster), check=True)
    run = _refresh_until_final(root, slurm_cluster, 180)
    assert run["status"] == "timeout", run
    assert [a[1] for a in _attempts(root)] == ["timeout"]
