"""DuckDB's engine, without the Python layer the state never uses.

From duckdb 1.4 the ``duckdb`` package is a Python layer (relations, expressions, a version read
through ``importlib.metadata``) over its C++ extension ``_duckdb``, which holds ``connect``, the
connection and every exception class (``duckdb.Error`` *is* ``_duckdb.Error``). The state and
the query layer need only those. Importing the extension alone took 13 ms against 67 ms for the
package (duckdb 2.0, this project's 2-core machine, ``python -X importtime``), and every command
that opens the state paid the difference. The extension ships in the same wheel and has its own
type stubs. Older duckdb, whose extension lives inside the package, is imported as a whole.

Import it inside the functions that need it (``from hpcx.state.engine import duckdb``), as with
any heavy import, so ``hpcx --help`` stays instant.

:class:`Engine` is the process's one DuckDB instance, to which the state package attaches a
state file while it reads or writes it.
"""

from __future__ import annotations

try:
    import _duckdb as duckdb
except ImportError:  # duckdb < 1.4: no top-level extension module
    import duckdb  # type: ignore[no-redef]

import contextlib
import itertools
import os
from pathlib import Path
from typing import Any, ClassVar, NamedTuple

__all__ = ["CONNECT_CONFIG", "Engine", "duckdb"]

#: No extension is installed or loaded behind hpcx's back (json and parquet are built in).
CONNECT_CONFIG: dict[str, str | bool | int | float | list[str]] = {
    "autoinstall_known_extensions": False,
    "autoload_known_extensions": False,
}


def _sql_text(text: str) -> str:
    """``text`` as a SQL string literal (ATTACH takes no parameter)."""
    return "'" + text.replace("'", "''") + "'"


def _file_key(path: Path) -> str | None:
    """Which file ``path`` is (device and inode: a symlink, a hard link, another spelling
    of the path are the same file), None where there is none yet."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return f"{st.st_dev}:{st.st_ino}"


def _new_instance() -> Any:
    """A DuckDB instance of its own, in memory (the files are attached to it)."""
    return duckdb.connect(":memory:", config=CONNECT_CONFIG)


def _close(con: Any) -> None:
    """Close a cursor of the instance (one of a closed instance too), or an instance,
    whatever it meets."""
    with contextlib.suppress(Exception):
        con.close()


class Attachment(NamedTuple):
    """A state file attached to :class:`Engine`'s instance, as a store holds it."""

    key: str  # the file (:func:`_file_key`)
    alias: str
    generation: int


class Engine:
    """This process's one DuckDB instance; each state file a StateStore opens is attached to
    it (``ATTACH``) for as long as the store is open, and detached at its close.

    Creating an instance builds DuckDB's catalog of built-in functions: ~20-25 ms every time
    here (duckdb 2.0, 2 cores; ``duckdb.connect`` of a file included it), where attaching a
    state file to a live instance takes ~2 ms. A command opens the state several times (an
    apply into a state with runs in flight: the refresh, the plan's snapshot, the intent, the
    job ids), and paid it on each. A ``DETACH`` checkpoints the file and lets its lock go, as
    the close of a connection of its own did, so readers and other writers get in between.

    Two stores of one file in one process share its attachment when both read, or both
    write (as two connections shared DuckDB's instance for the file before); the file is
    detached when the last of them closes. A read-only and a read-write store of one file at
    once is refused, as it was.
    """

    _root: Any = None
    #: The instance :meth:`warm_up` is making on a thread (a Background), until an attach
    #: or a reset takes it.
    _warming: Any = None
    #: Counts the instances made: an attachment of an instance since closed (:meth:`reset`)
    #: was let go with it, and its store's close only closes its connection.
    _generation = 0
    _names = itertools.count()
    #: The file (:func:`_file_key`) -> [its alias, read_only, how many stores hold it].
    _open: ClassVar[dict[str, list[Any]]] = {}

    @classmethod
    def holds(cls, path: Path) -> bool:
        """Whether a store of this process has the file at ``path`` open. Nothing else may
        open it then: a ``duckdb.connect`` of a file this instance has attached fails, and on
        its way it closes a handle of the file, which drops the process's lock on it (POSIX
        locks belong to the process), letting another process write under the open store."""
        key = _file_key(path)
        return key is not None and key in cls._open

    @classmethod
    def attach(cls, path: Path, *, read_only: bool) -> tuple[Any, Attachment]:
        """A connection whose default database is the file at ``path``, and the attachment
        to give :meth:`detach` with it."""
        from hpcx.errors import StateError

        key = _file_key(path)
        held = cls._open.get(key) if key is not None else None
        if held is not None and held[1] != read_only:
            raise StateError(
                f"state {path} is open {'read-only' if held[1] else 'read-write'} in this "
                "process already",
                hint="close it before opening it "
                + ("read-write" if not read_only else "read-only"),
            )
        con = cls._instance().cursor()
        alias = held[0] if held is not None else f"hpcx_state_{next(cls._names)}"
        try:
            if held is None:
                mode = "READ_ONLY" if read_only else "READ_WRITE"
                con.execute(f"ATTACH {_sql_text(str(path))} AS {alias} ({mode})")
                if not cls._open:
                    # Where DuckDB spills, beside the state as for a connection of its own
                    # (an in-memory instance's default is ./.tmp, in the user's folder).
                    with contextlib.suppress(Exception):
                        con.execute(f"SET temp_directory = {_sql_text(str(path) + '.tmp')}")
            con.execute(f"USE {alias}")
            # A long statement must not draw DuckDB's progress bar into a command's output.
            con.execute("SET enable_progress_bar = false")
        except BaseException:
            if held is None:
                cls._drop(con, alias)
            else:
                _close(con)
            raise
        if held is None:
            # A new file exists now (the ATTACH made it).
            key = key or _file_key(path) or str(Path(path).resolve())
            cls._open[key] = held = [alias, read_only, 0]
        held[2] += 1
        return con, Attachment(key or "", alias, cls._generation)

    @classmethod
    def warm_up(cls) -> None:
        """Start making the instance on a thread, for a command that will open a state after
        other work (loading its manifests): DuckDB builds its catalog (~20-25 ms) with the
        GIL released, on the other core, and the first open takes the instance made.

        The thread is not a daemon: the interpreter waits for it (a few ms at most) before
        it finalises, rather than stopping it inside DuckDB."""
        if cls._root is not None or cls._warming is not None:
            return
        from hpcx.util.proc import Background

        # RuntimeError: no thread to be had (a login node's limits): the open makes it.
        with contextlib.suppress(RuntimeError):
            cls._warming = Background(_new_instance, name="hpcx-duckdb-warm-up", daemon=False)

    @classmethod
    def _warmed(cls) -> Any:
        """The instance :meth:`warm_up` made (waiting for its thread), or None."""
        warming, cls._warming = cls._warming, None
        if warming is None:
            return None
        try:
            return warming.result()
        except Exception:  # the attach makes one itself, and raises then
            return None

    @classmethod
    def _instance(cls) -> Any:
        """The process's instance, made (or taken from :meth:`warm_up`) when there is none."""
        if cls._root is None:
            made = cls._warmed()
            cls._root = made if made is not None else _new_instance()
            cls._generation += 1
        return cls._root

    @classmethod
    def detach(cls, con: Any, attachment: Attachment) -> None:
        """Close ``con`` (a transaction left open is rolled back, as a close did) and, when
        no other store holds the file, detach it: checkpointed and unlocked. A detach that
        fails with the file still attached (the instance cannot let it go otherwise) closes
        the instance; the error is raised."""
        with contextlib.suppress(Exception):
            con.execute("ROLLBACK")  # none open: an error, suppressed
        held = cls._open.get(attachment.key)
        if attachment.generation != cls._generation or held is None:
            _close(con)  # its instance was closed since (and the file let go with it)
            return
        held[2] -= 1
        if held[2] > 0:
            _close(con)
            return
        del cls._open[attachment.key]
        try:
            con.execute("USE memory")
            con.execute(f"DETACH {attachment.alias}")
        except BaseException:
            if cls._still_attached(attachment.alias):
                cls.reset()
            raise
        finally:
            _close(con)

    @classmethod
    def release(cls, con: Any, attachment: Attachment) -> None:
        """:meth:`detach` for a file attached read-only to read it once: nothing was
        written, and nothing it meets at the close is the reader's business."""
        with contextlib.suppress(Exception):
            cls.detach(con, attachment)

    @classmethod
    def _still_attached(cls, alias: str) -> bool:
        try:
            rows = cls._root.execute(
                "SELECT count(*) FROM duckdb_databases() WHERE database_name = ?", [alias]
            ).fetchall()
        except Exception:
            return True
        return bool(rows[0][0])

    @classmethod
    def _drop(cls, con: Any, alias: str) -> None:
        """Undo a failed attach; when even that fails, the instance goes (no file of it may
        stay attached, locked, and unknown to :attr:`_open`)."""
        try:
            con.execute("USE memory")
            con.execute(f"DETACH DATABASE IF EXISTS {alias}")
        except Exception:
            cls.reset()
        _close(con)

    @classmethod
    def reset(cls) -> None:
        """Close the instance (every file still attached to it is let go); the next open makes
        a new one."""
        root, cls._root = cls._root, None
        cls._open.clear()
        for instance in (root, cls._warmed()):
            if instance is not None:
                _close(instance)

    @classmethod
    def before_fork(cls) -> None:
        """Close an idle instance before this process forks (a pool of workers): a fork then
        copies no DuckDB instance with its threads, as before the instance was kept. One
        with a file attached is left: nothing forks a pool then (:class:`NoForkPools`)."""
        if not cls._open:
            cls.reset()


os.register_at_fork(before=Engine.before_fork)
