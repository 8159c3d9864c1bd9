"""``hpcx export``: the seed's results export, one row per run, as CSV or Parquet.

Columns, in order: ``run_id, experiment, description, seed, repeat``, the parameter columns
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
from typing import Any

from hpcx.query import QueryError, QueryResult, QuerySession, write_csv_file, write_parquet

FORMATS = ("csv", "parquet")
# seed and repeat are part of a run's identity but not of its params: without them the runs of
# a seeds/repeats sweep exported as identical rows.
_HEAD = ("run_id", "experiment", "description", "seed", "repeat")
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


# --------------------------------------------------------------------------------------------
# MLflow


#: MLflow's RunStatus numbers, by hpcx run status.
_MLFLOW_STATUS = {
    "succeeded": 3,  # FINISHED
    "failed": 4,  # FAILED
    "timeout": 4,
    "lost": 4,
    "cancelled": 5,  # KILLED
    "pending": 2,  # SCHEDULED
    "submitted": 2,
    "running": 1,  # RUNNING
}


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


def _yaml_value(v: Any) -> str:
    import json

    if v is None:
        return "null"
    if isinstance(v, int | float) and not isinstance(v, bool):
        return str(v)
    return json.dumps(str(v))  # a JSON string is a valid YAML scalar


def _write_meta(path: Path, fields: dict[str, Any]) -> None:
    path.write_text("".join(f"{k}: {_yaml_value(v)}\n" for k, v in fields.items()))


def _write_key(folder: Path, key: str, text: str) -> None:
    """MLflow stores a key as a file path: ``train/loss`` is ``metrics/train/loss``."""
    parts = [p for p in key.split("/") if p not in ("", ".", "..")]
    if not parts:
        return
    path = folder.joinpath(*parts)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def export_mlflow(
    state: Path,
    out: Path,
    *,
    experiments: Sequence[str] = (),
    tags: Sequence[str] = (),
    statuses: Sequence[str] = (),
) -> ExportSummary:
    """Write runs, parameters and metrics as an MLflow file store (``mlflow ui
    --backend-store-uri DIR`` opens it): one MLflow experiment per hpcx experiment, one MLflow
    run per hpcx run (its id is the hpcx run id), every metric value with its step.

    Written into a temporary folder beside ``out`` and renamed into place; refuses to write
    into an existing folder (MLflow keeps its own state there).
    """
    import os
    import shutil
    import tempfile

    if out.exists():
        raise QueryError(
            f"{out} exists", hint="give a new folder: hpcx writes a whole MLflow store"
        )
    with QuerySession.open(state) as session:
        unknown = _unknown_experiments(session, experiments)
        if unknown:
            raise QueryError(f"no experiment named {', '.join(unknown)} in the state")
        runs = select_runs(session, experiments=experiments, tags=tags, statuses=statuses)
        ids = runs.column("run_id")
        extra = session.query(
            "SELECT run_id, started_at, ended_at FROM runs "
            "WHERE run_id IN (SELECT unnest(?::VARCHAR[]))",
            [ids],
        )
        metrics = session.query(
            "SELECT run_id, name, coalesce(step, 0), value, time FROM metrics "
            "WHERE run_id IN (SELECT unnest(?::VARCHAR[])) ORDER BY run_id, name, step",
            [ids],
        )
    times = {r[0]: (r[1], r[2]) for r in extra.rows}
    param_cols = [c for c in runs.columns if c.startswith(("params.", "placement."))]
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    try:
        exp_ids: dict[str, str] = {}
        uri = (out.absolute()).as_uri()
        for rec in runs.records():
            exp = str(rec["experiment"])
            if exp not in exp_ids:
                exp_ids[exp] = str(len(exp_ids) + 1)
                edir = tmp / exp_ids[exp]
                edir.mkdir()
                _write_meta(
                    edir / "meta.yaml",
                    {
                        "artifact_location": f"{uri}/{exp_ids[exp]}",
                        "creation_time": _ms(rec.get("created_at")),
                        "experiment_id": exp_ids[exp],
                        "last_update_time": _ms(rec.get("created_at")),
                        "lifecycle_stage": "active",
                        "name": exp,
                    },
                )
            rid = str(rec["run_id"])
            rdir = tmp / exp_ids[exp] / rid
            for sub in ("params", "metrics", "tags", "artifacts"):
                (rdir / sub).mkdir(parents=True)
            started, ended = times.get(rid, (None, None))
            _write_meta(
                rdir / "meta.yaml",
                {
                    "artifact_uri": f"{uri}/{exp_ids[exp]}/{rid}/artifacts",
                    "end_time": _ms(ended) or None,
                    "entry_point_name": "",
                    "experiment_id": exp_ids[exp],
                    "lifecycle_stage": "active",
                    "run_id": rid,
                    "run_name": rid,
                    "run_uuid": rid,
                    "source_name": "",
                    "source_type": 4,
                    "source_version": str(rec.get("git_commit") or ""),
                    "start_time": _ms(started) or _ms(rec.get("created_at")),
                    "status": _MLFLOW_STATUS.get(str(rec.get("status")), 4),
                    "user_id": "hpcx",
                },
            )
            for col in param_cols:
                if rec.get(col) is not None:
                    _write_key(rdir / "params", col, str(rec[col]))
            (rdir / "tags" / "mlflow.runName").write_text(rid)
            (rdir / "tags" / "hpcx.experiment").write_text(exp)
            (rdir / "tags" / "hpcx.status").write_text(str(rec.get("status")))
            if rec.get("git_commit"):
                (rdir / "tags" / "mlflow.source.git.commit").write_text(str(rec["git_commit"]))
        lines: dict[tuple[str, str], list[str]] = {}
        for rid, name, step, value, t in metrics.rows:
            stamp = int((t or 0) * 1000) or _ms(times.get(rid, (None, None))[1])
            lines.setdefault((rid, name), []).append(f"{stamp} {value!r} {int(step)}\n")
        exp_of = dict(zip(ids, runs.column("experiment"), strict=True))
        for (rid, name), rows in lines.items():
            _write_key(tmp / exp_ids[str(exp_of[rid])] / rid / "metrics", name, "".join(rows))
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return ExportSummary(path=out, format="mlflow", rows=len(ids), columns=param_cols)
