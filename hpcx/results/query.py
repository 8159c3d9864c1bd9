"""Read-only SQL over the state: the engine of ``hpcx query``, ``export`` and ``report``.

A :class:`QuerySession` opens the state file so that a query can neither change it nor reach
anything else, each guarantee enforced by DuckDB itself and checked by a test:

* ``read_only=True``: the file is never written (INSERT, UPDATE, DELETE, CREATE on it fail);
* ``enable_external_access=false``: no file but the state is read or written (``COPY ... TO``,
  ``EXPORT DATABASE``, ``ATTACH``, ``read_csv('/etc/passwd')``, ``glob``, ``INSTALL``);
* ``autoinstall_known_extensions`` / ``autoload_known_extensions`` off, so a query cannot pull
  an extension in (``LOAD`` is refused too);
* ``lock_configuration=true`` (set at open): ``SET``/``PRAGMA`` cannot undo any of the above,
  nor raise the memory limit;
* ``memory_limit`` and a wall-clock limit: a timer thread interrupts the connection.

On top of that, hpcx runs only SELECT-like statements (SELECT, WITH, FROM, DESCRIBE, SHOW,
SUMMARIZE, EXPLAIN), so a refused statement gets a message that says why before DuckDB is even
asked. The built-in views are TEMP views: they live in the session's memory, never in the file.
Each is created when a statement first names it (:func:`views_named`): ``runs`` reads every
run's spec to type its columns, which a query of the metrics alone need not pay for.

Writing results (CSV, Parquet) is never done by this connection: the caller gets rows back and
writes them in Python, or hands a CSV to a *separate* in-memory connection (:func:`write_parquet`).
"""

from __future__ import annotations

import contextlib
import csv
import difflib
import json
import math
import os
import re
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hpcx.errors import HpcxError, StateError
from hpcx.errors import QueryError as QueryError  # known here to callers of the query engine

#: The built-in views, in the order ``--list`` shows them.
VIEW_NAMES = (
    "runs",
    "results",
    "metrics",
    "attempts",
    "events",
    "probes",
    "probe_gpus",
    "submissions",
)
#: A view -> the views it is built on.
_VIEW_NEEDS = {"results": ("runs",)}
#: Words of a statement that reads the catalog (SHOW TABLES, DESCRIBE alone, duckdb_views(),
#: information_schema, pg_views) or may name a table at run time (query('FROM ' || x),
#: query_table(...)): every view is created first.
_EVERY_VIEW_WORDS = re.compile(
    r"show|describe|information_schema|pg_\w*|sqlite_\w*|duckdb_\w*|pragma\w*|query|query_table",
    re.IGNORECASE,
)
#: Where a name may hide from the word scan: a dollar-quoted string or a $n parameter ($),
#: a ? parameter, an escape string (E'...\n...').
_HIDING = frozenset("$?\\")
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
#: Statement types a query may contain.
_ALLOWED_STATEMENTS = frozenset({"SELECT", "EXPLAIN"})
#: Run columns that a metric column may not shadow in ``results`` (it is then ``metric.NAME``).
DEFAULT_MEMORY_LIMIT = "2GB"
DEFAULT_TIMEOUT_S = 60.0
#: Rows fetched from DuckDB at a time when a result is streamed to its output.
STREAM_BATCH_ROWS = 10_000

# Spec sections flattened into one column per leaf, under their own prefix.
_FLATTENED = ("params", "placement", "resources")
#: Spec paths the session notes, at open, whether any run has (in the pass over the specs that
#: finds the leaves): a report skips the queries that could only find nothing.
SPEC_PROBES = ("$.extra.search.key", "$.extra.reports", "$.extra.description")


@dataclass(frozen=True, slots=True)
class QueryResult:
    """Rows of one query with their column names and DuckDB type names."""

    columns: list[str]
    types: list[str]
    rows: list[tuple[Any, ...]]

    def records(self) -> Iterator[dict[str, Any]]:
        for row in self.rows:
            yield dict(zip(self.columns, row, strict=True))

    def column(self, name: str) -> list[Any]:
        i = self.columns.index(name)
        return [r[i] for r in self.rows]


_MEMORY_HINT = "the query needs more memory than --memory-limit allows; narrow it"


def _out_of_memory(message: str) -> bool:
    lowered = message.lower()
    return "out of memory" in lowered or "memory_limit" in lowered


def views_named(sql: str) -> frozenset[str]:
    """The built-in views a statement may read: those whose name is one of its words (in a
    string or a comment too: a view created that is not read costs only time, while one not
    created would let the file's table of the same name answer instead). Every view when it
    reads the catalog, may name a table at run time (``query``, ``query_table``), or has
    anything a name could hide behind (``$``, ``?``, a backslash)."""
    if not _HIDING.isdisjoint(sql):
        return frozenset(VIEW_NAMES)
    words = {w.lower() for w in _WORD.findall(sql)}
    if any(_EVERY_VIEW_WORDS.fullmatch(w) for w in words):
        return frozenset(VIEW_NAMES)
    return frozenset(words.intersection(VIEW_NAMES))


def _no_state(path: Path) -> StateError:
    return StateError(
        f"no state at {path}",
        hint="run `hpcx apply` to create one, or pass --state PATH / set HPCX_STATE",
    )


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _lit(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _column_type(types: set[str]) -> str:
    """The SQL type of a flattened leaf from the JSON types seen for it."""
    kinds = types - {"NULL"}
    if not kinds:
        return "VARCHAR"
    if kinds <= {"UBIGINT", "BIGINT"}:
        return "BIGINT"
    if kinds <= {"UBIGINT", "BIGINT", "DOUBLE"}:
        return "DOUBLE"
    if kinds == {"BOOLEAN"}:
        return "BOOLEAN"
    if kinds <= {"ARRAY", "OBJECT"}:
        return "JSON"
    return "VARCHAR"


def _meta_column(key: str, types: list[str] | None) -> str:
    """The runs view's ``meta.<key>`` column, typed by the JSON types its values have."""
    kinds = {t for t in (types or []) if t != "NULL"}
    path = _lit("$." + json.dumps(key))
    if kinds and kinds <= {"BIGINT", "UBIGINT"}:
        expr = f"TRY_CAST(json_extract(m.meta, {path}) AS BIGINT)"
    elif kinds and kinds <= {"BIGINT", "UBIGINT", "DOUBLE"}:
        expr = f"TRY_CAST(json_extract(m.meta, {path}) AS DOUBLE)"
    elif kinds == {"BOOLEAN"}:
        expr = f"TRY_CAST(json_extract(m.meta, {path}) AS BOOLEAN)"
    else:
        expr = f"json_extract_string(m.meta, {path})"
    return f"{expr} AS {_ident('meta.' + key)}"


def _dotted(fullkey: str) -> str:
    """``$.model."a.b"`` -> ``model.a.b`` (the column name's tail)."""
    body = fullkey[2:] if fullkey.startswith("$.") else fullkey.lstrip("$")
    return body.replace('"', "")


class QuerySession:
    """A read-only, sandboxed connection to a state file with the built-in views.

    Use :meth:`open`; close it (or use it as a context manager).
    """

    def __init__(self, con: Any, path: Path, timeout_s: float | None) -> None:
        self._con = con
        self.path = path
        self.timeout_s = timeout_s
        self._views: dict[str, list[tuple[str, str]]] | None = None
        #: The views created so far (each is created when a statement first names it).
        self._made: set[str] = set()
        self._metric_names: list[str] = []
        self._param_columns: list[str] = []
        self._spec_has: frozenset[str] = frozenset(SPEC_PROBES)
        self._meta_keys: list[str] = []
        self.memory_limit = DEFAULT_MEMORY_LIMIT
        self.memory_limit_bytes = 0

    # -- opening ---------------------------------------------------------------------------

    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str],
        *,
        memory_limit: str = DEFAULT_MEMORY_LIMIT,
        timeout_s: float | None = DEFAULT_TIMEOUT_S,
        threads: int | None = None,
        reader_wait_s: float | None = None,
    ) -> QuerySession:
        """Open ``path`` read-only with the views. ``memory_limit`` is a DuckDB size
        (``500MB``, ``2GiB``), checked first: a bad one is a QueryError naming the option, not
        a damaged state. While a writer holds the file for a moment (an apply recording its
        submissions, a small local refresh) the open is retried for ``reader_wait_s``
        seconds (default :func:`hpcx.state.lock.reader_wait_s`, ``$HPCX_READER_WAIT``, 5 s)."""
        from hpcx.state.engine import duckdb
        from hpcx.state.lock import reader_wait_s as default_wait
        from hpcx.state.lock import retry_while_locked

        # A plain size (2GB, 512MiB) is one DuckDB takes: its bytes are read from the session
        # itself below, sparing an extra in-memory DuckDB. Any other text is checked first.
        plain_limit = _PLAIN_SIZE.fullmatch(str(memory_limit)) is not None
        limit_bytes = 0 if plain_limit else memory_limit_bytes(memory_limit)
        if timeout_s is not None and not (math.isfinite(timeout_s) and timeout_s >= 0):
            raise QueryError(
                f"--timeout must be a number of seconds (0: none), not {timeout_s:g}",
                hint="e.g. --timeout 60",
            )
        p = Path(path)
        if not p.exists():
            raise _no_state(p)
        if p.is_dir() or p.stat().st_size == 0:
            from hpcx.state.backup import restore_hint  # only for the error (~5 ms of imports)

            if p.is_dir():
                raise StateError(
                    f"state path {p} is a directory, not a state file", hint=restore_hint(p)
                )
            raise StateError(f"{p} is empty: not a DuckDB state file", hint=restore_hint(p))
        config: dict[str, Any] = {
            "enable_external_access": False,
            "autoinstall_known_extensions": False,
            "autoload_known_extensions": False,
            "allow_community_extensions": False,
            "memory_limit": memory_limit,
            # Spilling writes temporary files: a query that needs more than the limit fails.
            "temp_directory": "",
        }
        if threads is not None:
            config["threads"] = threads
        from hpcx.state.engine import Engine

        if Engine.holds(p):
            # A connection of its own to a file a store of this process has open would fail,
            # and on its way drop the process's lock on the file.
            raise StateError(
                f"state {p} is open in this process already (a StateStore)",
                hint="close the store before a query session opens the state",
            )

        def connect() -> Any:
            try:
                return duckdb.connect(str(p), read_only=True, config=config)
            except duckdb.Error as exc:
                from hpcx.state.store import _translate_error

                raise _translate_error(exc, p) from None

        wait = default_wait() if reader_wait_s is None else reader_wait_s
        con = retry_while_locked(connect, wait)
        session = cls(con, p, timeout_s)
        session.memory_limit = memory_limit
        session.memory_limit_bytes = limit_bytes
        if plain_limit:
            try:
                session.memory_limit_bytes = _setting_bytes(con)
            except BaseException:
                con.close()
                raise
        try:
            session._check_schema()
            # stdout is the command's data (CSV, JSON, a table): DuckDB's progress bar for a
            # long query must never be drawn into it.
            con.execute("SET enable_progress_bar = false")
            con.execute("SET lock_configuration = true")
        except duckdb.Error as exc:
            con.close()
            from hpcx.state.store import _translate_error

            raise _translate_error(exc, p) from None
        except BaseException:
            con.close()
            raise
        return session

    def close(self) -> None:
        if self._con is not None:
            self._con.close()
            self._con = None

    def __enter__(self) -> QuerySession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- views -----------------------------------------------------------------------------

    @property
    def param_columns(self) -> list[str]:
        """The runs view's ``params.*`` columns, in spec order."""
        self._ensure_views(("runs",))
        return self._param_columns

    @property
    def spec_has(self) -> frozenset[str]:
        """The :data:`SPEC_PROBES` that some run's spec has (a JSON null counts as having)."""
        self._ensure_views(("runs",))
        return self._spec_has

    @property
    def meta_keys(self) -> list[str]:
        """The keys of the runs' metadata (``meta.<key>`` columns of the runs view)."""
        self._ensure_views(("runs",))
        return self._meta_keys

    @property
    def metric_names(self) -> list[str]:
        """Every metric's name (a column of the results view each), sorted."""
        self._ensure_views(("results",))
        return self._metric_names

    def _check_schema(self) -> None:
        from hpcx.state.schema import SCHEMA_VERSION  # not hpcx.state.store: ~20 ms of imports

        con = self._con
        self._db = str(con.execute("SELECT current_database()").fetchone()[0])
        tables = {
            r[0]
            for r in con.execute(
                "SELECT table_name FROM duckdb_tables() WHERE database_name = ?", [self._db]
            ).fetchall()
        }
        if not tables:
            # A DuckDB file whose creation never committed: no state yet (what
            # hpcx.state.files.is_uncreated says, asked here without opening the file again).
            raise _no_state(self.path)
        if "schema_version" not in tables:
            raise StateError(
                f"{self.path} is not an hpcx state (no schema_version table)",
                hint="point --state (or HPCX_STATE) at an hpcx state",
            )
        version = con.execute(f"SELECT max(version) FROM {self._t('schema_version')}").fetchone()[0]
        if version is None or int(version) != SCHEMA_VERSION:
            from hpcx.state.backup import restore_hint

            raise StateError(
                f"state {self.path} has schema v{version}; this hpcx reads v{SCHEMA_VERSION}",
                hint="run a writing command (hpcx state upgrade) once to migrate it"
                if version is not None and int(version) < SCHEMA_VERSION
                else "upgrade hpcx, or " + restore_hint(self.path),
            )

    def _t(self, table: str) -> str:
        # The temp views shadow the tables' names: name the file's tables with their database.
        return f"{_ident(self._db)}.main.{_ident(table)}"

    def _leaves(self) -> dict[str, list[tuple[str, str]]]:
        """Per flattened section: (json path, SQL type) of every leaf of ``spec.<section>``
        across all runs. One pass over the runs for all the sections (each spec parsed once),
        which also notes which :data:`SPEC_PROBES` any run has (:attr:`spec_has`)."""
        k = len(_FLATTENED)
        paths = ", ".join(_lit(p) for p in [*(f"$.{s}" for s in _FLATTENED), *SPEC_PROBES])
        has = ", ".join(f"bool_or(docs[{k + 1 + i}] IS NOT NULL)" for i in range(len(SPEC_PROBES)))
        rows = self._con.execute(
            f"""WITH x AS MATERIALIZED (
                SELECT json_extract(spec, [{paths}]) AS docs FROM {self._t("runs")}
            ),
            d AS (SELECT DISTINCT docs[1:{k}] AS docs FROM x),
            f AS (SELECT [{has}] AS has FROM x),
            s AS (SELECT i, docs[i] AS doc FROM d, range(1, {k + 1}) r(i)),
            l AS (
              SELECT s.i, t.fullkey, list(DISTINCT t.type) AS types, min(t.id) AS first
              FROM s, json_tree(s.doc) t
              WHERE t.type <> 'OBJECT' AND t.fullkey <> '$'
                AND NOT regexp_matches(t.fullkey, '\\[[0-9]+\\]')
              GROUP BY s.i, t.fullkey
            )
            SELECT l.i, l.fullkey, l.types, f.has FROM f LEFT JOIN l ON true
            ORDER BY l.i, l.first, l.fullkey"""
        ).fetchall()
        out: dict[str, list[tuple[str, str]]] = {section: [] for section in _FLATTENED}
        for i, path, types, flags in rows:
            self._spec_has = frozenset(p for p, f in zip(SPEC_PROBES, flags, strict=True) if f)
            if i is not None:
                out[_FLATTENED[i - 1]].append((path, _column_type(set(types))))
        return out

    def _ensure_views(self, names: Iterable[str]) -> None:
        """Create the views of ``names`` (and those they are built on) not created yet.

        A view costs what it reads: ``runs`` parses every run's spec for its leaves and types
        the metadata, ``results`` lists the metric names. A statement gets only the views it
        names (:func:`views_named`), so ``SELECT ... FROM metrics`` pays for none of that."""
        wanted = set(names)
        for name in VIEW_NAMES:
            if name not in wanted or name in self._made:
                continue
            self._ensure_views(_VIEW_NEEDS.get(name, ()))
            from hpcx.state.engine import duckdb

            try:
                getattr(self, "_view_" + name)(self._con, self._t)
            except duckdb.Error as exc:
                if _out_of_memory(str(exc)):
                    # Not damage: the limit this session was given.
                    first = str(exc).strip().splitlines()[0]
                    raise QueryError(
                        f"building the {name} view: {first}", hint=_MEMORY_HINT
                    ) from None
                from hpcx.state.store import _translate_error

                raise _translate_error(exc, self.path) from None
            self._made.add(name)

    def _view_runs(self, con: Any, t: Any) -> None:
        # -- runs: one row per run, every spec leaf a column --------------------------------
        self._param_columns = []
        flat: list[str] = []
        seen: set[str] = set()
        leaves = self._leaves()
        # Every leaf of every section comes from one extraction with the list of their paths:
        # the spec is parsed once per run, not once per section or per leaf (a report reads
        # every parameter). Leaves of JSON type are extracted as JSON; the others as text,
        # cast to their type (as fast as a cast can be: no JSON value parsed again).
        texts: list[str] = []
        docs: list[str] = []
        for section in _FLATTENED:
            for path, typ in leaves[section]:
                name = f"{section}.{_dotted(path)}"
                if name in seen:
                    continue
                seen.add(name)
                full = f"$.{section}{path[1:]}"
                if typ == "JSON":
                    docs.append(full)
                    expr = f"r._docs[{len(docs)}]"
                else:
                    texts.append(full)
                    value = f"r._texts[{len(texts)}]"
                    expr = value if typ == "VARCHAR" else f"TRY_CAST({value} AS {typ})"
                flat.append(f"{expr} AS {_ident(name)}")
                if section == "params":
                    self._param_columns.append(name)
        lists: list[str] = []
        if texts:
            lists.append(f"json_extract_string(spec, [{', '.join(map(_lit, texts))}]) AS _texts")
        if docs:
            lists.append(f"json_extract(spec, [{', '.join(map(_lit, docs))}]) AS _docs")
        # A meta key whose every value is a number (or a boolean) is a column of that type:
        # as text, max() would compare '9.5' > '20.1' and `> 0.6` would be a type error.
        meta_keys = con.execute(
            f"SELECT key, list(DISTINCT json_type(value)) FROM {t('run_meta')} "
            "GROUP BY key ORDER BY 1"
        ).fetchall()
        self._meta_keys = [k for k, _ in meta_keys]
        meta_cols = [_meta_column(k, types) for k, types in meta_keys]
        flat_sql = "".join(f",\n  {c}" for c in flat + meta_cols)
        con.execute(
            f"""CREATE OR REPLACE TEMP VIEW runs AS
            WITH m AS (
                SELECT run_id, json_group_object(key, value) AS meta
                FROM {t("run_meta")} GROUP BY run_id
            )
            SELECT
              r.run_id, r.experiment, r.status,
              json_extract_string(r.spec, '$.workload') AS workload,
              coalesce(json_extract_string(m.meta, '$.description'),
                       json_extract_string(r.spec, '$.extra.description')) AS description,
              TRY_CAST(json_extract(r.spec, '$.seed') AS BIGINT) AS seed,
              TRY_CAST(json_extract(r.spec, '$.repeat') AS BIGINT) AS "repeat",
              TRY_CAST(json_extract(r.spec, '$.index') AS BIGINT) AS "index",
              -- a trial of an adaptive search (extra.search); NULL for any other run
              TRY_CAST(json_extract(r.spec, '$.extra.search.trial') AS INTEGER) AS trial,
              json_extract_string(r.spec, '$.extra.search.sampler') AS sampler,
              json_extract_string(r.spec, '$.extra.search.key') AS search,
              CAST(json_extract(r.spec, '$.tags') AS VARCHAR[]) AS tags{flat_sql},
              json_extract(r.spec, '$.params') AS params,
              json_extract(r.spec, '$.placement') AS placement,
              r.host, r.numa_node, r.gpus, r.job_id, r.executor,
              coalesce(json_extract_string(m.meta, '$.git_commit'),
                       json_extract_string(m.meta, '$.git.commit'),
                       json_extract_string(r.spec, '$.extra.git_commit')) AS git_commit,
              r.created_at, r.updated_at, r.started_at, r.ended_at,
              epoch(r.ended_at) - epoch(r.started_at) AS duration_s,
              r.attempts, r.exit_code, r.end_reason,
              r.run_dir, r.source, r.base_id, r.code_hash, r.settings_digest,
              json_extract(r.spec, '$.command') AS command,
              r.spec
            FROM (SELECT *{"".join(", " + x for x in lists)} FROM {t("runs")}) r
            LEFT JOIN m USING (run_id)"""
        )

    def _view_metrics(self, con: Any, t: Any) -> None:
        # -- metrics: long form --------------------------------------------------------------
        con.execute(
            f"""CREATE OR REPLACE TEMP VIEW metrics AS
            SELECT m.run_id, r.experiment, m.name, m.step, m.value, m.time,
                   make_timestamp(CAST(m.time * 1e6 AS BIGINT)) AS "at", m.serial, m.attempt
            FROM {t("metrics")} m LEFT JOIN {t("runs")} r USING (run_id)"""
        )

    def _view_results(self, con: Any, t: Any) -> None:
        # -- results: runs + the final (last step) value of each metric ----------------------
        self._metric_names = [
            r[0]
            for r in con.execute(f"SELECT DISTINCT name FROM {t('metrics')} ORDER BY 1").fetchall()
        ]
        run_cols = {c for c, _ in self._describe("runs")}
        metric_cols = []
        for name in self._metric_names:
            col = name if name not in run_cols else f"metric.{name}"
            metric_cols.append(
                f"arg_max(f.value, f.ord) FILTER (WHERE f.name = {_lit(name)}) AS {_ident(col)}"
            )
        pivot = "".join(f",\n  {c}" for c in metric_cols)
        con.execute(
            f"""CREATE OR REPLACE TEMP VIEW results AS
            WITH c AS (
                -- the first attempt of each run's latest try: its latest attempt and the
                -- requeued ones right before it (a checkpointed run resumed is one try)
                SELECT run_id, min(attempt) AS first FROM (
                    SELECT run_id, attempt, sum(CASE WHEN state = 'requeued' OR attempt = top
                                                THEN 0 ELSE 1 END)
                           OVER (PARTITION BY run_id ORDER BY attempt DESC) AS breaks
                    FROM (SELECT *, max(attempt) OVER (PARTITION BY run_id) AS top
                          FROM {t("attempts")})
                ) WHERE breaks = 0 GROUP BY run_id
            ), top AS (
                -- each run's latest attempt among its metrics (a GROUP BY, not a window
                -- over every metric row: the same value, a hash table instead of a sort)
                SELECT run_id, max(coalesce(attempt, -1)) AS top
                FROM {t("metrics")} GROUP BY run_id
            ), f AS (
                SELECT m.run_id, m.name, m.value,
                       -- last step wins; then the latest time, then the latest ingest
                       (coalesce(m.step, -9223372036854775807), coalesce(m.time, 0), m.serial)
                       AS ord
                FROM {t("metrics")} m JOIN top USING (run_id) LEFT JOIN c USING (run_id)
                -- only the run's latest try: a rerun replaces the earlier try's values
                -- instead of mixing with them (NULL: an earlier attempt from before attempts
                -- were recorded)
                WHERE coalesce(m.attempt, -1) = top.top OR m.attempt >= c.first
            ), p AS (
                SELECT f.run_id{pivot} FROM f GROUP BY f.run_id
            )
            SELECT r.* EXCLUDE (spec, params, placement, command), p.* EXCLUDE (run_id)
            FROM runs r LEFT JOIN p USING (run_id)"""
            if metric_cols
            else """CREATE OR REPLACE TEMP VIEW results AS
            SELECT * EXCLUDE (spec, params, placement, command) FROM runs"""
        )

    def _view_attempts(self, con: Any, t: Any) -> None:
        con.execute(
            f"""CREATE OR REPLACE TEMP VIEW attempts AS
            SELECT a.run_id, r.experiment, a.attempt, a.state, a.reason, a.requeue_reason,
                   a.job_id, a.host, a.started_at, a.ended_at,
                   epoch(a.ended_at) - epoch(a.started_at) AS duration_s, a.exit_code, a.serial
            FROM {t("attempts")} a LEFT JOIN {t("runs")} r USING (run_id)"""
        )

    def _view_events(self, con: Any, t: Any) -> None:
        con.execute(
            f"""CREATE OR REPLACE TEMP VIEW events AS
            SELECT e.serial, e.seq, e.run_id, r.experiment, e."at", e.event,
                   e.from_status, e.to_status, e.detail
            FROM {t("run_events")} e LEFT JOIN {t("runs")} r USING (run_id)"""
        )

    def _view_probes(self, con: Any, t: Any) -> None:
        con.execute(
            f"""CREATE OR REPLACE TEMP VIEW probes AS
            SELECT id AS probe_id, host, "at",
                   json_extract_string(report, '$.source') AS source,
                   json_extract_string(report, '$.hpcx_version') AS hpcx_version,
                   json_array_length(json_extract(report, '$.gpus')) AS gpu_count,
                   json_array_length(json_extract(report, '$.topology.nodes')) AS numa_nodes,
                   TRY_CAST(json_extract(report, '$.duration_s') AS DOUBLE) AS duration_s,
                   report, serial
            FROM {t("probes")}"""
        )

    def _view_probe_gpus(self, con: Any, t: Any) -> None:
        con.execute(
            f"""CREATE OR REPLACE TEMP VIEW probe_gpus AS
            SELECT p.id AS probe_id, p.host, p."at",
                   TRY_CAST(json_extract(g.value, '$.index') AS INTEGER) AS gpu,
                   json_extract_string(g.value, '$.name') AS name,
                   json_extract_string(g.value, '$.bdf') AS bdf,
                   TRY_CAST(json_extract(g.value, '$.numa_node') AS INTEGER) AS numa_node,
                   TRY_CAST(json_extract(g.value, '$.total_memory') AS BIGINT) AS total_memory,
                   g.value AS gpu_report
            FROM {t("probes")} p, json_each(json_extract(p.report, '$.gpus')) g"""
        )

    def _view_submissions(self, con: Any, t: Any) -> None:
        con.execute(
            f"""CREATE OR REPLACE TEMP VIEW submissions AS
            SELECT key, executor, state, created_at, updated_at, job_ids, run_ids, detail, serial
            FROM {t("submissions")}"""
        )

    @property
    def views(self) -> dict[str, list[tuple[str, str]]]:
        """Each view's columns (name, type), in ``--list`` order: asked of DuckDB the first
        time they are needed (``--list``, export, report, an error's hint), not at every open."""
        if self._views is None:
            self._ensure_views(VIEW_NAMES)
            self._views = {name: self._describe(name) for name in VIEW_NAMES}
        return self._views

    def _describe(self, view: str) -> list[tuple[str, str]]:
        rows = self._con.execute(f"DESCRIBE {_ident(view)}").fetchall()
        return [(r[0], r[1]) for r in rows]

    # -- running ---------------------------------------------------------------------------

    def _check_statements(self, sql: str) -> None:
        from hpcx.state.engine import duckdb

        try:
            statements = self._con.extract_statements(sql)
        except duckdb.Error as exc:
            raise self._error(exc, sql) from None
        if not statements:
            raise QueryError("empty query", hint='try: hpcx query "SELECT * FROM runs LIMIT 10"')
        for st in statements:
            kind = str(st.type).rsplit(".", 1)[-1]
            if kind not in _ALLOWED_STATEMENTS:
                raise QueryError(
                    f"hpcx query is read-only: {kind} statements are refused",
                    hint="only SELECT (WITH, FROM, DESCRIBE, SHOW, SUMMARIZE, EXPLAIN) runs here; "
                    "the state changes through hpcx apply / refresh, and files are written with "
                    "-o FILE or hpcx export",
                )

    def query(self, sql: str, params: Sequence[Any] | None = None) -> QueryResult:
        """Run ``sql`` (SELECT-like statements only; the last one's rows are returned)."""
        from hpcx.state.engine import duckdb

        self._check_statements(sql)
        self._ensure_views(views_named(sql))
        timer: threading.Timer | None = None
        fired = threading.Event()
        if self.timeout_s is not None and self.timeout_s > 0:

            def interrupt() -> None:
                fired.set()
                self._con.interrupt()

            timer = threading.Timer(self.timeout_s, interrupt)
            timer.daemon = True
            timer.start()
        try:
            cur = self._con.execute(sql, params) if params is not None else self._con.execute(sql)
            desc = cur.description or []
            rows = cur.fetchall() if desc else []
        except duckdb.Error as exc:
            if fired.is_set():
                raise QueryError(
                    f"query stopped after the time limit of {self.timeout_s:g} s",
                    hint="narrow it (WHERE, LIMIT) or raise --timeout",
                ) from None
            raise self._error(exc, sql) from None
        except KeyboardInterrupt:
            self._con.interrupt()
            raise
        finally:
            if timer is not None:
                timer.cancel()
        return QueryResult(
            columns=[d[0] for d in desc], types=[str(d[1]) for d in desc], rows=list(rows)
        )

    def stream(self, sql: str, *, batch_rows: int = STREAM_BATCH_ROWS) -> RowStream:
        """Run ``sql`` and hand its rows out in batches, under the session's limits.

        The time limit covers the whole iteration, the caller's writing included: a timer
        interrupts DuckDB while it computes, and each batch checks the clock, so a result
        that is cheap to compute but slow to write (20 million rows as CSV) stops too. Rows
        are fetched ``batch_rows`` at a time (DuckDB streams them), so what the command holds
        is one batch, not the result.
        """
        self._check_statements(sql)
        self._ensure_views(views_named(sql))
        start = time.monotonic()
        deadline = start + self.timeout_s if self.timeout_s else None
        fired = threading.Event()
        timer: threading.Timer | None = None
        if deadline is not None:

            def interrupt() -> None:
                fired.set()
                self._con.interrupt()

            timer = threading.Timer(max(0.0, deadline - time.monotonic()), interrupt)
            timer.daemon = True
            timer.start()
        try:
            cur = self._con.execute(sql)
        except BaseException as exc:
            if timer is not None:
                timer.cancel()
            raise self._stream_error(exc, sql, fired) from None
        desc = cur.description or []
        return RowStream(
            columns=[d[0] for d in desc],
            types=[str(d[1]) for d in desc],
            batches=self._batches(cur, bool(desc), batch_rows, deadline, fired, timer, sql),
            timeout_s=self.timeout_s,
        )

    def _batches(
        self,
        cur: Any,
        has_rows: bool,
        batch_rows: int,
        deadline: float | None,
        fired: threading.Event,
        timer: threading.Timer | None,
        sql: str,
    ) -> Iterator[list[tuple[Any, ...]]]:
        try:
            while has_rows:
                if fired.is_set() or (deadline is not None and time.monotonic() > deadline):
                    raise self._time_error()
                try:
                    batch = cur.fetchmany(batch_rows)
                except BaseException as exc:
                    raise self._stream_error(exc, sql, fired) from None
                if not batch:
                    return
                yield batch
        finally:
            if timer is not None:
                timer.cancel()

    def _time_error(self) -> QueryError:
        return QueryError(
            f"query stopped after the time limit of {self.timeout_s:g} s "
            "(writing its output included)",
            hint="narrow it (WHERE, LIMIT) or raise --timeout",
        )

    def _stream_error(self, exc: BaseException, sql: str, fired: threading.Event) -> BaseException:
        from hpcx.state.engine import duckdb

        if isinstance(exc, KeyboardInterrupt):
            self._con.interrupt()
            return exc
        if not isinstance(exc, duckdb.Error):
            return exc
        if fired.is_set():
            return self._time_error()
        return self._error(exc, sql)

    def _error(self, exc: Exception, sql: str) -> QueryError:
        msg = str(exc).strip()
        if _out_of_memory(msg):
            return QueryError(msg, hint=_MEMORY_HINT)
        try:
            views = self.views
        except HpcxError:
            # Building every view for the hint failed (the memory limit): the statement's own
            # error stays the one reported, hinted from the views made so far.
            views = self._made_views()
        return QueryError(msg, hint=_hint_for(msg, sql, views))

    def _made_views(self) -> dict[str, list[tuple[str, str]]]:
        from hpcx.state.engine import duckdb

        try:
            return {name: self._describe(name) for name in VIEW_NAMES if name in self._made}
        except duckdb.Error:
            return {}


@dataclass(slots=True)
class RowStream:
    """A query's columns and its rows in batches (see :meth:`QuerySession.stream`); ``rows``
    counts the rows handed out so far."""

    columns: list[str]
    types: list[str]
    batches: Iterator[list[tuple[Any, ...]]]
    timeout_s: float | None = None
    rows: int = 0

    def __iter__(self) -> Iterator[tuple[Any, ...]]:
        for batch in self.batches:
            self.rows += len(batch)
            yield from batch

    @classmethod
    def of(cls, result: QueryResult) -> RowStream:
        return cls(result.columns, result.types, iter([result.rows]))


_SIZE_UNITS = {
    "bytes": 1,
    "b": 1,
    "kib": 1 << 10,
    "mib": 1 << 20,
    "gib": 1 << 30,
    "tib": 1 << 40,
    "pib": 1 << 50,
    "kb": 10**3,
    "mb": 10**6,
    "gb": 10**9,
    "tb": 10**12,
}


def memory_limit_bytes(limit: str) -> int:
    """The bytes a ``--memory-limit`` value stands for, as DuckDB reads it (``500MB``,
    ``2GiB``, ``50%`` of the machine). A value DuckDB refuses, or a negative one (which DuckDB
    would take as no limit), is a QueryError naming the option."""
    from hpcx.state.engine import duckdb

    text = str(limit).strip()

    def bad(detail: str = "") -> QueryError:
        return QueryError(
            f"--memory-limit {limit!r} is not a size" + (f": {detail}" if detail else ""),
            hint="a size such as 500MB, 2GB or 1GiB (1000^i: KB, MB, GB, TB; 1024^i: KiB, "
            "MiB, GiB, TiB), or a share of the machine's memory such as 50%",
        )

    if not text or text.startswith("-"):
        raise bad()
    try:
        con = duckdb.connect(":memory:", config={"memory_limit": text})
    except duckdb.Error as exc:
        raise bad(str(exc).splitlines()[0]) from None
    try:
        return _setting_bytes(con)
    finally:
        con.close()


#: ``--memory-limit`` values DuckDB takes as they are (checked against DuckDB by a test).
_PLAIN_SIZE = re.compile(r"[1-9][0-9]{0,5}(?:GB|TB|GiB|TiB)|[1-9][0-9]{2,5}(?:MB|MiB)")


def _setting_bytes(con: Any) -> int:
    """The bytes of the connection's memory limit, as DuckDB shows it."""
    row = con.execute("SELECT current_setting('memory_limit')").fetchone()
    shown = str(row[0]) if row else ""
    m = re.fullmatch(r"([0-9.]+)\s*([A-Za-z]+)", shown.strip())
    if not m or m.group(2).lower() not in _SIZE_UNITS:
        return 0  # a form DuckDB prints that we do not know: leave it to DuckDB alone
    return int(float(m.group(1)) * _SIZE_UNITS[m.group(2).lower()])


def _hint_for(msg: str, sql: str, views: dict[str, list[tuple[str, str]]]) -> str:
    names = list(views)
    m = re.search(r"Table with name (\S+) does not exist", msg)
    if m:
        missing = m.group(1).strip('"')
        close = difflib.get_close_matches(missing.lower(), names, n=1, cutoff=0.5)
        if close:
            return f"did you mean view {close[0]}? (hpcx query --list shows every view)"
        return "the views are: " + ", ".join(names) + " (hpcx query --list shows their columns)"
    cols = sorted({c for v in views.values() for c, _ in v})
    m = re.search(r'Referenced table "([^"]+)" not found', msg)
    if m:
        # SELECT params.model.depth: DuckDB read "params.model" as a table; the user meant
        # the dotted column, which needs double quotes.
        dotted = re.search(re.escape(m.group(1)) + r"\.[\w.]+", sql)
        wanted = dotted.group(0) if dotted else m.group(1)
        close = difflib.get_close_matches(wanted, cols, n=1, cutoff=0.6)
        name = close[0] if close else wanted
        return f'dotted column names need double quotes: SELECT "{name}" FROM runs'
    m = re.search(r'column "?([^"\s]+)"? not found', msg, re.IGNORECASE) or re.search(
        r'does not have a column named "([^"]+)"', msg
    )
    if m or "Referenced column" in msg:
        return _column_hint(m.group(1) if m else "", sql, views)
    if "Permission Error" in msg or "file system operations are disabled" in msg:
        return "hpcx query reads the state and nothing else; write results with -o FILE"
    if "lock" in msg.lower() and "configuration" in msg.lower():
        return "settings are fixed for the session; use --memory-limit / --timeout"
    if "syntax error" in msg.lower() or "Parser Error" in msg:
        return 'check the SQL; e.g. hpcx query "SELECT status, count(*) FROM runs GROUP BY 1"'
    return "hpcx query --list shows the views and their columns"


def _column_hint(missing: str, sql: str, views: dict[str, list[tuple[str, str]]]) -> str:
    """A did-you-mean over the columns of the views the query reads (all views when it names
    none). The dotted-name advice only where it applies: the name is the tail of a dotted
    column (``depth`` for ``params.model.depth``), which must be written quoted."""
    named = [v for v in views if re.search(rf"\b{re.escape(v)}\b", sql, re.IGNORECASE)]
    scope = named or list(views)
    cols = list(dict.fromkeys(c for v in scope for c, _ in views[v]))
    where = " or ".join(scope) if len(scope) <= 3 else "the views"
    listing = f"hpcx query --list shows the columns of {where}"
    if not missing:
        return listing
    dotted = [c for c in cols if "." in c and c.lower().endswith("." + missing.lower())]
    if dotted:
        return f'dotted column names need double quotes: SELECT "{dotted[0]}" FROM {scope[0]}' + (
            f" (or {', '.join(repr(d) for d in dotted[1:3])})" if len(dotted) > 1 else ""
        )
    lowered = {c.lower(): c for c in cols}
    close = difflib.get_close_matches(missing.lower(), list(lowered), n=3, cutoff=0.6)
    if close:
        options = ", ".join(f'"{lowered[c]}"' for c in close)
        quote = " (quoted, as it has dots)" if "." in lowered[close[0]] else ""
        return f"did you mean column {options}{quote}? {listing}"
    return f"no column {missing!r} in {where}; {listing}"


# -- writing results (outside the query connection) -----------------------------------------


def _cell(value: Any) -> Any:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, (list, dict)):
        return json.dumps(value, default=str)
    return value


def _rows(data: QueryResult | RowStream) -> Iterable[tuple[Any, ...]]:
    return data.rows if isinstance(data, QueryResult) else data


def write_csv(result: QueryResult | RowStream, fh: Any) -> None:
    """CSV with a header; NULL is an empty field, lists and structs are JSON."""
    w = csv.writer(fh, lineterminator="\n")
    w.writerow(result.columns)
    for row in _rows(result):
        w.writerow(["" if v is None else _cell(v) for v in row])


def write_csv_file(result: QueryResult | RowStream, path: Path) -> None:
    from hpcx.results.outputs import open_output

    with open_output(path) as fh:
        write_csv(result, fh)


def chmod_default(path: str) -> None:
    """mkstemp makes 0600 files; results are for sharing: the usual 0666 & ~umask."""
    mask = os.umask(0)
    os.umask(mask)
    os.chmod(path, 0o666 & ~mask)


def _unlink(path: str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)


_NUMERIC_TYPES = frozenset(
    {
        "TINYINT",
        "SMALLINT",
        "INTEGER",
        "BIGINT",
        "HUGEINT",
        "UTINYINT",
        "USMALLINT",
        "UINTEGER",
        "UBIGINT",
        "FLOAT",
        "DOUBLE",
        "DECIMAL",
    }
)


# Types the Parquet export writes as they are (DECIMAL goes as text, to keep its digits).
_PARQUET_TYPES = (_NUMERIC_TYPES - {"DECIMAL"}) | {
    "BOOLEAN",
    "DATE",
    "TIMESTAMP",
    "TIMESTAMP WITH TIME ZONE",
    "VARCHAR",
}


def check_parquet_columns(columns: Sequence[str]) -> None:
    """Parquet needs distinct column names (CSV and JSON do not): a repeated one is an error
    that names it, not a file whose second column silently replaces the first."""
    seen: dict[str, int] = {}
    for c in columns:
        seen[c] = seen.get(c, 0) + 1
    dup = [c for c, n in seen.items() if n > 1]
    if dup:
        raise QueryError(
            "Parquet needs distinct column names; the query has "
            + ", ".join(f"{c!r} {seen[c]} times" for c in dup),
            hint="give each column its own name with AS (SELECT a.x AS a_x, b.x AS b_x ...), "
            "or write CSV or JSON",
        )


def _csv_field(v: Any) -> str:
    """A field of the Parquet staging CSV: NULL is an empty *unquoted* field, every value is
    quoted, so a value that reads like a NULL marker (``\\N``, the empty string) stays a
    value (the CSV reader runs with ``allow_quoted_nulls=false``)."""
    if v is None:
        return ""
    return '"' + str(_cell(v)).replace('"', '""') + '"'


def write_parquet(
    result: QueryResult | RowStream,
    path: Path,
    *,
    memory_limit: str = DEFAULT_MEMORY_LIMIT,
    timeout_s: float | None = None,
) -> None:
    """Parquet through a separate in-memory DuckDB connection that reads a CSV hpcx wrote.

    The query connection never writes: the rows travel as CSV (types given explicitly, so
    nothing is guessed) to a fresh connection whose only statement is our own COPY. The rows
    stream into the CSV batch by batch; the COPY runs under the same memory limit and the
    time left of ``timeout_s`` (counted from here).
    """
    from hpcx.results.outputs import output_temp, resolve_output
    from hpcx.state.engine import duckdb

    check_parquet_columns(result.columns)
    start = time.monotonic()
    target = resolve_output(path)
    fd, csv_tmp = tempfile.mkstemp(prefix=".hpcx-export-", suffix=".csv", dir=target.parent)
    os.close(fd)
    try:
        with output_temp(path) as out_tmp:
            with open(csv_tmp, "w", newline="", encoding="utf-8") as fh:
                for row in _rows(result):
                    fh.write(",".join(_csv_field(v) for v in row) + "\n")
            types = [t if t in _PARQUET_TYPES else "VARCHAR" for t in result.types]
            cols = (
                "{"
                + ", ".join(
                    f"{_lit(c)}: {_lit(t)}" for c, t in zip(result.columns, types, strict=True)
                )
                + "}"
            )
            con = duckdb.connect(
                ":memory:", config={"memory_limit": memory_limit, "temp_directory": ""}
            )
            con.execute("SET enable_progress_bar = false")
            timer: threading.Timer | None = None
            fired = threading.Event()
            if timeout_s:

                def interrupt() -> None:
                    fired.set()
                    con.interrupt()

                left = max(0.0, timeout_s - (time.monotonic() - start))
                timer = threading.Timer(left, interrupt)
                timer.daemon = True
                timer.start()
            try:
                src = (
                    f"read_csv({_lit(csv_tmp)}, header=false, columns={cols}, "
                    "auto_detect=false, quote='\"', escape='\"', nullstr='', "
                    "allow_quoted_nulls=false)"
                    if result.columns
                    else "(SELECT 1 WHERE false)"
                )
                con.execute(f"COPY (SELECT * FROM {src}) TO {_lit(str(out_tmp))} (FORMAT parquet)")
            except duckdb.Error as exc:
                if fired.is_set():
                    raise QueryError(
                        f"writing the Parquet file stopped at the time limit of {timeout_s:g} s",
                        hint="narrow the query or raise --timeout; no file was written",
                    ) from None
                raise QueryError(
                    f"writing the Parquet file failed: {str(exc).splitlines()[0]}",
                    hint="no file was written",
                ) from None
            finally:
                if timer is not None:
                    timer.cancel()
                con.close()
            # DuckDB recreates the file it copies to: give it the mode every output gets.
            chmod_default(str(out_tmp))
    finally:
        _unlink(csv_tmp)


def write_json(result: QueryResult | RowStream, fh: Any) -> None:
    """A JSON list of objects, one row at a time (the same text as ``json.dumps(..., indent=2)``
    of the whole list)."""
    first = True
    for row in _rows(result):
        rec = {k: _json_value(v) for k, v in zip(result.columns, row, strict=True)}
        body = json.dumps(rec, indent=2, default=str).replace("\n", "\n  ")
        fh.write(("[\n  " if first else ",\n  ") + body)
        first = False
    fh.write("[]\n" if first else "\n]\n")


def _json_value(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, str) and v[:1] in "[{" and v[-1:] in "]}":
        try:
            return json.loads(v)
        except ValueError:
            return v
    if isinstance(v, (int, float, str, bool)) or v is None:
        return v
    if isinstance(v, (list, tuple)):
        return [_json_value(x) for x in v]
    if isinstance(v, dict):
        return {str(k): _json_value(x) for k, x in v.items()}
    return str(v)


def format_value(v: Any, *, digits: int = 6) -> str:
    """A cell as text for tables: NULL blank, floats to ``digits`` significant digits."""
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        if not math.isfinite(v):
            return str(v)
        return f"{v:.{digits}g}"
    if isinstance(v, (list, dict)):
        return json.dumps(v, default=str)
    return str(v)


#: What the table format counts per cell and per row it holds, beyond the characters: the
#: Python objects' overhead, so the estimate stays on the safe side of the real use.
_CELL_OVERHEAD = 56
_ROW_OVERHEAD = 72


def printable(text: str) -> str:
    from hpcx.util.termtext import printable as escape

    return escape(text)


def render_table(
    result: QueryResult | RowStream, *, max_width: int = 40, memory_bytes: int = 0
) -> str:
    """An aligned plain-text table (numbers right-aligned), with a row count line.

    Aligning needs every row first; with ``memory_bytes`` the cells held are counted and past
    that many bytes the table is refused (a QueryError that points to -f csv, which streams).
    """
    cells: list[list[str]] = []
    held = 0
    for values in _rows(result):
        # What a run wrote (names, meta) is shown with control characters escaped, never raw.
        texts = [_clip(printable(format_value(v)), max_width) for v in values]
        cells.append(texts)
        if memory_bytes:
            held += _ROW_OVERHEAD + sum(len(t) + _CELL_OVERHEAD for t in texts)
            if held > memory_bytes:
                raise QueryError(
                    f"the table format holds every row to align them, and past {len(cells):,} "
                    "rows it needs more than --memory-limit; stopped before printing anything",
                    hint="use -f csv, json or markdown (they stream rows out), narrow the "
                    "query (WHERE, LIMIT), or raise --memory-limit",
                )
    headers = [_clip(printable(c), max_width) for c in result.columns]
    widths = [len(h) for h in headers]
    for texts in cells:
        for i, c in enumerate(texts):
            widths[i] = max(widths[i], len(c))
    numeric = [_is_numeric_type(t) for t in result.types]

    def line(values: list[str]) -> str:
        parts = [
            v.rjust(widths[i]) if numeric[i] else v.ljust(widths[i]) for i, v in enumerate(values)
        ]
        return "  ".join(parts).rstrip()

    out = [line(headers), "  ".join("-" * w for w in widths)]
    out.extend(line(r) for r in cells)
    n = len(cells)
    out.append(f"({n} row{'s' if n != 1 else ''})")
    return "\n".join(out)


def markdown_cell(text: str) -> str:
    """Text made safe for a markdown table cell (or any one-line markdown): HTML is escaped
    (a renderer would run a ``<script>`` in a value), a pipe cannot end the cell, and a line
    break cannot end the row."""
    import html

    one_line = re.sub(r"[\r\n\u2028\u2029]+", " ", text)
    return html.escape(one_line, quote=False).replace("|", "\\|")


def render_markdown(result: QueryResult | RowStream) -> str:
    import io

    buf = io.StringIO()
    write_markdown(result, buf)
    return buf.getvalue().rstrip("\n")


def write_markdown(result: QueryResult | RowStream, fh: Any) -> None:
    """A pipe table, row by row; every cell through :func:`markdown_cell`."""
    numeric = [_is_numeric_type(t) for t in result.types]
    fh.write("| " + " | ".join(markdown_cell(c) for c in result.columns) + " |\n")
    fh.write("|" + "|".join("---:" if n else "---" for n in numeric) + "|\n")
    for row in _rows(result):
        fh.write("| " + " | ".join(markdown_cell(format_value(v)) for v in row) + " |\n")


def _clip(s: str, width: int) -> str:
    s = s.replace("\n", " ")
    return s if len(s) <= width else s[: width - 1] + "…"


def _is_numeric_type(t: str) -> bool:
    return t.split("(")[0] in _NUMERIC_TYPES


def check_selection(
    session: QuerySession,
    *,
    experiments: Sequence[str] = (),
    tags: Sequence[str] = (),
    statuses: Sequence[str] = (),
    experiment_option: str = "-e",
) -> None:
    """Refuse an experiment, tag or status that no run in the state has (export, report), in
    the session the caller reads the state with (a second open of a big state costs a scan of
    its files)."""
    if not (experiments or tags or statuses):
        return
    from hpcx.util.selection import Unmatched, known_list, raise_unmatched, unknown_names

    exps = {r[0] for r in session.query("SELECT DISTINCT experiment FROM runs").rows}
    have_tags = (
        {r[0] for r in session.query("SELECT DISTINCT unnest(tags) FROM runs").rows}
        if tags
        else set()
    )
    have_statuses = (
        {r[0] for r in session.query("SELECT DISTINCT status FROM runs").rows}
        if statuses
        else set()
    )
    unmatched = unknown_names(experiment_option, experiments, exps)
    unmatched += unknown_names("--tag", tags, have_tags, what="tag on any run")
    for st in dict.fromkeys(statuses):
        if st not in have_statuses:
            unmatched.append(Unmatched("--status", st, f"no run is {st}"))
    hint = (
        known_list(exps)
        if any(u.option == experiment_option for u in unmatched)
        else known_list(have_tags, "tags")
        if any(u.option == "--tag" for u in unmatched)
        else "`hpcx status` shows every run's status"
    )
    raise_unmatched(unmatched, hint=hint)
