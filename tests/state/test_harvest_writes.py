"""The bulk writes a harvest makes (run meta, attempt rows) keep the last of two rows for the
same run and key, and write every row when each key comes once (no window over them then)."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.specs import make_spec

from hpcx.state import store as st
from hpcx.state.store import StateStore

N = 250  # over _VALUES_MAX_CELLS: the bulk path


@pytest.fixture
def store(tmp_path: Path):  # type: ignore[no-untyped-def]
    with StateStore.open(tmp_path / "state.duckdb") as s:
        s.record_runs([make_spec("h", i, {"i": i}) for i in range(N)])
        yield s


def _ids(store: StateStore) -> list[str]:
    return [r[0] for r in store.connection.execute("SELECT run_id FROM runs ORDER BY 1").fetchall()]


def test_meta_of_many_runs_lands_whole_and_a_repeated_key_keeps_the_later(
    store: StateStore,
) -> None:
    ids = _ids(store)
    with store.transaction() as tx:
        assert tx.set_run_meta_many({rid: {"a": i, "b": i / 2} for i, rid in enumerate(ids)})
    got = store.connection.execute(
        "SELECT count(*), count(DISTINCT run_id), sum(value::DOUBLE) FROM run_meta"
    ).fetchone()
    assert got == (2 * N, N, sum(range(N)) * 1.5)
    # 1 and "1" are one key to the state: the later value wins, as it always did.
    with store.transaction() as tx:
        tx.set_run_meta_many({ids[0]: {1: "first", "1": "second"}})
    assert store.connection.execute(
        "SELECT value FROM run_meta WHERE run_id = ? AND key = '1'", [ids[0]]
    ).fetchall() == [('"second"',)]


def test_attempt_rows_land_whole_and_a_repeated_attempt_keeps_the_later(
    store: StateStore,
) -> None:
    ids = _ids(store)
    rows = [{"run_id": rid, "attempt": 1, "state": "succeeded"} for rid in ids]
    rows += [{"run_id": ids[0], "attempt": 2, "state": "failed"}]
    with store.transaction() as tx:
        assert tx.record_attempts(rows) == N + 1
    assert store.connection.execute("SELECT count(*) FROM attempts").fetchone() == (N + 1,)
    again = [{"run_id": rid, "attempt": 1, "state": "failed"} for rid in ids]
    again += [{"run_id": ids[1], "attempt": 1, "state": "timeout"}]
    with store.transaction() as tx:
        tx.record_attempts(again)
    got = dict(
        store.connection.execute(
            "SELECT state, count(*) FROM attempts WHERE attempt = 1 GROUP BY 1"
        ).fetchall()
    )
    assert got == {"failed": N - 1, "timeout": 1}


def test_the_window_is_left_out_only_when_every_key_comes_once() -> None:
    assert st._last_of("k", {1, 2}, 2) == ""
    assert "QUALIFY" in st._last_of("k", {1}, 2)


def test_attempt_rows_as_tuples_land_whole_and_a_repeat_in_one_call_keeps_the_later(
    store: StateStore,
) -> None:
    """AttemptRow tuples (what a harvest builds) land as mappings do; a (run, attempt) given
    twice in one call keeps the later, and a row without an int attempt is left out."""
    from datetime import datetime

    from hpcx.state.records import AttemptRow

    ids = _ids(store)
    t0, t1 = datetime(2026, 1, 1, 0, 0, 0), datetime(2026, 1, 1, 0, 1, 30)
    rows = [AttemptRow(rid, 1, "succeeded", None, None, f"j{i}", "n1", t0, t1, 0)
            for i, rid in enumerate(ids)]  # fmt: skip
    with store.transaction() as tx:
        assert tx.record_attempts(rows) == N
    assert store.connection.execute(
        "SELECT count(*), min(job_id), max(ended_at), sum(exit_code) FROM attempts"
    ).fetchone() == (N, "j0", t1, 0)
    store.connection.execute("DELETE FROM attempts")
    twice = [
        AttemptRow(ids[0], 1, "running", None, None, None, None, t0, None, None),
        AttemptRow(ids[0], 1, "failed", "boom", None, None, None, t0, t1, 3),
        AttemptRow(ids[1], None, "failed", None, None, None, None, None, None, None),  # type: ignore[arg-type]
    ]
    with store.transaction() as tx:
        assert tx.record_attempts(twice) == 2
    assert store.connection.execute(
        "SELECT run_id, attempt, state, reason, exit_code FROM attempts"
    ).fetchall() == [(ids[0], 1, "failed", "boom", 3)]
