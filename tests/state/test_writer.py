"""The Writer: lock, pre-write check and backup on entering; the state opened only through it."""

from __future__ import annotations

from pathlib import Path

import pytest

from hpcx.errors import StateError, StateLockedError
from hpcx.state.backup import list_backups
from hpcx.state.lock import lock_path
from hpcx.state.store import StateStore
from hpcx.state.writer import Writer


@pytest.fixture
def state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv("HPCX_BACKUPS", raising=False)
    path = tmp_path / ".hpcx" / "state.duckdb"
    StateStore.open(path).close()
    return path


def test_entering_takes_the_lock_and_backs_up_leaving_lets_go(state: Path) -> None:
    with Writer(state, "hpcx test") as writer:
        assert writer.held and lock_path(state).exists()
        (made,) = list_backups(state)
        assert writer.backup == made.path
        with writer.transaction() as tx:
            tx.record_probe({"host": "h"})
    assert not writer.held and not lock_path(state).exists()


def test_a_second_writer_is_refused_naming_the_first(state: Path) -> None:
    with Writer(state, "hpcx apply"), pytest.raises(StateLockedError, match="`hpcx apply`"):
        Writer(state, "hpcx refresh").__enter__()
    with Writer(state, "hpcx refresh"):
        pass  # the first one let go


def test_no_write_without_the_lock(state: Path) -> None:
    writer = Writer(state, "hpcx test")
    with pytest.raises(StateError, match=r"writer lock .* is not held"):
        writer.open()
    with writer:
        writer.open().close()
    with pytest.raises(StateError, match="not held"), writer.transaction():
        pass


def test_a_damaged_state_is_refused_before_anything_and_the_lock_let_go(state: Path) -> None:
    data = bytearray(state.read_bytes())
    data[8:12] = b"XXXX"  # no longer DuckDB's magic
    state.write_bytes(bytes(data))
    with pytest.raises(StateError, match=r"unreadable .*nothing was written"):
        Writer(state, "hpcx test").__enter__()
    assert not lock_path(state).exists()


def test_pre_write_none_leaves_the_backup_to_the_command(state: Path) -> None:
    with Writer(state, "hpcx state restore", pre_write="none") as writer:
        assert writer.backup is None and list_backups(state) == []
        made = writer.back_up()
        assert made is not None and [b.path for b in list_backups(state)] == [made]


def test_kept_open_lends_one_connection_to_every_open_and_forks_no_pool(state: Path) -> None:
    from hpcx.util.proc import fork_pools_allowed

    with Writer(state, "hpcx test", pre_write="none") as writer:
        with writer.kept_open():
            assert not fork_pools_allowed()
            with writer.open() as a:
                con = a.connection
            # A lent store's close leaves the connection open: the next open gets it again.
            with writer.transaction() as tx:
                tx.record_probe({"host": "h1"})
                assert tx._con is con
            with pytest.raises(RuntimeError), writer.transaction() as tx:
                tx.record_probe({"host": "h2"})
                raise RuntimeError("rolled back, the connection kept")
            with writer.open() as b:
                assert b.connection is con
                assert [r[0] for r in con.execute("SELECT host FROM probes").fetchall()] == ["h1"]
        assert fork_pools_allowed()
        with writer.open() as fresh:  # kept no longer: a connection of its own
            assert fresh.connection is not con
            assert fresh.connection.execute("SELECT count(*) FROM probes").fetchone() == (1,)


def test_released_early_the_state_is_opened_anew_and_pools_allowed(state: Path) -> None:
    from hpcx.util.proc import fork_pools_allowed

    with Writer(state, "hpcx test", pre_write="none") as writer, writer.kept_open() as kept:
        with writer.open() as a:
            con = a.connection
        kept.release()
        assert fork_pools_allowed()
        with pytest.raises(Exception, match="closed"):
            con.execute("SELECT 1")
        with writer.transaction() as tx:
            tx.record_probe({"host": "h"})
            assert tx._con is not con
        kept.release()  # twice is harmless
    with StateStore.open(state, read_only=True) as st:
        assert st.connection.execute("SELECT count(*) FROM probes").fetchone() == (1,)


def test_kept_open_nested_gives_the_outer_connection_back(state: Path) -> None:
    from hpcx.util.proc import fork_pools_allowed

    with Writer(state, "hpcx test", pre_write="none") as writer, writer.kept_open():
        with writer.open() as a:
            outer = a.connection
        with writer.kept_open() as inner:
            with writer.open() as b:
                assert b.connection is outer
            inner.release()  # the outer one's connection stays open and lent
            with writer.open() as c:
                assert c.connection is outer
                assert c.connection.execute("SELECT 1").fetchone() == (1,)
            assert not fork_pools_allowed()
        with writer.open() as d:
            assert d.connection is outer
    assert fork_pools_allowed()
