"""Runs by status: what ``hpcx runs status`` shows, read from the state as of the last
apply or refresh.

In: a state file, and optionally experiments and statuses to keep. Out: a :class:`RunStatus`
(counts per experiment and status, the runs themselves when asked, the runs measured under
contention, the requeued runs: checkpointed at their time limit or preempted, and resumed).
A selector that matches nothing is an error that names it, not "no runs match".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hpcx.state.records import RunSummary


@dataclass(slots=True)
class RunStatus:
    """``by_experiment``: experiment -> status -> count, in the state's order; ``runs``: the
    runs themselves (only when asked for); ``contended``: runs measured under contention."""

    by_experiment: dict[str, dict[str, int]] = field(default_factory=dict)
    runs: list[RunSummary] = field(default_factory=list)
    contended: list[dict[str, Any]] = field(default_factory=list)
    #: experiment -> (runs requeued at least once, requeues in all, runs waiting for their
    #: next attempt), for the experiments shown that have any.
    requeued: dict[str, tuple[int, int, int]] = field(default_factory=dict)


def run_status(
    state_path: Path,
    *,
    experiments: Sequence[str] = (),
    statuses: Sequence[str] = (),
    list_runs: bool = False,
) -> RunStatus:
    """Counts of runs by experiment and status (of these experiments, in these statuses, if
    given), with the runs when ``list_runs``. Raises :class:`~hpcx.errors.HpcxError` when
    the state is missing or a selector names an unknown experiment or status, or a status no
    selected run is in."""
    from hpcx.state.schema import RUN_STATUSES
    from hpcx.state.store import open_reader
    from hpcx.util.selection import Unmatched, known_list, raise_unmatched, unknown_names

    with open_reader(state_path) as store:
        # Every experiment's counts, filtered here: the names the selectors may take come
        # from the same rows, so a selector that matches nothing is named, not "No runs match".
        all_counts = store.status_counts()
        known = {r.experiment for r in all_counts}
        unmatched = unknown_names("-e", experiments, known)
        unmatched += unknown_names("--status", statuses, RUN_STATUSES, what="status")
        for st in dict.fromkeys(statuses):
            if st in RUN_STATUSES and not any(
                r.status == st and (not experiments or r.experiment in experiments)
                for r in all_counts
            ):
                unmatched.append(Unmatched("--status", st, f"no run is {st}"))
        raise_unmatched(
            unmatched,
            hint=known_list(known)
            if any(u.option == "-e" for u in unmatched)
            else "`hpcx status` shows every run's status",
        )
        out = RunStatus()
        for exp, st, n in all_counts:
            if (not experiments or exp in experiments) and (not statuses or st in statuses):
                out.by_experiment.setdefault(exp, {})[st] = int(n)
        if list_runs:
            out.runs = store.run_summaries(experiments, statuses)
        out.contended = store.contended_runs(experiments)
        out.requeued = {
            exp: counts
            for exp, counts in store.requeue_counts(experiments).items()
            if exp in out.by_experiment
        }
    return out
