"""The schema module is the one home of the state's tables and status sets: the sets agree with
each other and with what the database itself accepts."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest
from support.specs import make_spec

from hpcx.state import schema
from hpcx.state.store import StateStore


def test_every_status_is_in_flight_held_or_final() -> None:
    sets = [set(schema.IN_FLIGHT_STATUSES), set(schema.HELD_STATUSES), set(schema.FINAL_STATUSES)]
    assert set().union(*sets) == set(schema.RUN_STATUSES)
    assert sum(len(s) for s in sets) == len(schema.RUN_STATUSES)  # no status in two sets
    assert set(schema.FINAL_STATUSES) == {*schema.ENDED_STATUSES, "lost"}
    # A pruned trial is finished, not failed: never run again.
    assert set(schema.FINAL_STATUSES) - {"succeeded", "pruned"} == schema.RETRYABLE_STATUSES


def test_a_new_state_has_the_tables_and_the_version_the_schema_names(tmp_path: Path) -> None:
    path = tmp_path / "state.duckdb"
    StateStore.open(path).close()
    con = duckdb.connect(str(path), read_only=True)
    try:
        tables = {r[0] for r in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
        assert tables == schema.TABLES
        assert set(schema.SERIAL_TABLES) < tables
        (version,) = con.execute("SELECT max(version) FROM schema_version").fetchone() or (None,)
        assert version == schema.SCHEMA_VERSION == max(schema.MIGRATIONS)
    finally:
        con.close()


@pytest.mark.parametrize(
    ("sql", "ok"),
    [
        ("UPDATE runs SET status = 'lost'", True),
        ("UPDATE runs SET status = 'exploded'", False),
        ("UPDATE submissions SET state = 'ambiguous'", True),
        ("UPDATE submissions SET state = 'maybe'", False),
    ],
)
def test_the_database_accepts_exactly_the_status_sets(tmp_path: Path, sql: str, ok: bool) -> None:
    path = tmp_path / "state.duckdb"
    spec = make_spec("e")
    with StateStore.open(path) as store, store.transaction() as tx:
        tx.record_runs([spec], submission_key="k")
        tx.record_submission("k", executor="local", state="intent")
    con = duckdb.connect(str(path))
    try:
        if ok:
            con.execute(sql)
        else:
            with pytest.raises(duckdb.ConstraintException):
                con.execute(sql)
    finally:
        con.close()


def test_a_v4_file_migrates_to_the_held_statuses_keeping_its_runs(tmp_path: Path) -> None:
    """A file written before the held statuses: its runs are kept, and a run may then be
    recorded ``queued`` or ``blocked`` (the v4 CHECK refused both)."""
    from hpcx.state import store as store_mod

    path = tmp_path / "state.duckdb"
    old = {v: sql for v, sql in schema.MIGRATIONS.items() if v <= 4}
    mp = pytest.MonkeyPatch()
    mp.setattr(store_mod, "SCHEMA_VERSION", 4)
    mp.setattr(store_mod, "MIGRATIONS", old)
    try:
        with StateStore.open(path) as st, st.transaction() as tx:
            tx.record_runs(
                [make_spec("a", 1, {"x": 1}), make_spec("a", 2, {"x": 2})], status="failed"
            )
    finally:
        mp.undo()
    con = duckdb.connect(str(path))
    try:
        with pytest.raises(duckdb.ConstraintException):
            con.execute("UPDATE runs SET status = 'queued'")
    finally:
        con.close()
    with StateStore.open(path) as st:
        assert st.info().schema_version == schema.SCHEMA_VERSION
        ids = sorted(st.snapshot().runs)
        assert len(ids) == 2
        assert {st.stored_run(i).status for i in ids} == {"failed"}
        with st.transaction() as tx:
            tx.update_runs(
                [
                    {"run_id": ids[0], "status": "queued"},
                    {"run_id": ids[1], "status": "blocked"},
                ],
                event="test",
            )
        assert [st.stored_run(i).status for i in ids] == ["queued", "blocked"]


def _catalog(path: Path) -> dict[str, list[tuple[object, ...]]]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return {
            "columns": con.execute(
                "SELECT table_name, column_index, column_name, data_type, is_nullable, "
                "column_default FROM duckdb_columns() WHERE NOT internal "
                "ORDER BY table_name, column_index"
            ).fetchall(),
            "constraints": sorted(
                con.execute(
                    "SELECT table_name, constraint_type, constraint_text, constraint_column_names "
                    "FROM duckdb_constraints()"
                ).fetchall(),
                key=repr,
            ),
            "indexes": con.execute(
                "SELECT table_name, index_name, sql FROM duckdb_indexes() ORDER BY 1, 2"
            ).fetchall(),
            "views": con.execute(
                "SELECT view_name, sql FROM duckdb_views() WHERE NOT internal ORDER BY 1"
            ).fetchall(),
            "versions": con.execute(
                "SELECT version, hpcx_version FROM schema_version ORDER BY 1"
            ).fetchall(),
            "meta": con.execute("SELECT serial, schema_version, hpcx_version FROM meta").fetchall(),
        }
    finally:
        con.close()


def test_a_v5_file_migrates_to_meta_and_attempts_without_keys_keeping_their_rows(
    tmp_path: Path,
) -> None:
    """v6 drops run_meta's and attempts' primary keys (writing the same keys again was
    superlinear under DuckDB's index): the rows stay, and a second write of the same keys
    still leaves one row each, the later."""
    from hpcx.state import store as store_mod
    from hpcx.state.records import AttemptRow

    path = tmp_path / "state.duckdb"
    old = {v: sql for v, sql in schema.MIGRATIONS.items() if v <= 5}
    runs = [make_spec("a", i, {"x": i}) for i in range(3)]
    mp = pytest.MonkeyPatch()
    mp.setattr(store_mod, "SCHEMA_VERSION", 5)
    mp.setattr(store_mod, "MIGRATIONS", old)
    mp.setattr(store_mod, "FRESH_SCHEMA_VERSION", 0)  # made the migrations' way, as v5 was
    try:
        with StateStore.open(path) as st, st.transaction() as tx:
            tx.record_runs(runs)
            tx.set_run_meta_many({r.run_id: {"k": 1, "j": "v"} for r in runs})
            tx.record_attempts([AttemptRow(r.run_id, 1, "failed", *[None] * 7) for r in runs])
        with StateStore.open(path) as st:
            assert st.info().schema_version == 5
    finally:
        mp.undo()

    def keyed(con: duckdb.DuckDBPyConnection) -> set[str]:
        rows = con.execute(
            "SELECT table_name FROM duckdb_constraints() WHERE constraint_type = 'PRIMARY KEY'"
        ).fetchall()
        return {r[0] for r in rows}

    con = duckdb.connect(str(path))
    assert {"run_meta", "attempts"} <= keyed(con)
    con.close()
    with StateStore.open(path) as st:
        assert st.info().schema_version == schema.SCHEMA_VERSION
        assert not {"run_meta", "attempts"} & keyed(st.connection)
        count = st.connection.execute("SELECT count(*) FROM run_meta").fetchone()
        assert count == (6,)
        with st.transaction() as tx:
            tx.set_run_meta_many({r.run_id: {"k": 2} for r in runs})
            tx.record_attempts([AttemptRow(r.run_id, 1, "succeeded", *[None] * 7) for r in runs])
        got = st.connection.execute(
            "SELECT key, value::VARCHAR, count(*) FROM run_meta GROUP BY ALL ORDER BY 1"
        ).fetchall()
        assert got == [("j", '"v"', 3), ("k", "2", 3)]
        assert st.connection.execute(
            "SELECT state, count(*) FROM attempts GROUP BY ALL"
        ).fetchall() == [("succeeded", 3)]


def test_a_new_state_made_at_once_has_the_tables_every_migration_leaves(tmp_path: Path) -> None:
    """A new file gets schema.FRESH_SCHEMA in one go; a file that had the migrations one by
    one must be the same (a migration added without updating FRESH_SCHEMA fails here)."""
    from hpcx.state import store as store_mod

    fresh, migrated = tmp_path / "fresh.duckdb", tmp_path / "migrated.duckdb"
    StateStore.open(fresh).close()
    mp = pytest.MonkeyPatch()
    mp.setattr(store_mod, "FRESH_SCHEMA_VERSION", -1)  # the migrations' way
    try:
        StateStore.open(migrated).close()
    finally:
        mp.undo()
    assert schema.FRESH_SCHEMA_VERSION == schema.SCHEMA_VERSION
    assert _catalog(fresh) == _catalog(migrated)
    # And it takes what a migrated file takes.
    with StateStore.open(fresh) as st, st.transaction() as tx:
        tx.record_runs([make_spec("a", 1, {"x": 1})], status="queued")
