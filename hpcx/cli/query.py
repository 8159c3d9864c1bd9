"""``hpcx query``, ``hpcx export``, ``hpcx report``: SQL, files and figures from the state.

Thin: parse, call :mod:`hpcx.results.query` / :mod:`hpcx.results.export` /
:mod:`hpcx.results.report`, render. duckdb is imported inside those modules, so ``hpcx --help``
stays instant.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from hpcx.cli._app import EXIT_OK, PANEL_RESULTS, app, emit_json
from hpcx.cli._decl import Argument, Exit, Option, echo

_QUERY_FORMATS = ("table", "csv", "json", "parquet", "markdown")


def _state_option() -> Any:
    return Option(
        None,
        "--state",
        help="State file (default: .hpcx/state.duckdb at the project root; $HPCX_STATE).",
    )


@app.command("query", rich_help_panel=PANEL_RESULTS)
def query_command(
    sql: str | None = Argument(
        None, help='SQL over the views (see --list); "-" reads it from stdin.'
    ),
    state: str | None = _state_option(),
    fmt: str = Option("table", "--format", "-f", help="table | csv | json | parquet | markdown."),
    output: Path | None = Option(
        None, "--output", "-o", help="Write to this file (needed for parquet) instead of stdout."
    ),
    list_views: bool = Option(False, "--list", help="Show the views and their columns."),
    timeout: float = Option(60.0, "--timeout", help="Stop the query after this many s."),
    memory_limit: str = Option("2GB", "--memory-limit", help="DuckDB memory limit."),
) -> None:
    """Run read-only SQL over the state (views: runs, results, metrics, events, probes, ...)."""
    from hpcx.project.paths import resolve_state_path
    from hpcx.results.outputs import open_output, resolve_output
    from hpcx.results.query import (
        QueryError,
        QuerySession,
        write_parquet,
    )

    if fmt not in _QUERY_FORMATS:
        raise QueryError(f"unknown format {fmt!r}", hint="one of: " + ", ".join(_QUERY_FORMATS))
    if not list_views and not sql:
        raise QueryError(
            "no SQL given",
            hint='hpcx query "SELECT status, count(*) FROM runs GROUP BY 1"; '
            "hpcx query --list shows the views",
        )
    if fmt == "parquet" and output is None:
        raise QueryError("parquet is binary: name a file with -o FILE.parquet")
    if output is not None:
        resolve_output(output)  # a path that cannot take the file is refused before the query
    path = resolve_state_path(state)
    with QuerySession.open(path, memory_limit=memory_limit, timeout_s=timeout) as session:
        if list_views:
            _print_views(session.views, fmt)
            raise Exit(EXIT_OK)
        text = sys.stdin.read() if sql == "-" else str(sql)
        # The rows stream from DuckDB to the output under the limits: what the command holds
        # is one batch (the table format, which aligns, holds its cells, counted against
        # --memory-limit), and the time limit covers the writing too.
        stream = session.stream(text)
        if fmt == "parquet":
            assert output is not None
            write_parquet(stream, output, memory_limit=memory_limit, timeout_s=timeout)
        elif output is not None:
            with open_output(output) as fh:
                _write_format(fmt, stream, fh, session.memory_limit_bytes)
        else:
            try:
                _write_format(fmt, stream, sys.stdout, session.memory_limit_bytes)
            except QueryError:
                if stream.rows and fmt != "table":
                    sys.stdout.flush()
                    echo(
                        f"warning: the output above is partial: {stream.rows} row(s) were "
                        "written before the query stopped",
                        err=True,
                    )
                raise
    if output is not None:
        echo(f"wrote {stream.rows} row(s) to {output}", err=True)
    sys.stdout.flush()


def _write_format(fmt: str, stream: Any, fh: Any, memory_bytes: int) -> None:
    from hpcx.results.query import render_table, write_csv, write_json, write_markdown

    if fmt == "csv":
        write_csv(stream, fh)
    elif fmt == "json":
        write_json(stream, fh)
    elif fmt == "markdown":
        write_markdown(stream, fh)
    else:
        fh.write(render_table(stream, memory_bytes=memory_bytes) + "\n")


def _print_views(views: dict[str, list[tuple[str, str]]], fmt: str) -> None:
    if fmt == "json":
        emit_json({v: [{"name": c, "type": t} for c, t in cols] for v, cols in views.items()})
        return
    for view, cols in views.items():
        echo(f"{view} ({len(cols)} columns)")
        width = max((len(c) for c, _ in cols), default=0)
        for c, t in cols:
            echo(f"  {c.ljust(width)}  {t}")
        echo("")


@app.command("export", rich_help_panel=PANEL_RESULTS)
def export_command(
    file: Path | None = Argument(None, help="Output file: .csv or .parquet."),
    mlflow: str | None = Option(
        None,
        "--mlflow",
        help="Log the runs to MLflow instead: a tracking URI (http://host:port, "
        "sqlite:///mlflow.db) or a folder; needs the mlflow extra.",
    ),
    state: str | None = _state_option(),
    experiment: list[str] = Option(
        [], "--experiment", "-e", help="Only this experiment (repeatable)."
    ),
    tag: list[str] = Option([], "--tag", "-t", help="Only runs with this tag (repeatable: all)."),
    status: list[str] = Option(
        [], "--status", "-s", help="Only runs in this status (repeatable: any)."
    ),
    fmt: str | None = Option(None, "--format", help="csv | parquet (default: from FILE)."),
) -> None:
    """One row per run: id, experiment, description, parameters, final metrics, status, commit."""
    from hpcx.project.paths import resolve_state_path
    from hpcx.results.export import export_runs
    from hpcx.results.query import QueryError
    from hpcx.state.store import RUN_STATUSES

    bad = [s for s in status if s not in RUN_STATUSES]
    if bad:
        raise QueryError(
            f"unknown status {', '.join(bad)}", hint="one of: " + ", ".join(RUN_STATUSES)
        )
    if mlflow is not None:
        from hpcx.results.export import export_mlflow

        done = export_mlflow(
            resolve_state_path(state),
            mlflow,
            experiments=experiment,
            tags=tag,
            statuses=status,
        )
        echo(
            f"MLflow at {done.tracking_uri}: logged {done.logged} new run(s), replaced "
            f"{done.replaced} (a new attempt or status), left {done.unchanged} unchanged"
        )
        return
    if file is None:
        raise QueryError("give an output FILE (.csv or .parquet), or --mlflow URI")
    summary = export_runs(
        resolve_state_path(state),
        file,
        fmt=fmt,
        experiments=experiment,
        tags=tag,
        statuses=status,
    )
    echo(
        f"wrote {summary.rows} run(s), {len(summary.columns)} columns, to {summary.path} "
        f"({summary.format})"
    )


@app.command("report", rich_help_panel=PANEL_RESULTS)
def report_command(
    experiments: list[str] = Argument(None, help="Experiments to report (default: all)."),
    state: str | None = _state_option(),
    output: Path | None = Option(
        None, "--output", "-o", help="Output file (default: report.html, or report.md)."
    ),
    fmt: str = Option("html", "--format", help="html (one self-contained file) | md."),
    manifests: list[Path] = Option(
        [], "--manifests", help="Manifest files/folders whose `reports:` to draw (repeatable)."
    ),
    title: str | None = Option(None, "--title", help="The report's title."),
    noise_cv: float = Option(
        0.10,
        "--noise-cv",
        help="Flag configurations whose repeats vary more than this (stdev/mean).",
    ),
    figures: str = Option(
        "svg", "--figures", help="svg | png: the figure files of --format md (png: hpcx[png])."
    ),
) -> None:
    """An offline HTML (or markdown + SVG) report: summary, best results, sweep plots."""
    from hpcx.project.paths import resolve_state_path
    from hpcx.results.query import QueryError
    from hpcx.results.report import build_report

    if fmt not in ("html", "md"):
        raise QueryError(f"unknown report format {fmt!r}", hint="html or md")
    out = output or Path("report.html" if fmt == "html" else "report.md")
    summary = build_report(
        resolve_state_path(state),
        out,
        experiments=list(experiments or []),
        fmt=fmt,
        manifests=list(manifests),
        title=title,
        noise_cv=noise_cv,
        figures=figures,
    )
    echo(
        f"wrote {summary.path}: {summary.experiments} experiment(s), {summary.runs} run(s), "
        f"{summary.figures} figure(s)"
        + (f", {len(summary.warnings)} warning(s)" if summary.warnings else "")
    )
    for w in summary.warnings:
        echo(f"warning: {w}", err=True)
