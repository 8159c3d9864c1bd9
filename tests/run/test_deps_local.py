"""Dependencies between runs on the local executor, with real processes and a real state: a
train -> eval pipeline applied at once (each eval starts only after its own train succeeded),
a failed train blocking only its own eval (run folder and state say ``blocked``, naming the
train), a retry releasing it, apply holding blocked a run whose upstream stays failed, and the
refusals (a cycle, a local run needing a SLURM run)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
from support.pipelines import changes, folder_status, record
from support.pipelines import ts as _ts
from support.projects import PROG, wait_for
from support.specs import make_spec

from hpcx.errors import PlanError
from hpcx.manifest.spec import RunSpec
from hpcx.plan.planner import Action
from hpcx.run.apply import apply_changes
from hpcx.state.store import StateStore
from hpcx.state.writer import Writer


def pipeline(
    tmp_path: Path, n: int = 3, fail: int | None = None, executor: dict[str, Any] | None = None
) -> tuple[list[RunSpec], list[RunSpec], Path]:
    """``n`` train runs and ``n`` eval runs, eval[i] needs train[i]; train[``fail``] fails
    until the file it names exists (the switch is not part of what changes on a retry)."""
    flag = tmp_path / "train-may-succeed"
    log = tmp_path / "log"
    ex = executor or {"type": "local"}
    trains = []
    for i in range(n):
        cmd = [sys.executable, PROG, "--log", str(log), "--sleep", "0.3", "--metric", "i", str(i)]
        if i == fail:
            cmd += ["--fail-unless", str(flag)]
        trains.append(make_spec("train", i, {"i": i}, command=cmd, executor=ex))
    evals = [
        make_spec(
            "eval",
            i,
            {"i": i},
            command=[sys.executable, PROG, "--log", str(log), "--metric", "e", str(i)],
            executor=ex,
            needs=[("train", trains[i].run_id)],
        )
        for i in range(n)
    ]
    return trains, evals, flag


def test_a_local_pipeline_runs_each_eval_after_its_train_blocks_the_failed_one_and_a_retry_releases_it(  # noqa: E501
    tmp_path: Path,
) -> None:
    trains, evals, flag = pipeline(tmp_path, fail=1)
    state, root = tmp_path / "state.duckdb", tmp_path / "runs"
    with Writer(state, "test apply") as writer:
        outcome = apply_changes(changes([*trains, *evals]), writer=writer, runs_root=root)
    got = {r.run_id: record(state, r.run_id) for r in [*trains, *evals]}
    assert [got[t.run_id]["status"] for t in trains] == ["succeeded", "failed", "succeeded"]
    assert [got[e.run_id]["status"] for e in evals] == ["succeeded", "blocked", "succeeded"]
    for i in (0, 2):
        # Each eval started only once its own train had ended.
        assert _ts(got[evals[i].run_id]["started_at"]) >= _ts(got[trains[i].run_id]["ended_at"])
    blocked = got[evals[1].run_id]
    # Never ran: its folder says blocked, naming the train it needs, and so does the state.
    doc = folder_status(blocked)
    assert doc["state"] == "blocked" and f"train/{trains[1].run_id} (failed)" in doc["reason"]
    assert f"train/{trains[1].run_id}" in blocked["end_reason"]
    assert not (Path(blocked["run_dir"]) / "argv.json").exists()
    assert outcome.observed[evals[1].run_id].state == "blocked"

    # A retry of the train releases its eval: both go in one apply, the eval after the train.
    flag.touch()
    with Writer(state, "test apply") as writer:
        again = apply_changes(
            changes([trains[1], evals[1]], Action.RETRY), writer=writer, runs_root=root
        )
    assert not again.blocked
    train1, eval1 = record(state, trains[1].run_id), record(state, evals[1].run_id)
    assert (train1["status"], eval1["status"]) == ("succeeded", "succeeded")
    assert _ts(eval1["started_at"]) >= _ts(train1["ended_at"])
    assert folder_status(eval1)["attempt"] == 2


def test_apply_holds_blocked_a_run_whose_upstream_failed_and_is_not_retried(
    tmp_path: Path,
) -> None:
    trains, evals, _ = pipeline(tmp_path, n=1, fail=0)
    state, root = tmp_path / "state.duckdb", tmp_path / "runs"
    with Writer(state, "test apply") as writer:
        apply_changes(changes(trains), writer=writer, runs_root=root)
    assert record(state, trains[0].run_id)["status"] == "failed"
    with Writer(state, "test apply") as writer:
        outcome = apply_changes(changes(evals), writer=writer, runs_root=root)
    # Not submitted, not failed: held, with the reason naming the failed run it needs.
    assert outcome.submissions == [] and outcome.submitted == []
    why = outcome.blocked[evals[0].run_id]
    assert why == f"needs train/{trains[0].run_id}, which ended failed"
    rec = record(state, evals[0].run_id)
    assert rec["status"] == "blocked" and rec["job_id"] is None
    assert rec["end_reason"] == f"blocked: {why}"
    assert [e["event"] for e in rec["events"]][-1] == "blocked"
    # What needs a held run is held too (transitively), in the same apply.
    report = make_spec("report", 0, {"r": 0}, needs=[("eval", evals[0].run_id)])
    with Writer(state, "test apply") as writer:
        outcome = apply_changes(changes([evals[0], report]), writer=writer, runs_root=root)
    assert outcome.blocked == {
        evals[0].run_id: why,
        report.run_id: f"needs eval/{evals[0].run_id}, which is blocked itself",
    }
    assert record(state, report.run_id)["status"] == "blocked"
    # A run needing a run the state has never seen is held too, not sent to wait forever.
    ghost = make_spec("eval", 9, {"i": 9}, needs=[("train", "f" * 16)])
    with Writer(state, "test apply") as writer:
        outcome = apply_changes(changes([ghost]), writer=writer, runs_root=root)
    assert outcome.blocked == {ghost.run_id: f"needs train/{'f' * 16}, which was never applied"}


def test_a_run_needing_a_succeeded_run_goes_at_once(tmp_path: Path) -> None:
    trains, evals, _ = pipeline(tmp_path, n=1)
    state, root = tmp_path / "state.duckdb", tmp_path / "runs"
    with Writer(state, "test apply") as writer:
        apply_changes(changes(trains), writer=writer, runs_root=root)
    with Writer(state, "test apply") as writer:
        outcome = apply_changes(changes(evals), writer=writer, runs_root=root)
    assert not outcome.blocked and outcome.observed[evals[0].run_id].state == "succeeded"
    queue = json.loads(Path(outcome.submissions[0].folder, "queue.json").read_text())
    assert "needs" not in queue["tasks"][0]  # nothing to wait for


def test_a_detached_eval_queue_waits_for_the_train_queue_of_an_earlier_apply(
    tmp_path: Path,
) -> None:
    trains, evals, _ = pipeline(tmp_path, n=2)
    state, root = tmp_path / "state.duckdb", tmp_path / "runs"
    go = tmp_path / "go"
    # The trains wait for a file, so the evals are surely submitted while they are in flight.
    trains = [
        make_spec(
            "train",
            t.index,
            t.params,
            command=[sys.executable, PROG, "--wait-for", str(go)],
            executor={"type": "local"},
        )
        for t in trains
    ]
    evals = [
        make_spec("eval", e.index, e.params, command=[sys.executable, PROG], needs=[
            ("train", trains[e.index].run_id)
        ])
        for e in evals
    ]  # fmt: skip
    with Writer(state, "test apply") as writer:
        apply_changes(changes(trains), writer=writer, runs_root=root, wait=False)
    with Writer(state, "test apply") as writer:
        out = apply_changes(changes(evals), writer=writer, runs_root=root, wait=False)
    tasks = json.loads(Path(out.submissions[0].folder, "queue.json").read_text())["tasks"]
    assert [t["needs"][0]["run_id"] for t in tasks] == [t.run_id for t in trains]
    eval_dirs = [Path(d) for d in out.submissions[0].run_dirs.values()]
    assert all(not (d / "status.json").exists() for d in eval_dirs)  # waiting, not started
    go.touch()
    wait_for(
        lambda: (
            all(
                json.loads((d / "status.json").read_text())["state"] == "succeeded"
                for d in eval_dirs
                if (d / "status.json").exists()
            )
            and all((d / "status.json").exists() for d in eval_dirs)
        ),
        60,
        "the detached evals to succeed",
    )


def test_refusals_name_the_runs(tmp_path: Path) -> None:
    state, root = tmp_path / "state.duckdb", tmp_path / "runs"
    train = make_spec("train", 0, {"i": 0})
    slurm_eval = make_spec(
        "eval", 0, {"e": 0}, executor={"type": "slurm"}, needs=[("train", train.run_id)]
    )
    with Writer(state, "test apply") as writer, pytest.raises(PlanError) as err:
        apply_changes(changes([train, slurm_eval]), writer=writer, runs_root=root)
    assert f"eval/{slurm_eval.run_id} (slurm) needs train/{train.run_id} (local)" in str(err.value)
    assert err.value.hint and "-e EXPERIMENT" in err.value.hint
    a = make_spec("a", 0, {"i": 0}, run_id="aaaa", needs=[("b", "bbbb")])
    b = make_spec("b", 0, {"i": 0}, run_id="bbbb", needs=[("a", "aaaa")])
    with Writer(state, "test apply") as writer, pytest.raises(PlanError, match="in a cycle"):
        apply_changes(changes([a, b]), writer=writer, runs_root=root)
    # Refused before anything was recorded, or the scheduler asked anything (the SLURM eval
    # would have had its room counted first: there is no cluster here).
    if state.exists():
        with StateStore.open(state, read_only=True) as store:
            assert store.existing_runs([train.run_id, slurm_eval.run_id, "aaaa", "bbbb"]) == set()
