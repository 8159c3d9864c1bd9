"""``hpcx state ...``: look at and maintain the state file (info, check, backups, restore,
upgrade, force-unlock).

Thin: parse, call :mod:`hpcx.state` (the store, :mod:`~hpcx.state.backup`, the writer lock),
render, pick the exit code. duckdb is imported there, inside the functions. ``hpcx
force-unlock`` stays as a hidden top-level spelling of ``hpcx state force-unlock``.
"""

from __future__ import annotations

from hpcx.cli._app import (
    EXIT_ERROR,
    EXIT_OK,
    PANEL_PROJECT,
    STATE_HELP,
    app,
    emit_json,
    project_paths,
)
from hpcx.cli._decl import Argument, Exit, Group, Option, echo
from hpcx.errors import first_few

state_app = Group(
    name="state",
    help="Look at and maintain the state file (.hpcx/state.duckdb).",
    no_args_is_help=True,
)
app.add_group(state_app, name="state", rich_help_panel=PANEL_PROJECT)


@state_app.command("info")
def state_info(
    state: str | None = Option(None, "--state", help="State file (default: the project's)."),
    as_json: bool = Option(False, "--json", help="Print as JSON."),
) -> None:
    """Where the state is, its lineage, serial, schema version and what it holds."""
    from hpcx.errors import StateError
    from hpcx.project.paths import resolve_state_path
    from hpcx.state.store import StateStore

    path = resolve_state_path(state)
    if not path.exists():
        raise StateError(f"no state at {path}", hint="`hpcx apply` creates it")
    with StateStore.open(path, read_only=True) as store:
        info = store.info()
    if as_json:
        emit_json(
            {
                "path": info.path,
                "lineage": info.lineage,
                "serial": info.serial,
                "schema_version": info.schema_version,
                "created_at": info.created_at.isoformat(),
                "hpcx_version": info.hpcx_version,
                "runs": sum(info.runs_by_status.values()),
                "runs_by_status": info.runs_by_status,
                "events": info.events,
                "metrics": info.metrics,
                "submissions": info.submissions,
                "probes": info.probes,
                "size_bytes": info.size_bytes,
            }
        )
        return
    total = sum(info.runs_by_status.values())
    lines = [
        f"state:    {info.path} ({info.size_bytes:,} bytes)",
        f"lineage:  {info.lineage}",
        f"serial:   {info.serial}",
        f"schema:   v{info.schema_version} (created {info.created_at:%Y-%m-%d %H:%M:%S} UTC"
        + (f" by hpcx {info.hpcx_version})" if info.hpcx_version else ")"),
        f"runs:     {total:,}"
        + (
            " (" + ", ".join(f"{n:,} {s}" for s, n in sorted(info.runs_by_status.items())) + ")"
            if total
            else ""
        ),
        f"events:   {info.events:,}",
        f"metrics:  {info.metrics:,}",
        f"submissions: {info.submissions:,}   probes: {info.probes:,}",
    ]
    echo("\n".join(lines))


@state_app.command("upgrade")
def state_upgrade(
    state: str | None = Option(None, "--state", help="State file (default: the project's)."),
    lock_timeout: float = Option(0.0, "--lock-timeout", help="Wait for the writer lock."),
) -> None:
    """Migrate the state file to this hpcx's schema version (creating it if missing)."""
    from hpcx.project.paths import resolve_state_path
    from hpcx.state.writer import Writer

    path = resolve_state_path(state)
    # A migration writes the whole schema: never beside a running apply or refresh. It backs
    # the old file up itself (and only when there is something to migrate).
    with (
        Writer(path, "hpcx state upgrade", timeout=lock_timeout, pre_write="none") as writer,
        writer.open(wait=0) as store,
    ):
        info = store.info()
    echo(f"state {info.path}: schema v{info.schema_version}, serial {info.serial}")


@state_app.command("check")
def state_check(
    state: str | None = Option(None, "--state", help=STATE_HELP),
    as_json: bool = Option(False, "--json", help="Print the findings as JSON."),
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
            echo(f"ok  {path}: {msg}")
        raise Exit(EXIT_OK)
    result = check_state(path)
    if as_json:
        doc = result.to_dict()
        if not result.readable:
            doc["hint"] = restore_hint(path)
        emit_json(doc)
        raise Exit(EXIT_OK if result.ok else EXIT_ERROR)
    if result.ok:
        rows = sum(result.rows.values())
        echo(
            f"ok  {path}: serial {result.serial}, schema v{result.schema_version}, "
            f"{result.rows.get('runs', 0):,} runs, {rows:,} rows in {len(result.rows)} tables "
            "read in full, no problems"
        )
        raise Exit(EXIT_OK)
    for f in result.findings:
        echo(str(f))
    n = len(result.findings)
    echo(f"{n} problem{'s' if n != 1 else ''} in {path}", err=True)
    if not result.readable:
        echo(f"hint: {restore_hint(path)}", err=True)
    raise Exit(EXIT_ERROR)


@state_app.command("backups")
def state_backups(
    state: str | None = Option(None, "--state", help=STATE_HELP),
    as_json: bool = Option(False, "--json", help="Print as JSON."),
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
        echo(f"No backups in {backups_dir(path)}.")
        return
    for b in found:
        echo(f"{b.time:%Y-%m-%d %H:%M:%S} UTC  serial {b.serial:>6}  {b.size:>14,} B  {b.path}")
    echo(f"{len(found)} backup(s); the newest {keep_count()} are kept ($HPCX_BACKUPS).")


@state_app.command("restore")
def state_restore(
    backup: str | None = Argument(
        None, help="Backup file to restore (default: the newest that passes `hpcx state check`)."
    ),
    state: str | None = Option(None, "--state", help=STATE_HELP),
    force: bool = Option(False, "--force", help="Restore a backup that fails the check."),
    runs_root: str | None = Option(
        None, "--runs-root", help="Where run folders go (default: runs/; $HPCX_RUNS_ROOT)."
    ),
    lock_timeout: float = Option(0.0, "--lock-timeout", help="Wait for the writer lock."),
) -> None:
    """Put a backup in place of the state; the current file is kept as state.duckdb.broken-TIME."""
    from hpcx.state.writer import restore_session

    _, path, runs = project_paths(state, runs_root)
    session = restore_session(path, backup, runs_root=runs, force=force, lock_timeout=lock_timeout)
    done = session.restored
    lines = [f"Restored {done.backup} (serial {done.serial}) to {done.state}."]
    if done.moved_aside is not None:
        lines.append(f"The file it replaces is kept as {done.moved_aside}.")
    lines.append(
        f"Runs submitted after serial {done.serial} are not in it. `hpcx refresh` reconciles "
        "the submissions it holds; every submission is also recorded on disk in "
        f"{runs}/.submissions/<key>/submission.json."
    )
    unknown = session.unknown_submissions
    if unknown:
        lines.append(
            f"note: {len(unknown)} submission(s) on disk are not in the restored state "
            f"({first_few([p.name for p in unknown])}): their runs were submitted after this "
            "backup. The next `hpcx refresh` (which `hpcx apply` runs first) adopts them from "
            "their submission folders, so "
            "they are harvested, not submitted again."
        )
    echo("\n".join(lines))


@state_app.command("force-unlock")
def force_unlock_command(
    lock_id: str = Argument(..., help="The lock id that the lock error names."),
    state: str | None = Option(None, "--state", help=STATE_HELP),
) -> None:
    """Remove a writer lock left by a process that is gone for good (e.g. on another host)."""
    from hpcx.state.lock import force_unlock

    _, state_path, _ = project_paths(state, None)
    holder = force_unlock(state_path, lock_id)
    echo(f"Removed the lock of {holder.describe()}")


# The short spelling, left out of `hpcx --help`.
app.command("force-unlock", hidden=True)(force_unlock_command)
