"""``hpcx runs ...``: look at, annotate, rerun and cancel recorded runs.

Each command is also registered at the top level, hidden (``hpcx status`` is ``hpcx runs
status``), so scripts and muscle memory keep working while ``hpcx --help`` lists nouns.
Thin: parse, call the state's read methods or a library use case
(:func:`hpcx.run.cancel.cancel_session`, :func:`hpcx.run.rerun.rerun_session`), render, pick the
exit code.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from hpcx.cli._app import (
    EXIT_ERROR,
    PANEL_RUNS,
    RUNS_HELP,
    STATE_HELP,
    app,
    emit_json,
    project_paths,
)
from hpcx.cli._decl import Argument, Exit, Group, Option, echo
from hpcx.cli.apply import print_outcome
from hpcx.errors import first_few

runs_app = Group(
    name="runs",
    help="Recorded runs: status, show, logs, note, rerun, cancel.",
    no_args_is_help=True,
)
app.add_group(runs_app, name="runs", rich_help_panel=PANEL_RUNS)


def _open_read(state_path: Path) -> Any:
    from hpcx.state.store import open_reader

    return open_reader(state_path)


@runs_app.command("status")
def status_command(
    experiment: list[str] = Option([], "--experiment", "-e", help="Only these experiments."),
    status: list[str] = Option([], "--status", "-s", help="Only runs in these statuses."),
    runs_list: bool = Option(False, "--runs", help="List the runs, not just counts."),
    state: str | None = Option(None, "--state", help=STATE_HELP),
    as_json: bool = Option(False, "--json", help="Print as JSON."),
) -> None:
    """Runs by status, per experiment (as of the last apply/refresh)."""
    _, state_path, _ = project_paths(state, None)
    if state_path.exists():
        from hpcx.state import warm_up

        warm_up()  # DuckDB is made beside the imports below
    from hpcx.run.status import run_status

    found = run_status(
        state_path, experiments=experiment, statuses=status, list_runs=runs_list or as_json
    )
    by_exp, rows, contended = found.by_experiment, found.runs, found.contended
    if as_json:
        emit_json(
            {
                "experiments": by_exp,
                "runs": [r._asdict() for r in rows],
                "contended": contended,
                "requeued": {
                    exp: {"runs": n, "requeues": total, "waiting": waiting}
                    for exp, (n, total, waiting) in found.requeued.items()
                },
            }
        )
        return
    if not by_exp:
        echo("No runs match.")
        return
    width = max(len(e) for e in by_exp)
    for exp, sts in by_exp.items():
        total = sum(sts.values())
        parts = ", ".join(f"{n} {s}" for s, n in sorted(sts.items()))
        if exp in found.requeued:
            n, requeues, waiting = found.requeued[exp]
            parts += f"; {n} requeued ({requeues} requeue(s)" + (
                f", {waiting} waiting for the next attempt)" if waiting else ")"
            )
        echo(f"{exp:<{width}}  {total:>6} run(s): {parts}")
    for r in rows:
        reason = f"  ({r.end_reason})" if r.end_reason else ""
        echo(f"  {r.run_id}  {r.experiment:<{width}}  {r.status:<9}  job {r.job_id or '-'}{reason}")
    if contended:
        # Measurements taken while other processes used the run's cores: say so every time.
        listed = ", ".join(
            f"{c['experiment']}/{c['run_id']}"
            + (f" ({c['other_frac']:.0%})" if isinstance(c["other_frac"], int | float) else "")
            for c in contended[:5]
        )
        more = f" and {len(contended) - 5} more" if len(contended) > 5 else ""
        echo(
            f"warning: {len(contended)} run(s) measured under contention (other processes took "
            f"a share of their cores): {listed}{more}; `hpcx show RUN` has the figures; "
            "rerun them on a quiet machine (`hpcx rerun RUN`)",
            err=True,
        )


@runs_app.command("cancel")
def cancel_command(
    runs: list[str] = Argument(None, help="Run ids (or unique prefixes) to cancel."),
    experiment: list[str] = Option([], "--experiment", "-e", help="Every in-flight run of these."),
    all_: bool = Option(False, "--all", help="Every run in flight."),
    state: str | None = Option(None, "--state", help=STATE_HELP),
    lock_timeout: float = Option(0.0, "--lock-timeout", help="Wait for the writer lock."),
    wait: float = Option(
        15.0,
        "--wait",
        min=0.0,
        help="Seconds to wait for signalled runs to end before harvesting them.",
    ),
) -> None:
    """Cancel runs in flight (scancel for SLURM; a signal for local runs), then harvest them."""
    from hpcx.run.cancel import cancel_session

    _, state_path, _ = project_paths(state, None)
    done = cancel_session(
        state_path,
        runs=runs or [],
        experiments=experiment,
        all_in_flight=all_,
        lock_timeout=lock_timeout,
        wait=wait,
    )
    for u in done.unreached:
        echo(f"error: submission {u.key}: {u.runs} run(s) NOT cancelled: {u.error}", err=True)
    for hint in sorted({u.error.hint for u in done.unreached if u.error.hint}):
        echo(f"hint: {hint}", err=True)
    if done.unmade:
        echo(
            f"warning: {len(done.unmade)} run folder(s) could not be made for their stop file "
            f"(the submission's spec.json for them is damaged or removed; their jobs were "
            f"cancelled all the same): {first_few(done.unmade)}",
            err=True,
        )
    if not done.asked:
        if done.unreached:
            raise Exit(EXIT_ERROR)
        echo("Cancelled 0 run(s): none of them is in flight.")
        return
    echo(f"Cancelled {done.cancelled} run(s).")
    if done.stopping:
        echo(
            f"{done.stopping} run(s) asked to stop have not ended yet (after {wait:g} s): "
            "`hpcx refresh` records them once they do."
        )
    ended = done.ended_on_their_own
    if ended:
        echo(
            "Ended on their own before the cancel reached them: "
            + ", ".join(f"{k} {st}" for st, k in sorted(ended.items()))
            + "."
        )
    if done.unreached:
        raise Exit(EXIT_ERROR)


@runs_app.command("logs")
def logs_command(
    run: str = Argument(..., help="Run id (or a unique prefix)."),
    stderr: bool = Option(False, "--stderr", help="Show stderr.log instead of stdout.log."),
    tail: int = Option(0, "--tail", "-n", help="Only the last N lines."),
    state: str | None = Option(None, "--state", help=STATE_HELP),
) -> None:
    """Print a run's captured stdout (or stderr)."""
    from hpcx.errors import HpcxError

    _, state_path, _ = project_paths(state, None)
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


def _plain(value: Any) -> Any:
    """A state value as JSON has it: times (and anything else not plain) as text."""
    return str(value) if value is not None and not isinstance(value, int | float | str) else value


@runs_app.command("show")
def show_command(
    run: str = Argument(..., help="Run id (or a unique prefix)."),
    state: str | None = Option(None, "--state", help=STATE_HELP),
    as_json: bool = Option(False, "--json", help="Print as JSON."),
) -> None:
    """A run's spec, command, placement, history and results."""
    import json

    _, state_path, _ = project_paths(state, None)
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
        "attempts": [{k: _plain(v) for k, v in a.items()} for a in detail.attempts],
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
    search = (spec.get("extra") or {}).get("search")
    if isinstance(search, dict):
        obj = search.get("objective") or {}
        out.append(
            f"  search:    trial {search.get('trial')} of {search.get('budget')} "
            f"({search.get('sampler')}, {obj.get('direction')} {obj.get('metric')}), "
            f"search {search.get('key')}"
        )
    if len(doc["attempts"]) > 1 or any(a["state"] == "requeued" for a in doc["attempts"]):
        out.append("  attempt history:")
        for a in doc["attempts"]:
            when = f"{a['started_at'] or '-'} -> {a['ended_at'] or '-'}"
            out.append(
                f"    {a['attempt']:>3}  {a['state'] or '?':<10} job {a['job_id'] or '-'} on "
                f"{a['host'] or '-'}  {when}" + (f"  ({a['reason']})" if a["reason"] else "")
            )
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
    echo(printable("\n".join(out), keep="\n"))


@runs_app.command("note")
def note_command(
    run: str = Argument(..., help="Run id (or a unique prefix)."),
    text: str = Argument(..., help="The note."),
    state: str | None = Option(None, "--state", help=STATE_HELP),
    lock_timeout: float = Option(0.0, "--lock-timeout", help="Wait for the writer lock."),
) -> None:
    """Attach a note to a run (kept in the state with who wrote it and when)."""
    import getpass
    from datetime import UTC, datetime

    from hpcx.state.writer import Writer

    _, state_path, _ = project_paths(state, None)
    with Writer(state_path, "hpcx note", timeout=lock_timeout) as writer, writer.open() as store:
        run_id = store.resolve_run(run).run_id
        with store.transaction() as tx:
            n = tx.add_note(
                run_id,
                text,
                by=getpass.getuser(),
                at=datetime.now(UTC).isoformat(timespec="seconds"),
            )
    echo(f"Noted on {run_id} ({n} note(s)).")


@runs_app.command("rerun")
def rerun_command(
    run: str = Argument(..., help="Run id (or a unique prefix)."),
    yes: bool = Option(False, "--yes", "-y", help="Rerun without asking."),
    state: str | None = Option(None, "--state", help=STATE_HELP),
    runs_root: str | None = Option(None, "--runs-root", help=RUNS_HELP),
    lock_timeout: float = Option(0.0, "--lock-timeout", help="Wait for the writer lock."),
) -> None:
    """Run exactly that run again (same spec, a new attempt), whatever its status was.

    The spec comes from the state, not the manifests, so the rerun is the very run recorded
    (use `hpcx plan` / `apply` for what the manifests ask for now). Its earlier attempt's
    files are kept under attempts/ in its run folder.
    """
    from hpcx.run.rerun import rerun_session

    root, state_path, runs = project_paths(state, runs_root)
    from hpcx.cli._views import RerunView

    view = RerunView(yes)
    try:
        done = rerun_session(
            state_path,
            run,
            project_root=root,
            runs_root=runs,
            lock_timeout=lock_timeout,
            hooks=view,
        )
    finally:
        view.close()
    if done.outcome is None:
        raise Exit(EXIT_ERROR)
    result = done.outcome.to_dict()
    print_outcome(result, detach=False, no_wait=False)
    if done.outcome.not_submitted or any(
        result["finished"].get(s) for s in ("failed", "timeout", "lost")
    ):
        raise Exit(EXIT_ERROR)


# The short spellings (`hpcx status`, ...): the same commands, left out of `hpcx --help`.
app.command("status", hidden=True)(status_command)
app.command("cancel", hidden=True)(cancel_command)
app.command("logs", hidden=True)(logs_command)
app.command("show", hidden=True)(show_command)
app.command("note", hidden=True)(note_command)
app.command("rerun", hidden=True)(rerun_command)
