"""Rerun one recorded run exactly: its spec from the state, a new attempt, whatever its status.

In: a state file and a run id (or a unique prefix). Out: a :class:`RerunResult` with the change
carried out and the apply's outcome. ``hpcx runs rerun`` shows, asks and renders it through
:class:`RerunHooks`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from hpcx.plan.planner import RunChange
    from hpcx.run.apply import ApplyOutcome
    from hpcx.run.executors.base import ObservedStatus


class RerunHooks:
    """What :func:`rerun_session` asks its caller for; the defaults show nothing and confirm."""

    def show(self, change: RunChange) -> None:
        """The run to rerun is found and may be rerun: show it."""

    def confirm(self, change: RunChange) -> bool:
        """Go ahead? False: nothing is rerun."""
        return True

    def warn(self, message: str) -> None:
        """Something the user should know before the run starts."""

    def starting(self, change: RunChange) -> None:
        """The run is about to be submitted."""

    def progress(self, run_id: str, observed: ObservedStatus) -> None:
        """The run was observed while the rerun waits for it (a local run)."""


@dataclass(slots=True)
class RerunResult:
    """What one rerun did: ``outcome`` is None when ``declined`` at the confirmation."""

    change: RunChange
    outcome: ApplyOutcome | None = None
    declined: bool = False


def rerun_session(
    state_path: Path,
    run: str,
    *,
    project_root: Path,
    runs_root: Path,
    lock_timeout: float = 0.0,
    hooks: RerunHooks | None = None,
) -> RerunResult:
    """``hpcx rerun`` as a library call: under the writer lock (with the state checked and
    backed up), read the run's recorded spec, refuse a run still in flight, show, confirm,
    and apply it as a retry (waiting for a local run). Raises :class:`~hpcx.errors.HpcxError`.
    """
    from hpcx.errors import HpcxError
    from hpcx.plan.planner import Action, RunChange
    from hpcx.run import provenance
    from hpcx.run.apply import apply_changes, check_local_placements
    from hpcx.state.schema import IN_FLIGHT_STATUSES
    from hpcx.state.store import open_reader
    from hpcx.state.writer import Writer

    hooks = hooks if hooks is not None else RerunHooks()
    with Writer(state_path, "hpcx rerun", timeout=lock_timeout) as writer:
        with open_reader(state_path) as store:
            stored = store.stored_run(store.resolve_run(run).run_id)
        run_id, status, spec = stored.run_id, stored.status, stored.spec
        if status in IN_FLIGHT_STATUSES:
            raise HpcxError(
                f"run {run_id} is {status}: it is still in flight",
                hint="`hpcx refresh` to see whether it ended, or `hpcx cancel` it first",
            )
        change = RunChange(Action.RETRY, "rerun-requested", spec, run_id, spec.experiment, status)
        hooks.show(change)
        if not hooks.confirm(change):
            return RerunResult(change, declined=True)
        for warning in check_local_placements([spec]):
            hooks.warn(warning)
        prov = provenance.collect(project_root, [spec.source], {})
        hooks.starting(change)
        outcome = apply_changes(
            [change],
            writer=writer,
            runs_root=runs_root,
            progress=hooks.progress,
            project_root=project_root,
            provenance=prov,
        )
    return RerunResult(change, outcome)
