"""The state store against real DuckDB files: creation, versions, locking, corruption, writes."""

from __future__ import annotations

import itertools
import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import duckdb
import pytest
from support.specs import make_run

from hpcx.errors import StateError, StateLockedError
from hpcx.state import store as state_mod
from hpcx.state.store import SCHEMA_VERSION, StateStore


def test_open_creates_file_with_lineage_serial_zero_and_schema_version(state_path: Path) -> None:
    assert not state_path.exists()
    with StateStore.open(state_path) as s:
        lineage, serial = s.meta()
        info = s.info()
    assert state_path.is_file()
    assert len(lineage) == 36 and serial == 0
    assert info.schema_version == SCHEMA_VERSION
    con = duckdb.connect(str(state_path), read_only=True)
    tables = {r[0] for r in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
    con.close()
    assert {
        "meta",
        "schema_version",
        "runs",
        "run_events",
        "submissions",
        "metrics",
        "run_meta",
        "probes",
    } <= tables


def test_lineage_is_kept_across_opens_and_differs_between_files(tmp_path: Path) -> None:
    a, b = tmp_path / "a.duckdb", tmp_path / "b.duckdb"
    with StateStore.open(a) as s:
        first = s.meta()[0]
    with StateStore.open(a) as s:
        assert s.meta()[0] == first
    with StateStore.open(b) as s:
        assert s.meta()[0] != first


def test_read_only_open_of_missing_file_refuses_and_creates_nothing(state_path: Path) -> None:
    with pytest.raises(StateError, match="no state at"):
        StateStore.open(state_path, read_only=True)
    assert not state_path.exists() and not state_path.parent.exists()


def test_serial_grows_by_one_per_write_transaction(store: StateStore) -> None:
    runs = [make_run(index=i) for i in range(3)]
    assert store.meta()[1] == 0
    store.record_runs(runs)
    assert store.meta()[1] == 1
    store.set_status([runs[0].run_id], "submitted", event="submitted")
    assert store.meta()[1] == 2
    with store.transaction() as tx:
        tx.set_status([runs[1].run_id], "submitted", event="submitted")
        tx.set_status([runs[1].run_id], "running", event="started")
        assert tx.serial == 3
    assert store.meta()[1] == 3


def test_failed_transaction_leaves_nothing_and_keeps_serial(store: StateStore) -> None:
    runs = [make_run(index=i) for i in range(300)]  # above the VALUES limit: the CSV path
    with pytest.raises(RuntimeError), store.transaction() as tx:
        tx.record_runs(runs)
        raise RuntimeError("crash midway")
    assert store.meta()[1] == 0
    assert store.snapshot().runs == {}
    assert store.events() == []


def test_events_record_every_transition_without_gaps(store: StateStore) -> None:
    r = make_run()
    store.record_runs([r])
    store.set_status([r.run_id], "submitted", event="submitted", fields={"job_id": "42"})
    store.set_status([r.run_id], "running", event="started", fields={"host": "n1", "gpus": [0]})
    store.set_status(
        [r.run_id],
        "failed",
        event="ended",
        detail={"exit": 3},
        fields={"exit_code": 3},
        bump_attempts=True,
    )
    ev = store.events(r.run_id)
    assert [e["event"] for e in ev] == ["recorded", "submitted", "started", "ended"]
    assert [e["serial"] for e in ev] == [1, 2, 3, 4]
    assert ev[0]["from_status"] is None
    for prev, cur in itertools.pairwise(ev):
        assert cur["from_status"] == prev["to_status"]
    assert ev[-1]["detail"] == {"exit": 3}
    row = store.connection.execute(
        "SELECT status, attempts, job_id, host, exit_code, gpus FROM runs WHERE run_id = ?",
        [r.run_id],
    ).fetchone()
    assert row == ("failed", 1, "42", "n1", 3, "[0]")


def test_set_status_of_unknown_run_is_refused_and_changes_nothing(store: StateStore) -> None:
    with pytest.raises(StateError, match="not in the state"):
        store.set_status(["nope"], "running", event="x")
    assert store.meta()[1] == 0


def test_record_runs_stores_spec_and_updates_settings_of_existing_runs(store: StateStore) -> None:
    r = make_run(resources={"time": "1:00:00"})
    assert store.record_runs([r]) == 1
    store.set_status([r.run_id], "succeeded", event="harvested")
    r2 = make_run(resources={"time": "2:00:00"})
    assert r2.run_id == r.run_id and r2.settings_digest != r.settings_digest
    assert store.record_runs([r2]) == 0
    snap = store.snapshot().runs[r.run_id]
    assert snap.settings_digest == r2.settings_digest and snap.status == "succeeded"
    spec = store.stored_run(r.run_id).spec
    assert spec.resources == {"time": "2:00:00"}
    assert spec == r2
    assert store.events(r.run_id)[-1]["event"] == "settings-updated"


def test_record_runs_takes_the_statuses_its_caller_read(
    store: StateStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An apply reads its runs' statuses in the intent's transaction and hands them on: the
    runs already there are updated, the others inserted, with no second read."""
    old = make_run(resources={"time": "1:00:00"})
    store.record_runs([old])
    store.set_status([old.run_id], "failed", event="harvested")
    again, new = make_run(resources={"time": "2:00:00"}), make_run(index=7)
    statuses = store.run_statuses([again.run_id, new.run_id, "held-elsewhere"])
    assert statuses == {old.run_id: "failed"}
    monkeypatch.setattr(state_mod.Transaction, "_statuses", lambda *a: pytest.fail("read again"))
    assert store.record_runs([again, new], statuses={**statuses, "held-elsewhere": "queued"}) == 1
    snap = store.snapshot().runs
    assert snap[old.run_id].status == "failed"
    assert snap[old.run_id].settings_digest == again.settings_digest
    assert snap[new.run_id].status == "pending"
    assert store.events(old.run_id)[-1]["event"] == "settings-updated"


def test_bulk_paths_keep_nulls_empty_strings_and_odd_text_apart(store: StateStore) -> None:
    odd = ["", "a,b", 'quote " inside', "new\nline", "\\N", "ünï", "tab\there"]
    rows = [("run", name, i if i % 2 else None, float(i) + 0.1, None) for i, name in enumerate(odd)]
    rows += [("run", "nan", 1, math.nan, 1.5), ("run", "inf", 2, math.inf, None)]
    big = rows * 40  # above the VALUES limit: goes through CSV
    store.add_metrics(rows)
    store.add_metrics(big)
    got = store.connection.execute(
        "SELECT name, step, value, time, serial FROM metrics ORDER BY serial, rowid"
    ).fetchall()
    assert len(got) == len(rows) + len(big)
    for serial, chunk in ((1, got[: len(rows)]), (2, got[len(rows) : 2 * len(rows)])):
        for (name, step, value, t, ser), src in zip(chunk, rows, strict=True):
            assert ser == serial
            assert name == src[1] and step == src[2] and t == src[4]
            assert (math.isnan(value) and math.isnan(src[3])) or value == src[3]


def test_probe_is_recorded_with_host(store: StateStore) -> None:
    pid = store.record_probe({"host": "node7", "numa": {"nodes": 2}})
    row = store.connection.execute(
        "SELECT id, host, report->>'$.numa.nodes' FROM probes"
    ).fetchone()
    assert row == (pid, "node7", "2")


def test_snapshot_of_100k_runs_holds_each(tmp_path: Path) -> None:
    p = tmp_path / "big.duckdb"
    with StateStore.open(p) as s:
        s.connection.execute(
            "INSERT INTO runs (run_id, base_id, experiment, status, settings_digest, attempts, "
            "created_at, updated_at) SELECT md5(i::VARCHAR), md5(i::VARCHAR), 'e', 'succeeded', "
            "'d', 1, now()::TIMESTAMP, now()::TIMESTAMP FROM range(100000) t(i)"
        )
    with StateStore.open(p, read_only=True) as s:
        snap = s.snapshot()
    assert len(snap.runs) == 100_000
    # Its speed is bench/plan_100k.py's (--stages), interleaved with a baseline, not a limit here.


# -- versions and migrations --------------------------------------------------------------


def test_newer_schema_version_is_refused_with_clear_error(state_path: Path) -> None:
    StateStore.open(state_path).close()
    con = duckdb.connect(str(state_path))
    con.execute(
        "INSERT INTO schema_version VALUES (?, now()::TIMESTAMP, '9.9')", [SCHEMA_VERSION + 1]
    )
    con.close()
    for ro in (False, True):
        with pytest.raises(StateError, match=rf"newer hpcx.*reads up to v{SCHEMA_VERSION}") as ei:
            StateStore.open(state_path, read_only=ro)
        assert "upgrade hpcx" in (ei.value.hint or "")


def test_older_schema_is_migrated_on_write_open_and_refused_read_only(
    state_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with StateStore.open(state_path) as s:
        s.record_runs([make_run()])
        lineage = s.meta()[0]
    # A hypothetical next version that adds a column: the file must be upgraded in place.
    old, new = SCHEMA_VERSION, SCHEMA_VERSION + 1
    monkeypatch.setattr(state_mod, "SCHEMA_VERSION", new)
    monkeypatch.setitem(state_mod.MIGRATIONS, new, ["ALTER TABLE runs ADD COLUMN priority INTEGER"])
    with pytest.raises(StateError, match=f"schema v{old}; this hpcx needs v{new}"):
        StateStore.open(state_path, read_only=True)
    with StateStore.open(state_path) as s:
        assert s.meta()[0] == lineage
        assert s.info().schema_version == new
        cols = {r[0] for r in s.connection.execute("DESCRIBE runs").fetchall()}
        assert "priority" in cols
        versions = [
            r[0]
            for r in s.connection.execute(
                "SELECT version FROM schema_version ORDER BY 1"
            ).fetchall()
        ]
        assert versions == list(range(1, new + 1))
        assert len(s.snapshot().runs) == 1


def test_failed_migration_leaves_file_at_old_version(
    state_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    StateStore.open(state_path).close()
    old, new = SCHEMA_VERSION, SCHEMA_VERSION + 1
    monkeypatch.setattr(state_mod, "SCHEMA_VERSION", new)
    monkeypatch.setitem(
        state_mod.MIGRATIONS, new, ["ALTER TABLE runs ADD COLUMN x INTEGER", "BOGUS SQL"]
    )
    with pytest.raises(StateError):
        StateStore.open(state_path)
    monkeypatch.setattr(state_mod, "SCHEMA_VERSION", old)
    with StateStore.open(state_path) as s:
        cols = {r[0] for r in s.connection.execute("DESCRIBE runs").fetchall()}
        assert "x" not in cols and s.info().schema_version == old


# -- bad files ------------------------------------------------------------------------------


def test_non_duckdb_file_gets_state_error_naming_it(tmp_path: Path) -> None:
    p = tmp_path / "state.duckdb"
    p.write_text("this is not a database\n" * 200)
    before = p.read_bytes()
    with pytest.raises(StateError, match=r"state\.duckdb is not a DuckDB state file"):
        StateStore.open(p)
    assert p.read_bytes() == before


def test_empty_file_is_refused_not_overwritten(tmp_path: Path) -> None:
    p = tmp_path / "state.duckdb"
    p.write_bytes(b"")
    with pytest.raises(StateError, match="empty"):
        StateStore.open(p)
    assert p.read_bytes() == b""


def test_duckdb_file_of_something_else_is_not_taken_for_a_state(tmp_path: Path) -> None:
    p = tmp_path / "other.duckdb"
    con = duckdb.connect(str(p))
    con.execute("CREATE TABLE t AS SELECT 1 AS a")
    con.close()
    with pytest.raises(StateError, match="not an hpcx state"):
        StateStore.open(p)


def test_truncated_state_gets_state_error_naming_it(tmp_path: Path) -> None:
    p = tmp_path / "state.duckdb"
    with StateStore.open(p) as s:
        s.record_runs([make_run(index=i) for i in range(5000)])
    data = p.read_bytes()
    # Cuts through the headers, the catalog and the data blocks (the tail may be free blocks).
    for cut in (5000, 16384, len(data) // 4):
        p.write_bytes(data[:cut])
        for ro in (True, False):
            with (
                pytest.raises(StateError, match=r"state\.duckdb") as ei,
                StateStore.open(p, read_only=ro) as s,
            ):
                s.snapshot()
            assert "Traceback" not in str(ei.value) and ei.value.hint
        assert p.stat().st_size == cut  # nothing wrote over it


HOLDER = textwrap.dedent(
    """
    import sys, time, duckdb
    con = duckdb.connect(sys.argv[1])
    print("held", flush=True)
    sys.stdin.readline()
    """
)


@pytest.fixture
def held_state(state_path: Path):  # type: ignore[no-untyped-def]
    StateStore.open(state_path).close()
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(state_path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    yield state_path, proc.pid
    proc.stdin.close()  # type: ignore[union-attr]
    proc.wait(timeout=10)


def test_lock_held_by_another_process_names_its_pid(held_state: tuple[Path, int]) -> None:
    path, pid = held_state
    for ro in (False, True):
        with pytest.raises(StateLockedError, match=rf"locked by pid {pid}\b") as ei:
            StateStore.open(path, read_only=ro)
        assert "state.duckdb" in str(ei.value)
        assert ei.value.hint and "wait" in ei.value.hint


def test_cli_reports_lock_without_traceback(held_state: tuple[Path, int], tmp_path: Path) -> None:
    path, pid = held_state
    env = dict(os.environ, HPCX_STATE=str(path))
    hpcx = Path(sys.executable).with_name("hpcx")
    res = subprocess.run(
        [str(hpcx), "state", "info"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=60,
    )
    assert res.returncode == 1
    assert f"locked by pid {pid}" in res.stderr
    assert "Traceback" not in res.stderr and "hint:" in res.stderr


@pytest.mark.parametrize("numpy_from", [1, 10**9])
def test_bulk_metrics_land_the_same_through_numpy_or_csv(tmp_path, monkeypatch, numpy_from) -> None:
    import hpcx.state.store as st

    monkeypatch.setattr(st, "_NUMPY_MIN_ROWS", numpy_from)
    rows = [
        (f"r{i % 7}", f"m{i % 3}", (i if i % 4 else None), i / 3, (1e9 + i if i % 5 else None))
        for i in range(500)
    ]
    with st.StateStore.open(tmp_path / "s.duckdb") as store:
        with store.transaction() as tx:
            assert tx.add_metrics(rows) == 500
        got = store.connection.execute(
            "SELECT run_id, name, step, value, time FROM metrics ORDER BY value"
        ).fetchall()
    assert got == sorted(rows, key=lambda r: r[3])
