"""`hpcx apply`, `refresh`, `status`, `cancel`, `logs`, `show`, `note`, `rerun`, `force-unlock`.

Thin: parse, call the library (:func:`hpcx.run.apply.apply_session`,
:func:`hpcx.run.harvest.refresh_session`, the state's read methods; a writing command through a
:class:`hpcx.state.writer.Writer`), render, pick the exit code. Heavy imports happen inside the
commands.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import typer

from hpcx.cli._app import EXIT_ERROR, EXIT_OK, app, emit_json
from hpcx.run.apply import ApplyHooks

_STATE_HELP = "State file (default: .hpcx/state.duckdb at the project root; $HPCX_STATE)."
_RUNS_HELP = "Where run folders go (default: runs/ at the project root; $HPCX_RUNS_ROOT)."


def _paths(state: str | None, runs_root: str | None) -> tuple[Path, Path, Path]:
    from hpcx.project.paths import find_project_root, resolve_state_path
    from hpcx.run.apply import resolve_runs_root

    root = find_project_root()
    return root, resolve_state_path(state, root=root), resolve_runs_root(runs_root, root)


class _Progress:
    """Finished runs as a bar on a terminal, as one line per run otherwise (logs, CI)."""

    FINAL = frozenset({"succeeded", "failed", "cancelled", "timeout", "lost"})

    def __init__(self, total: int, quiet: bool) -> None:
        self.total = total
        self.done = 0
        self.quiet = quiet
        self.bar: Any = None
        self.task: Any = None
        if not quiet and sys.stderr.isatty() and total > 0:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

            self.bar = Progress(
                "[progress.description]{task.description}",
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                transient=True,
            )
            self.task = self.bar.add_task("runs", total=total)
            self.bar.start()

    def __call__(self, run_id: str, obs: Any) -> None:
        if obs.state not in self.FINAL:
            return
        self.done += 1
        if self.bar is not None:
            self.bar.update(self.task, completed=self.done)
        elif not self.quiet:
            extra = f" ({obs.reason})" if obs.reason and obs.state != "succeeded" else ""
            typer.echo(f"[{self.done}/{self.total}] {run_id} {obs.state}{extra}", err=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()


class _ApplyView(ApplyHooks):
    """How `hpcx apply` shows its session: the plan as `hpcx plan` renders it, the question,
    warnings on stderr, and the progress of the runs it waits for."""

    def __init__(
        self, root: Path, state_path: Path, *, max_runs: int | None, yes: bool, full: bool,
        quiet: bool,
    ) -> None:  # fmt: skip
        self.root = root
        self.state_path = state_path
        self.max_runs = max_runs
        self.yes = yes
        self.full = full
        self.quiet = quiet
        self.bar: _Progress | None = None

    def show(self, review: Any) -> None:
        from hpcx.plan.planner import summary_line
        from hpcx.plan.render import RenderContext, render_text
        from hpcx.project.paths import display_path

        if self.quiet:
            return
        ctx = RenderContext(
            state_path=display_path(self.state_path, self.root),
            state_exists=self.state_path.exists(),
            manifest_paths=[display_path(p, self.root) for p in review.manifest_paths],
        )
        sys.stdout.write(render_text(review.plan, full=self.full, context=ctx))
        if len(review.selected) != len(review.plan.changes):
            counts: dict[str, int] = {}
            for c in review.selected:
                counts[c.action.value] = counts.get(c.action.value, 0) + 1
            # summary_line says "Plan: ..."; this line is about the selection.
            typer.echo("Selected: " + summary_line(counts).removeprefix("Plan: "))

    def confirm(self, review: Any) -> bool:
        from hpcx.errors import PlanError

        if self.yes:
            return True
        if not sys.stdin.isatty():
            raise PlanError(
                "refusing to apply without confirmation (stdin is not a terminal)",
                hint="pass --yes",
            )
        return bool(typer.confirm(f"Apply {len(review.todo)} change(s)?", default=False))

    def warn(self, message: str) -> None:
        typer.echo(f"warning: {message}", err=True)

    def starting(self, review: Any) -> None:
        self.bar = _Progress(review.to_submit, self.quiet)

    def progress(self, run_id: str, observed: Any) -> None:
        if self.bar is not None:
            self.bar(run_id, observed)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


@app.command("apply")
def apply_command(
    paths: list[Path] = typer.Argument(
        None,
        help="Manifest files or folders (default: manifests/), or one saved plan (plan.json).",
    ),
    set_: list[str] = typer.Option([], "--set", help="Override a value: path=value (repeatable)."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Apply without asking for confirmation."),
    experiment: list[str] = typer.Option(
        [], "--experiment", "-e", help="Only these experiments (repeatable)."
    ),
    action: list[str] = typer.Option(
        [], "--action", help="Only these actions: create, retry, stale, update (repeatable)."
    ),
    where: list[str] = typer.Option(
        [], "--where", help="Only runs whose value matches: path=value, e.g. batch_size=8."
    ),
    detach: bool = typer.Option(
        False, "--detach", help="Local runs go on in the background; watch with `hpcx status`."
    ),
    no_wait: bool = typer.Option(
        False, "--no-wait", help="Return once submitted (SLURM always does; see `hpcx refresh`)."
    ),
    state: str | None = typer.Option(None, "--state", help=_STATE_HELP),
    runs_root: str | None = typer.Option(None, "--runs-root", help=_RUNS_HELP),
    max_runs: int | None = typer.Option(None, "--max-runs", help="Refuse sweeps larger than this."),
    lock_timeout: float = typer.Option(
        0.0, "--lock-timeout", help="Wait this many seconds for another apply/refresh to end."
    ),
    cluster: str | None = typer.Option(
        None, "--cluster", help="Cluster profile to check resources against (kind: Cluster)."
    ),
    full: bool = typer.Option(False, "--full", help="List every run in the plan shown."),
    as_json: bool = typer.Option(False, "--json", help="Print the outcome as JSON (needs --yes)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No plan or progress output."),
) -> None:
    """Submit what the plan says: new, failed-before and stale runs; record updated settings.

    Runs `refresh` first (unless given a saved plan), shows the plan, asks, submits, and for
    the local executor runs the queue here with a progress bar. Ctrl-C stops cleanly: stopped
    runs are recorded cancelled and the next apply takes them up again.
    """
    import gc

    gc.disable()  # a short-lived process building many small objects: see `hpcx plan`
    from hpcx.errors import PlanError
    from hpcx.run.apply import ApplyRequest, Selection, apply_session

    root, state_path, runs = _paths(state, runs_root)
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
    view = _ApplyView(
        root, state_path, max_runs=max_runs, yes=yes, full=full, quiet=quiet or as_json
    )
    try:
        done = apply_session(request, view)
    finally:
        view.close()
    if done.declined:
        typer.echo("Cancelled; nothing applied.")
        raise typer.Exit(EXIT_ERROR)
    outcome = done.outcome
    if outcome is None:
        if as_json:
            emit_json({"submitted": 0, "message": "no changes"})
        elif not quiet:
            typer.echo("Nothing to apply.")
        raise typer.Exit(EXIT_OK)

    result = outcome.to_dict()
    if as_json:
        emit_json(result)
    elif not quiet:
        _print_outcome(result, detach=detach, no_wait=no_wait)
    failed = any(result["finished"].get(s) for s in ("failed", "timeout", "lost"))
    if outcome.interrupted:
        typer.echo(
            "interrupted: stopped runs are recorded cancelled; apply again to resume", err=True
        )
        raise typer.Exit(130)
    if outcome.ambiguous:
        # Not a success: part of the sweep is in an unknown state until a refresh reconciles
        # it (nothing is submitted twice meanwhile: the runs stay in flight).
        typer.echo(
            f"error: {len(outcome.ambiguous)} submission(s) only partly confirmed by the scheduler",
            err=True,
        )
        typer.echo(
            "hint: run `hpcx refresh` (it adopts the jobs the scheduler holds and marks the "
            "rest lost), then `hpcx apply` to submit what did not go out",
            err=True,
        )
        raise typer.Exit(EXIT_ERROR)
    if outcome.not_submitted or failed:
        raise typer.Exit(EXIT_ERROR)


def _print_outcome(result: dict[str, Any], *, detach: bool, no_wait: bool) -> None:
    for p in result.get("problems", [])[:50]:
        typer.echo(f"warning: {p}", err=True)
    lines = []
    for s in result["submissions"]:
        jobs = ", ".join(s["job_ids"][:5]) + (" ..." if len(s["job_ids"]) > 5 else "")
        lines.append(f"Submitted {s['runs']} run(s) to {s['executor']} as {s['key']} (jobs {jobs})")
    if result["updated"]:
        lines.append(f"Recorded new settings of {result['updated']} run(s)")
    for rid, reason in list(result["not_submitted"].items())[:10]:
        lines.append(f"NOT submitted {rid}: {reason}")
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
    typer.echo("\n".join(lines))


@app.command("refresh")
def refresh_command(
    run_ids: list[str] = typer.Argument(
        None, help="With --reharvest: only these runs (ids or unique prefixes)."
    ),
    reharvest: bool = typer.Option(
        False,
        "--reharvest",
        help="Also re-read finished runs' folders with the manifests' current results rules, "
        "replacing their metrics (nothing reruns).",
    ),
    experiment: list[str] = typer.Option(
        [], "--experiment", "-e", help="With --reharvest: only these experiments."
    ),
    manifest: list[Path] = typer.Option(
        [],
        "--manifest",
        help="With --reharvest: manifest files or folders holding the rules (default: "
        "manifests/; without any, the rules recorded with each run).",
    ),
    state: str | None = typer.Option(None, "--state", help=_STATE_HELP),
    runs_root: str | None = typer.Option(None, "--runs-root", help=_RUNS_HELP),
    lock_timeout: float = typer.Option(0.0, "--lock-timeout", help="Wait for the writer lock."),
    as_json: bool = typer.Option(False, "--json", help="Print what changed as JSON."),
) -> None:
    """Sync with the schedulers and harvest finished runs' status and metrics into the state."""
    from hpcx.run.harvest import refresh_session

    root, state_path, runs = _paths(state, runs_root)
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
    if again is not None:
        doc["reharvest"] = again.to_dict()
    if as_json:
        emit_json(doc)
        return
    if again is not None:
        doc["problems"] = doc["problems"] + again.problems
    for p in doc["problems"][:50]:
        typer.echo(f"warning: {p}", err=True)
    states = (
        ", ".join(f"{n} {s}" for s, n in sorted(doc["by_state"].items())) or "nothing in flight"
    )
    typer.echo(
        f"Polled {doc['polled']} run(s): {states}. Updated {doc['changed']}, harvested "
        f"{doc['finished']} finished run(s) and {doc['metrics']} metric value(s)."
    )
    for key, what in doc["reconciled"].items():
        typer.echo(f"Reconciled submission {key}: {what}")
    if again is not None:
        updated = (
            f"; recorded the manifests' settings for {again.settings_updated} run(s)"
            if again.settings_updated
            else ""
        )
        typer.echo(
            f"Re-read {again.runs} finished run(s): {again.metrics} metric value(s) in place of "
            f"{again.dropped}{updated}."
        )


def _open_read(state_path: Path) -> Any:
    """Open the state read-only, retrying briefly while a writer holds it for a moment."""

    from hpcx.errors import StateError
    from hpcx.state.store import StateStore, is_uncreated

    if not state_path.exists() or is_uncreated(state_path):
        raise StateError(f"no state at {state_path} yet", hint="`hpcx apply` creates it")
    from hpcx.state.lock import reader_wait_s, retry_while_locked

    return retry_while_locked(
        lambda: StateStore.open(state_path, read_only=True), reader_wait_s()
    )


@app.command("status")
def status_command(
    experiment: list[str] = typer.Option([], "--experiment", "-e", help="Only these experiments."),
    status: list[str] = typer.Option([], "--status", "-s", help="Only runs in these statuses."),
    runs_list: bool = typer.Option(False, "--runs", help="List the runs, not just counts."),
    state: str | None = typer.Option(None, "--state", help=_STATE_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print as JSON."),
) -> None:
    """Runs by status, per experiment (as of the last apply/refresh)."""
    from hpcx.state.schema import RUN_STATUSES
    from hpcx.util.selection import Unmatched, known_list, raise_unmatched, unknown_names

    _, state_path, _ = _paths(state, None)
    with _open_read(state_path) as store:
        # Every experiment's counts, filtered here: the names the selectors may take come
        # from the same rows, so a selector that matches nothing is named, not "No runs match".
        all_counts = store.status_counts()
        known = {r.experiment for r in all_counts}
        unmatched = unknown_names("-e", experiment, known)
        unmatched += unknown_names("--status", status, RUN_STATUSES, what="status")
        for st in dict.fromkeys(status):
            if st in RUN_STATUSES and not any(
                r.status == st and (not experiment or r.experiment in experiment)
                for r in all_counts
            ):
                unmatched.append(Unmatched("--status", st, f"no run is {st}"))
        counts = [
            r
            for r in all_counts
            if (not experiment or r.experiment in experiment) and (not status or r.status in status)
        ]
        raise_unmatched(
            unmatched,
            hint=known_list(known)
            if any(u.option == "-e" for u in unmatched)
            else "`hpcx status` shows every run's status",
        )
        rows = store.run_summaries(experiment, status) if runs_list or as_json else []
        contended = store.contended_runs(experiment)
    by_exp: dict[str, dict[str, int]] = {}
    for exp, st, n in counts:
        by_exp.setdefault(exp, {})[st] = int(n)
    if as_json:
        emit_json(
            {
                "experiments": by_exp,
                "runs": [r._asdict() for r in rows],
                "contended": contended,
            }
        )
        return
    if not by_exp:
        typer.echo("No runs match.")
        return
    width = max(len(e) for e in by_exp)
    for exp, sts in by_exp.items():
        total = sum(sts.values())
        parts = ", ".join(f"{n} {s}" for s, n in sorted(sts.items()))
        typer.echo(f"{exp:<{width}}  {total:>6} run(s): {parts}")
    for r in rows:
        reason = f"  ({r.end_reason})" if r.end_reason else ""
        typer.echo(
            f"  {r.run_id}  {r.experiment:<{width}}  {r.status:<9}  job {r.job_id or '-'}{reason}"
        )
    if contended:
        # Measurements taken while other processes used the run's cores: say so every time.
        listed = ", ".join(
            f"{c['experiment']}/{c['run_id']}"
            + (f" ({c['other_frac']:.0%})" if isinstance(c["other_frac"], int | float) else "")
            for c in contended[:5]
        )
        more = f" and {len(contended) - 5} more" if len(contended) > 5 else ""
        typer.echo(
            f"warning: {len(contended)} run(s) measured under contention (other processes took "
            f"a share of their cores): {listed}{more}; `hpcx show RUN` has the figures; "
            "rerun them on a quiet machine (`hpcx rerun RUN`)",
            err=True,
        )


@app.command("cancel")
def cancel_command(
    runs: list[str] = typer.Argument(None, help="Run ids (or unique prefixes) to cancel."),
    experiment: list[str] = typer.Option(
        [], "--experiment", "-e", help="Every in-flight run of these."
    ),
    all_: bool = typer.Option(False, "--all", help="Every run in flight."),
    state: str | None = typer.Option(None, "--state", help=_STATE_HELP),
    lock_timeout: float = typer.Option(0.0, "--lock-timeout", help="Wait for the writer lock."),
    wait: float = typer.Option(
        15.0,
        "--wait",
        min=0.0,
        help="Seconds to wait for signalled runs to end before harvesting them.",
    ),
) -> None:
    """Cancel runs in flight (scancel for SLURM; a signal for local runs), then harvest them."""
    import time

    from hpcx.errors import HpcxError
    from hpcx.run.executors import Executor, Submission, get_executor
    from hpcx.run.harvest import harvest_submissions, in_flight_submissions
    from hpcx.state.writer import Writer
    from hpcx.util.selection import known_list, raise_unmatched, unknown_names

    _, state_path, _ = _paths(state, None)
    if not (runs or experiment or all_):
        raise HpcxError("say what to cancel", hint="run ids, --experiment NAME, or --all")
    with Writer(state_path, "hpcx cancel", timeout=lock_timeout) as writer:
        with _open_read(state_path) as store:
            wanted = {store.resolve_run(r).run_id for r in runs or []}
            if experiment:
                known = store.experiment_names()
                raise_unmatched(unknown_names("-e", experiment, known), hint=known_list(known))
                wanted |= store.run_ids_of(experiment)
        subs: list[Submission] = []
        asked: set[str] = set()
        stoppers: list[tuple[Executor, Submission]] = []
        unreached: list[tuple[str, int, HpcxError]] = []
        for row in in_flight_submissions(writer):
            if row.state != "submitted" or not row.detail.get("submission"):
                continue
            sub = Submission.from_json(row.detail["submission"])
            ids = set(row.run_ids) if all_ else set(row.run_ids) & wanted
            if ids:
                ex = get_executor(sub.executor, row.detail.get("options"))
                try:
                    ex.cancel([sub], ids)
                except HpcxError as exc:
                    # The scheduler could not be reached: these runs stay as they were
                    # (cancel pending); the other submissions are still cancelled.
                    unreached.append((sub.key, len(ids), exc))
                    continue
                subs.append(sub)
                asked |= ids
                stoppers.append((ex, sub))
        # A signalled run ends once its wrapper has stopped the program (a local run) or the
        # scheduler has ended the job: until then it reads as running, and harvesting at once
        # recorded nothing and said "Cancelled 0". Wait for that, bounded by --wait.
        deadline = time.monotonic() + wait
        while stoppers:
            seen = {rid: o for ex, sub in stoppers for rid, o in ex.poll([sub]).items()}
            if all(seen[r].final for r in asked if r in seen) or time.monotonic() >= deadline:
                break
            time.sleep(0.2)
        result = harvest_submissions(writer, subs)
    if unreached:
        _cancel_unreached(unreached)
    if not asked:
        if unreached:
            raise typer.Exit(EXIT_ERROR)
        typer.echo("Cancelled 0 run(s): none of them is in flight.")
        return
    states = {rid: result.observed[rid].state for rid in asked if rid in result.observed}
    n = sum(1 for st in states.values() if st == "cancelled")
    typer.echo(f"Cancelled {n} run(s).")
    stopping = sum(1 for rid in asked if rid in result.observed and not result.observed[rid].final)
    if stopping:
        typer.echo(
            f"{stopping} run(s) asked to stop have not ended yet (after {wait:g} s): "
            "`hpcx refresh` records them once they do."
        )
    ended: dict[str, int] = {}
    for rid, st in states.items():
        if st != "cancelled" and result.observed[rid].final:
            ended[st] = ended.get(st, 0) + 1
    if ended:
        typer.echo(
            "Ended on their own before the cancel reached them: "
            + ", ".join(f"{k} {st}" for st, k in sorted(ended.items()))
            + "."
        )
    if unreached:
        raise typer.Exit(EXIT_ERROR)


def _cancel_unreached(unreached: list[tuple[str, int, Any]]) -> None:
    for key, n, exc in unreached:
        typer.echo(f"error: submission {key}: {n} run(s) NOT cancelled: {exc}", err=True)
    hints = {exc.hint for _, _, exc in unreached if exc.hint}
    for hint in sorted(hints):
        typer.echo(f"hint: {hint}", err=True)


@app.command("logs")
def logs_command(
    run: str = typer.Argument(..., help="Run id (or a unique prefix)."),
    stderr: bool = typer.Option(False, "--stderr", help="Show stderr.log instead of stdout.log."),
    tail: int = typer.Option(0, "--tail", "-n", help="Only the last N lines."),
    state: str | None = typer.Option(None, "--state", help=_STATE_HELP),
) -> None:
    """Print a run's captured stdout (or stderr)."""
    from hpcx.errors import HpcxError

    _, state_path, _ = _paths(state, None)
    with _open_read(state_path) as store:
        run_id, run_dir = store.resolve_run(run)
    if not run_dir:
        raise HpcxError(f"run {run_id} has no run folder yet (never submitted)")
    path = Path(run_dir) / ("stderr.log" if stderr else "stdout.log")
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        raise HpcxError(f"{path} does not exist (the run has not started)") from None
    if tail > 0:
        text = "\n".join(text.splitlines()[-tail:]) + "\n"
    sys.stdout.write(text)


@app.command("show")
def show_command(
    run: str = typer.Argument(..., help="Run id (or a unique prefix)."),
    state: str | None = typer.Option(None, "--state", help=_STATE_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print as JSON."),
) -> None:
    """A run's spec, command, placement, history and results."""
    import json

    _, state_path, _ = _paths(state, None)
    with _open_read(state_path) as store:
        detail = store.run_detail(store.resolve_run(run).run_id)
    spec = detail.spec
    metrics_attempt = detail.metrics_attempt
    doc = {
        "run": {
            k: (str(v) if v is not None and not isinstance(v, (int, float, str)) else v)
            for k, v in detail.record.items()
        },
        "spec": spec,
        "metrics": {m[0]: {"last": m[1], "count": m[2]} for m in detail.metrics},
        "metrics_attempt": metrics_attempt,
        "meta": detail.meta,
        "history": [{**e, "at": str(e["at"])} for e in detail.events],
    }
    if as_json:
        emit_json(doc)
        return
    r = doc["run"]
    out = [
        f"run {r['run_id']}  ({r['experiment']})",
        f"  status:    {r['status']}" + (f" ({r['end_reason']})" if r.get("end_reason") else ""),
        f"  attempts:  {r['attempts']}   executor: {r['executor']}   job: {r['job_id'] or '-'}",
        f"  host:      {r['host'] or '-'}   numa node: {r['numa_node']}   gpus: {r['gpus'] or '-'}",
        f"  times:     started {r['started_at'] or '-'}, ended {r['ended_at'] or '-'}",
        f"  run dir:   {r['run_dir'] or '-'}",
        f"  source:    {r['source']}",
    ]
    if spec.get("workload"):
        out.append(f"  workload:  {spec['workload']}")
    if spec.get("command"):
        out.append(f"  command:   {json.dumps(spec['command'])}")
    out.append("  params:    " + json.dumps(spec.get("params"), sort_keys=True))
    out.append("  placement: " + json.dumps(spec.get("placement"), sort_keys=True))
    from hpcx.run import contention
    seen = contention.describe(contention.from_meta(doc["meta"]))
    if seen:
        out.append(f"  contention: {seen}")
    if doc["metrics"]:
        of = f" (attempt {metrics_attempt})" if metrics_attempt is not None else ""
        out.append(f"  results{of}:")
        for name, m in doc["metrics"].items():
            out.append(
                f"    {name} = {m['last']:.6g}"
                + (f"  ({m['count']} values)" if m["count"] > 1 else "")
            )
    meta = doc["meta"]
    if meta.get("git_commit") or meta.get("manifest_path"):
        dirty = " (dirty: git.diff in the run folder)" if meta.get("git_dirty") else ""
        untracked = ""
        if meta.get("manifest_tracked") is False:
            # Not in the commit: the copy beside the run is the only record of what it said.
            has_diff = bool(r["run_dir"]) and (Path(r["run_dir"]) / "git.diff").exists()
            dirty = dirty or " (dirty)"
            dirty = dirty if has_diff else " (dirty)"
            untracked = " (not tracked by git; as applied: manifest.yaml in the run folder)"
        out.append(
            f"  provenance: {meta.get('manifest_path', '-')}{untracked} @ "
            f"{str(meta.get('git_commit') or '-')[:12]} on {meta.get('git_branch') or '-'}"
            f"{dirty}; applied {meta.get('applied_at', '-')} by {meta.get('applied_by', '-')}"
            f" with hpcx {meta.get('hpcx_version', '-')}"
        )
    for note in meta.get("notes") or []:
        out.append(f"  note:      {note.get('at')} {note.get('by')}: {note.get('text')}")
    out.append("  history:")
    for e in doc["history"]:
        out.append(
            f"    {e['at']}  {e['event']:<16} {e['from_status'] or '-'} -> {e['to_status'] or '-'}"
        )
    from hpcx.util.termtext import printable

    # Names and notes are what a run or a user wrote: a terminal escape is shown, not obeyed.
    typer.echo(printable("\n".join(out), keep="\n"))


@app.command("force-unlock")
def force_unlock_command(
    lock_id: str = typer.Argument(..., help="The lock id that the lock error names."),
    state: str | None = typer.Option(None, "--state", help=_STATE_HELP),
) -> None:
    """Remove a writer lock left by a process that is gone for good (e.g. on another host)."""
    from hpcx.state.lock import force_unlock

    _, state_path, _ = _paths(state, None)
    holder = force_unlock(state_path, lock_id)
    typer.echo(f"Removed the lock of {holder.describe()}")


@app.command("note")
def note_command(
    run: str = typer.Argument(..., help="Run id (or a unique prefix)."),
    text: str = typer.Argument(..., help="The note."),
    state: str | None = typer.Option(None, "--state", help=_STATE_HELP),
    lock_timeout: float = typer.Option(0.0, "--lock-timeout", help="Wait for the writer lock."),
) -> None:
    """Attach a note to a run (kept in the state with who wrote it and when)."""
    import getpass
    from datetime import UTC, datetime

    from hpcx.state.writer import Writer

    _, state_path, _ = _paths(state, None)
    with Writer(state_path, "hpcx note", timeout=lock_timeout) as writer, writer.open() as store:
        run_id = store.resolve_run(run).run_id
        with store.transaction() as tx:
            n = tx.add_note(
                run_id,
                text,
                by=getpass.getuser(),
                at=datetime.now(UTC).isoformat(timespec="seconds"),
            )
    typer.echo(f"Noted on {run_id} ({n} note(s)).")


@app.command("rerun")
def rerun_command(
    run: str = typer.Argument(..., help="Run id (or a unique prefix)."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Rerun without asking."),
    state: str | None = typer.Option(None, "--state", help=_STATE_HELP),
    runs_root: str | None = typer.Option(None, "--runs-root", help=_RUNS_HELP),
    lock_timeout: float = typer.Option(0.0, "--lock-timeout", help="Wait for the writer lock."),
) -> None:
    """Run exactly that run again (same spec, a new attempt), whatever its status was.

    The spec comes from the state, not the manifests, so the rerun is the very run recorded
    (use `hpcx plan` / `apply` for what the manifests ask for now). Its earlier attempt's
    files are kept under attempts/ in its run folder.
    """
    from hpcx.errors import HpcxError, PlanError
    from hpcx.plan.planner import Action, RunChange
    from hpcx.run import provenance
    from hpcx.run.apply import apply_changes, check_local_placements
    from hpcx.state.schema import IN_FLIGHT_STATUSES
    from hpcx.state.writer import Writer

    root, state_path, runs = _paths(state, runs_root)
    with Writer(state_path, "hpcx rerun", timeout=lock_timeout) as writer:
        with _open_read(state_path) as store:
            stored = store.stored_run(store.resolve_run(run).run_id)
        run_id, status, spec = stored.run_id, stored.status, stored.spec
        if status in IN_FLIGHT_STATUSES:
            raise HpcxError(
                f"run {run_id} is {status}: it is still in flight",
                hint="`hpcx refresh` to see whether it ended, or `hpcx cancel` it first",
            )
        change = RunChange(Action.RETRY, "rerun-requested", spec, run_id, spec.experiment, status)
        typer.echo(f"↻ {run_id}  ({spec.experiment}; was {status}): rerun requested")
        if not yes:
            if not sys.stdin.isatty():
                raise PlanError("refusing to rerun without confirmation", hint="pass --yes")
            if not typer.confirm("Rerun it?", default=False):
                raise typer.Exit(EXIT_ERROR)
        for warning in check_local_placements([spec]):
            typer.echo(f"warning: {warning}", err=True)
        prov = provenance.collect(root, [spec.source], {})
        progress = _Progress(1, False)
        try:
            outcome = apply_changes(
                [change],
                writer=writer,
                runs_root=runs,
                progress=progress,
                project_root=root,
                provenance=prov,
            )
        finally:
            progress.close()
    result = outcome.to_dict()
    _print_outcome(result, detach=False, no_wait=False)
    if outcome.not_submitted or any(
        result["finished"].get(s) for s in ("failed", "timeout", "lost")
    ):
        raise typer.Exit(EXIT_ERROR)
