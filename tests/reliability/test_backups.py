"""Rotated backups before writing commands, `hpcx state check` invariants, restore, and the
backup taken before a migration."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import duckdb
import pytest
from reliability_helpers import serial_of

import hpcx.state.store as state_mod
from hpcx.state.backup import backup_before_write, check_state, list_backups
from hpcx.state.store import StateStore


def test_refresh_backs_up_once_per_serial_with_serial_in_the_name(project: Path, state: Path, cli):
    first = list_backups(state)
    assert len(first) == 1 and first[0].serial == serial_of(state)
    assert first[0].path.name.startswith("state-") and first[0].path.name.endswith(
        f"-s{serial_of(state)}.duckdb"
    )
    assert cli("refresh").code == 0  # serial unchanged since the backup: no new copy
    assert [b.path for b in list_backups(state)] == [first[0].path]
    StateStore.open(state).record_probe({"host": "x"})  # the state moves on
    assert cli("refresh").code == 0
    now = list_backups(state)
    assert len(now) == 2 and now[0].serial == serial_of(state)
    assert check_state(now[0].path).ok


def test_rotation_keeps_hpcx_backups_newest(project: Path, state: Path, monkeypatch):
    monkeypatch.setenv("HPCX_BACKUPS", "3")
    for _ in range(6):
        StateStore.open(state).record_probe({"host": "x"})
        backup_before_write(state)
    kept = list_backups(state)
    assert [b.serial for b in kept] == sorted((b.serial for b in kept), reverse=True)
    assert len(kept) == 3 and kept[0].serial == serial_of(state)


def test_zero_turns_backups_off_and_bad_value_is_a_clear_error(
    project: Path, state: Path, cli, monkeypatch
):
    monkeypatch.setenv("HPCX_BACKUPS", "0")
    StateStore.open(state).record_probe({"host": "x"})
    assert cli("refresh").code == 0 and len(list_backups(state)) == 1
    monkeypatch.setenv("HPCX_BACKUPS", "lots")
    res = cli("refresh")
    assert res.code == 1 and "HPCX_BACKUPS='lots'" in res.err and "Traceback" not in res.err


def test_state_with_wal_is_backed_up_self_contained_and_left_untouched(project: Path, state: Path):
    con = duckdb.connect(str(state))
    con.execute("PRAGMA disable_checkpoint_on_shutdown")
    con.execute("UPDATE meta SET serial = serial + 1")
    con.close()
    wal = Path(str(state) + ".wal")
    assert wal.exists()
    before = (state.read_bytes(), wal.read_bytes())
    made = backup_before_write(state)
    assert made is not None and not Path(str(made) + ".wal").exists()
    assert (state.read_bytes(), wal.read_bytes()) == before
    assert check_state(made).serial == serial_of(state)


def test_backups_lists_time_serial_size(project: Path, state: Path, cli):
    res = cli("state", "backups", "--json")
    doc = json.loads(res.out)
    assert res.code == 0 and doc[0]["serial"] == serial_of(state) and doc[0]["size_bytes"] > 0
    assert "serial" in cli("state", "backups").out


def test_restore_skips_a_damaged_newest_backup_and_names_unknown_submissions(
    project: Path, state: Path, cli
):
    good = list_backups(state)[0]
    StateStore.open(state).record_probe({"host": "x"})
    newer = backup_before_write(state)
    assert newer is not None
    data = bytearray(newer.read_bytes())
    data[4096 + 64] ^= 1
    data[8192 + 64] ^= 1
    newer.write_bytes(bytes(data))
    (project / "runs" / ".submissions" / "20990101T000000-later").mkdir(parents=True)
    res = cli("state", "restore")
    assert res.code == 0, res
    assert f"Restored {good.path} (serial {good.serial})" in res.out
    assert "1 submission(s) on disk are not in the restored state" in res.out
    assert "adopts them" in res.out
    assert "20990101T000000-later" in res.out
    assert serial_of(state) == good.serial


def test_restore_refuses_a_named_backup_that_fails_check(project: Path, state: Path, cli):
    bad = project / "junk.duckdb"
    bad.write_text("junk")
    before = state.read_bytes()
    res = cli("state", "restore", str(bad))
    assert res.code == 1 and "does not pass" in res.err and state.read_bytes() == before


def _mutate(state: Path, *sql: str) -> None:
    con = duckdb.connect(str(state))
    for s in sql:
        con.execute(s)
    con.close()


INVARIANT_BREAKS = {
    "status-vs-history": (
        ["UPDATE runs SET status = 'running' WHERE rowid = 0"],
        "latest event does not end in their status",
    ),
    "orphaned-metrics": (
        ["INSERT INTO metrics VALUES ('nope', 'm', 0, 1.0, 0.0, 1, 1)"],
        "orphaned metrics",
    ),
    "event-gap": (
        ["DELETE FROM run_events WHERE serial = 2 AND seq = 5"],
        "a gap in the history",
    ),
    "serial-ahead": (["UPDATE meta SET serial = 1"], "newer than the state's serial"),
    "missing-submission": (["DELETE FROM submissions"], "submission is not in the state"),
    "two-meta-rows": (
        ["INSERT INTO meta SELECT * FROM meta"],
        "meta has 2 rows",
    ),
    "orphaned-run-meta": (
        ["INSERT INTO run_meta VALUES ('nope', 'k', '1', 1)"],
        "run_meta row(s) of runs not in the state",
    ),
    # Since v6 no primary key keeps these once: the writers do, and the check says if not.
    "run-meta-key-twice": (
        ["INSERT INTO run_meta SELECT * FROM run_meta LIMIT 1"],
        "run_meta key(s) held twice for one run",
    ),
    "attempt-twice": (
        [
            "INSERT INTO attempts SELECT run_id, 1, 'failed', NULL, NULL, NULL, NULL, NULL, NULL, "
            "1, 1 FROM runs ORDER BY run_id LIMIT 1"
        ]
        * 2,
        "attempt(s) held twice for one run",
    ),
}


@pytest.mark.parametrize("name", list(INVARIANT_BREAKS))
def test_check_finds_each_broken_invariant(project: Path, state: Path, cli, name: str):
    assert cli("state", "check").code == 0
    sql, expected = INVARIANT_BREAKS[name]
    _mutate(state, *sql)
    res = cli("state", "check")
    assert res.code == 1 and expected in res.out, res
    assert all(ln.startswith("invariant: ") for ln in res.out.splitlines())
    doc = json.loads(cli("state", "check", "--json").out)
    assert doc["ok"] is False and any(expected in f["message"] for f in doc["findings"])


def test_migration_backs_up_the_old_schema_first(project: Path, state: Path, monkeypatch):
    serial = serial_of(state)
    shutil.rmtree(state.parent / "backups")
    old, new = state_mod.SCHEMA_VERSION, state_mod.SCHEMA_VERSION + 1
    monkeypatch.setattr(state_mod, "SCHEMA_VERSION", new)
    monkeypatch.setitem(state_mod.MIGRATIONS, new, ["ALTER TABLE runs ADD COLUMN note VARCHAR"])
    with StateStore.open(state) as store:
        assert store.info().schema_version == new
    (made,) = list_backups(state)
    assert made.serial == serial
    monkeypatch.setattr(state_mod, "SCHEMA_VERSION", old)
    assert check_state(made.path).schema_version == old
