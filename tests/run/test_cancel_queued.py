"""Cancelling runs that wait in hpcx's queue (``queued``: no job yet): they are recorded
cancelled without asking a scheduler, and nothing tops them up afterwards."""

from __future__ import annotations

from pathlib import Path

from support.specs import make_spec

from hpcx.run.cancel import cancel_session
from hpcx.state.store import StateStore
from hpcx.state.writer import Writer


def _state(tmp_path: Path) -> tuple[Path, list[str]]:
    specs = [make_spec("e", params={"i": i}, executor={"type": "slurm"}) for i in range(3)]
    path = tmp_path / "state.duckdb"
    with Writer(path, "test") as writer, writer.open() as store, store.transaction() as tx:
        tx.record_runs(specs, status="queued", event="queued", executor="slurm")
    return path, [s.run_id for s in specs]


def test_a_queued_run_is_cancelled_without_a_scheduler(tmp_path: Path) -> None:
    path, ids = _state(tmp_path)
    done = cancel_session(path, runs=[ids[0][:12]], wait=0)
    assert done.asked == {ids[0]} and done.cancelled == 1
    with StateStore.open(path, read_only=True) as store:
        assert store.run_statuses(ids) == {ids[0]: "cancelled", ids[1]: "queued", ids[2]: "queued"}
        assert store.queued_count() == 2
        assert [r.run_id for r in store.queued_runs()] == sorted(ids[1:])


def test_cancel_all_takes_every_queued_run(tmp_path: Path) -> None:
    path, ids = _state(tmp_path)
    done = cancel_session(path, all_in_flight=True, wait=0)
    assert done.asked == set(ids) and done.cancelled == 3
    with StateStore.open(path, read_only=True) as store:
        assert set(store.run_statuses(ids).values()) == {"cancelled"}
        assert store.queued_run_ids() == []


def test_a_blocked_run_is_cancelled_too_and_stays_so(tmp_path: Path) -> None:
    """A blocked run (held behind a run that did not succeed) has no job either: it is
    cancelled here, without a scheduler, and from then on is what any cancelled run is (a
    later apply runs it again, as a retry), not a blocked run waiting to be released."""
    from support.specs import desired_of

    from hpcx.plan.planner import Action, make_plan

    path, ids = _state(tmp_path)
    with StateStore.open(path) as store, store.transaction() as tx:
        tx.update_runs([{"run_id": ids[1], "status": "blocked"}], event="blocked")
    done = cancel_session(path, runs=[ids[1][:12]], wait=0)
    assert done.asked == {ids[1]} and done.cancelled == 1
    with StateStore.open(path, read_only=True) as store:
        assert store.run_statuses([ids[1]]) == {ids[1]: "cancelled"}
        spec = store.stored_run(ids[1]).spec
        plan = make_plan(desired_of([spec]), store.snapshot())
    (change,) = [c for c in plan.changes if c.run_id == ids[1]]
    assert (change.action, change.reason) == (Action.RETRY, "failed-before")  # as any cancel
