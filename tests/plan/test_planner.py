"""make_plan: every action with its reason, against snapshots read from real state files."""

from __future__ import annotations

from pathlib import Path

from support.specs import desired_of, make_run

from hpcx.plan.planner import Action, make_plan
from hpcx.state.store import SnapRun, StateSnapshot, StateStore


def _by_id(plan):  # type: ignore[no-untyped-def]
    return {c.run_id: c for c in plan.changes}


def test_empty_state_plans_every_run_as_create(store: StateStore) -> None:
    runs = [make_run(index=i) for i in range(4)]
    plan = make_plan(desired_of(runs), store.snapshot())
    assert [(c.action, c.reason) for c in plan.changes] == [(Action.CREATE, "new")] * 4
    assert [c.run for c in plan.changes] == runs
    assert plan.has_changes and plan.counts()["create"] == 4


def test_each_status_gets_its_action_and_reason(store: StateStore) -> None:
    statuses = [
        "succeeded",
        "pending",
        "submitted",
        "running",
        "failed",
        "cancelled",
        "lost",
        "timeout",
    ]
    runs = [make_run(index=i) for i in range(len(statuses) + 1)]
    store.record_runs(runs[:-1])
    for run, status in zip(runs, statuses, strict=False):
        if status != "pending":
            store.set_status([run.run_id], status, event="test", bump_attempts=True)
    plan = make_plan(desired_of(runs), store.snapshot())
    got = {c.run_id: (c.action, c.reason, c.prior_status) for c in plan.changes}
    expect = {
        "succeeded": (Action.NOOP, "succeeded"),
        "pending": (Action.NOOP, "in-flight"),
        "submitted": (Action.NOOP, "in-flight"),
        "running": (Action.NOOP, "in-flight"),
        "failed": (Action.RETRY, "failed-before"),
        "cancelled": (Action.RETRY, "failed-before"),
        "lost": (Action.RETRY, "failed-before"),
        "timeout": (Action.RETRY, "failed-before"),
    }
    for run, status in zip(runs, statuses, strict=False):
        assert got[run.run_id] == (*expect[status], status), status
    assert got[runs[-1].run_id] == (Action.CREATE, "new", None)
    retry = _by_id(plan)[runs[4].run_id]
    assert retry.detail == {"status": "failed", "attempts": 1}
    assert len(plan.changes) == len(runs)  # nothing orphaned


def test_settings_change_on_finished_run_is_update_not_rerun(store: StateStore) -> None:
    old = make_run(resources={"time": "1:00:00"})
    store.record_runs([old])
    store.set_status([old.run_id], "succeeded", event="done")
    new = make_run(resources={"time": "4:00:00"})
    assert new.run_id == old.run_id
    (change,) = make_plan(desired_of([new]), store.snapshot()).changes
    assert (change.action, change.reason, change.prior_status) == (
        Action.UPDATE,
        "settings-changed",
        "succeeded",
    )
    assert change.detail == {"old_settings_digest": old.settings_digest}


def test_settings_change_on_failed_run_is_a_retry_that_says_so(store: StateStore) -> None:
    old = make_run(resources={"time": "1:00:00"})
    store.record_runs([old])
    store.set_status([old.run_id], "timeout", event="ended")
    new = make_run(resources={"time": "4:00:00"})
    (change,) = make_plan(desired_of([new]), store.snapshot()).changes
    assert change.action is Action.RETRY and change.detail["settings_changed"] is True  # type: ignore[index]


def test_code_change_makes_run_stale_and_old_one_is_not_orphaned(store: StateStore) -> None:
    v1 = make_run(code_hash="aaaa")
    store.record_runs([v1])
    store.set_status([v1.run_id], "succeeded", event="done")
    v2 = make_run(code_hash="bbbb")
    assert v2.base_id == v1.base_id and v2.run_id != v1.run_id
    plan = make_plan(desired_of([v2]), store.snapshot())
    (change,) = plan.changes
    assert (change.action, change.reason, change.prior_status) == (
        Action.STALE,
        "code-changed",
        "succeeded",
    )
    assert change.detail == {"old_run_id": v1.run_id, "old_code_hash": "aaaa", "code_hash": "bbbb"}
    assert change.run == v2


def test_stale_points_at_newest_old_version(store: StateStore) -> None:
    v1, v2, v3 = (make_run(code_hash=h) for h in ("a1", "b2", "c3"))
    store.record_runs([v1])
    store.record_runs([v2])
    (change,) = make_plan(desired_of([v3]), store.snapshot()).changes
    assert change.detail["old_run_id"] == v2.run_id  # type: ignore[index]


def test_orphans_are_reported_never_deleted(store: StateStore) -> None:
    keep, gone = make_run(index=0), make_run(index=1)
    store.record_runs([keep, gone])
    store.set_status([gone.run_id], "succeeded", event="done")
    store.add_metrics([(gone.run_id, "acc", 1, 0.9, None)])
    serial_before = store.meta()[1]
    plan = make_plan(desired_of([keep]), store.snapshot())
    orphan = _by_id(plan)[gone.run_id]
    assert (orphan.action, orphan.reason, orphan.prior_status, orphan.run) == (
        Action.ORPHAN,
        "not-in-manifests",
        "succeeded",
        None,
    )
    assert not plan.has_changes  # an orphan alone changes nothing
    # Planning is pure: the state, the run and its results are all still there.
    assert store.meta()[1] == serial_before
    assert gone.run_id in store.snapshot().runs
    n = store.connection.execute("SELECT count(*) FROM metrics WHERE run_id = ?", [gone.run_id])
    assert n.fetchone()[0] == 1


def test_orphan_scope_experiments_ignores_other_experiments(store: StateStore) -> None:
    a0, a1, b0 = make_run("a", 0), make_run("a", 1), make_run("b", 2)
    store.record_runs([a0, a1, b0])
    everything = make_plan(desired_of([a0]), store.snapshot())
    assert {c.run_id for c in everything.changes if c.action is Action.ORPHAN} == {
        a1.run_id,
        b0.run_id,
    }
    scoped = make_plan(desired_of([a0]), store.snapshot(), orphan_scope="experiments")
    assert {c.run_id for c in scoped.changes if c.action is Action.ORPHAN} == {a1.run_id}


def test_plan_carries_lineage_serial_digests_and_overrides(store: StateStore) -> None:
    store.record_runs([make_run()])
    d = desired_of([make_run()], digests={"manifests/exp.yaml": "ab" * 32})
    d = type(d)(runs=d.runs, experiments=d.experiments, digests=d.digests, overrides=("a=1",))
    plan = make_plan(d, store.snapshot(), git={"commit": "c0ffee", "dirty_paths": []})
    assert (plan.lineage, plan.serial) == store.meta()
    assert plan.manifest_digests == {"manifests/exp.yaml": "ab" * 32}
    assert plan.overrides == ("a=1",) and plan.git["commit"] == "c0ffee"
    assert plan.swept == {"exp": ("params.depth",)}


def test_100k_desired_against_100k_state_counts_each_kind() -> None:
    # Speed is measured in bench/plan_100k.py (whole processes, interleaved with a baseline),
    # not here: a wall-clock limit in a test only measures the machine's load.
    runs = [make_run(index=i) for i in range(100_000)]
    half = runs[:50_000]
    state = {
        r.run_id: SnapRun(
            r.run_id, r.base_id, r.experiment, "succeeded", r.settings_digest, None, 1
        )
        for r in half
    }
    # 50k of the state's runs are no longer wanted: 50k orphans, 50k unchanged, 50k new.
    for i in range(50_000):
        rid = f"old{i:08d}"
        state[rid] = SnapRun(rid, rid, "exp", "succeeded", "d", None, 1)
    snap = StateSnapshot("lineage", 7, state)
    desired = desired_of(runs)
    plan = make_plan(desired, snap)
    assert plan.counts() == {
        "create": 50_000,
        "noop": 50_000,
        "retry": 0,
        "update": 0,
        "stale": 0,
        "orphan": 50_000,
    }


def test_make_plan_does_not_touch_the_file(tmp_path: Path) -> None:
    p = tmp_path / "s.duckdb"
    with StateStore.open(p) as s:
        s.record_runs([make_run()])
    before = p.read_bytes()
    with StateStore.open(p, read_only=True) as s:
        make_plan(desired_of([make_run(index=3)]), s.snapshot())
    assert p.read_bytes() == before
