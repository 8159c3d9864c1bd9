"""``executor.pack`` on the real one-node SLURM cluster: a packed sweep runs as a few jobs,
each run with its own folder and status; a packed job killed half-way leaves the finished
run succeeded, the one it was running cancelled and the rest re-offered, and the next apply
finishes them without running the first again."""

from __future__ import annotations

import itertools
import json
import time
from pathlib import Path
from typing import Any

import pytest
from support.cli import PY, hpcx
from support.projects import PROG, log_lines, runs

pytestmark = pytest.mark.slurm

RESOURCES = {"partition": "debug", "cpus": 1, "time": "00:05:00"}


def _env(cluster: Any) -> dict[str, str]:
    return {"SLURM_CONF": cluster.env["SLURM_CONF"]}


def _manifest(name: str, command: list[str], n: int, pack: int) -> str:
    spec = {
        "command": command,
        "params": {"x": 0},
        "sweep": {"grid": {"x": list(range(n))}},
        "executor": {"type": "slurm", "pack": pack},
        "resources": RESOURCES,
    }
    doc = {"apiVersion": "hpcx/v1", "kind": "Experiment", "metadata": {"name": name}, "spec": spec}
    return json.dumps(doc, indent=2) + "\n"


def _until(what: str, check: Any, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got:
            return got
        assert time.monotonic() < deadline, f"{what}: not within {timeout}s"
        time.sleep(0.2)


def _refresh_until(root: Path, cluster: Any, done: set[str], n: int) -> dict[str, Any]:
    def settled() -> dict[str, Any] | None:
        hpcx(root, "refresh", env=_env(cluster), check=True)
        state = runs(root)
        ok = len(state) == n and all(r["status"] in done for r in state.values())
        return state if ok else None

    return _until(f"runs {done}", settled, timeout=90)  # type: ignore[no-any-return]


def _squeue(cluster: Any, key: str) -> list[str]:
    out = cluster.run("squeue", "-h", "-r", "-t", "all", f"--name=hpcx-{key}", "-o", "%i")
    return sorted(ln.strip() for ln in out.stdout.splitlines() if ln.strip())


def test_a_packed_sweep_runs_as_two_jobs_each_run_in_its_own_folder(
    slurm_cluster: Any, project: Any, tmp_path: Path
) -> None:
    log = tmp_path / "executions.log"
    root = project(
        {"pk": _manifest("pk", [PY, PROG, "--log", str(log), "--metric", "v", "{params.x}"], 6, 3)}
    )
    out = hpcx(root, "apply", "--yes", "--json", env=_env(slurm_cluster), check=True)
    doc = json.loads(out.stdout)
    assert doc["submitted"] == 6
    (sub,) = doc["submissions"]
    (array,) = sub["job_ids"]  # one sbatch: an array of two tasks of three runs each
    assert _squeue(slurm_cluster, sub["key"]) == [f"{array}_0", f"{array}_1"]
    state = _refresh_until(root, slurm_cluster, {"succeeded"}, 6)
    jobs = sorted(r["job_id"] for r in state.values())
    assert jobs == [f"{array}_0"] * 3 + [f"{array}_1"] * 3
    assert len(log_lines(log)) == 6  # each run once
    for rid, row in state.items():
        folder = Path(row["run_dir"])
        status = json.loads((folder / "status.json").read_text())
        assert status["run_id"] == rid and status["state"] == "succeeded"
        assert (
            f"{status['job']['SLURM_ARRAY_JOB_ID']}_{status['job']['SLURM_ARRAY_TASK_ID']}"
            == (row["job_id"])
        )
        assert (folder / "spec.json").exists() and (folder / ".claim-1").exists()
        names = [
            json.loads(ln)["name"] for ln in (folder / "metrics.jsonl").read_text().splitlines()
        ]
        assert names[0] == "v"
    # Each task ran its three runs one after another, in one allocation.
    for task in (f"{array}_0", f"{array}_1"):
        mine = sorted(
            (
                json.loads((Path(r["run_dir"]) / "status.json").read_text())
                for r in state.values()
                if r["job_id"] == task
            ),
            key=lambda s: s["started_at"],
        )
        assert len(mine) == 3
        for a, b in itertools.pairwise(mine):
            assert a["ended_at"] <= b["started_at"]
    assert "Nothing to apply." in hpcx(root, "apply", "--yes", env=_env(slurm_cluster)).stdout


# The first run to start ends at once; every later one waits for GO (no run order assumed).
GATE = (
    'echo "$HPCX_RUN_ID" >> "$1"; mkdir "$2/first" 2>/dev/null && exit 0; '
    'while [ ! -e "$2/go" ]; do sleep 0.1; done'
)


def test_a_packed_job_killed_half_way_keeps_the_finished_and_reoffers_the_rest(
    slurm_cluster: Any, project: Any, tmp_path: Path
) -> None:
    log = tmp_path / "executions.log"
    gate = tmp_path / "gate"
    gate.mkdir()
    command = ["sh", "-c", GATE, "gate", str(log), str(gate), "{params.x}"]
    root = project({"pk": _manifest("pk", command, 3, 3)})
    env = _env(slurm_cluster)
    doc = json.loads(hpcx(root, "apply", "--yes", "--json", env=env, check=True).stdout)
    (sub,) = doc["submissions"]
    (job,) = sub["job_ids"]  # one packed job of three runs
    folders = {rid: Path(r["run_dir"]) for rid, r in runs(root).items()}

    def status(rid: str) -> str | None:
        p = folders[rid] / "status.json"
        return json.loads(p.read_text())["state"] if p.exists() else None

    def second_running() -> str | None:
        running = [r for r in folders if status(r) == "running"]
        done = [r for r in folders if status(r) == "succeeded"]
        return running[0] if running and len(done) == 1 else None

    second = _until("run 2 running", second_running)
    (first,) = [r for r in folders if status(r) == "succeeded"]
    (third,) = set(folders) - {first, second}
    # While run 2 runs, run 3 waits in the same job: submitted (the scheduler's queue in
    # the state), not running.
    hpcx(root, "refresh", env=env, check=True)
    state = runs(root)
    assert state[second]["status"] == "running" and state[third]["status"] == "submitted"
    assert {r["job_id"] for r in state.values()} == {job}

    slurm_cluster.run("scancel", job)
    state = _refresh_until(root, slurm_cluster, {"succeeded", "cancelled", "lost"}, 3)
    assert state[first]["status"] == "succeeded"
    assert state[second]["status"] == "cancelled"
    assert state[third]["status"] == "lost"  # never started: its job ended first
    assert "before this run started" in (state[third]["end_reason"] or "")
    assert status(third) is None and not (folders[third] / ".claim-1").exists()

    plan = hpcx(root, "plan", env=env, check=None)
    assert "2 to retry" in plan.stdout or plan.stdout.count("retry") >= 2, plan.stdout
    (gate / "go").write_text("")
    hpcx(root, "apply", "--yes", env=env, check=True)
    state = _refresh_until(root, slurm_cluster, {"succeeded"}, 3)
    assert state[first]["attempts"] == 1  # never run again
    assert state[second]["attempts"] == 2 and state[third]["attempts"] == 2
    lines = [ln.split()[0] for ln in log.read_text().splitlines()]
    assert lines.count(first) == 1 and lines.count(second) == 2 and lines.count(third) == 1


def test_cancelling_one_packed_run_leaves_the_others_running(
    slurm_cluster: Any, project: Any, tmp_path: Path
) -> None:
    """``hpcx cancel`` of the run a packed job is running, and of one whose turn has not come:
    both end cancelled, the job goes on with the others."""
    log = tmp_path / "executions.log"
    gate = tmp_path / "gate"
    gate.mkdir()
    (gate / "first").mkdir()  # no run ends at once: each waits for GO
    command = ["sh", "-c", GATE, "gate", str(log), str(gate), "{params.x}"]
    root = project({"pk": _manifest("pk", command, 3, 3)})
    env = _env(slurm_cluster)
    hpcx(root, "apply", "--yes", env=env, check=True)
    folders = {rid: Path(r["run_dir"]) for rid, r in runs(root).items()}

    def status(rid: str) -> str | None:
        p = folders[rid] / "status.json"
        return json.loads(p.read_text())["state"] if p.exists() else None

    first = _until(
        "a run running", lambda: next((r for r in folders if status(r) == "running"), None)
    )
    # One of the two waiting runs is cancelled too: the job skips it, whichever comes next.
    later = sorted(set(folders) - {first})
    out = hpcx(root, "cancel", first[:12], later[1][:12], "--wait", "30", env=env, check=True)
    assert "Cancelled 2 run(s)" in out.stdout, out.stdout + out.stderr
    _until("the next run running", lambda: status(later[0]) == "running")
    (gate / "go").write_text("")
    state = _refresh_until(root, slurm_cluster, {"succeeded", "cancelled"}, 3)
    assert state[first]["status"] == "cancelled" and state[later[1]]["status"] == "cancelled"
    assert state[later[0]]["status"] == "succeeded"
    assert status(later[1]) is None  # never started
