"""The compact snapshot (issue 17) holds exactly what the runs table holds, in its order."""

from __future__ import annotations

from pathlib import Path

from support.specs import desired_of, make_run

from hpcx.plan.planner import Action, make_plan
from hpcx.state.store import SnapRun, SnapRuns, StateSnapshot, StateStore


def _fill(path: Path) -> None:
    with StateStore.open(path) as s:
        # Kinds that differ in each shared field, NULLs among them, and base_ids that are not
        # the run's own id (an older version of a run whose code changed).
        s.connection.execute(
            "INSERT INTO runs (run_id, base_id, experiment, status, settings_digest, code_hash, "
            "attempts, created_at, updated_at) SELECT "
            "'r' || lpad(i::VARCHAR, 3, '0'), "
            "CASE WHEN i % 7 = 0 THEN 'b' || (i % 3)::VARCHAR ELSE 'r' || lpad(i::VARCHAR, 3, '0') "
            "END, "
            "CASE WHEN i % 2 = 0 THEN 'e1' ELSE 'e2' END, "
            "CASE WHEN i % 3 = 0 THEN 'failed' WHEN i % 3 = 1 THEN 'succeeded' ELSE 'running' "
            "END, "
            "CASE WHEN i % 5 = 0 THEN NULL ELSE 'd' || (i % 4)::VARCHAR END, "
            "CASE WHEN i % 11 = 0 THEN NULL ELSE 'c' || (i % 2)::VARCHAR END, "
            "i % 3, now()::TIMESTAMP, now()::TIMESTAMP "
            "FROM range(200) t(i) ORDER BY (i * 37) % 200"  # rowid order is not run_id order
        )


def test_snapshot_is_the_runs_table_in_rowid_order(tmp_path: Path) -> None:
    p = tmp_path / "s.duckdb"
    _fill(p)
    with StateStore.open(p, read_only=True) as s:
        snap = s.snapshot()
        table = s.connection.execute(
            "SELECT run_id, base_id, experiment, status, settings_digest, code_hash, attempts "
            "FROM runs ORDER BY rowid"
        ).fetchall()
    runs = snap.runs
    assert isinstance(runs, SnapRuns)
    want = {r[0]: SnapRun(*r) for r in table}
    assert list(runs) == list(want)  # oldest first
    assert len(runs) == 200 and dict(runs.items()) == want and runs == want
    assert [runs.get(k) for k in want] == list(want.values())
    assert runs.get("nope") is None and "nope" not in runs and "r007" in runs
    assert list(runs.rows()) == [(r[0], r[1], tuple(r[2:])) for r in table]
    assert [runs.kind(r[0]) for r in table] == [tuple(r[2:]) for r in table]
    newest: dict[str, str] = {}
    for r in table:
        newest[r[1]] = r[0]
    latest = runs.latest_by_base()
    assert {b: latest(b) for b in newest} == newest and latest("nope") is None


def test_plans_against_the_compact_and_a_plain_snapshot_are_equal(tmp_path: Path) -> None:
    p = tmp_path / "s.duckdb"
    with StateStore.open(p) as s:
        old = [make_run(index=i, code_hash="old") for i in range(6)]
        s.record_runs(old)
        s.set_status([r.run_id for r in old[:3]], "succeeded", event="harvested")
        s.set_status([old[3].run_id], "failed", event="harvested")
    with StateStore.open(p, read_only=True) as s:
        snap = s.snapshot()
    plain = StateSnapshot(snap.lineage, snap.serial, dict(snap.runs.items()))
    # Some runs as they were, one with new code (stale), new ones, and the rest orphaned.
    desired = desired_of(
        [old[0], old[3], make_run(index=1, code_hash="new"), make_run(index=50, code_hash="old")]
    )
    a, b = make_plan(desired, snap), make_plan(desired, plain)
    assert a.changes == b.changes
    assert [c.action for c in a.changes] == [
        Action.NOOP,
        Action.RETRY,
        Action.STALE,
        Action.CREATE,
        Action.ORPHAN,  # indexes 2, 4 and 5; index 1's older version is history
        Action.ORPHAN,
        Action.ORPHAN,
    ]
