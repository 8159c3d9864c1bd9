"""``hpcx refresh`` as a library call: reconcile, poll, harvest, submit the next attempt of
runs whose scheduler would not requeue them, stop the search trials that fall behind
(:mod:`hpcx.run.prune`), and (asked) read finished runs' folders again.

The mechanism is :mod:`hpcx.run.harvest`'s; submitting is :mod:`hpcx.run.apply`'s. This module
is the use case that puts them together under the writer lock.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from hpcx.run.harvest import HarvestResult, ReharvestResult, reharvest

if TYPE_CHECKING:
    from hpcx.manifest.spec import RunSpec
    from hpcx.run.prune import PruneDecision


@dataclass(slots=True)
class RefreshSessionResult:
    """What one ``hpcx refresh`` did: the refresh, and the reharvest when one was asked."""

    refresh: HarvestResult
    reharvest: ReharvestResult | None = None
    #: Runs whose next attempt this refresh submitted (their scheduler would not requeue them).
    resubmitted: list[str] = field(default_factory=list)
    #: Queued runs this refresh submitted as room freed under the scheduler's limits, and
    #: how many still wait.
    topped_up: list[str] = field(default_factory=list)
    still_queued: int = 0  # counted by hpcx refresh (an apply does not ask)
    #: Search trials this refresh stopped for falling behind (recorded ``pruned`` by the
    #: harvest once their wrappers have ended them: the next refresh or apply).
    pruned: list[PruneDecision] = field(default_factory=list)


def refresh_session(
    state_path: Path,
    *,
    runs_root: Path | None = None,
    reharvest_runs: bool = False,
    run_ids: Sequence[str] = (),
    experiments: Sequence[str] = (),
    manifests: Sequence[Path] = (),
    project_root: Path | None = None,
    lock_timeout: float = 0.0,
) -> RefreshSessionResult:
    """``hpcx refresh`` as a library call: under the writer lock (with the state checked and
    backed up), reconcile, poll and harvest; with ``reharvest_runs``, then read finished runs'
    folders again (these run ids and experiments, if given) with the results rules of the
    ``manifests`` (the project's ``manifests/`` when none are named); without a
    ``project_root``, with the rules recorded with each run.
    Raises :class:`~hpcx.errors.HpcxError`.
    """
    from hpcx.errors import HpcxError, StateError
    from hpcx.state.writer import Writer

    if (run_ids or experiments or manifests) and not reharvest_runs:
        raise HpcxError(
            "run ids, --experiment and --manifest select what --reharvest re-reads",
            hint="add --reharvest, or leave them out for a plain refresh",
        )
    if not state_path.exists():
        raise StateError(f"no state at {state_path}", hint="`hpcx apply` creates it")
    desired = (
        manifest_rules(project_root, manifests)
        if reharvest_runs and project_root is not None
        else None
    )
    with Writer(state_path, "hpcx refresh", timeout=lock_timeout) as writer:
        from hpcx.run.apply import refresh_and_follow_up

        done = refresh_and_follow_up(writer, runs_root, count_queued=True)
        out = RefreshSessionResult(
            done.refresh,
            resubmitted=done.resubmitted,
            topped_up=done.topped_up,
            still_queued=done.still_queued,
            pruned=done.pruned,
        )
        if reharvest_runs:
            out.reharvest = reharvest(
                writer, experiments=experiments, run_ids=run_ids, desired=desired
            )
    return out


def manifest_rules(root: Path, paths: Sequence[Path]) -> dict[str, RunSpec]:
    """Run id -> RunSpec from the manifests (given, or ``manifests/`` under ``root`` when it
    exists), loaded as ``hpcx plan`` loads them: their results rules are what ``--reharvest``
    reads with. Empty without manifests."""
    from hpcx.plan.session import load_desired_at
    from hpcx.project.paths import default_manifest_paths

    if not paths:
        paths = [p for p in default_manifest_paths(root) if p.exists()]
        if not paths:
            return {}
    desired = load_desired_at(paths, [], None, root)
    return {run.run_id: run for run in desired.runs}
