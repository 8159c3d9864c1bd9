"""The store's front door: each read and write a command needs, on a real DuckDB file."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.specs import make_spec

from hpcx.errors import HpcxError
from hpcx.manifest.spec import RunSpec
from hpcx.run.executors.base import Submission
from hpcx.state.records import FinishedRun, HarvestTarget, RunRef, StatusCount
from hpcx.state.store import StateStore


def make_run(experiment: str = "exp", index: int = 0, **extra: Any) -> RunSpec:
    """A run of the workload ``train`` with params ``{"i": index}``; ``extra`` as the loader
    would keep it (``results`` rules, ...)."""
    return make_spec(experiment, index, {"i": index}, workload="train", tags=("t",), extra=extra)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[StateStore]:
    s = StateStore.open(tmp_path / ".hpcx" / "state.duckdb")
    yield s
    s.close()


def _submission(key: str, runs: list[RunSpec], root: Path) -> Submission:
    return Submission(
        key=key,
        executor="local",
        job_ids=("host:1",),
        run_ids=tuple(r.run_id for r in runs),
        run_jobs={r.run_id: "host:1" for r in runs},
        run_dirs={r.run_id: str(root / r.run_id) for r in runs},
        folder=str(root / ".submissions" / key),
        submitted_at="2026-01-01T00:00:00+00:00",
    )


def test_status_counts_and_run_summaries_filter_by_experiment_and_status(
    store: StateStore,
) -> None:
    a0, a1, b2 = make_run("a", 0), make_run("a", 1), make_run("b", 2)
    store.record_runs([a0, a1, b2])
    store.set_status([a1.run_id], "failed", event="test", fields={"end_reason": "boom"})
    assert store.status_counts() == [
        StatusCount("a", "failed", 1),
        StatusCount("a", "pending", 1),
        StatusCount("b", "pending", 1),
    ]
    assert [r.run_id for r in store.run_summaries()] == [a0.run_id, a1.run_id, b2.run_id]
    (only,) = store.run_summaries(["a"], ["failed"])
    assert (only.run_id, only.status, only.end_reason, only.attempts) == (
        a1.run_id,
        "failed",
        "boom",
        0,
    )
    assert store.run_summaries(["nope"]) == []
    assert store.experiment_names() == {"a", "b"}
    assert store.run_ids_of(["a"]) == {a0.run_id, a1.run_id}
    assert store.existing_runs([a0.run_id, "f" * 32]) == {a0.run_id}


def test_resolve_run_takes_a_unique_prefix_and_names_the_trouble(store: StateStore) -> None:
    runs = [make_run("a", i) for i in range(40)]
    store.record_runs(runs)
    r = runs[0]
    assert store.resolve_run(r.run_id[:12]) == RunRef(r.run_id, None)
    with pytest.raises(HpcxError, match="no run 'zzz' in the state") as ei:
        store.resolve_run("zzz")
    assert ei.value.hint == "`hpcx status --runs` lists them"
    first = {x.run_id[0] for x in runs}
    shared = next(c for c in sorted(first) if sum(x.run_id[0] == c for x in runs) > 1)
    with pytest.raises(HpcxError, match="names several runs") as ei:
        store.resolve_run(shared)
    assert ei.value.hint == "give more characters of the run id"


def test_stored_run_gives_back_the_spec_as_a_runspec(store: StateStore) -> None:
    r = make_run("a", 3, results={"stdout_json": True})
    store.record_runs([r])
    got = store.stored_run(r.run_id)
    assert (got.run_id, got.experiment, got.status) == (r.run_id, "a", "pending")
    assert got.spec == r


def test_run_detail_has_the_record_spec_meta_history_and_latest_metrics(
    store: StateStore,
) -> None:
    r = make_run("a", 0)
    store.record_runs([r])
    with store.transaction() as tx:
        tx.set_run_meta(r.run_id, {"git_commit": "abc", "placement": {"numa_node": 0}})
        tx.add_metrics([(r.run_id, "loss", 1, 0.5, None, 1), (r.run_id, "loss", 2, 0.25, None, 1)])
    d = store.run_detail(r.run_id)
    assert d.record["run_id"] == r.run_id and d.record["status"] == "pending"
    assert "spec" not in d.record and "identity" not in d.record
    assert d.spec["params"] == {"i": 0}
    assert d.meta == {"git_commit": "abc", "placement": {"numa_node": 0}}
    assert [e["event"] for e in d.events] == ["recorded"]
    assert d.metrics_attempt == 1 and d.metrics == [("loss", 0.25, 2)]


def test_harvest_targets_and_finished_runs_carry_the_results_rules(store: StateStore) -> None:
    rules = {"sources": [{"file": "out.csv"}]}
    with_rules, without = make_run("a", 0, results=rules), make_run("a", 1)
    store.record_runs([with_rules, without])
    assert store.harvest_targets([with_rules.run_id, without.run_id, "x" * 32]) == {
        with_rules.run_id: HarvestTarget(with_rules.run_id, "pending", rules, 0),
        without.run_id: HarvestTarget(without.run_id, "pending", None, 0),
    }
    assert store.finished_runs() == []  # pending runs have not ended
    store.set_status(
        [with_rules.run_id, without.run_id],
        "succeeded",
        event="test",
        fields={"run_dir": "/runs/x"},
    )
    assert store.finished_runs(run_ids=[with_rules.run_id[:8]]) == [
        FinishedRun(
            with_rules.run_id, "a", "succeeded", "/runs/x", 0, with_rules.settings_digest, rules
        )
    ]
    assert {f.run_id for f in store.finished_runs(["a"])} == {with_rules.run_id, without.run_id}
    assert store.finished_runs(["b"]) == []


def test_record_submitted_counts_attempts_and_in_flight_lists_the_submission(
    store: StateStore, tmp_path: Path
) -> None:
    runs = [make_run("a", i) for i in range(3)]
    root = tmp_path / "runs"
    with store.transaction() as tx:
        tx.record_runs(runs, submission_key="k1")
        tx.record_submission("k1", executor="local", state="intent", run_ids=[])
    (flight,) = store.in_flight_submissions()
    assert (flight.key, flight.state, flight.run_ids) == (
        "k1",
        "intent",
        sorted(r.run_id for r in runs),
    )
    # An earlier, ambiguous try recorded the first run as gone out: only the others are
    # counted when the submission is reconciled.
    store.set_status([runs[0].run_id], "submitted", event="test", bump_attempts=True)
    with store.transaction() as tx:
        tx.record_submitted(_submission("k1", runs, root), {"x": 1}, count_attempts="pending")
    attempts = {r.run_id: r.attempts for r in store.run_summaries()}
    assert set(attempts.values()) == {1}
    (flight,) = store.in_flight_submissions()
    assert flight.state == "submitted"
    assert flight.detail["options"] == {"x": 1}
    assert flight.detail["runs_root"] == str(root)
    assert Submission.from_json(flight.detail["submission"]) == _submission("k1", runs, root)
    assert {r.status for r in store.run_summaries()} == {"submitted"}
    assert store.resolve_run(runs[1].run_id).run_dir == str(root / runs[1].run_id)
    # Submitted again (a retry): every run counts another attempt.
    with store.transaction() as tx:
        tx.record_submitted(_submission("k1", runs, root), {})
    assert {r.attempts for r in store.run_summaries()} == {2}
    store.set_status([r.run_id for r in runs], "succeeded", event="test")
    assert store.in_flight_submissions() == []


def test_add_note_appends_with_who_and_when(store: StateStore) -> None:
    r = make_run("a", 0)
    store.record_runs([r])
    with store.transaction() as tx:
        assert tx.add_note(r.run_id, "first", by="ann", at="2026-01-01T00:00:00+00:00") == 1
    with store.transaction() as tx:
        assert tx.add_note(r.run_id, "second", by="bob", at="2026-01-02T00:00:00+00:00") == 2
    assert store.run_detail(r.run_id).meta["notes"] == [
        {"at": "2026-01-01T00:00:00+00:00", "by": "ann", "text": "first"},
        {"at": "2026-01-02T00:00:00+00:00", "by": "bob", "text": "second"},
    ]


def test_update_runs_writes_history_for_changed_status_or_given_detail_in_order(
    store: StateStore,
) -> None:
    """The history rows update_runs writes in SQL: one per run whose status changes or whose
    detail is given, from its status before, numbered after and before the rows this
    transaction queued in Python."""
    a, b, c = make_run("a", 0), make_run("a", 1), make_run("a", 2)
    store.record_runs([a, b, c])
    with store.transaction() as tx:
        tx.event(a.run_id, "before", "pending", "pending")
        tx.update_runs(
            [
                {"run_id": c.run_id, "status": "running", "host": "n1"},
                {"run_id": a.run_id, "status": "pending", "detail": {"why": "kept"}},
                {"run_id": b.run_id, "status": "pending"},  # no change, no detail: no row
            ],
            event="observed",
        )
        tx.event(b.run_id, "after", "pending", "pending")
        serial = tx.serial
    rows = [e for e in store.events() if e["serial"] == serial]
    assert [(e["seq"], e["run_id"], e["event"], e["from_status"], e["to_status"], e["detail"])
            for e in rows] == [
        (0, a.run_id, "before", "pending", "pending", None),
        (1, c.run_id, "observed", "pending", "running", None),
        (2, a.run_id, "observed", "pending", "pending", {"why": "kept"}),
        (3, b.run_id, "after", "pending", "pending", None),
    ]  # fmt: skip
    assert store.stored_run(c.run_id).status == "running"


def test_update_runs_refuses_runs_the_state_does_not_hold_and_writes_nothing(
    store: StateStore,
) -> None:
    a = make_run("a", 0)
    store.record_runs([a])
    before = len(store.events())
    with (
        pytest.raises(HpcxError, match=r"1 run\(s\) not in the state: nope"),
        store.transaction() as tx,
    ):
        tx.update_runs(
            [{"run_id": a.run_id, "status": "failed"}, {"run_id": "nope", "status": "failed"}],
            event="observed",
        )
    assert store.stored_run(a.run_id).status == "pending"
    assert len(store.events()) == before


def test_in_flight_targets_are_the_harvest_targets_of_every_run_in_flight(
    store: StateStore,
) -> None:
    runs = [make_run("a", i, results={"stdout_json": True}) for i in range(4)]
    store.record_runs(runs)
    store.set_status([runs[1].run_id], "succeeded", event="test")
    store.set_status([runs[2].run_id], "running", event="test")
    store.set_status([runs[3].run_id], "queued", event="test")
    got = store.in_flight_targets()
    assert got == store.harvest_targets([runs[0].run_id, runs[2].run_id])
    assert sorted(t.status for t in got.values()) == ["pending", "running"]
    assert got[runs[2].run_id].results == {"stdout_json": True}


def test_update_runs_refuses_a_field_it_cannot_set_and_a_status_there_is_not(
    store: StateStore,
) -> None:
    a = make_run("a", 0)
    store.record_runs([a])
    both = [
        {"run_id": a.run_id, "status": "failed"},
        {"run_id": a.run_id, "status": "failed", "spec": "{}"},
    ]
    with (
        pytest.raises(ValueError, match=r"cannot set run field\(s\) \['spec'\]"),
        store.transaction() as tx,
    ):
        tx.update_runs(both, event="observed")
    with (
        pytest.raises(ValueError, match="unknown run status 'finished'"),
        store.transaction() as tx,
    ):
        tx.update_runs([{"run_id": a.run_id, "status": "finished"}], event="observed")
    assert store.stored_run(a.run_id).status == "pending"
