"""Schema v4: the ``pruned`` status. DuckDB cannot alter the runs table's CHECK, so migration 4
rebuilds the table: a v3 file (made by the real v1..v3 migrations) keeps every run, column for
column, refuses ``pruned`` before the upgrade and takes it after."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest
from support.specs import make_run

import hpcx.state.store as state_mod
from hpcx.state.backup import check_state
from hpcx.state.schema import ENDED_STATUSES, FINAL_STATUSES, RETRYABLE_STATUSES, RUN_STATUSES
from hpcx.state.store import StateStore


def _v3_state(path: Path, monkeypatch: pytest.MonkeyPatch) -> list[tuple[object, ...]]:
    """A v3 file with three runs in three statuses, one with an end reason; its runs rows."""
    runs = [make_run(index=i) for i in range(3)]
    with monkeypatch.context() as m:
        m.setattr(state_mod, "SCHEMA_VERSION", 3)
        with StateStore.open(path) as store:
            store.record_runs(runs)
            store.set_status([runs[0].run_id], "succeeded", event="t", bump_attempts=True)
            store.set_status(
                [runs[1].run_id],
                "failed",
                event="t",
                bump_attempts=True,
                fields={"end_reason": "exit code 3"},
            )
    con = duckdb.connect(str(path))
    try:
        assert con.execute("SELECT max(version) FROM schema_version").fetchone()[0] == 3
        with pytest.raises(duckdb.ConstraintException):
            con.execute("UPDATE runs SET status = 'pruned' WHERE run_id = ?", [runs[2].run_id])
        return con.execute("SELECT * FROM runs ORDER BY run_id").fetchall()
    finally:
        con.close()


def test_pruned_is_a_final_ended_status_never_retried() -> None:
    assert "pruned" in RUN_STATUSES
    assert "pruned" in ENDED_STATUSES and "pruned" in FINAL_STATUSES
    assert "pruned" not in RETRYABLE_STATUSES


def test_a_v3_state_keeps_every_run_and_takes_pruned_after_the_upgrade(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "state.duckdb"
    before = _v3_state(path, monkeypatch)
    assert state_mod.SCHEMA_VERSION >= 4
    with StateStore.open(path) as store:  # a write open migrates
        assert store.info().schema_version == state_mod.SCHEMA_VERSION
        after = store.connection.execute("SELECT * FROM runs ORDER BY run_id").fetchall()
        assert after == before
        pending = next(r[0] for r in after if r[3] == "pending")
        store.set_status(
            [pending], "pruned", event="pruned", fields={"end_reason": "pruned by the median"}
        )
        got = store.connection.execute(
            "SELECT status, end_reason FROM runs WHERE run_id = ?", [pending]
        ).fetchone()
        assert got == ("pruned", "pruned by the median")
        # The rebuilt table keeps its primary key and still refuses an unknown status.
        with pytest.raises(duckdb.ConstraintException):
            store.connection.execute("INSERT INTO runs SELECT * FROM runs LIMIT 1")
        with pytest.raises(duckdb.ConstraintException):
            store.connection.execute("UPDATE runs SET status = 'bogus' WHERE run_id = ?", [pending])
    checked = check_state(path)
    assert checked.ok, checked.findings
    assert checked.rows["runs"] == 3


def test_a_new_state_takes_pruned(tmp_path: Path) -> None:
    run = make_run()
    with StateStore.open(tmp_path / "s.duckdb") as store:
        store.record_runs([run])
        store.set_status([run.run_id], "pruned", event="pruned")
        assert store.snapshot().runs[run.run_id].status == "pruned"
