"""``hpcx plan`` and ``hpcx state ...``: compare the manifests with the state, and look at it.

Thin: parse, call the library (manifest loader, state store, planner), render, choose the exit
code. Everything heavy (duckdb, the manifest loader) is imported inside the commands.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import typer

from hpcx.cli._app import EXIT_CHANGES, EXIT_OK, app, emit_json

state_app = typer.Typer(
    name="state",
    help="Look at and maintain the state file (.hpcx/state.duckdb).",
    no_args_is_help=True,
)
app.add_typer(state_app, name="state")


def _git_info(root: Path, manifest_files: list[str]) -> dict[str, Any]:
    """{root, commit, branch, dirty_paths} of the repository holding the manifests; git
    trouble never stops a plan (the fields are then None)."""
    from hpcx.errors import HpcxError

    info: dict[str, Any] = {"root": None, "commit": None, "branch": None, "dirty_paths": []}
    try:
        from hpcx.manifest import gitinfo
    except ImportError:
        return info
    try:
        groot = gitinfo.repo_root(root)
        if groot is None:
            return info
        info["root"] = str(groot)
        info["commit"] = gitinfo.head_commit(groot)
        info["branch"] = gitinfo.branch(groot)
        if manifest_files:
            info["dirty_paths"] = list(gitinfo.dirty_paths(groot, manifest_files))
    except (HpcxError, OSError):
        pass
    return info


def _load_desired(paths: list[Path], overrides: list[str], max_runs: int | None, root: Path) -> Any:
    from hpcx.errors import ManifestError

    try:
        from hpcx.manifest.loader import load_desired
    except ImportError as exc:  # the loader lands in its own change
        raise ManifestError(
            f"the manifest loader is not available ({exc})", hint="reinstall hpcx"
        ) from None
    kwargs: dict[str, Any] = {"overrides": tuple(overrides), "project_root": root}
    if max_runs is not None:
        kwargs["max_runs"] = max_runs
    return load_desired(paths, **kwargs)


def _select_experiments(desired: Any, names: list[str]) -> Any:
    """The desired state narrowed to these experiments; a name that is none of them is an
    error with a did-you-mean (a manifest's file name suggests its experiment's)."""
    import dataclasses

    from hpcx.util.selection import known_list, raise_unmatched, unknown_names

    known = {e.name for e in desired.experiments}
    aliases = {Path(e.path).stem: e.name for e in desired.experiments}
    raise_unmatched(unknown_names("-e", names, known, aliases=aliases), hint=known_list(known))
    wanted = set(names)
    return dataclasses.replace(
        desired,
        runs=[r for r in desired.runs if r.experiment in wanted],
        experiments=[e for e in desired.experiments if e.name in wanted],
    )


@app.command("plan")
def plan_command(
    paths: list[Path] = typer.Argument(
        None, help="Manifest files or folders (default: manifests/ under the project root)."
    ),
    set_: list[str] = typer.Option(
        [], "--set", help="Override a value for this invocation: path=value (repeatable)."
    ),
    state: str | None = typer.Option(
        None,
        "--state",
        help="State file (default: .hpcx/state.duckdb at the project root; $HPCX_STATE).",
    ),
    max_runs: int | None = typer.Option(None, "--max-runs", help="Refuse sweeps larger than this."),
    full: bool = typer.Option(False, "--full", help="List every run, unchanged ones included."),
    as_json: bool = typer.Option(False, "--json", help="Print the plan as JSON for scripts."),
    markdown: bool = typer.Option(
        False, "--markdown", help="Print the plan as markdown (PR comment)."
    ),
    detailed_exitcode: bool = typer.Option(
        False, "--detailed-exitcode", help="Exit 0 with no changes, 2 with changes, 1 on error."
    ),
    out: Path | None = typer.Option(
        None, "--out", help="Save the plan to this file, for `hpcx apply PLAN` to apply exactly."
    ),
    orphans: str | None = typer.Option(
        None,
        "--orphans",
        help="Which state runs may be reported orphaned: 'all', or 'experiments' (only those of "
        "the experiments planned). Default: all for the default manifests/, experiments when "
        "PATHS are given.",
    ),
    cluster: Path | None = typer.Option(
        None,
        "--cluster",
        help="Check every run's resources against this cluster profile (kind: Cluster). "
        "Default: the profile among PATHS or in clusters/, for the runs bound for SLURM.",
    ),
    experiment: list[str] = typer.Option(
        [],
        "--experiment",
        "-e",
        help="Plan only these experiments (repeatable); orphans are then only theirs.",
    ),
) -> None:
    """Show what `hpcx apply` would do: runs to create, retry, update, stale, orphaned."""
    import gc

    # A short-lived process that builds ~100k small objects per stage and frees them all at
    # exit: the cyclic GC would only walk them again and again (a third of the time of a 100k
    # plan here). Reference counting still frees what it can.
    gc.disable()
    from hpcx.errors import ManifestError, PlanError
    from hpcx.plan.planner import make_plan, save_plan
    from hpcx.plan.render import RenderContext, render_json, render_markdown, render_text
    from hpcx.project.paths import (
        default_manifest_paths,
        display_path,
        find_project_root,
        resolve_state_path,
    )
    from hpcx.state.store import StateSnapshot, StateStore

    if as_json and markdown:
        raise PlanError("--json and --markdown exclude each other")
    if orphans not in (None, "all", "experiments"):
        raise PlanError(f"--orphans must be 'all' or 'experiments', not {orphans!r}")

    root = find_project_root()
    explicit = bool(paths)
    manifest_paths = list(paths) if paths else default_manifest_paths(root)
    if not explicit and not manifest_paths[0].exists():
        raise ManifestError(
            f"no manifests: {display_path(manifest_paths[0])} does not exist",
            hint="pass manifest files or folders: hpcx plan PATH...",
        )
    desired = _load_desired(manifest_paths, set_, max_runs, root)
    if experiment:
        desired = _select_experiments(desired, experiment)
    # Resources against the cluster profile, before anything could be submitted (exit 1).
    from hpcx.plan.fit import check_plan

    check_plan(desired.runs, cluster, manifest_paths, root)

    state_path = resolve_state_path(state, root=root)
    from hpcx.state.store import is_uncreated

    # A file whose creation never committed (a killed apply) is no state yet, as no file is.
    state_exists = state_path.exists() and not is_uncreated(state_path)
    if state_exists:
        # Read-only: plan never creates, migrates or modifies the state.
        with StateStore.open(state_path, read_only=True) as store:
            snapshot = store.snapshot()
    else:
        snapshot = StateSnapshot.empty()

    scope = orphans or ("experiments" if explicit or experiment else "all")
    git = _git_info(root, sorted(desired.digests))
    plan = make_plan(desired, snapshot, orphan_scope=scope, git=git)  # type: ignore[arg-type]

    if out is not None:
        save_plan(plan, out, project_root=str(root))

    ctx = RenderContext(
        state_path=display_path(state_path, root),
        state_exists=state_exists,
        manifest_paths=[display_path(p, root) for p in manifest_paths],
    )
    if as_json:
        emit_json(render_json(plan, context=ctx))
    elif markdown:
        sys.stdout.write(render_markdown(plan, full=full, context=ctx))
    else:
        sys.stdout.write(render_text(plan, full=full, context=ctx))
        if out is not None:
            sys.stdout.write(f"Saved the plan to {out}; apply it with: hpcx apply {out}\n")
    sys.stdout.flush()
    if detailed_exitcode and plan.has_changes:
        raise typer.Exit(EXIT_CHANGES)
    raise typer.Exit(EXIT_OK)


@state_app.command("info")
def state_info(
    state: str | None = typer.Option(None, "--state", help="State file (default: the project's)."),
    as_json: bool = typer.Option(False, "--json", help="Print as JSON."),
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
    typer.echo("\n".join(lines))


@state_app.command("upgrade")
def state_upgrade(
    state: str | None = typer.Option(None, "--state", help="State file (default: the project's)."),
    lock_timeout: float = typer.Option(0.0, "--lock-timeout", help="Wait for the writer lock."),
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
    typer.echo(f"state {info.path}: schema v{info.schema_version}, serial {info.serial}")
