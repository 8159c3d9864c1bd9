"""The state file's schema in one place: its tables, every status set, and the migrations.

The store (:mod:`hpcx.state.store`) applies the migrations and writes through these tables;
the check (:mod:`hpcx.state.backup`) tests their invariants against the same status sets; the
planner and the commands take their status sets from here. Nothing here touches a file.
"""

from __future__ import annotations

from collections.abc import Iterable

#: Schema version this hpcx writes. A file with a newer one is refused; an older one is migrated.
SCHEMA_VERSION = 6

#: Every status a run can have (the runs table's CHECK constraint).
RUN_STATUSES = (
    "pending",
    "submitted",
    "running",
    "succeeded",
    "failed",
    "cancelled",
    "lost",
    "timeout",
    "pruned",
    "queued",
    "blocked",
)
#: Statuses of a run that is neither finished nor known to be gone.
IN_FLIGHT_STATUSES = ("pending", "submitted", "running")
#: Statuses of a run that ended with its run folder written (``lost`` left none to read).
#: ``pruned``: a search trial stopped early for falling behind the others (a finished trial,
#: never run again).
ENDED_STATUSES = ("succeeded", "failed", "cancelled", "timeout", "pruned")
#: Statuses a harvest never moves a run out of again.
FINAL_STATUSES = (*ENDED_STATUSES, "lost")
#: Statuses of a run that hpcx holds back, at no scheduler: ``queued`` waits for room under the
#: scheduler's limits (a refresh or ``apply --watch`` submits it as jobs finish); ``blocked``
#: waits for a run it needs that ended without success (it goes when that one is retried and
#: succeeds). Neither is final, neither has a job to poll.
HELD_STATUSES = ("queued", "blocked")
#: Statuses of a run that ended without a result and may be run again.
RETRYABLE_STATUSES = frozenset({"failed", "cancelled", "lost", "timeout"})
#: Columns of an attempt row (the ``attempts`` table, run_id and serial aside), in order.
ATTEMPT_FIELDS = (
    "attempt",
    "state",
    "reason",
    "requeue_reason",
    "job_id",
    "host",
    "started_at",
    "ended_at",
    "exit_code",
)
#: Every state of a submission: ``intent`` is recorded before the scheduler is called, and
#: ``ambiguous`` when its answer was unclear; a refresh reconciles both.
SUBMISSION_STATES = ("intent", "submitted", "failed", "ambiguous")


def sql_list(values: Iterable[str]) -> str:
    """``'a', 'b'``: a set of statuses as SQL literals, for ``IN (...)`` and CHECK clauses."""
    return ", ".join(f"'{v}'" for v in values)


_SUBMISSION_CHECK = sql_list(SUBMISSION_STATES)
# The statuses the runs table's CHECK allowed up to v3 (v4 added ``pruned``, v5 ``queued`` and
# ``blocked``): migration 1 must create the table it always created, and migration 4 the one
# it always created.
_V1_STATUSES = (
    "pending",
    "submitted",
    "running",
    "succeeded",
    "failed",
    "cancelled",
    "lost",
    "timeout",
)


def _runs_table(name: str, statuses: Iterable[str]) -> str:
    """The runs table's DDL, under ``name``, allowing ``statuses``."""
    return f"""CREATE TABLE {name} (
            run_id VARCHAR PRIMARY KEY,
            base_id VARCHAR NOT NULL,
            experiment VARCHAR NOT NULL,
            status VARCHAR NOT NULL CHECK (status IN ({sql_list(statuses)})),
            identity JSON,
            spec JSON,
            settings_digest VARCHAR,
            code_hash VARCHAR,
            source VARCHAR,
            overrides JSON,
            attempts INTEGER NOT NULL DEFAULT 0,
            executor VARCHAR,
            job_id VARCHAR,
            run_dir VARCHAR,
            submission_key VARCHAR,
            created_at TIMESTAMP NOT NULL,
            updated_at TIMESTAMP NOT NULL,
            started_at TIMESTAMP,
            ended_at TIMESTAMP,
            exit_code INTEGER,
            end_reason VARCHAR,
            host VARCHAR,
            numa_node INTEGER,
            gpus JSON
        )"""


def _run_meta_table(name: str, key: str = "") -> str:
    """run_meta: as v1 made it with ``key`` (its primary key), as v6 has it without."""
    return f"""CREATE TABLE {name} (
            run_id VARCHAR NOT NULL,
            key VARCHAR NOT NULL,
            value JSON,
            serial BIGINT NOT NULL{key}
        )"""


def _attempts_table(name: str, key: str = "") -> str:
    """attempts: as v3 made it with ``key`` (its primary key), as v6 has it without."""
    return f"""CREATE TABLE {name} (
            run_id VARCHAR NOT NULL,
            attempt INTEGER NOT NULL,
            state VARCHAR,
            reason VARCHAR,
            requeue_reason VARCHAR,
            job_id VARCHAR,
            host VARCHAR,
            started_at TIMESTAMP,
            ended_at TIMESTAMP,
            exit_code INTEGER,
            serial BIGINT NOT NULL{key}
        )"""


# Migration N takes a file from schema N-1 to N. Version 1 creates everything. Never edit a
# released migration: add the next one. Each runs inside one transaction with its version row.
MIGRATIONS: dict[int, list[str]] = {
    1: [
        """CREATE TABLE meta (
            lineage VARCHAR NOT NULL,
            serial BIGINT NOT NULL,
            schema_version INTEGER NOT NULL,
            created_at TIMESTAMP NOT NULL,
            hpcx_version VARCHAR
        )""",
        _runs_table("runs", _V1_STATUSES),
        """CREATE TABLE run_events (
            serial BIGINT NOT NULL,
            seq INTEGER NOT NULL,
            run_id VARCHAR NOT NULL,
            "at" TIMESTAMP NOT NULL,
            event VARCHAR NOT NULL,
            from_status VARCHAR,
            to_status VARCHAR,
            detail JSON,
            PRIMARY KEY (serial, seq)
        )""",
        f"""CREATE TABLE submissions (
            key VARCHAR PRIMARY KEY,
            executor VARCHAR NOT NULL,
            state VARCHAR NOT NULL CHECK (state IN ({_SUBMISSION_CHECK})),
            created_at TIMESTAMP NOT NULL,
            updated_at TIMESTAMP NOT NULL,
            job_ids JSON,
            run_ids JSON,
            detail JSON,
            serial BIGINT NOT NULL
        )""",
        """CREATE TABLE metrics (
            run_id VARCHAR NOT NULL,
            name VARCHAR NOT NULL,
            step BIGINT,
            value DOUBLE,
            time DOUBLE,
            serial BIGINT NOT NULL
        )""",
        _run_meta_table("run_meta", ",\n            PRIMARY KEY (run_id, key)"),
        """CREATE TABLE probes (
            id VARCHAR PRIMARY KEY,
            host VARCHAR,
            "at" TIMESTAMP NOT NULL,
            report JSON NOT NULL,
            serial BIGINT NOT NULL
        )""",
    ],
    # v2: each metric row says which attempt of its run wrote it. Without it a rerun's values
    # mixed with the earlier attempt's (same names and steps), and `hpcx show` could print the
    # old one. Rows already there: the run's latest ingest (one harvest per finished attempt)
    # gets the attempt that harvest recorded (run_meta 'attempt', else the run's attempt
    # count); rows from earlier ingests keep NULL: an earlier attempt whose number was never
    # recorded.
    2: [
        "ALTER TABLE metrics ADD COLUMN attempt INTEGER",
        """UPDATE metrics SET attempt = b.attempt
        FROM (
            SELECT m.run_id, max(m.serial) AS serial,
                   coalesce(any_value(TRY_CAST(rm.value::VARCHAR AS INTEGER)),
                            any_value(r.attempts)) AS attempt
            FROM metrics m
            LEFT JOIN run_meta rm ON rm.run_id = m.run_id AND rm.key = 'attempt'
            LEFT JOIN runs r ON r.run_id = m.run_id
            GROUP BY m.run_id
        ) b
        WHERE metrics.run_id = b.run_id AND metrics.serial = b.serial""",
    ],
    # v3: every attempt of a run, as its run folder recorded it: when and where it ran, how
    # it ended and why. An attempt that ended ``requeued`` (a checkpoint at the time limit, a
    # preemption) is followed by the next one of the same run; ``requeue_reason`` says which.
    # Runs harvested before v3 get their attempts when their folders are read again.
    3: [
        _attempts_table("attempts", ",\n            PRIMARY KEY (run_id, attempt)"),
    ],
    # v4: the ``pruned`` status (a search trial stopped early). DuckDB cannot alter a CHECK,
    # so the runs table is rebuilt under the new one, every row and column kept in order.
    4: [
        _runs_table("runs_v4", (*_V1_STATUSES, "pruned")),
        "INSERT INTO runs_v4 SELECT * FROM runs",
        "DROP TABLE runs",
        "ALTER TABLE runs_v4 RENAME TO runs",
    ],
    # v5: the held statuses (``queued``: waiting for room under the scheduler's limits;
    # ``blocked``: waiting for a run it needs), rebuilt as v4 was.
    5: [
        _runs_table("runs_v5", RUN_STATUSES),
        "INSERT INTO runs_v5 SELECT * FROM runs",
        "DROP TABLE runs",
        "ALTER TABLE runs_v5 RENAME TO runs",
    ],
    # v6: run_meta and attempts without their primary keys. Their writers keep each (run, key)
    # and (run, attempt) once themselves (a delete of the keys written, then the insert, in one
    # transaction; `hpcx state check` verifies it), and DuckDB's index made writing keys again
    # superlinear: 10k runs' 80k meta rows written again took 1.2 s (a commit of 0.8 s) with
    # it, 75 ms without; 100k attempt rows written again, a commit of 4.4 s against 0.14 s.
    6: [
        _run_meta_table("run_meta_v6"),
        "INSERT INTO run_meta_v6 SELECT * FROM run_meta",
        "DROP TABLE run_meta",
        "ALTER TABLE run_meta_v6 RENAME TO run_meta",
        _attempts_table("attempts_v6"),
        "INSERT INTO attempts_v6 SELECT * FROM attempts",
        "DROP TABLE attempts",
        "ALTER TABLE attempts_v6 RENAME TO attempts",
    ],
}


def _metrics_with_attempt(ddl: str) -> str:
    """Migration 1's metrics table with the ``attempt`` column migration 2 adds, last."""
    head, sep, tail = ddl.rpartition("serial BIGINT NOT NULL")
    assert sep, "migration 1's metrics table changed"
    return head + "serial BIGINT NOT NULL,\n            attempt INTEGER" + tail


#: What migrations 1 to SCHEMA_VERSION build in an empty file, made at once: the tables as
#: they end up, without v2's ALTER and v4's, v5's and v6's rebuilds (each a create, a copy, a
#: drop and a rename), a tenth of a new project's first apply.
#: tests/state/test_schema.py checks that both ways give the same tables, columns,
#: constraints and defaults: a migration added without updating this fails there.
FRESH_SCHEMA: list[str] = [
    *(
        _runs_table("runs", RUN_STATUSES)
        if stmt.lstrip().startswith("CREATE TABLE runs ")
        else _metrics_with_attempt(stmt)
        if stmt.lstrip().startswith("CREATE TABLE metrics ")
        else _run_meta_table("run_meta")
        if stmt.lstrip().startswith("CREATE TABLE run_meta ")
        else stmt
        for stmt in MIGRATIONS[1]
    ),
    _attempts_table("attempts"),
]
#: The version :data:`FRESH_SCHEMA` is (a file is created the migrations' way otherwise).
FRESH_SCHEMA_VERSION = 6

#: The table that says which migrations a file has had (created before any of them).
SCHEMA_VERSION_TABLE = (
    "CREATE TABLE schema_version (version INTEGER PRIMARY KEY, "
    "applied_at TIMESTAMP NOT NULL, hpcx_version VARCHAR)"
)

#: Every table a state file has (``hpcx state check`` reads each in full).
TABLES = frozenset(
    {
        "schema_version",
        "meta",
        "runs",
        "run_events",
        "submissions",
        "metrics",
        "run_meta",
        "probes",
        "attempts",
    }
)
#: Tables whose rows carry the serial of the transaction that wrote them.
SERIAL_TABLES = ("run_events", "metrics", "run_meta", "submissions", "probes", "attempts")

#: Run columns that :meth:`Transaction.set_status` may set besides ``status``.
SETTABLE_RUN_FIELDS = frozenset(
    {
        "executor",
        "job_id",
        "run_dir",
        "submission_key",
        "started_at",
        "ended_at",
        "exit_code",
        "end_reason",
        "host",
        "numa_node",
        "gpus",
        "attempts",
    }
)
