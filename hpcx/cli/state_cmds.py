"""``hpcx state check``, ``hpcx state restore`` and ``hpcx state backups``.

Thin: parse, call :mod:`hpcx.state.backup`, render. duckdb is imported there, inside the functions.
"""

from __future__ import annotations

import contextlib

import typer

from hpcx.cli._app import EXIT_ERROR, EXIT_OK, emit_json
from hpcx.cli.plan import state_app

_STATE_HELP = "State file (default: .hpcx/state.duckdb at the project root; $HPCX_STATE)."


@state_app.command("check")
def state_check(
    state: str | None = typer.Option(None, "--state", help=_STATE_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print the findings as JSON."),
) -> None:
    """Read every block and table of the state (read-only) and check its invariants.

    Exit 0 when clean, 1 with one line per finding.
    """
    from hpcx.project.paths import resolve_state_path
    from hpcx.state.backup import check_state, restore_hint
    from hpcx.state.store import is_uncreated

    path = resolve_state_path(state)
    if is_uncreated(path):
        # An interrupted first write: nothing was ever recorded; the next writer creates it.
        msg = "was never created (its first write was interrupted); the next apply creates it"
        if as_json:
            emit_json({"ok": True, "uncreated": True, "path": str(path), "message": msg})
        else:
            typer.echo(f"ok  {path}: {msg}")
        raise typer.Exit(EXIT_OK)
    result = check_state(path)
    if as_json:
        doc = result.to_dict()
        if not result.readable:
            doc["hint"] = restore_hint(path)
        emit_json(doc)
        raise typer.Exit(EXIT_OK if result.ok else EXIT_ERROR)
    if result.ok:
        rows = sum(result.rows.values())
        typer.echo(
            f"ok  {path}: serial {result.serial}, schema v{result.schema_version}, "
            f"{result.rows.get('runs', 0):,} runs, {rows:,} rows in {len(result.rows)} tables "
            "read in full, no problems"
        )
        raise typer.Exit(EXIT_OK)
    for f in result.findings:
        typer.echo(str(f))
    n = len(result.findings)
    typer.echo(f"{n} problem{'s' if n != 1 else ''} in {path}", err=True)
    if not result.readable:
        typer.echo(f"hint: {restore_hint(path)}", err=True)
    raise typer.Exit(EXIT_ERROR)


@state_app.command("backups")
def state_backups(
    state: str | None = typer.Option(None, "--state", help=_STATE_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print as JSON."),
) -> None:
    """List the state's backups, newest first: time (UTC), serial, size."""
    from hpcx.project.paths import resolve_state_path
    from hpcx.state.backup import backups_dir, keep_count, list_backups

    path = resolve_state_path(state)
    found = list_backups(path)
    if as_json:
        emit_json(
            [
                {
                    "path": str(b.path),
                    "time": b.time.isoformat() + "Z",
                    "serial": b.serial,
                    "size_bytes": b.size,
                }
                for b in found
            ]
        )
        return
    if not found:
        typer.echo(f"No backups in {backups_dir(path)}.")
        return
    for b in found:
        typer.echo(
            f"{b.time:%Y-%m-%d %H:%M:%S} UTC  serial {b.serial:>6}  {b.size:>14,} B  {b.path}"
        )
    typer.echo(f"{len(found)} backup(s); the newest {keep_count()} are kept ($HPCX_BACKUPS).")


@state_app.command("restore")
def state_restore(
    backup: str | None = typer.Argument(
        None, help="Backup file to restore (default: the newest that passes `hpcx state check`)."
    ),
    state: str | None = typer.Option(None, "--state", help=_STATE_HELP),
    force: bool = typer.Option(False, "--force", help="Restore a backup that fails the check."),
    runs_root: str | None = typer.Option(
        None, "--runs-root", help="Where run folders go (default: runs/; $HPCX_RUNS_ROOT)."
    ),
    lock_timeout: float = typer.Option(0.0, "--lock-timeout", help="Wait for the writer lock."),
) -> None:
    """Put a backup in place of the state; the current file is kept as state.duckdb.broken-TIME."""
    from hpcx.errors import StateError
    from hpcx.project.paths import find_project_root, resolve_state_path
    from hpcx.run.apply import resolve_runs_root
    from hpcx.state.backup import choose_backup, unknown_submissions
    from hpcx.state.writer import Writer

    root = find_project_root()
    path = resolve_state_path(state, root=root)
    runs = resolve_runs_root(runs_root, root)
    with Writer(path, "hpcx state restore", timeout=lock_timeout, pre_write="none") as writer:
        # Chosen before the current state is itself backed up, or that would be the newest.
        chosen = backup if backup is not None else str(choose_backup(path)[0].path)
        # A state that still reads is backed up like before any write; a damaged one is
        # simply moved aside below.
        with contextlib.suppress(StateError):
            writer.back_up()
        done = writer.restore(chosen, force=force)
    lines = [f"Restored {done.backup} (serial {done.serial}) to {done.state}."]
    if done.moved_aside is not None:
        lines.append(f"The file it replaces is kept as {done.moved_aside}.")
    lines.append(
        f"Runs submitted after serial {done.serial} are not in it. `hpcx refresh` reconciles "
        "the submissions it holds; every submission is also recorded on disk in "
        f"{runs}/.submissions/<key>/submission.json."
    )
    unknown = unknown_submissions(path, runs)
    if unknown:
        shown = ", ".join(p.name for p in unknown[:5]) + (" ..." if len(unknown) > 5 else "")
        lines.append(
            f"note: {len(unknown)} submission(s) on disk are not in the restored state "
            f"({shown}): their runs were submitted after this backup. The next `hpcx refresh` "
            "(which `hpcx apply` runs first) adopts them from their submission folders, so "
            "they are harvested, not submitted again."
        )
    typer.echo("\n".join(lines))
