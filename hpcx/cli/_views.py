"""How `hpcx apply` and `hpcx rerun` show their sessions: the hook objects the library's use
cases call back. Imported only when one of those commands runs: they subclass the run stage's
hooks, and `hpcx --help` must not load the run stage."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from hpcx.cli._decl import echo
from hpcx.run.apply import ApplyHooks
from hpcx.run.rerun import RerunHooks


class Progress:
    """Finished runs as a bar on a terminal, as one line per run otherwise (logs, CI)."""

    FINAL = frozenset({"succeeded", "failed", "cancelled", "timeout", "pruned", "lost", "blocked"})

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
        if obs.state == "requeued" and not self.quiet:
            # Not an end: the run goes on in its next attempt. Said once per requeue.
            line = f"{run_id} attempt {obs.attempt} requeued ({obs.reason})"
            if self.bar is not None:
                self.bar.console.print(line, markup=False, highlight=False)
            else:
                echo(line, err=True)
            return
        if obs.state not in self.FINAL:
            return
        self.done += 1
        if self.bar is not None:
            self.bar.update(self.task, completed=self.done)
        elif not self.quiet:
            extra = f" ({obs.reason})" if obs.reason and obs.state != "succeeded" else ""
            echo(f"[{self.done}/{self.total}] {run_id} {obs.state}{extra}", err=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()


class _Watching:
    """What both views do alike: warnings on stderr, and the progress of the runs they wait
    for (a bar on a terminal, a line a run otherwise)."""

    bar: Progress | None = None

    def warn(self, message: str) -> None:
        echo(f"warning: {message}", err=True)

    def progress(self, run_id: str, observed: Any) -> None:
        if self.bar is not None:
            self.bar(run_id, observed)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


class ApplyView(_Watching, ApplyHooks):
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
        self.bar: Progress | None = None

    def note(self, message: str) -> None:
        if not self.quiet:
            echo(message, err=True)

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
            echo("Selected: " + summary_line(counts).removeprefix("Plan: "))

    def confirm(self, review: Any) -> bool:
        from hpcx.errors import PlanError

        if self.yes:
            return True
        if not sys.stdin.isatty():
            raise PlanError(
                "refusing to apply without confirmation (stdin is not a terminal)",
                hint="pass --yes",
            )
        return bool(_confirm(f"Apply {len(review.todo)} change(s)?", default=False))

    def starting(self, review: Any) -> None:
        self.bar = Progress(review.to_submit, self.quiet)


class RerunView(_Watching, RerunHooks):
    """How `hpcx rerun` shows its run, asks, warns, and draws the progress of the run."""

    def __init__(self, yes: bool) -> None:
        self.yes = yes
        self.bar: Progress | None = None

    def show(self, change: Any) -> None:
        echo(
            f"↻ {change.run_id}  ({change.experiment}; was {change.prior_status}): rerun requested"
        )

    def confirm(self, change: Any) -> bool:
        from hpcx.errors import PlanError

        if self.yes:
            return True
        if not sys.stdin.isatty():
            raise PlanError("refusing to rerun without confirmation", hint="pass --yes")
        return bool(_confirm("Rerun it?", default=False))

    def starting(self, change: Any) -> None:
        self.bar = Progress(1, False)


def _confirm(question: str, *, default: bool) -> bool:
    """Ask yes or no on the terminal (typer's prompt: imported only when asking)."""
    import typer

    return bool(typer.confirm(question, default=default))
