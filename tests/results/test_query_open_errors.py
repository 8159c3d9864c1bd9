"""Opening something that is not a state says what it is and how to restore one (the restore
hint is imported only on these paths: issue 17 keeps hpcx.state.backup off the report's start)."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from hpcx.errors import StateError
from hpcx.results.query import QuerySession
from hpcx.state.backup import restore_hint
from hpcx.state.schema import SCHEMA_VERSION


def test_a_folder_an_empty_file_and_another_schema_are_refused_with_the_restore_hint(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "dir.duckdb"
    folder.mkdir()
    empty = tmp_path / "empty.duckdb"
    empty.write_bytes(b"")
    newer = tmp_path / "newer.duckdb"
    con = duckdb.connect(str(newer))
    con.execute("CREATE TABLE schema_version (version INTEGER)")
    con.execute("INSERT INTO schema_version VALUES (?)", [SCHEMA_VERSION + 1])
    con.close()
    for path, says in (
        (folder, "is a directory, not a state file"),
        (empty, "is empty: not a DuckDB state file"),
        (newer, f"has schema v{SCHEMA_VERSION + 1}"),
    ):
        with pytest.raises(StateError) as info:
            QuerySession.open(path)
        assert says in str(info.value)
        assert restore_hint(path) in (info.value.hint or "")
