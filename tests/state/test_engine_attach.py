"""The process's one DuckDB instance (``hpcx.state.store._Engine``): each StateStore attaches
its file to it and detaches it at close, so a command that opens the state several times
builds DuckDB's catalog once (~20-25 ms an instance here), while the file is let go at each
close exactly as a connection of its own let it go: unlocked for other processes, checkpointed
(no WAL left), also when a store is dropped unclosed; and no pool of workers is forked with
an idle instance's threads live."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from support.locks import held_by_another_process
from support.specs import make_spec

from hpcx.errors import StateLockedError
from hpcx.state import engine
from hpcx.state.engine import Engine
from hpcx.state.store import StateStore
from hpcx.util.proc import forked_chunks

# Opens the state read-write in another process, as another hpcx writer would.
_OTHER_WRITER = (
    "import sys\n"
    "from hpcx.state.store import StateStore\n"
    "with StateStore.open(sys.argv[1]) as s, s.transaction() as tx:\n"
    "    tx.event('x', 'note', None, None, None)\n"
    "print('wrote')\n"
)


def _other_writer(state: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", _OTHER_WRITER, str(state)],
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture
def instances(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every DuckDB instance made in this process meanwhile (``duckdb.connect`` calls)."""
    Engine.reset()
    made: list[str] = []
    real = engine.duckdb.connect

    def counting(database: Any = ":memory:", *args: Any, **kw: Any) -> Any:
        made.append(str(database))
        return real(database, *args, **kw)

    monkeypatch.setattr(engine.duckdb, "connect", counting)
    return made


def _state(tmp_path: Path) -> Path:
    state = tmp_path / "state.duckdb"
    with StateStore.open(state) as store, store.transaction() as tx:
        tx.record_runs([make_spec("e", i, {"i": i}) for i in range(3)])
    return state


def test_opens_in_one_process_share_one_instance(tmp_path: Path, instances: list[str]) -> None:
    state = _state(tmp_path)
    for _ in range(3):
        with StateStore.open(state, read_only=True) as store:
            assert len(store.snapshot().runs) == 3
    with StateStore.open(state) as store, store.transaction() as tx:
        tx.record_runs([make_spec("e", 9, {"i": 9})])
    assert instances == [":memory:"]  # one instance, made by the first open


def test_a_closed_store_lets_the_file_go_unlocked_and_checkpointed(tmp_path: Path) -> None:
    state = _state(tmp_path)
    with StateStore.open(state) as store:
        assert "lock" in _other_writer(state).stderr.lower()  # held while open
        store.record_runs([make_spec("e", 5, {"i": 5})])
    assert not Path(str(state) + ".wal").exists()  # the detach checkpointed it
    done = _other_writer(state)
    assert done.returncode == 0 and "wrote" in done.stdout, done.stderr
    # And this process opens it again after the other let it go.
    with StateStore.open(state, read_only=True) as store:
        assert len(store.snapshot().runs) == 4


def test_a_store_dropped_unclosed_lets_its_file_go(tmp_path: Path) -> None:
    state = _state(tmp_path)
    store = StateStore.open(state)
    del store  # an error between an open and its `with`: the store is collected
    done = _other_writer(state)
    assert done.returncode == 0, done.stderr


def test_another_process_holding_the_file_is_named(tmp_path: Path) -> None:
    state = _state(tmp_path)
    with (
        held_by_another_process(state) as holder,
        pytest.raises(StateLockedError, match=f"locked by pid {holder.pid}"),
    ):
        StateStore.open(state)
    # The failed attach left nothing behind: the file opens now.
    with StateStore.open(state) as store:
        assert len(store.snapshot().runs) == 3


def _pids(chunk: Any) -> list[int]:
    import os

    return [os.getpid()] * len(chunk)


def test_no_pool_forks_with_an_idle_instance(tmp_path: Path) -> None:
    state = _state(tmp_path)
    with StateStore.open(state, read_only=True):
        pass
    assert Engine._root is not None  # kept for the next open
    out = forked_chunks(_pids, list(range(16)), workers=2, min_items=2)
    assert out is not None and len(out) >= 2  # the pool ran
    assert Engine._root is None  # closed before the fork
    with StateStore.open(state, read_only=True) as store:  # and made again when needed
        assert len(store.snapshot().runs) == 3


def test_a_file_attached_keeps_the_instance_through_a_fork(tmp_path: Path) -> None:
    """Nothing forks a pool while a store is open (NoForkPools); a plain fork meanwhile (a
    subprocess's) must not pull the instance from under the open store."""
    import os

    state = _state(tmp_path)
    with StateStore.open(state, read_only=True) as store:
        pid = os.fork()
        if pid == 0:
            os._exit(0)
        os.waitpid(pid, 0)
        assert len(store.snapshot().runs) == 3


def test_a_store_closed_in_an_aborted_transaction_leaves_the_others_working(
    tmp_path: Path,
) -> None:
    """The close rolls the transaction back (as closing a connection did); the other store,
    on another file, reads on, and the file opens again."""
    from hpcx.state.engine import duckdb

    a, b = _state(tmp_path / "a"), _state(tmp_path / "b")
    other = StateStore.open(b, read_only=True)
    store = StateStore.open(a)
    store.connection.execute("BEGIN TRANSACTION")
    with pytest.raises(duckdb.Error):
        store.connection.execute("SELECT * FROM no_such_table")
    store.close()
    assert len(other.snapshot().runs) == 3
    other.close()
    with StateStore.open(a) as again:
        assert len(again.snapshot().runs) == 3
    assert Engine._open == {}


def test_a_store_of_an_instance_since_closed_breaks_no_later_one(tmp_path: Path) -> None:
    """An instance closed under an open store (a detach that failed with its file attached
    closes it): that store's close must not touch the next instance or its stores."""
    a, b = _state(tmp_path / "a"), _state(tmp_path / "b")
    old = StateStore.open(a, read_only=True)
    Engine.reset()
    new = StateStore.open(b, read_only=True)
    old.close()  # its instance is gone: only its connection is closed
    assert len(new.snapshot().runs) == 3
    assert Engine.holds(b) and not Engine.holds(a) and len(Engine._open) == 1
    new.close()
    assert Engine._open == {}


def test_two_stores_of_one_file_share_it_and_the_last_close_lets_it_go(tmp_path: Path) -> None:
    from hpcx.errors import StateError

    state = _state(tmp_path)
    first = StateStore.open(state)
    second = StateStore.open(state)  # read-write twice in one process, as before
    second.record_runs([make_spec("e", 7, {"i": 7})])
    second.close()
    assert len(first.snapshot().runs) == 4  # the first reads on
    with pytest.raises(StateError, match="open read-write in this process already"):
        StateStore.open(state, read_only=True)
    assert "lock" in _other_writer(state).stderr.lower()  # still held by the first
    first.close()
    assert _other_writer(state).returncode == 0


def test_duckdb_spills_beside_the_state(tmp_path: Path) -> None:
    Engine.reset()
    state = _state(tmp_path)
    with StateStore.open(state, read_only=True) as store:
        ((where,),) = store.connection.execute(
            "SELECT current_setting('temp_directory')"
        ).fetchall()
    assert where == str(state) + ".tmp"


def test_nothing_else_opens_a_file_a_store_holds_so_its_lock_stays(tmp_path: Path) -> None:
    """A connection of its own to a file this process has attached fails, and closes a handle
    of the file on its way, which drops the process's lock: another process could then write
    under the open store, and its checkpoint lose that write. Nothing in hpcx may try."""
    from hpcx.errors import StateError
    from hpcx.results.query import QuerySession
    from hpcx.state.files import is_uncreated
    from hpcx.state.store import open_reader

    state = _state(tmp_path)
    with StateStore.open(state) as store:
        assert Engine.holds(state)
        assert not is_uncreated(state)  # asked without opening the file
        with pytest.raises(StateError, match="in this process already"):
            QuerySession.open(state)
        with pytest.raises(StateError, match="in this process already"):
            open_reader(state)  # a reader while this process writes it: refused, clearly
        assert "lock" in _other_writer(state).stderr.lower()  # still locked
        store.record_runs([make_spec("e", 8, {"i": 8})])
    assert not Engine.holds(state)
    with StateStore.open(state, read_only=True) as store:
        assert len(store.snapshot().runs) == 4


def test_another_path_to_the_same_file_is_the_same_file(tmp_path: Path) -> None:
    """A hard link or a symlink names the file the store holds: shared in one mode, refused
    in the other (each path attached on its own would drop the lock at its close)."""
    import os

    from hpcx.errors import StateError

    state = _state(tmp_path)
    hard, soft = tmp_path / "hard.duckdb", tmp_path / "soft.duckdb"
    os.link(state, hard)
    soft.symlink_to(state)
    with StateStore.open(state) as store:
        with pytest.raises(StateError, match="open read-write in this process already"):
            StateStore.open(hard, read_only=True)
        with StateStore.open(soft) as other:  # read-write again: the same attachment
            assert len(other.snapshot().runs) == 3
        assert "lock" in _other_writer(state).stderr.lower()
        assert len(store.snapshot().runs) == 3
    assert Engine._open == {}


def test_a_writer_has_the_instance_made_on_a_thread_while_it_loads(
    tmp_path: Path, instances: list[str]
) -> None:
    """A writer starts DuckDB's instance on a thread (its catalog is built with the GIL
    released, on the other core) and the first open takes that instance: one instance in
    all, no thread left behind."""
    import threading

    from hpcx.state.writer import Writer

    with Writer(tmp_path / "state.duckdb", "test") as writer:
        warming = Engine._warming
        assert warming is not None and warming.thread.name == "hpcx-duckdb-warm-up"
        assert not warming.thread.daemon  # the interpreter waits for it, never stops it in DuckDB
        with writer.transaction() as tx:  # the first open: the state is created now
            tx.record_runs([make_spec("e", 1, {"i": 1})])
        assert Engine._warming is None
        assert not warming.thread.is_alive()
        assert Engine._root is warming.result()  # the instance the thread made
    assert instances == [":memory:"]
    assert "hpcx-duckdb-warm-up" not in {t.name for t in threading.enumerate()}
    with StateStore.open(tmp_path / "state.duckdb", read_only=True) as store:
        assert [r.run_id for r in store.snapshot().runs.values()] == [
            make_spec("e", 1, {"i": 1}).run_id
        ]


def test_a_warm_up_is_started_once_and_not_beside_an_instance(
    tmp_path: Path, instances: list[str]
) -> None:
    Engine.warm_up()
    first = Engine._warming
    Engine.warm_up()
    assert Engine._warming is first  # one thread
    _state(tmp_path)
    Engine.warm_up()
    assert Engine._warming is None  # there is an instance: nothing to make
    assert instances == [":memory:"]


def test_a_failed_warm_up_leaves_the_open_to_make_the_instance(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    Engine.reset()
    real = engine.duckdb.connect
    calls: list[str] = []

    def failing_once(database: Any = ":memory:", *args: Any, **kw: Any) -> Any:
        calls.append(str(database))
        if len(calls) == 1:
            raise engine.duckdb.IOException("no memory for you")
        return real(database, *args, **kw)

    monkeypatch.setattr(engine.duckdb, "connect", failing_once)
    Engine.warm_up()
    state = _state(tmp_path)  # opens: the thread's error is dropped, a new instance made
    assert calls == [":memory:", ":memory:"]
    with StateStore.open(state, read_only=True) as store:
        assert len(store.snapshot().runs) == 3


def test_a_warming_instance_is_closed_by_a_reset_and_before_a_fork(tmp_path: Path) -> None:
    Engine.reset()
    Engine.warm_up()
    warming = Engine._warming
    Engine.reset()
    assert Engine._warming is None and Engine._root is None and not warming.thread.is_alive()
    with pytest.raises(engine.duckdb.ConnectionException):
        warming.result().execute("SELECT 1")  # closed, not left to the interpreter's exit
    Engine.warm_up()
    thread = Engine._warming.thread
    out = forked_chunks(_pids, list(range(16)), workers=2, min_items=2)
    assert out is not None and len(out) >= 2  # the pool ran
    assert Engine._warming is None and Engine._root is None and not thread.is_alive()
    state = _state(tmp_path)
    with StateStore.open(state, read_only=True) as store:
        assert len(store.snapshot().runs) == 3


def test_no_thread_to_be_had_leaves_the_open_to_make_the_instance(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A login node's thread limit: the warm-up is skipped, nothing fails."""
    import threading

    Engine.reset()

    def refused(self: threading.Thread) -> None:
        raise RuntimeError("can't start new thread")

    monkeypatch.setattr(threading.Thread, "start", refused)
    Engine.warm_up()
    assert Engine._warming is None
    state = _state(tmp_path)
    with StateStore.open(state, read_only=True) as store:
        assert len(store.snapshot().runs) == 3
