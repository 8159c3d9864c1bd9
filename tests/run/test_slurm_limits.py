"""Submission within the scheduler's limits, on the real accounting cluster (slurmdbd, QOS
``small`` with MaxSubmitJobsPerUser=5 as the user's default): the limits read live, a sweep
larger than the limit finishing through top-ups with no sbatch refused, no run submitted twice
and none lost; an sbatch refusal (another process took the room) leaves runs queued, not
failed; a refresh that cannot reach the controller says so and changes nothing."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import pytest
from support.cli import hpcx
from support.projects import log_lines, manifest, query, runs, state_path
from support.slurm import command_shims, shim_calls

pytestmark = pytest.mark.slurm


def _env(cluster: Any, shims: Path | None = None, **extra: str) -> dict[str, str]:
    env = {"SLURM_CONF": cluster.env["SLURM_CONF"], **extra}
    if shims is not None:
        env["PATH"] = f"{shims}{os.pathsep}{os.environ['PATH']}"
    return env


def _sweep(name: str, n: int, args: list[str]) -> str:
    return manifest(
        name,
        args,
        params={"i": 0},
        grid={"i": list(range(n))},
        executor={"type": "slurm"},
        resources={"partition": "debug", "cpus": 1, "time": "00:05:00"},
    )


@pytest.fixture
def acct(slurm_accounting: Any) -> Any:
    """The session's accounting cluster, emptied of jobs after the test (limit back at 5)."""
    yield slurm_accounting
    slurm_accounting.cancel_all_jobs()
    if slurm_accounting.max_submit != 5:
        slurm_accounting.set_max_submit(5)


def test_the_limits_are_read_live_from_accounting(acct: Any, monkeypatch: Any) -> None:
    from hpcx.run.executors import slurm

    monkeypatch.setenv("SLURM_CONF", acct.env["SLURM_CONF"])
    slurm._LIMITS_CACHE.clear()
    slurm.forget_queue()
    ex = slurm.SlurmExecutor({})
    assert ex.limits().accounting
    assert [(u.limit, u.source) for u in ex.user_limits()] == [
        (5, "QOS small MaxSubmitJobsPerUser")
    ]
    room = ex.room(reuse=False)
    assert (room.room, room.limit, room.source) == (5, 5, "QOS small MaxSubmitJobsPerUser")
    # Two jobs of the user's own, not hpcx's, take room too.
    for _ in range(2):
        acct.run("sbatch", "-o", "/dev/null", "--wrap", "sleep 60")
    assert ex.room(reuse=False).room == 3


def test_discover_records_the_limits_in_the_profile(acct: Any, monkeypatch: Any) -> None:
    from hpcx.cluster.discover import discover
    from hpcx.cluster.limits import user_name

    monkeypatch.setenv("SLURM_CONF", acct.env["SLURM_CONF"])
    limits = discover()["spec"]["limits"]
    assert limits["accounting"] is True and limits["user"] == user_name()
    assert (limits["max_submit_jobs"], limits["max_submit_source"]) == (
        5,
        "QOS small MaxSubmitJobsPerUser",
    )
    assert limits["max_job_count"] >= 1 and limits["max_array_size"] >= 1


def test_a_sweep_larger_than_the_limit_finishes_through_top_ups(
    acct: Any, project: Any, tmp_path: Path
) -> None:
    log = tmp_path / "executions.log"
    shims = command_shims(tmp_path / "shims", tmp_path / "calls.log")
    root = project({"big": _sweep("big", 12, ["--log", str(log), "--sleep", "1", "{params.i}"])})
    env = _env(acct, shims)

    plan = json.loads(hpcx(root, "plan", "--json", env=env, check=True).stdout)["submission"]
    assert (plan["tasks"], plan["arrays"], plan["limit"], plan["in_queue"]) == (12, 1, 5, 0)
    assert (plan["go_now"], plan["wait"], plan["limits_from"]) == (5, 7, "live")
    text = hpcx(root, "plan", env=env, check=True).stdout
    assert "12 runs -> 12 jobs" in text and "5 go at once, 7 wait in hpcx's queue" in text

    out = hpcx(root, "apply", "--yes", "--json", env=env, check=True)
    doc = json.loads(out.stdout)
    assert doc["submitted"] == 5 and doc["queued"] == 7
    assert doc["room"]["source"] == "QOS small MaxSubmitJobsPerUser"
    state = runs(root)
    assert sorted(r["status"] for r in state.values()).count("queued") == 7
    assert all(r["job_id"] is None for r in state.values() if r["status"] == "queued")
    # A plain apply of the same manifests submits nothing twice: queued runs wait their turn.
    again = json.loads(hpcx(root, "apply", "--yes", "--json", env=env, check=True).stdout)
    assert again.get("submitted", 0) == 0

    deadline = time.monotonic() + 90
    while True:
        hpcx(root, "refresh", env=env, check=True)
        state = runs(root)
        if all(r["status"] == "succeeded" for r in state.values()):
            break
        assert time.monotonic() < deadline, f"not all succeeded: {state}"
        time.sleep(0.5)

    calls = shim_calls(tmp_path / "calls.log")
    sbatch = [c for c in calls if c[0] == "sbatch"]
    assert sbatch and all(rc == 0 for _, rc, _ in sbatch), f"an sbatch was refused: {sbatch}"
    # 0 duplicates: every run went out once (one job or array task, one attempt, one run).
    assert len(state) == 12 and all(r["attempts"] == 1 for r in state.values())
    assert len({r["job_id"] for r in state.values()}) == 12
    assert sorted(line.split()[0] for line in log_lines(log)) == sorted(state)
    tasks = query(
        root,
        "SELECT sum(json_array_length(json_extract(detail, '$.submission.run_ids'))) "
        "FROM submissions WHERE state = 'submitted'",
    )
    assert tasks == [(12,)]
    # Events: each run went queued -> pending -> submitted at most once.
    events = query(
        root, "SELECT run_id, count(*) FROM run_events WHERE event = 'top-up' GROUP BY run_id"
    )
    assert len(events) == 7 and {n for _, n in events} == {1}


def test_a_refusal_for_want_of_room_leaves_runs_queued(
    acct: Any, tmp_path: Path, monkeypatch: Any
) -> None:
    """hpcx counted room for 4, then another process of the user took 3 of the 5: the whole
    array is refused (every task counts), and its runs wait queued, nothing failed."""
    from support.specs import make_spec

    from hpcx.cluster.limits import Room
    from hpcx.plan.planner import Action, RunChange
    from hpcx.run.apply import apply_changes, top_up
    from hpcx.run.executors import slurm
    from hpcx.state.writer import Writer

    monkeypatch.setenv("SLURM_CONF", acct.env["SLURM_CONF"])
    for _ in range(3):
        acct.run("sbatch", "-o", "/dev/null", "--wrap", "sleep 60")
    counted = Room(room=4, limit=5, used=1, source="QOS small MaxSubmitJobsPerUser")
    monkeypatch.setattr(slurm.SlurmExecutor, "room", lambda self, reuse=True: counted)
    specs = [
        make_spec(
            experiment="e",
            params={"i": i},
            command=["true"],
            executor={"type": "slurm"},
            resources={"partition": "debug", "cpus": 1},
        )
        for i in range(4)
    ]
    changes = [RunChange(Action.CREATE, "new", s, s.run_id, s.experiment) for s in specs]
    state = tmp_path / "state.duckdb"
    with Writer(state, "test") as writer:
        out = apply_changes(changes, writer=writer, runs_root=tmp_path / "runs", wait=False)
    assert sorted(out.queued) == sorted(s.run_id for s in specs)
    assert out.submitted == [] and out.not_submitted == {}
    from hpcx.state.store import StateStore

    with StateStore.open(state, read_only=True) as store:
        assert set(store.run_statuses(s.run_id for s in specs).values()) == {"queued"}
        # Oldest first, then by id: these were recorded together.
        assert [r.run_id for r in store.queued_runs()] == sorted(s.run_id for s in specs)
        assert [r.spec for r in store.queued_runs(limit=2)] == sorted(
            specs, key=lambda s: s.run_id
        )[:2]
    # Room frees (the other jobs end): a top-up submits them.
    acct.cancel_all_jobs()
    monkeypatch.undo()
    monkeypatch.setenv("SLURM_CONF", acct.env["SLURM_CONF"])
    slurm.forget_queue()
    with Writer(state, "test") as writer:
        topped = top_up(writer, tmp_path / "runs")
    assert topped is not None and sorted(topped.submitted) == sorted(s.run_id for s in specs)


def test_a_refresh_that_cannot_reach_the_controller_changes_nothing(
    acct: Any, project: Any, tmp_path: Path
) -> None:
    root = project({"s": _sweep("s", 7, ["--sleep", "30", "{params.i}"])})
    env = _env(acct, HPCX_SLURM_POLL_RETRIES="0")
    doc = json.loads(hpcx(root, "apply", "--yes", "--json", env=env, check=True).stdout)
    assert doc["submitted"] == 5 and doc["queued"] == 2

    def snapshot() -> Any:
        return (
            query(root, "SELECT serial FROM meta"),
            query(root, "SELECT count(*) FROM run_events"),
            query(root, "SELECT * FROM runs ORDER BY run_id"),
            query(root, "SELECT * FROM submissions ORDER BY key"),
            state_path(root).stat().st_size,
        )

    before = snapshot()
    # The same cluster, read by commands that give up on a stopped controller after 2 s
    # instead of the fixture's 10 (squeue retries its connection that long).
    impatient = tmp_path / "impatient.conf"
    impatient.write_text(
        acct.conf_path.read_text().replace("MessageTimeout=10", "MessageTimeout=2")
    )
    acct.stop_controller()
    try:
        out = hpcx(root, "refresh", env={**env, "SLURM_CONF": str(impatient)})
        assert out.returncode == 1
        assert "cannot reach the SLURM controller" in out.stderr
        assert "nothing was changed" in out.stderr
        assert snapshot() == before
    finally:
        acct.start_controller()
    # Once it answers, the refresh goes on as if nothing happened.
    hpcx(root, "refresh", env=env, check=True)
    assert sum(r["status"] == "queued" for r in runs(root).values()) == 2


def test_a_pipeline_above_the_limit_waits_queued_behind_its_upstream_and_finishes(
    acct: Any, project: Any, tmp_path: Path
) -> None:
    """train (3) -> eval (3, eval[i] needs train[i]) under a limit of 2 jobs: two trains go,
    the third train waits queued, and so does every eval, the third *behind* its queued train
    (not blocked: nothing failed). Top-ups alone finish the pipeline, each eval after its own
    train, with no sbatch refused and no run blocked or submitted twice."""
    from support.pipelines import ts

    acct.set_max_submit(2)
    log = tmp_path / "executions.log"
    shims = command_shims(tmp_path / "shims", tmp_path / "calls.log")
    train = _sweep("train", 3, ["--log", str(log), "--sleep", "1", "{params.i}"])
    evals = json.loads(_sweep("eval", 3, ["--log", str(log), "{params.i}"]))
    evals["spec"]["needs"] = {"train": {"match": ["params.i"]}}
    root = project({"train": train, "eval": json.dumps(evals, indent=2)})
    env = _env(acct, shims)

    doc = json.loads(hpcx(root, "apply", "--yes", "--json", env=env, check=True).stdout)
    assert (doc["submitted"], doc["queued"], doc["blocked"]) == (2, 4, {})
    exp = dict(query(root, "SELECT run_id, experiment FROM runs"))
    state = runs(root)
    waiting = sorted(exp[rid] for rid, r in state.items() if r["status"] == "queued")
    assert waiting == ["eval", "eval", "eval", "train"], state
    assert all(r["job_id"] is None for r in state.values() if r["status"] == "queued")

    deadline = time.monotonic() + 120
    while True:
        hpcx(root, "refresh", env=env, check=True)
        state = runs(root)
        if all(r["status"] == "succeeded" for r in state.values()):
            break
        assert not any(r["status"] in ("blocked", "failed", "lost") for r in state.values()), state
        assert time.monotonic() < deadline, f"not all succeeded: {state}"
        time.sleep(0.5)

    calls = shim_calls(tmp_path / "calls.log")
    assert all(rc == 0 for name, rc, _ in calls if name == "sbatch"), calls
    assert all(r["attempts"] == 1 for r in state.values())
    assert sorted(line.split()[0] for line in log_lines(log)) == sorted(state)
    trains = {r["params"]["i"]: r for rid, r in state.items() if exp[rid] == "train"}
    for rid, r in state.items():
        if exp[rid] == "eval":
            assert ts(r["started_at"]) >= ts(trains[r["params"]["i"]]["ended_at"]), r
    blocked = query(root, "SELECT count(*) FROM run_events WHERE event = 'blocked'")
    assert blocked == [(0,)]


def test_room_for_two_jobs_sends_two_packs_of_runs(
    acct: Any, tmp_path: Path, monkeypatch: Any
) -> None:
    """The room is in jobs: with ``executor.pack: 3`` and room for 2 jobs, 6 of 8 runs go
    (one array of two packed tasks) and 2 wait queued; none is refused."""
    from support.specs import make_spec

    from hpcx.cluster.limits import Room
    from hpcx.plan.planner import Action, RunChange
    from hpcx.run.apply import apply_changes
    from hpcx.run.executors import slurm
    from hpcx.state.writer import Writer

    monkeypatch.setenv("SLURM_CONF", acct.env["SLURM_CONF"])
    counted = Room(room=2, limit=5, used=3, source="QOS small MaxSubmitJobsPerUser")
    monkeypatch.setattr(slurm.SlurmExecutor, "room", lambda self, reuse=True: counted)
    specs = [
        make_spec(
            experiment="e",
            params={"i": i},
            command=["true"],
            executor={"type": "slurm", "pack": 3},
            resources={"partition": "debug", "cpus": 1, "time": "00:01:00"},
        )
        for i in range(8)
    ]
    changes = [RunChange(Action.CREATE, "new", s, s.run_id, s.experiment) for s in specs]
    with Writer(tmp_path / "state.duckdb", "test") as writer:
        out = apply_changes(changes, writer=writer, runs_root=tmp_path / "runs", wait=False)
    assert len(out.submitted) == 6 and len(out.queued) == 2 and out.not_submitted == {}
    (sub,) = out.submissions
    assert len(sub.job_ids) == 1 and len(set(sub.run_jobs.values())) == 2
