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
from typing import Any

__all__ = ["CONNECT_CONFIG", "Engine", "duckdb"]

#: No extension is installed or loaded behind hpcx's back (json and parquet are built in).
CONNECT_CONFIG: dict[str, str | bool | int | float | list[str]] = {
    "autoinstall_known_extensions": False,
    "autoload_known_extensions": False,
}


def _sql_text(text: str) -> str:
    """``text`` as a SQL string literal (ATTACH takes no parameter)."""
    return "'" + text.replace("'", "''") + "'"


class Engine:
    """This process's one DuckDB instance; each state file a StateStore opens is attached to
    it (``ATTACH``) for as long as the store is open, and detached at its close.

    Creating an instance builds DuckDB's catalog of built-in functions: ~20-25 ms every time
    here (duckdb 2.0, 2 cores; ``duckdb.connect`` of a file included it), where attaching a
    state file to a live instance takes ~2 ms. A command opens the state several times (an
    apply into a state with runs in flight: the refresh, the plan's snapshot, the intent, the
    job ids), and paid it on each. A ``DETACH`` checkpoints the file and lets its lock go, as
    the close of a connection of its own did, so readers and other writers get in between.
    """

    _root: Any = None
    _names = itertools.count()
    #: How many files are attached now (opened stores).
    _attached = 0

    @classmethod
    def attach(cls, path: Path, *, read_only: bool) -> tuple[Any, str]:
        """A connection whose default database is the file at ``path``, and its alias."""
        if cls._root is None:
            cls._root = duckdb.connect(":memory:", config=CONNECT_CONFIG)
        con = cls._root.cursor()
        alias = f"hpcx_state_{next(cls._names)}"
        mode = "READ_ONLY" if read_only else "READ_WRITE"
        try:
            con.execute(f"ATTACH {_sql_text(str(path))} AS {alias} ({mode})")
            con.execute(f"USE {alias}")
            # A long statement must not draw DuckDB's progress bar into a command's output.
            con.execute("SET enable_progress_bar = false")
        except BaseException:
            cls._drop(con, alias)
            raise
        cls._attached += 1
        return con, alias

    @classmethod
    def detach(cls, con: Any, alias: str) -> None:
        """Detach (checkpoint, unlock) the file and close ``con``. When the detach fails (a
        full disk at the checkpoint), the instance goes, so that nothing of it keeps the file
        locked, and the error is raised."""
        cls._attached -= 1
        try:
            con.execute("USE memory")
            con.execute(f"DETACH {alias}")
        except BaseException:
            cls.reset()
            raise
        finally:
            with contextlib.suppress(Exception):
                con.close()

    @classmethod
    def _drop(cls, con: Any, alias: str) -> None:
        with contextlib.suppress(Exception):
            con.execute("USE memory")
            con.execute(f"DETACH DATABASE IF EXISTS {alias}")
        with contextlib.suppress(Exception):
            con.close()

    @classmethod
    def reset(cls) -> None:
        """Close the instance (every file still attached to it is let go); the next open makes
        a new one."""
        root, cls._root = cls._root, None
        cls._attached = 0
        if root is not None:
            with contextlib.suppress(Exception):
                root.close()

    @classmethod
    def before_fork(cls) -> None:
        """Close an idle instance before this process forks (a pool of workers): a fork then
        copies no DuckDB instance with its threads, as before the instance was kept. One
        with a file attached is left: nothing forks a pool then (:class:`NoForkPools`)."""
        if cls._attached == 0:
            cls.reset()


os.register_at_fork(before=Engine.before_fork)
