"""``hpcx plan``: compare the manifests with the state.

Thin: parse, call the library (:func:`hpcx.plan.session.plan_manifests`), render, choose the
exit code. Everything heavy (duckdb, the manifest loader) is imported inside the commands.
"""

from __future__ import annotations

import sys
from pathlib import Path

from hpcx.cli._app import EXIT_CHANGES, EXIT_OK, PANEL_MANIFESTS, app, emit_json
from hpcx.cli._decl import Argument, Exit, Option


@app.command("plan", rich_help_panel=PANEL_MANIFESTS)
def plan_command(
    paths: list[Path] = Argument(
        None, help="Manifest files or folders (default: manifests/ under the project root)."
    ),
    set_: list[str] = Option(
        [], "--set", help="Override a value for this invocation: path=value (repeatable)."
    ),
    state: str | None = Option(
        None,
        "--state",
        help="State file (default: .hpcx/state.duckdb at the project root; $HPCX_STATE).",
    ),
    max_runs: int | None = Option(None, "--max-runs", help="Refuse sweeps larger than this."),
    full: bool = Option(False, "--full", help="List every run, unchanged ones included."),
    graph: bool = Option(
        False,
        "--graph",
        help="Also print the needs between the runs (spec.needs): the experiments' paths and "
        "edges, and the first runs' needs (all of them with --full).",
    ),
    as_json: bool = Option(False, "--json", help="Print the plan as JSON for scripts."),
    markdown: bool = Option(False, "--markdown", help="Print the plan as markdown (PR comment)."),
    detailed_exitcode: bool = Option(
        False, "--detailed-exitcode", help="Exit 0 with no changes, 2 with changes, 1 on error."
    ),
    out: Path | None = Option(
        None, "--out", help="Save the plan to this file, for `hpcx apply PLAN` to apply exactly."
    ),
    orphans: str | None = Option(
        None,
        "--orphans",
        help="Which state runs may be reported orphaned: 'all', or 'experiments' (only those of "
        "the experiments planned). Default: all for the default manifests/, experiments when "
        "PATHS are given.",
    ),
    cluster: Path | None = Option(
        None,
        "--cluster",
        help="Check every run's resources against this cluster profile (kind: Cluster). "
        "Default: the profile among PATHS or in clusters/, for the runs bound for SLURM.",
    ),
    experiment: list[str] = Option(
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
    from hpcx.errors import PlanError
    from hpcx.plan.render import (
        RenderContext,
        render_graph,
        render_json,
        render_markdown,
        render_text,
    )
    from hpcx.plan.session import plan_manifests
    from hpcx.project.paths import display_path

    if as_json and markdown:
        raise PlanError("--json and --markdown exclude each other")
    if graph and (as_json or markdown):
        raise PlanError(
            '--graph is a text view: --json always holds the graph (its "graph" list and '
            'each change\'s "needs"), --markdown has none',
            hint="drop --graph",
        )
    planned = plan_manifests(
        paths or (),
        overrides=set_,
        state=state,
        max_runs=max_runs,
        orphans=orphans,
        cluster=cluster,
        experiments=experiment,
        save_to=out,
    )
    plan, root = planned.plan, planned.root
    ctx = RenderContext(
        state_path=display_path(planned.state_path, root),
        state_exists=planned.state_exists,
        manifest_paths=[display_path(p, root) for p in planned.manifest_paths],
    )
    outlook = planned.outlook
    if as_json:
        doc = render_json(plan, context=ctx)
        doc["submission"] = outlook.to_dict() if outlook is not None else None
        emit_json(doc)
    elif markdown:
        sys.stdout.write(render_markdown(plan, full=full, context=ctx))
        if outlook is not None:
            sys.stdout.write(f"\n{outlook.text()}\n")
    else:
        sys.stdout.write(render_text(plan, full=full, context=ctx))
        if graph:
            sys.stdout.write("\n" + render_graph(plan, full=full))
        if outlook is not None:
            sys.stdout.write(f"{outlook.text()}\n")
        if out is not None:
            sys.stdout.write(f"Saved the plan to {out}; apply it with: hpcx apply {out}\n")
    sys.stdout.flush()
    if detailed_exitcode and plan.has_changes:
        raise Exit(EXIT_CHANGES)
    raise Exit(EXIT_OK)
