"""``hpcx export``: the seed's results export, one row per run, as CSV or Parquet.

Columns, in order: ``run_id, experiment, description``, the parameter columns
(``params.*`` then ``placement.*``, flattened as in the ``runs`` view), the final value of each
metric, then ``status, git_commit, created_at, tags, host, job_id``. Parameter and metric
columns that are empty for every exported run (another experiment's) are left out.

The rows come from the read-only :class:`~hpcx.query.QuerySession`; the file is written by
Python (CSV) or by a separate in-memory connection (Parquet), to a temporary name first and
renamed into place, so a reader never sees half a file.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from hpcx.query import QueryError, QueryResult, QuerySession, write_csv_file, write_parquet

FORMATS = ("csv", "parquet")
_HEAD = ("run_id", "experiment", "description")
_TAIL = ("status", "git_commit", "created_at", "tags", "host", "job_id")


@dataclass(frozen=True, slots=True)
class ExportSummary:
    path: Path
    format: str
    rows: int
    columns: list[str]


def format_for(path: Path, explicit: str | None = None) -> str:
    fmt = (explicit or path.suffix.lstrip(".")).lower()
    if fmt == "pq":
        fmt = "parquet"
    if fmt not in FORMATS:
        raise QueryError(
            f"cannot tell the export format of {path.name}",
            hint="name the file .csv or .parquet, or pass --format csv|parquet",
        )
    return fmt


def select_runs(
    session: QuerySession,
    *,
    experiments: Sequence[str] = (),
    tags: Sequence[str] = (),
    statuses: Sequence[str] = (),
) -> QueryResult:
    """One row per matching run with the export's columns."""
    available = [c for c, _ in session.views["results"]]
    param_cols = [c for c in available if c.startswith(("params.", "placement."))]
    run_cols = {c for c, _ in session.views["runs"]}
    metric_cols = [c for c in available if c not in run_cols]
    where, args = [], []
    if experiments:
        where.append("experiment IN (SELECT unnest(?::VARCHAR[]))")
        args.append(list(experiments))
    if tags:
        # every tag given must be on the run
        where.append("list_has_all(coalesce(tags, []), ?::VARCHAR[])")
        args.append(list(tags))
    if statuses:
        where.append("status IN (SELECT unnest(?::VARCHAR[]))")
        args.append(list(statuses))
    wanted = list(_HEAD) + param_cols + metric_cols + list(_TAIL)
    select = ", ".join(
        "array_to_string(tags, ';') AS tags" if c == "tags" else _q(c) for c in wanted
    )
    sql = f"SELECT {select} FROM results"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += ' ORDER BY experiment, "index", run_id'
    result = session.query(sql, args)
    # Drop parameter and metric columns that no exported run has a value for.
    optional = set(param_cols) | set(metric_cols)
    keep = [
        i
        for i, c in enumerate(result.columns)
        if c not in optional or any(r[i] is not None for r in result.rows)
    ]
    if len(keep) == len(result.columns):
        return result
    return QueryResult(
        columns=[result.columns[i] for i in keep],
        types=[result.types[i] for i in keep],
        rows=[tuple(r[i] for i in keep) for r in result.rows],
    )


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def export_runs(
    state: Path,
    out: Path,
    *,
    fmt: str | None = None,
    experiments: Sequence[str] = (),
    tags: Sequence[str] = (),
    statuses: Sequence[str] = (),
) -> ExportSummary:
    kind = format_for(out, fmt)
    with QuerySession.open(state) as session:
        unknown = _unknown_experiments(session, experiments)
        if unknown:
            raise QueryError(
                f"no experiment named {', '.join(unknown)} in the state",
                hint='hpcx query "SELECT DISTINCT experiment FROM runs" lists them',
            )
        result = select_runs(session, experiments=experiments, tags=tags, statuses=statuses)
    if kind == "csv":
        write_csv_file(result, out)
    else:
        write_parquet(result, out)
    return ExportSummary(path=out, format=kind, rows=len(result.rows), columns=result.columns)


def _unknown_experiments(session: QuerySession, names: Sequence[str]) -> list[str]:
    if not names:
        return []
    have = {r[0] for r in session.query("SELECT DISTINCT experiment FROM runs").rows}
    return [n for n in names if n not in have]
