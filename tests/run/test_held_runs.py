"""Runs hpcx holds with no job (``queued`` for room under the scheduler's limits, ``blocked``
behind a run that did not succeed) as apply meets them: a packed room cut in whole packs per
kind of run, and an older held version superseded by the run that replaces it."""

from __future__ import annotations

from pathlib import Path

from support.specs import make_spec

from hpcx.plan.planner import Action, RunChange
from hpcx.run.apply import _cut_by_room, apply_changes
from hpcx.state.store import StateStore
from hpcx.state.writer import Writer


def test_the_room_is_cut_in_whole_packs_for_each_kind_of_run() -> None:
    """pack 4, room for 2 jobs: 5 runs of one kind are 2 jobs (4 + 1), so the 3 runs of
    another kind wait; cutting by runs (2 x 4 = 8) would send 3 jobs into room for 2."""
    small = {"cpus": 1, "time": "00:01:00"}
    big = {"cpus": 2, "time": "00:01:00"}
    runs = [make_spec("e", i, {"i": i}, resources=small) for i in range(5)]
    runs += [make_spec("e", 10 + i, {"i": 10 + i}, resources=big) for i in range(3)]
    take, rest, jobs = _cut_by_room(runs, 2, 4)
    assert (len(take), len(rest), jobs) == (5, 3, 2)
    assert all(r.resources == small for r in take) and all(r.resources == big for r in rest)
    take, rest, jobs = _cut_by_room(runs, 3, 4)
    assert (len(take), len(rest), jobs) == (8, 0, 3)
    # Unpacked: a job a run.
    take, rest, jobs = _cut_by_room(runs, 6, 1)
    assert (len(take), len(rest), jobs) == (6, 2, 6)


def test_a_held_older_version_is_cancelled_when_its_replacement_goes(tmp_path: Path) -> None:
    """A run waited queued (or blocked); the code changed, and the plan submits its new
    version (stale). The old one never went out: it is recorded cancelled, superseded, so no
    top-up or release sends it beside its replacement. One that went out is left alone."""
    state = tmp_path / "state.duckdb"
    old_q = make_spec("e", 0, {"i": 0}, command=["true"], code_hash="a")
    new_q = make_spec("e", 0, {"i": 0}, command=["true"], code_hash="b")
    old_s = make_spec("e", 1, {"i": 1}, command=["true"], code_hash="a")
    new_s = make_spec("e", 1, {"i": 1}, command=["true"], code_hash="b")
    with StateStore.open(state) as store, store.transaction() as tx:
        tx.record_runs([old_q], status="queued")
        tx.record_runs([old_s], status="succeeded")
    changes = [
        RunChange(
            Action.STALE, "code-changed", new, new.run_id, "e", prior, {"old_run_id": old.run_id}
        )
        for old, new, prior in ((old_q, new_q, "queued"), (old_s, new_s, "succeeded"))
    ]
    with Writer(state, "test") as writer:
        out = apply_changes(changes, writer=writer, runs_root=tmp_path / "runs")
    assert out.superseded == {old_q.run_id: new_q.run_id}
    assert sorted(out.submitted) == sorted([new_q.run_id, new_s.run_id])
    with StateStore.open(state, read_only=True) as store:
        gone = store.stored_run(old_q.run_id)
        assert gone.status == "cancelled"
        assert store.stored_run(old_s.run_id).status == "succeeded"
        assert store.queued_run_ids(("queued", "blocked")) == []
        record = store.run_detail(old_q.run_id).record
    assert f"superseded by {new_q.run_id}" in record["end_reason"]
