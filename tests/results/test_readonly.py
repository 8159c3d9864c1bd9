"""What a query cannot do: change the state, touch another file, load code, lift its limits."""

from __future__ import annotations

import contextlib
import hashlib
from pathlib import Path
from typing import Any

import duckdb
import pytest
from support.states import build_state

from hpcx.results.query import QueryError, QuerySession
from hpcx.state.store import StateStore


@pytest.fixture(scope="module")
def state(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("ro") / "state.duckdb"
    build_state(path)
    (path.parent / "secret.csv").write_text("a,b\n1,2\n")
    return path


def _digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


REFUSED_BY_HPCX = {
    "insert": "INSERT INTO runs (run_id) VALUES ('x')",
    "update": "UPDATE runs SET status = 'failed'",
    "delete": "DELETE FROM metrics",
    "create": "CREATE TABLE t AS SELECT 1",
    "create-temp": "CREATE TEMP TABLE t (x INT)",
    "drop": "DROP VIEW runs",
    "copy-to": "COPY (SELECT * FROM runs) TO '/tmp/hpcx-leak.csv'",
    "export": "EXPORT DATABASE '/tmp/hpcx-export'",
    "attach": "ATTACH '/tmp/hpcx-other.duckdb'",
    "install": "INSTALL httpfs",
    "load": "LOAD httpfs",
    "set": "SET memory_limit = '64GB'",
    "pragma": "PRAGMA threads = 64",
    "checkpoint": "CHECKPOINT",
    "second-statement": "SELECT 1; DELETE FROM metrics",
}


@pytest.mark.parametrize("sql", REFUSED_BY_HPCX.values(), ids=REFUSED_BY_HPCX.keys())
def test_statements_that_are_not_queries_are_refused_with_a_reason(state: Path, sql: str) -> None:
    with QuerySession.open(state) as s, pytest.raises(QueryError) as err:
        s.query(sql)
    assert "read-only" in str(err.value) and "refused" in str(err.value)


# The same statements straight on the connection (hpcx's statement check bypassed): DuckDB's
# own settings refuse each of them. This is the guarantee; the check above is the message.
REFUSED_BY_DUCKDB = {
    "insert": ("INSERT INTO {db}.main.runs (run_id) VALUES ('x')", "read-only"),
    "update": ("UPDATE {db}.main.runs SET status = 'failed'", "read-only"),
    "delete": ("DELETE FROM {db}.main.metrics", "read-only"),
    "create": ("CREATE TABLE {db}.main.t AS SELECT 1", "read-only"),
    "copy-to": ("COPY (SELECT 1) TO '{dir}/leak.csv'", "disabled by configuration"),
    "export": ("EXPORT DATABASE '{dir}/exp'", "disabled by configuration"),
    "attach": ("ATTACH '{dir}/other.duckdb'", "disabled by configuration"),
    "install": ("INSTALL httpfs", "disabled by configuration"),
    "load": ("LOAD httpfs", "disabled"),
    "set": ("SET memory_limit = '64GB'", "configuration has been locked"),
    "set-access": ("SET enable_external_access = true", "configuration has been locked"),
    "read-passwd": ("SELECT * FROM read_csv('/etc/passwd')", "disabled by configuration"),
    "read-beside": ("SELECT * FROM read_csv('{dir}/secret.csv')", "disabled by configuration"),
    "read-text": ("SELECT * FROM read_text('/etc/hostname')", "disabled by configuration"),
    "glob": ("SELECT * FROM glob('{dir}/*')", "disabled by configuration"),
}


@pytest.mark.parametrize("sql,expected", REFUSED_BY_DUCKDB.values(), ids=REFUSED_BY_DUCKDB.keys())
def test_the_connection_itself_refuses_writes_files_and_settings(
    state: Path, sql: str, expected: str
) -> None:
    before = _digest(state.parent)
    with QuerySession.open(state) as s:
        db = s.query("SELECT current_database()").rows[0][0]
        with pytest.raises(duckdb.Error) as err:
            s._con.execute(sql.format(db=db, dir=state.parent))
    assert expected in str(err.value)
    assert _digest(state.parent) == before  # no byte changed, no file appeared


def test_reading_a_file_gives_a_clear_message_and_a_hint(state: Path) -> None:
    with QuerySession.open(state) as s, pytest.raises(QueryError) as err:
        s.query("SELECT * FROM read_csv('/etc/passwd')")
    assert "disabled by configuration" in str(err.value)
    assert err.value.hint and "reads the state and nothing else" in err.value.hint


def test_state_bytes_and_serial_unchanged_after_every_attempt(state: Path) -> None:
    with StateStore.open(state, read_only=True) as st:
        serial = st.meta()[1]
    before = _digest(state.parent)
    with QuerySession.open(state) as s:
        for sql in [*REFUSED_BY_HPCX.values(), "SELECT * FROM results"]:
            with contextlib.suppress(QueryError):
                s.query(sql)
    assert _digest(state.parent) == before
    with StateStore.open(state, read_only=True) as st:
        assert st.meta()[1] == serial


def test_limits_are_set_and_a_long_query_is_stopped(state: Path) -> None:
    with QuerySession.open(state, memory_limit="256MB", timeout_s=0.5) as s:
        settings = dict(
            s.query(
                "SELECT name, value FROM duckdb_settings() WHERE name IN ('memory_limit', "
                "'enable_external_access', 'lock_configuration', 'autoload_known_extensions', "
                "'autoinstall_known_extensions')"
            ).rows
        )
        assert settings["enable_external_access"] == "false"
        assert settings["lock_configuration"] == "true"
        assert settings["autoload_known_extensions"] == "false"
        assert settings["autoinstall_known_extensions"] == "false"
        assert settings["memory_limit"].startswith(("244", "256"))
        with pytest.raises(QueryError, match="time limit"):
            s.query("SELECT count(*) FROM range(100000000000) a(i) WHERE i % 7 = 3")
        # the session is still usable afterwards
        assert s.query("SELECT 1").rows == [(1,)]


def test_a_missing_state_is_a_clear_error(tmp_path: Path) -> None:
    from hpcx.errors import StateError

    with pytest.raises(StateError, match="no state at"):
        QuerySession.open(tmp_path / "nope.duckdb")


def test_bad_sql_gets_duckdbs_message_and_a_hint(state: Path) -> Any:
    with QuerySession.open(state) as s:
        with pytest.raises(QueryError) as err:
            s.query("SELECT * FROM run")
        assert "run does not exist" in str(err.value)
        assert err.value.hint and "did you mean view runs" in err.value.hint
        with pytest.raises(QueryError) as err:
            s.query("SELECT params.model.dept FROM results")
        assert err.value.hint and '"params.model.depth"' in err.value.hint
        with pytest.raises(QueryError) as err:
            s.query("SELEC 1")
        assert "syntax error" in str(err.value).lower()


def test_an_unknown_column_gets_a_did_you_mean_over_that_views_columns(state: Path) -> None:
    """Regression: every unknown column got advice about quoting dotted names."""
    cases = {
        "SELECT statu FROM runs": 'did you mean column "status"?',
        "SELECT r.statu FROM runs r": 'did you mean column "status"?',
        "SELECT nosuchcol FROM runs": "no column 'nosuchcol' in runs; hpcx query --list",
        # The tail of a dotted column: the one case where quoting is the answer.
        "SELECT depth FROM results": 'need double quotes: SELECT "params.model.depth" FROM results',
    }
    with QuerySession.open(state) as s:
        for sql, want in cases.items():
            with pytest.raises(QueryError) as err:
                s.query(sql)
            assert err.value.hint and want in err.value.hint, (sql, err.value.hint)
            if "depth" not in sql:
                assert "double quotes" not in err.value.hint


def test_no_progress_bar_is_drawn_into_a_commands_output(state: Path) -> None:
    """Regression (seen in CI): DuckDB drew its progress bar for a long query into stdout,
    which is the command's data (CSV, JSON, the table)."""
    with QuerySession.open(state) as s:
        (row,) = s.query("SELECT current_setting('enable_progress_bar') AS on").rows
    assert row == (False,)
    with StateStore.open(state, read_only=True) as store:
        got = store.connection.execute("SELECT current_setting('enable_progress_bar')").fetchone()
    assert got == (False,)
