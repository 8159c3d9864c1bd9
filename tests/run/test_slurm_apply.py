"""`hpcx apply`/`refresh`/`cancel` against the real one-node SLURM cluster: arrays split to
MaxArraySize, status by one squeue + the run folders, and crashes reconciled by job name
(adopted, never resubmitted)."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

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

pytestmark = pytest.mark.slurm


def _env(cluster: Any) -> dict[str, str]:
    return {"SLURM_CONF": cluster.env["SLURM_CONF"]}


def _squeue(cluster: Any, key: str) -> list[list[str]]:
    out = cluster.run("squeue", "-h", "-r", "-t", "all", f"--name=hpcx-{key}", "-o", "%i|%T|%y")
    return [ln.split("|") for ln in out.stdout.splitlines() if ln.strip()]


def _refresh_until(root: Path, cluster: Any, done: set[str], n: int, timeout: float = 90) -> None:
    """`hpcx refresh` until every run's status is in ``done``: a deadline, not a sleep."""
    deadline = time.monotonic() + timeout
    while True:
        hpcx(root, "refresh", env=_env(cluster), check=True)
        state = runs(root)
        if len(state) == n and all(r["status"] in done for r in state.values()):
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"runs not {done} after {timeout}s: {state}")
        time.sleep(0.5)


def _slurm_manifest(name: str, args: list[str], grid: dict[str, list[Any]], **executor: Any) -> str:
    return manifest(
        name,
        args,
        params={k: v[0] for k, v in grid.items()},
        grid=grid,
        executor={"type": "slurm", **executor},
        resources={"partition": "debug", "cpus": 1, "time": "00:05:00"},
    )


def test_slurm_sweep_submits_an_array_is_harvested_and_cancel_works(
    slurm_cluster: Any, project, tmp_path: Path
) -> None:
    go = tmp_path / "go"
    log = tmp_path / "executions.log"
    root = project(
        {
            "sw": _slurm_manifest(
                "sw",
                ["--log", str(log), "--wait-for", str(go), "--metric", "v", "{params.x}"],
                {"x": [1, 2, 3]},
                sbatch_args=["--nice=7"],
            )
        }
    )
    out = hpcx(root, "apply", "--yes", "--json", env=_env(slurm_cluster), check=True)
    doc = json.loads(out.stdout)
    assert doc["submitted"] == 3
    (sub,) = doc["submissions"]
    assert sub["executor"] == "slurm"  # `executor: {type: slurm}` reaches SLURM
    assert len(sub["job_ids"]) == 1 and sub["job_ids"][0].isdigit()  # one array
    jobs = _squeue(slurm_cluster, sub["key"])
    assert len(jobs) == 3 and {j[0] for j in jobs} == {f"{sub['job_ids'][0]}_{i}" for i in range(3)}
    assert {j[2] for j in jobs} == {"7"}  # sbatch_args passed through as --nice=7
    state = runs(root)
    assert {r["status"] for r in state.values()} == {"submitted"}
    assert {r["job_id"] for r in state.values()} == {f"{sub['job_ids'][0]}_{i}" for i in range(3)}

    go.write_text("")
    _refresh_until(root, slurm_cluster, {"succeeded"}, 3)
    state = runs(root)
    assert {r["exit_code"] for r in state.values()} == {0}
    vals = query(
        root,
        "SELECT r.run_id, m.value FROM metrics m JOIN runs r USING (run_id) WHERE m.name = 'v'",
    )
    assert sorted(v for _, v in vals) == [1.0, 2.0, 3.0]
    assert len(log_lines(log)) == 3
    assert "Nothing to apply." in hpcx(root, "apply", "--yes", env=_env(slurm_cluster)).stdout

    # Cancel a sleeping run.
    (root / "manifests" / "sl.yaml").write_text(
        _slurm_manifest("sl", ["--sleep", "120", "{params.y}"], {"y": [1]})
    )
    hpcx(root, "apply", "--yes", "-e", "sl", env=_env(slurm_cluster), check=True)
    (rid,) = [r for r, v in runs(root).items() if v["status"] != "succeeded"]

    def running() -> bool:
        hpcx(root, "refresh", env=_env(slurm_cluster), check=True)
        return runs(root)[rid]["status"] == "running"

    deadline = time.monotonic() + 60
    while not running():
        assert time.monotonic() < deadline, "the sleeping run never started"
        time.sleep(0.5)
    out = hpcx(root, "cancel", rid[:10], env=_env(slurm_cluster), check=True)
    assert "Cancelled" in out.stdout
    deadline = time.monotonic() + 60
    while runs(root)[rid]["status"] != "cancelled":
        assert time.monotonic() < deadline, runs(root)[rid]
        time.sleep(0.5)
        hpcx(root, "refresh", env=_env(slurm_cluster), check=True)
    assert "1 to retry" in hpcx(root, "plan", env=_env(slurm_cluster)).stdout
    assert_history_has_no_gap(root)


def test_a_cancel_before_the_jobs_start_makes_their_folders_for_its_stop_files(
    slurm_cluster: Any, project, tmp_path: Path
) -> None:
    """An array whose jobs have not started has no run folders (the jobs make them). A cancel
    makes them to write its stop files; a run whose spec.json the submission lost (its
    .specs line damaged) is named in a warning, its job cancelled with the rest."""
    log = tmp_path / "executions.log"
    root = project(
        {
            "later": _slurm_manifest(
                "later", ["--log", str(log)], {"x": [1, 2, 3]}, sbatch_args=["--begin=now+3600"]
            )
        }
    )
    doc = json.loads(
        hpcx(root, "apply", "--yes", "--json", env=_env(slurm_cluster), check=True).stdout
    )
    (sub,) = doc["submissions"]
    assert run_folders(root, "later") == []  # the jobs make them when they start
    folder = root / "runs" / ".submissions" / sub["key"]
    specs = folder / "chunk-000.specs"
    lines = specs.read_bytes().split(b"\n")
    damaged = json.loads(lines[2])[0]["run_id"]
    lines[2] = b"{" * len(lines[2])
    specs.write_bytes(b"\n".join(lines))

    out = hpcx(root, "cancel", "--all", env=_env(slurm_cluster))
    assert out.returncode == 0, out.stderr
    assert "1 run folder(s) could not be made" in out.stderr and damaged in out.stderr
    assert {p.name for p in run_folders(root, "later")} == set(runs(root)) - {damaged}
    for made in run_folders(root, "later"):
        assert (made / ".stop-1").read_text().strip() == "cancelled"
    # Its job gone and no folder to say why, the damaged one reads lost (the next plan
    # runs it again); the others cancelled, as their stop files say.
    _refresh_until(root, slurm_cluster, {"cancelled", "lost"}, 3)
    state = runs(root)
    assert {r: v["status"] for r, v in state.items()} == {
        r: "lost" if r == damaged else "cancelled" for r in state
    }
    assert not [j for j in _squeue(slurm_cluster, sub["key"]) if j[1] in ("PENDING", "RUNNING")]
    assert log_lines(log) == []


def test_slurm_arrays_are_split_to_max_array_size_and_all_succeed(
    slurm_cluster: Any, project
) -> None:
    root = project(
        {"big": _slurm_manifest("big", ["--metric", "v", "{params.x}"], {"x": list(range(7))})}
    )
    with slurm_cluster.limits(MaxArraySize=3):
        out = hpcx(root, "apply", "--yes", "--json", env=_env(slurm_cluster), check=True)
    doc = json.loads(out.stdout)
    (sub,) = doc["submissions"]
    assert len(sub["job_ids"]) == 3  # 3 + 3 + 1
    _refresh_until(root, slurm_cluster, {"succeeded"}, 7)
    assert query(root, "SELECT count(*) FROM metrics WHERE name = 'v'")[0][0] == 7
    jobs = {r["job_id"] for r in runs(root).values()}
    assert len(jobs) == 7 and all(j.split("_")[1] in ("0", "1", "2") for j in jobs if "_" in j)


def _crash(root: Path, cluster: Any, point: str) -> None:
    proc = subprocess.run(
        [PY, CRASH, point, "apply", "--yes"],
        cwd=root,
        env=clean_env(_env(cluster)),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr


@pytest.mark.parametrize(
    ("point", "max_array"),
    [
        ("after-submit", None),
        # CI: the kill campaign's SLURM arrays killed during sbatch cover it
        pytest.param("mid-array", 2, marks=pytest.mark.slow),
    ],
)
def test_slurm_jobs_submitted_before_a_crash_are_adopted_not_resubmitted(
    slurm_cluster: Any, project, tmp_path: Path, point: str, max_array: int | None
) -> None:
    log = tmp_path / "executions.log"
    n = 4
    root = project(
        {
            "cr": _slurm_manifest(
                "cr", ["--log", str(log), "--", "{params.x}"], {"x": list(range(n))}
            )
        }
    )
    if max_array:
        with slurm_cluster.limits(MaxArraySize=max_array):
            _crash(root, slurm_cluster, point)
    else:
        _crash(root, slurm_cluster, point)
    (key,) = [k for (k,) in query(root, "SELECT key FROM submissions WHERE state = 'intent'")]
    assert len(_squeue(slurm_cluster, key)) == (n if point == "after-submit" else max_array)

    out = hpcx(root, "refresh", env=_env(slurm_cluster), check=True)
    assert f"Reconciled submission {key}: adopted" in out.stdout
    done = {"succeeded"} if point == "after-submit" else {"succeeded", "lost"}
    _refresh_until(root, slurm_cluster, done, n)
    hpcx(root, "apply", "--yes", env=_env(slurm_cluster), check=True)
    _refresh_until(root, slurm_cluster, {"succeeded"}, n)

    state = runs(root)
    assert sorted(ln.split()[0] for ln in log_lines(log)) == sorted(state)  # once each
    for folder in run_folders(root, "cr"):
        assert successes_in(folder) == 1
    # Adopted runs ran their first attempt; the chunk that never went out had no folder yet
    # (its jobs were to make them), so the retry made its runs' attempt 1. Either way one
    # claim, one execution, and the state's attempt count follows the run folders.
    assert [claims(f) for f in run_folders(root, "cr")] == [[".claim-1"]] * n
    assert sorted(r["attempts"] for r in state.values()) == [1] * n
    assert query(root, "SELECT count(*) FROM runs WHERE status <> 'succeeded'")[0][0] == 0
    assert "Nothing to apply." in hpcx(root, "apply", "--yes", env=_env(slurm_cluster)).stdout
    assert_history_has_no_gap(root)


@pytest.mark.parametrize("point", ["ambiguous-accepted", "ambiguous-refused"])
def test_an_ambiguous_sbatch_is_reconciled_by_name_before_anything_is_resubmitted(
    slurm_cluster: Any, project, tmp_path: Path, point: str
) -> None:
    log = tmp_path / "executions.log"
    root = project(
        {"amb": _slurm_manifest("amb", ["--log", str(log), "--", "{params.x}"], {"x": [0, 1]})}
    )
    proc = subprocess.run(
        [PY, CRASH, point, "apply", "--yes"],
        cwd=root,
        env=clean_env(_env(slurm_cluster)),
        capture_output=True,
        text=True,
        timeout=120,
    )
    # Not a success: what went out is unknown until a refresh reconciles it.
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert "may or may not have reached the scheduler" in proc.stdout
    assert "`hpcx refresh`" in proc.stderr
    ((key, detail),) = query(root, "SELECT key, detail FROM submissions WHERE state = 'ambiguous'")
    assert json.loads(detail)["runs_root"] == str(root / "runs")  # kept for the reconcile
    # Not planned again while ambiguous: the runs are still in flight.
    assert "2 to create" not in hpcx(root, "plan", env=_env(slurm_cluster)).stdout

    out = hpcx(root, "refresh", env=_env(slurm_cluster), check=True)
    if point == "ambiguous-accepted":
        assert f"Reconciled submission {key}: adopted" in out.stdout
        _refresh_until(root, slurm_cluster, {"succeeded"}, 2)
        assert {r["attempts"] for r in runs(root).values()} == {1}
    else:
        assert f"Reconciled submission {key}: lost" in out.stdout
        assert {r["status"] for r in runs(root).values()} == {"lost"}
        hpcx(root, "apply", "--yes", env=_env(slurm_cluster), check=True)
        _refresh_until(root, slurm_cluster, {"succeeded"}, 2)
    assert sorted(ln.split()[0] for ln in log_lines(log)) == sorted(runs(root))
    assert "Nothing to apply." in hpcx(root, "apply", "--yes", env=_env(slurm_cluster)).stdout
    assert_history_has_no_gap(root)


@pytest.mark.slow  # ~25 s: sbatch and squeue retry a dead controller for about 10 s each
def test_a_controller_that_goes_down_mid_apply_loses_nothing(
    slurm_cluster: Any, project, tmp_path: Path
) -> None:
    log = tmp_path / "executions.log"
    root = project(
        {"cd": _slurm_manifest("cd", ["--log", str(log), "--", "{params.x}"], {"x": [0, 1]})}
    )
    try:
        t0 = time.monotonic()
        proc = subprocess.run(
            [PY, CRASH, "controller-down", "apply", "--yes"],
            cwd=root,
            env=clean_env(_env(slurm_cluster)),
            capture_output=True,
            text=True,
            timeout=180,
        )
        took = time.monotonic() - t0
        assert "Traceback" not in proc.stderr, proc.stderr
        assert proc.returncode in (0, 1), proc.stderr
        assert "NOT submitted" in proc.stdout or "may or may not" in proc.stdout, proc.stdout
        # While the controller is down, refresh says so in one line and changes nothing.
        down = hpcx(root, "refresh", env=_env(slurm_cluster), timeout=120)
        assert down.returncode == 1 and "Traceback" not in down.stderr, down.stderr
        assert "squeue" in down.stderr or "scontrol" in down.stderr, down.stderr
    finally:
        slurm_cluster.start_controller()
        slurm_cluster.wait_idle()
    assert log_lines(log) == []
    hpcx(root, "refresh", env=_env(slurm_cluster), check=True)
    assert {r["status"] for r in runs(root).values()} <= {"lost", "failed"}
    out = hpcx(root, "apply", "--yes", env=_env(slurm_cluster), check=True)
    assert "2 to retry" in out.stdout
    _refresh_until(root, slurm_cluster, {"succeeded"}, 2)
    assert sorted(ln.split()[0] for ln in log_lines(log)) == sorted(runs(root))
    assert_history_has_no_gap(root)
    assert took < 120


def test_an_ambiguous_partial_submission_exits_1_and_is_reconciled(
    slurm_cluster: Any, project, tmp_path: Path
) -> None:
    log = tmp_path / "executions.log"
    n = 4
    root = project(
        {"ap": _slurm_manifest("ap", ["--log", str(log), "--", "{params.x}"], {"x": [0, 1, 2, 3]})}
    )
    with slurm_cluster.limits(MaxArraySize=2):
        proc = subprocess.run(
            [PY, CRASH, "partial-ambiguous", "apply", "--yes"],
            cwd=root,
            env=clean_env(_env(slurm_cluster)),
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert "2 of 4 run(s) went out" in proc.stdout, proc.stdout
    assert "the other 2 may or may not have reached the scheduler" in proc.stdout
    assert "then `hpcx apply` to submit what did not go out" in proc.stderr, proc.stderr
    ((key,),) = query(root, "SELECT key FROM submissions WHERE state = 'ambiguous'")
    out = hpcx(root, "refresh", env=_env(slurm_cluster), check=True)
    assert f"Reconciled submission {key}: adopted" in out.stdout
    _refresh_until(root, slurm_cluster, {"succeeded", "lost"}, n)
    assert "2 to retry" in hpcx(root, "apply", "--yes", env=_env(slurm_cluster), check=True).stdout
    _refresh_until(root, slurm_cluster, {"succeeded"}, n)
    assert sorted(ln.split()[0] for ln in log_lines(log)) == sorted(runs(root))  # once each
    assert_history_has_no_gap(root)


@pytest.mark.slow  # ~60 s: scancel retries a dead controller; each round waits for --begin
def test_a_cancel_that_cannot_reach_the_controller_never_lets_a_stale_attempt_run(
    slurm_cluster: Any, project, tmp_path: Path
) -> None:
    log = tmp_path / "executions.log"
    root = project(
        {
            "st": _slurm_manifest(
                "st",
                ["--log", str(log), "--", "{params.x}"],
                {"x": [0, 1]},
                # Pending for a while, so the outage and the cancel happen before they start.
                sbatch_args=["--begin=now+15"],
            )
        }
    )
    hpcx(root, "apply", "--yes", env=_env(slurm_cluster), check=True)
    ((key,),) = query(root, "SELECT key FROM submissions")
    assert {j[1] for j in _squeue(slurm_cluster, key)} == {"PENDING"}
    try:
        slurm_cluster.stop_controller()
        out = hpcx(root, "cancel", "--all", env=_env(slurm_cluster), timeout=180)
        # Says so, exits 1, and the runs stay as they were (cancel pending).
        assert out.returncode == 1 and "Traceback" not in out.stderr, out.stderr
        assert "2 run(s) NOT cancelled" in out.stderr and "hpcx refresh" in out.stderr
        assert {r["status"] for r in runs(root).values()} == {"submitted"}
    finally:
        slurm_cluster.start_controller()
        slurm_cluster.wait_idle()
    # The controller came back with the jobs still pending: the stop files do not outrank
    # them; the refresh cancels them, and only then are the runs cancelled.
    assert {j[1] for j in _squeue(slurm_cluster, key)} == {"PENDING"}
    hpcx(root, "refresh", env=_env(slurm_cluster), check=True)
    assert {r["status"] for r in runs(root).values()} == {"cancelled"}
    assert {j[1] for j in _squeue(slurm_cluster, key)} == {"CANCELLED"}
    out = hpcx(root, "apply", "--yes", env=_env(slurm_cluster), check=True)
    assert "2 to retry" in out.stdout
    _refresh_until(root, slurm_cluster, {"succeeded"}, 2, timeout=120)
    assert sorted(ln.split()[0] for ln in log_lines(log)) == sorted(runs(root))  # once each
    for folder in run_folders(root, "st"):
        assert claims(folder) == [".claim-2"] and successes_in(folder) == 1
    assert_history_has_no_gap(root)
