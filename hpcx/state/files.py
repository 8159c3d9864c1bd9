"""What a file at the state's path is, before DuckDB opens it for writing.

Both questions are asked before anything else touches the file: the store refuses a foreign
file with a clear message (DuckDB would answer a SQLite file by loading its SQLite reader),
and a file whose creation never committed is no state yet to readers and to the backup.
"""

from __future__ import annotations

import os
from pathlib import Path

_SQLITE_MAGIC = b"SQLite format 3\x00"


def foreign_file(path: str | os.PathLike[str]) -> str | None:
    """What the file at ``path`` is when it plainly is not a DuckDB database (its header lacks
    DuckDB's magic), else None. Read before DuckDB opens it: DuckDB answers a SQLite file by
    fetching and loading its SQLite reader."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(16)
    except OSError:
        return None
    if head.startswith(_SQLITE_MAGIC):
        return "a SQLite database, not a DuckDB state file"
    if len(head) < 12 or head[8:12] != b"DUCK":
        return "not a DuckDB state file"
    return None


def is_uncreated(path: str | os.PathLike[str]) -> bool:
    """True for a DuckDB file holding no table at all: a state whose creation never committed
    (the writing command was killed between DuckDB creating the file and the schema's
    transaction). Readers treat it as no state yet; the next writer creates the schema in it.
    """
    from hpcx.state.engine import Engine, duckdb

    p = Path(path)
    if Engine.holds(p):
        return False  # a store of this process has it open (and its own open would unlock it)
    try:
        if not p.is_file() or p.stat().st_size == 0:
            return False
        with open(p, "rb") as f:
            if f.read(12)[8:12] != b"DUCK":
                return False
        con, attachment = Engine.attach(p, read_only=True)
    except (OSError, duckdb.Error):
        return False
    try:
        row = con.execute(
            "SELECT count(*) FROM duckdb_tables() WHERE database_name = current_database()"
        ).fetchone()
        return row is not None and row[0] == 0
    except duckdb.Error:
        return False
    finally:
        Engine.release(con, attachment)
