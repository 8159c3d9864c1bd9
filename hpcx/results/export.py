"""``hpcx export``: the seed's results export, one row per run, as CSV or Parquet; or the
same runs logged to MLflow through MLflow's own client (:func:`export_mlflow`).

Columns, in order: ``run_id, experiment, description, seed, repeat``, the parameter columns
(``params.*`` then ``placement.*``, flattened as in the ``runs`` view), the final value of each
metric, then ``status, git_commit, created_at, tags, notes, host, job_id``. Parameter and metric
columns that are empty for every exported run (another experiment's) are left out.

The rows come from the read-only :class:`~hpcx.results.query.QuerySession`; the file is written by
Python (CSV) or by a separate in-memory connection (Parquet), to a temporary name first and
renamed into place, so a reader never sees half a file.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hpcx.errors import QueryError
from hpcx.results.query import (
    QueryResult,
    QuerySession,
    check_selection,
    write_csv_file,
    write_parquet,
)

FORMATS = ("csv", "parquet")
# seed and repeat are part of a run's identity but not of its params: without them the runs of
# a seeds/repeats sweep exported as identical rows.
_HEAD = ("run_id", "experiment", "description", "seed", "repeat")
_TAIL = ("status", "git_commit", "created_at", "tags", "notes", "host", "job_id")


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
    # `hpcx note` keeps a run's notes in its metadata (a JSON list); the seed's CSV had a
    # notes column: the texts, joined. NULL where no run was ever noted.
    notes = '"meta.notes"' if "meta.notes" in available else "NULL"
    special = {"tags": "array_to_string(tags, ';') AS tags", "notes": f"{notes} AS notes"}
    select = ", ".join(special.get(c, _q(c)) for c in wanted)
    sql = f"SELECT {select} FROM results"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += ' ORDER BY experiment, "index", run_id'
    result = session.query(sql, args)
    result = _join_notes(result)
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


def _join_notes(result: QueryResult) -> QueryResult:
    """The notes column as the notes' texts joined with `` | `` (newest last)."""
    import json

    i = result.columns.index("notes")
    rows = []
    for row in result.rows:
        raw = row[i]
        text = None
        if isinstance(raw, str):
            try:
                items = json.loads(raw)
            except ValueError:
                items = None
            if isinstance(items, list):
                texts = [str(n.get("text")) for n in items if isinstance(n, dict) and n.get("text")]
                text = " | ".join(texts) or None
        rows.append((*row[:i], text, *row[i + 1 :]))
    types = [*result.types[:i], "VARCHAR", *result.types[i + 1 :]]
    return QueryResult(columns=result.columns, types=types, rows=rows)


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
        # An experiment, tag or status no run has: refused, with what there is.
        check_selection(session, experiments=experiments, tags=tags, statuses=statuses)
        result = select_runs(session, experiments=experiments, tags=tags, statuses=statuses)
    if kind == "csv":
        write_csv_file(result, out)
    else:
        write_parquet(result, out)
    return ExportSummary(path=out, format=kind, rows=len(result.rows), columns=result.columns)


# --------------------------------------------------------------------------------------------
# MLflow


#: MLflow's run status names, by hpcx run status.
_MLFLOW_STATUS = {
    "succeeded": "FINISHED",
    "failed": "FAILED",
    "timeout": "FAILED",
    "lost": "FAILED",
    "cancelled": "KILLED",
    "pruned": "KILLED",  # stopped early by a search's rule: ended by hpcx, not failed
    "pending": "SCHEDULED",
    "submitted": "SCHEDULED",
    "running": "RUNNING",
}
#: Tags that tie an MLflow run to the hpcx run (and attempt) it mirrors.
TAG_RUN_ID = "hpcx.run_id"
TAG_ATTEMPT = "hpcx.attempt"
TAG_STATUS = "hpcx.status"
#: What MLflow takes per log_batch call.
_BATCH_METRICS = 1000
_BATCH_PARAMS = 100


@dataclass(frozen=True, slots=True)
class MlflowSummary:
    tracking_uri: str
    #: MLflow runs made for hpcx runs it did not hold yet.
    logged: int
    #: hpcx runs whose MLflow run was for another attempt or status: that one was deleted and
    #: a new one logged.
    replaced: int
    #: hpcx runs whose MLflow run already says the same attempt and status: left alone.
    unchanged: int


def _ms(value: Any) -> int:
    """Milliseconds since the epoch of a TIMESTAMP (naive UTC) or a float of seconds."""
    from datetime import UTC, datetime

    if value is None:
        return 0
    if isinstance(value, int | float):
        return int(value * 1000)
    if isinstance(value, datetime):
        dt = value if value.tzinfo else value.replace(tzinfo=UTC)
        return int(dt.timestamp() * 1000)
    return 0


def tracking_uri(target: str) -> str:
    """An MLflow tracking URI from what the user gave: a URI (``http://``, ``https://``,
    ``sqlite:///``, ``file://``, ...) as it is, or a folder path as a ``file://`` URI."""
    import re

    if re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", target) or target.startswith("databricks"):
        return target
    return Path(target).absolute().as_uri()


def _client(uri: str) -> Any:
    try:
        from mlflow.tracking import MlflowClient
    except ImportError:
        raise QueryError(
            "exporting to MLflow needs MLflow's client, which is not installed",
            hint="pip install 'hpcx[mlflow]' (the mlflow extra), then run the export again",
        ) from None
    return MlflowClient(tracking_uri=uri)


def export_mlflow(
    state: Path,
    target: str,
    *,
    experiments: Sequence[str] = (),
    tags: Sequence[str] = (),
    statuses: Sequence[str] = (),
) -> MlflowSummary:
    """Log the selected runs to an MLflow tracking server or store through MLflow's own client:
    one MLflow experiment per hpcx experiment (found by name, else created), one MLflow run
    per hpcx run, named and tagged (``hpcx.run_id``) with its run id, with the export's
    columns as params (seed, repeat, ``params.*``, ``placement.*``) and every metric value of
    the run's latest attempt with its step.

    Exporting again is safe: an hpcx run whose MLflow run already carries the same attempt
    and status is left alone; one whose attempt or status changed (a rerun, a run that has
    finished since) gets its old MLflow run deleted and a new one logged. ``target`` is any
    tracking URI (``http://host:port``, ``sqlite:///file.db``) or a folder (MLflow's file
    store: hpcx sets ``MLFLOW_ALLOW_FILE_STORE=true`` for it, which MLflow 3 asks for).
    """
    import os

    uri = tracking_uri(target)
    if uri.startswith("file:") and "MLFLOW_ALLOW_FILE_STORE" not in os.environ:
        # MLflow 3 keeps its file store behind this switch; asking for a folder is asking for it.
        os.environ["MLFLOW_ALLOW_FILE_STORE"] = "true"
    with QuerySession.open(state) as session:
        # Refused before the MLflow store is touched (a file or sqlite URI would be created).
        check_selection(session, experiments=experiments, tags=tags, statuses=statuses)
        client = _client(uri)
        runs = select_runs(session, experiments=experiments, tags=tags, statuses=statuses)
        ids = runs.column("run_id")
        extra = session.query(
            "SELECT run_id, started_at, ended_at, attempts FROM runs "
            "WHERE run_id IN (SELECT unnest(?::VARCHAR[]))",
            [ids],
        )
        metrics = session.query(
            "SELECT run_id, name, coalesce(step, 0), value, time FROM metrics "
            "WHERE run_id IN (SELECT unnest(?::VARCHAR[])) "
            "QUALIFY coalesce(attempt, -1) = max(coalesce(attempt, -1)) "
            "OVER (PARTITION BY run_id) ORDER BY run_id, name, step",
            [ids],
        )
    times = {r[0]: (r[1], r[2], int(r[3] or 0)) for r in extra.rows}
    by_run: dict[str, list[tuple[str, int, float, Any]]] = {}
    for rid, name, step, value, t in metrics.rows:
        by_run.setdefault(rid, []).append((name, int(step), float(value), t))
    param_cols = [c for c in runs.columns if c in ("seed", "repeat")] + [
        c for c in runs.columns if c.startswith(("params.", "placement."))
    ]
    try:
        return _log_runs(client, uri, list(runs.records()), param_cols, times, by_run)
    except QueryError:
        raise
    except Exception as exc:  # MLflow's own errors: a server down, a refused value
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise QueryError(
            f"MLflow at {uri} refused the export: {first}",
            hint="check that the tracking server is up and the URI is right; runs already "
            "logged are skipped when the export runs again",
        ) from None


def _log_runs(
    client: Any,
    uri: str,
    records: list[dict[str, Any]],
    param_cols: list[str],
    times: dict[str, tuple[Any, Any, int]],
    by_run: dict[str, list[tuple[str, int, float, Any]]],
) -> MlflowSummary:
    from mlflow.entities import Metric, Param

    exp_ids: dict[str, str] = {}
    existing: dict[str, dict[str, list[Any]]] = {}
    logged = replaced = unchanged = 0
    for rec in records:
        exp = str(rec["experiment"])
        if exp not in exp_ids:
            found = client.get_experiment_by_name(exp)
            exp_ids[exp] = (
                found.experiment_id
                if found is not None
                else client.create_experiment(exp, tags={"hpcx.experiment": exp})
            )
            existing[exp] = _mirrored(client, exp_ids[exp])
        rid = str(rec["run_id"])
        status = str(rec.get("status"))
        started, ended, attempt = times.get(rid, (None, None, 0))
        old = existing[exp].get(rid, [])
        if any(
            r.data.tags.get(TAG_ATTEMPT) == str(attempt) and r.data.tags.get(TAG_STATUS) == status
            for r in old
        ):
            unchanged += 1
            continue
        for r in old:
            client.delete_run(r.info.run_id)
        run_tags = {
            TAG_RUN_ID: rid,
            TAG_ATTEMPT: str(attempt),
            TAG_STATUS: status,
            "hpcx.experiment": exp,
        }
        if rec.get("git_commit"):
            run_tags["mlflow.source.git.commit"] = str(rec["git_commit"])
        if rec.get("description"):
            run_tags["mlflow.note.content"] = str(rec["description"])
        run = client.create_run(
            exp_ids[exp],
            start_time=_ms(started) or _ms(rec.get("created_at")) or None,
            tags=run_tags,
            run_name=rid,
        )
        mid = run.info.run_id
        params = [Param(c, str(rec[c])) for c in param_cols if rec.get(c) is not None]
        fallback = _ms(ended) or _ms(started) or _ms(rec.get("created_at"))
        values = [
            Metric(name, value, int((t or 0) * 1000) or fallback, step)
            for name, step, value, t in by_run.get(rid, [])
        ]
        for i in range(0, len(params), _BATCH_PARAMS):
            client.log_batch(mid, params=params[i : i + _BATCH_PARAMS])
        for i in range(0, len(values), _BATCH_METRICS):
            client.log_batch(mid, metrics=values[i : i + _BATCH_METRICS])
        mstatus = _MLFLOW_STATUS.get(status, "FAILED")
        if mstatus in ("FINISHED", "FAILED", "KILLED"):
            client.set_terminated(mid, status=mstatus, end_time=_ms(ended) or None)
        elif mstatus != "RUNNING":
            client.update_run(mid, status=mstatus)
        if old:
            replaced += 1
        else:
            logged += 1
    return MlflowSummary(uri, logged=logged, replaced=replaced, unchanged=unchanged)


def _mirrored(client: Any, experiment_id: str) -> dict[str, list[Any]]:
    """hpcx run id -> the MLflow runs (not deleted) of this experiment that mirror it."""
    from mlflow.entities import ViewType

    out: dict[str, list[Any]] = {}
    token = None
    while True:
        page = client.search_runs(
            [experiment_id],
            filter_string=f"tags.`{TAG_RUN_ID}` != ''",
            run_view_type=ViewType.ACTIVE_ONLY,
            max_results=1000,
            page_token=token,
        )
        for r in page:
            rid = r.data.tags.get(TAG_RUN_ID)
            if rid:
                out.setdefault(rid, []).append(r)
        token = page.token
        if not token:
            return out
