"""`hpcx apply` and `hpcx refresh`: runs out to the executors, results back into the state.

Thin: parse, call the library (:func:`hpcx.run.apply.apply_session`,
:func:`hpcx.run.refresh.refresh_session`), render, pick the exit code. Heavy imports happen
inside the commands.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hpcx.cli._app import (
    EXIT_ERROR,
    EXIT_OK,
    PANEL_MANIFESTS,
    RUNS_HELP,
    STATE_HELP,
    app,
    emit_json,
    project_paths,
    warn_problems,
)
from hpcx.cli._decl import Argument, Exit, Option, echo
from hpcx.errors import first_few


@app.command("apply", rich_help_panel=PANEL_MANIFESTS)
def apply_command(
    paths: list[Path] = Argument(
        None,
        help="Manifest files or folders (default: manifests/), or one saved plan (plan.json).",
    ),
    set_: list[str] = Option([], "--set", help="Override a value: path=value (repeatable)."),
    yes: bool = Option(False, "--yes", "-y", help="Apply without asking for confirmation."),
    experiment: list[str] = Option(
        [], "--experiment", "-e", help="Only these experiments (repeatable)."
    ),
    action: list[str] = Option(
        [], "--action", help="Only these actions: create, retry, stale, update (repeatable)."
    ),
    where: list[str] = Option(
        [], "--where", help="Only runs whose value matches: path=value, e.g. batch_size=8."
    ),
    detach: bool = Option(
        False, "--detach", help="Local runs go on in the background; watch with `hpcx status`."
    ),
    no_wait: bool = Option(
        False, "--no-wait", help="Return once submitted (SLURM always does; see `hpcx refresh`)."
    ),
    state: str | None = Option(None, "--state", help=STATE_HELP),
    runs_root: str | None = Option(None, "--runs-root", help=RUNS_HELP),
    max_runs: int | None = Option(None, "--max-runs", help="Refuse sweeps larger than this."),
    lock_timeout: float = Option(
        0.0, "--lock-timeout", help="Wait this many seconds for another apply/refresh to end."
    ),
    cluster: str | None = Option(
        None, "--cluster", help="Cluster profile to check resources against (kind: Cluster)."
    ),
    full: bool = Option(False, "--full", help="List every run in the plan shown."),
    watch: bool = Option(
        False,
        "--watch",
        help="Apply again as runs end (a search's next trials, runs in flight on SLURM) until "
        "nothing is left to do; asks once.",
    ),
    interval: float = Option(
        15.0, "--interval", help="With --watch: seconds between refreshes while runs are in flight."
    ),
    as_json: bool = Option(False, "--json", help="Print the outcome as JSON (needs --yes)."),
    quiet: bool = Option(False, "--quiet", "-q", help="No plan or progress output."),
) -> None:
    """Submit what the plan says: new, failed-before and stale runs; record updated settings.

    Runs `refresh` first (unless given a saved plan), shows the plan, asks, submits, and for
    the local executor runs the queue here with a progress bar. Ctrl-C stops cleanly: stopped
    runs are recorded cancelled and the next apply takes them up again.
    """
    import gc
    import math

    gc.disable()  # a short-lived process building many small objects: see `hpcx plan`
    from hpcx.state import warm_up

    root, state_path, runs = project_paths(state, runs_root)
    warm_up()  # the state is opened soon: DuckDB is made beside the imports and the load
    from hpcx.errors import PlanError
    from hpcx.run.apply import ApplyRequest, Selection, apply_session

    selection = Selection.parse(experiments=experiment, actions=action, where=where)
    if as_json and not yes:
        raise PlanError("--json needs --yes (there is no one to ask)")
    request = ApplyRequest(
        project_root=root,
        state_path=state_path,
        runs_root=runs,
        paths=tuple(paths or ()),
        overrides=tuple(set_),
        selection=selection,
        cluster=cluster,
        wait=not no_wait,
        detach=detach,
        lock_timeout=lock_timeout,
    )
    from hpcx.cli._views import ApplyView

    view = ApplyView(
        root, state_path, max_runs=max_runs, yes=yes, full=full, quiet=quiet or as_json
    )
    if watch:
        if detach or no_wait:
            raise PlanError("--watch waits for the runs: not with --detach or --no-wait")
        if not (math.isfinite(interval) and interval > 0):
            raise PlanError(f"--interval must be a number of seconds above 0, not {interval}")
        if request.saved_plan is not None:
            raise PlanError(
                "--watch plans again each round, and a saved plan is what was reviewed once",
                hint="apply the saved plan, then `hpcx apply --watch` the manifests",
            )
        _watch(request, view, interval=interval, as_json=as_json, quiet=quiet)
        return
    elif interval != 15.0:
        raise PlanError("--interval is for --watch", hint="add --watch, or drop --interval")
    try:
        done = apply_session(request, view)
    finally:
        view.close()
    if done.declined:
        echo("Cancelled; nothing applied.")
        raise Exit(EXIT_ERROR)
    outcome = done.outcome
    if outcome is None:
        if as_json:
            emit_json({"submitted": 0, "message": "no changes"})
        elif not quiet:
            echo("Nothing to apply.")
        raise Exit(EXIT_OK)

    result = outcome.to_dict()
    if as_json:
        emit_json(result)
    elif not quiet:
        print_outcome(result, detach=detach, no_wait=no_wait)
    failed = any(result["finished"].get(s) for s in ("failed", "timeout", "lost"))
    if outcome.interrupted:
        echo("interrupted: stopped runs are recorded cancelled; apply again to resume", err=True)
        raise Exit(130)
    if outcome.ambiguous:
        # Not a success: part of the sweep is in an unknown state until a refresh reconciles
        # it (nothing is submitted twice meanwhile: the runs stay in flight).
        echo(
            f"error: {len(outcome.ambiguous)} submission(s) only partly confirmed by the scheduler",
            err=True,
        )
        echo(
            "hint: run `hpcx refresh` (it adopts the jobs the scheduler holds and marks the "
            "rest lost), then `hpcx apply` to submit what did not go out",
            err=True,
        )
        raise Exit(EXIT_ERROR)
    if outcome.not_submitted or failed:
        raise Exit(EXIT_ERROR)


def _watch(request: Any, view: Any, *, interval: float, as_json: bool, quiet: bool) -> None:
    """``apply --watch``: rounds of apply until nothing is left; each round's outcome printed
    as it ends (one JSON document at the end with --json)."""
    from hpcx.run.apply import apply_watch

    def on_round(n: int, result: Any) -> None:
        if as_json or quiet:
            return
        if result.outcome is not None:
            print_outcome(result.outcome.to_dict(), detach=False, no_wait=False)
        for s in result.review.plan.searches:
            best = s["best"]
            shown = ""
            if best["value"] is not None:
                shown = f", best {best['value']:.6g} (trial {best['trial']})"
            echo(
                f"Round {n}: search {s['experiment']}: {s['trials'] + len(s['proposed'])} of "
                f"{s['budget']} trials{shown}"
            )

    try:
        done = apply_watch(request, view, interval=interval, on_round=on_round)
    finally:
        view.close()
    outcomes = [r.outcome.to_dict() for r in done.rounds if r.outcome is not None]
    if as_json:
        emit_json({"rounds": outcomes, "stopped": done.stopped})
    elif not quiet:
        echo(f"Watch ended after {len(done.rounds)} round(s): {done.stopped}.")
    if done.stopped == "declined":
        raise Exit(EXIT_ERROR)
    if done.stopped == "interrupted":
        raise Exit(130)
    failed = any(o["finished"].get(s) for o in outcomes for s in ("failed", "timeout", "lost"))
    if done.stopped == "failed" or failed:
        raise Exit(EXIT_ERROR)


def print_outcome(result: dict[str, Any], *, detach: bool, no_wait: bool) -> None:
    warn_problems(result.get("problems", []))
    unread = (result.get("room") or {}).get("unread")
    if unread:
        echo(f"warning: {unread}", err=True)
    lines = []
    for s in result["submissions"]:
        lines.append(
            f"Submitted {s['runs']} run(s) to {s['executor']} as {s['key']} "
            f"(jobs {first_few(s['job_ids'])})"
        )
    if result.get("queued"):
        room = result.get("room") or {}
        why = (
            f"{room.get('source')}: {room.get('limit')} jobs, {room.get('used')} in the queue"
            if room
            else "the scheduler's limits"
        )
        lines.append(
            f"Queued {result['queued']} run(s) in hpcx's queue: no room under {why}. "
            "`hpcx refresh` (or `hpcx apply --watch`) submits them as jobs finish"
        )
    if result["updated"]:
        lines.append(f"Recorded new settings of {result['updated']} run(s)")
    for rid, reason in list(result["not_submitted"].items())[:10]:
        lines.append(f"NOT submitted {rid}: {reason}")
    held = result.get("blocked") or {}
    for rid, reason in list(held.items())[:10]:
        lines.append(f"Blocked {rid} (held, not submitted): {reason}")
    if len(held) > 10:
        lines.append(f"... and {len(held) - 10} more blocked: `hpcx status --runs -s blocked`")
    for key in result["ambiguous_submissions"]:
        amb = result.get("ambiguous_detail", {}).get(key) or {}
        sent, total = amb.get("sent", 0), amb.get("total", 0)
        lines.append(
            f"Submission {key}: {sent} of {total} run(s) went out, then the scheduler's answer "
            f"was unclear ({amb.get('error', 'no answer')}): the other {total - sent} "
            "may or may not have reached the scheduler; "
            "`hpcx refresh` will find out before anything is submitted again"
        )
    if result["finished"]:
        done = ", ".join(f"{n} {s}" for s, n in sorted(result["finished"].items()))
        lines.append(f"Finished: {done}")
        if result["finished"].get("blocked"):
            lines.append(
                "`hpcx status --runs -s blocked` lists the runs held because a run they need "
                "did not succeed: the next apply that retries it releases them"
            )
        bad = [s for s in ("failed", "timeout", "lost") if result["finished"].get(s)]
        if bad:
            flags = " ".join(f"-s {s}" for s in bad)
            lines.append(
                f"`hpcx status --runs {flags}` lists them; `hpcx logs RUN --stderr` shows why"
            )
    elif result["submissions"] and (
        detach or no_wait or any(s["executor"] != "local" for s in result["submissions"])
    ):
        lines.append("Runs are on their way: `hpcx status` to watch, `hpcx refresh` to harvest.")
    echo("\n".join(lines))


@app.command("refresh", rich_help_panel=PANEL_MANIFESTS)
def refresh_command(
    run_ids: list[str] = Argument(
        None, help="With --reharvest: only these runs (ids or unique prefixes)."
    ),
    reharvest: bool = Option(
        False,
        "--reharvest",
        help="Also re-read finished runs' folders with the manifests' current results rules, "
        "replacing their metrics (nothing reruns).",
    ),
    experiment: list[str] = Option(
        [], "--experiment", "-e", help="With --reharvest: only these experiments."
    ),
    manifest: list[Path] = Option(
        [],
        "--manifest",
        help="With --reharvest: manifest files or folders holding the rules (default: "
        "manifests/; without any, the rules recorded with each run).",
    ),
    state: str | None = Option(None, "--state", help=STATE_HELP),
    runs_root: str | None = Option(None, "--runs-root", help=RUNS_HELP),
    lock_timeout: float = Option(0.0, "--lock-timeout", help="Wait for the writer lock."),
    as_json: bool = Option(False, "--json", help="Print what changed as JSON."),
) -> None:
    """Sync with the schedulers and harvest finished runs' status and metrics into the state."""
    root, state_path, runs = project_paths(state, runs_root)
    if state_path.exists():
        from hpcx.state import warm_up

        warm_up()  # DuckDB is made beside the imports below
    from hpcx.run.refresh import refresh_session

    done = refresh_session(
        state_path,
        runs_root=runs,
        reharvest_runs=reharvest,
        run_ids=run_ids or [],
        experiments=experiment,
        manifests=manifest,
        project_root=root,
        lock_timeout=lock_timeout,
    )
    result, again = done.refresh, done.reharvest
    doc = result.to_dict()
    doc["pruned"] = [d.to_dict() for d in done.pruned]
    doc["topped_up"] = len(done.topped_up)
    doc["queued"] = done.still_queued
    if again is not None:
        doc["reharvest"] = again.to_dict()
    if as_json:
        emit_json(doc)
        return
    if again is not None:
        doc["problems"] = doc["problems"] + again.problems
    warn_problems(doc["problems"])
    states = (
        ", ".join(f"{n} {s}" for s, n in sorted(doc["by_state"].items())) or "nothing in flight"
    )
    echo(
        f"Polled {doc['polled']} run(s): {states}. Updated {doc['changed']}, harvested "
        f"{doc['finished']} finished run(s) and {doc['metrics']} metric value(s)."
    )
    for key, what in doc["reconciled"].items():
        echo(f"Reconciled submission {key}: {what}")
    if done.topped_up or done.still_queued:
        echo(
            f"Submitted {len(done.topped_up)} queued run(s) as room freed under the "
            f"scheduler's limits; {done.still_queued} still wait in hpcx's queue."
        )
    stopped = [d for d in done.pruned if d.error is None]
    if stopped:
        echo(f"Pruned {len(stopped)} run(s):")
    for d in done.pruned:
        trial = f" trial {d.trial}" if d.trial is not None else ""
        if d.error is None:
            echo(f"  {d.run_id} ({d.experiment}{trial}): {d.reason}")
        else:
            echo(f"warning: could not prune {d.run_id}: {d.error} ({d.reason})", err=True)
    if again is not None:
        updated = (
            f"; recorded the manifests' settings for {again.settings_updated} run(s)"
            if again.settings_updated
            else ""
        )
        echo(
            f"Re-read {again.runs} finished run(s): {again.metrics} metric value(s) in place of "
            f"{again.dropped}{updated}."
        )
