"""Schema v2: metric rows carry the attempt that wrote them. A v1 state file (made by the real
v1 migration) upgrades in place on the first write open and keeps every row."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest
from support.specs import make_run

import hpcx.state.store as state_mod
from hpcx.results.query import QuerySession
from hpcx.state.store import SCHEMA_VERSION, StateStore


def _v1_state(path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[str, str]:
    """A v1 file: two runs; run a harvested twice (attempt 1 at serial s1, attempt 2 later,
    the latest recorded as run_meta 'attempt' = 2), run b once with no 'attempt' meta."""
    a, b = make_run(index=0), make_run(index=1)
    with monkeypatch.context() as m:
        m.setattr(state_mod, "SCHEMA_VERSION", 1)
        with StateStore.open(path) as store:
            store.record_runs([a, b])
            store.set_status([a.run_id, b.run_id], "succeeded", event="t", bump_attempts=True)
            store.set_status([a.run_id], "succeeded", event="t", bump_attempts=True)
            with store.transaction() as tx:
                tx.set_run_meta(a.run_id, {"attempt": 2})
    con = duckdb.connect(str(path))
    try:
        assert con.execute("SELECT max(version) FROM schema_version").fetchone()[0] == 1
        cols = [r[0] for r in con.execute("DESCRIBE metrics").fetchall()]
        assert "attempt" not in cols
        # As v1's harvest wrote them: attempt 1 then (a rerun) attempt 2, at the same step.
        con.execute(
            "INSERT INTO metrics VALUES (?, 'loss', 10, 0.9, 1.0, 5), (?, 'loss', 10, 0.1, 2.0, 9),"
            " (?, 'loss', 3, 0.5, 1.0, 5)",
            [a.run_id, a.run_id, b.run_id],
        )
    finally:
        con.close()
    return a.run_id, b.run_id


def test_a_v1_state_upgrades_keeps_its_rows_and_gets_attempts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "state.duckdb"
    a, b = _v1_state(path, monkeypatch)
    assert SCHEMA_VERSION >= 2
    with StateStore.open(path) as store:  # a write open migrates
        assert store.info().schema_version == SCHEMA_VERSION
        rows = store.connection.execute(
            "SELECT run_id, value, serial, attempt FROM metrics ORDER BY run_id, serial"
        ).fetchall()
        assert len(store.snapshot().runs) == 2
    by_run: dict[str, list[tuple[float, int, int | None]]] = {}
    for rid, value, serial, attempt in rows:
        by_run.setdefault(rid, []).append((value, serial, attempt))
    # The latest ingest gets the recorded attempt; the earlier one stays unknown (NULL).
    assert by_run[a] == [(0.9, 5, None), (0.1, 9, 2)]
    # No 'attempt' meta: the run's attempt count.
    assert by_run[b] == [(0.5, 5, 1)]
    # The results view takes the latest attempt, though the old row has the same step and
    # (in v1) nothing but the serial told them apart.
    with QuerySession.open(path) as session:
        got = dict(session.query("SELECT run_id, loss FROM results").rows)
        assert got == {a: 0.1, b: 0.5}
        attempts = session.query("SELECT attempt FROM metrics ORDER BY serial, value").rows
        assert [r[0] for r in attempts] == [1, None, 2]


def test_a_v1_state_is_refused_read_only_until_upgraded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "state.duckdb"
    _v1_state(path, monkeypatch)
    needs = f"schema v1; this hpcx needs v{state_mod.SCHEMA_VERSION}"
    with pytest.raises(state_mod.StateError, match=needs) as ei:
        StateStore.open(path, read_only=True)
    assert "hpcx state upgrade" in (ei.value.hint or "")
    with StateStore.open(path):
        pass
    with StateStore.open(path, read_only=True) as store:
        assert store.info().metrics == 3


def test_add_metrics_keeps_the_attempt_on_every_insert_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The VALUES list, the CSV file and the numpy columns all store the attempt (and rows
    given without one get NULL)."""
    run = make_run()
    monkeypatch.setattr(state_mod, "_NUMPY_MIN_ROWS", 1000)
    with StateStore.open(tmp_path / "s.duckdb") as store:
        store.record_runs([run])
        store.add_metrics([(run.run_id, "small", 0, 1.0, None, 3)])
        store.add_metrics([(run.run_id, "csv", i, 1.0, None, 4) for i in range(500)])
        store.add_metrics([(run.run_id, "np", i, 1.0, None, 5) for i in range(1500)])
        store.add_metrics([(run.run_id, "np_none", i, 1.0, None, None) for i in range(1500)])
        store.add_metrics([(run.run_id, "five", 0, 1.0, None)])
        got = store.connection.execute(
            "SELECT name, list(DISTINCT attempt), count(*) FROM metrics GROUP BY 1 ORDER BY 1"
        ).fetchall()
    assert got == [
        ("csv", [4], 500),
        ("five", [None], 1),
        ("np", [5], 1500),
        ("np_none", [None], 1500),
        ("small", [3], 1),
    ]
