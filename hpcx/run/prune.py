"""The pruner: stop the search trials in flight that fall behind (``sweep.search.prune``).

For every search that prunes and has a trial in flight, it reads each trial's curve of the
prune metric (runs in flight: their run folder's ``metrics.jsonl``, through the metrics
protocol's reader; finished ones: the state), asks the rule (:mod:`hpcx.plan.prune`) and,
for each trial to stop: writes ``prune.json`` (rule, metric, step, value, threshold,
direction, at, reason) into its run folder, then the stop file ``pruned``, then asks the
run's executor to cancel it (local: a signal; SLURM: scancel). The job wrapper then ends the
attempt ``pruned`` with the reason from ``prune.json``, and the next harvest records it.

A run in the state as in flight whose folder already says it ended (a foreground apply's
queue, not harvested yet) counts as the trial its folder says it is. A trial that finishes
before the stop reaches it stays what it finished as.

Called by ``refresh_session`` after its harvest, and by a foreground local apply while its
queue runs (at most once a second).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hpcx.plan.prune import Decision, Point, PruneSettings, Trial
    from hpcx.state.records import PruneTrialRow
    from hpcx.state.writer import Writer

#: Run status (state) -> trial state (the rules'); in-flight statuses are read from the folder.
_TRIAL_OF_STATUS = {"succeeded": "complete", "pruned": "pruned"}


@dataclass(frozen=True, slots=True)
class PruneDecision:
    """One trial stopped by the pruner (or that it meant to, when ``error`` says why not)."""

    run_id: str
    experiment: str
    search_key: str
    trial: int | None
    decision: Decision
    #: Why the stop could not be sent (the scheduler did not answer, a full disk); None: sent.
    error: str | None = None

    @property
    def reason(self) -> str:
        return self.decision.reason

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "experiment": self.experiment,
            "search_key": self.search_key,
            "trial": self.trial,
            **self.decision.to_dict(),
            "error": self.error,
        }


def _folder_curve(run_dir: str, metric: str) -> tuple[Point, ...]:
    from hpcx.metrics import read_metric_rows
    from hpcx.plan.prune import Point

    def make(name: str, value: float, step: int | None, t: float | None, _line: int) -> Any:
        return Point(step, value, t or 0.0) if name == metric and step is not None else None

    try:
        rows, _, _, _ = read_metric_rows(Path(run_dir) / "metrics.jsonl", make, missing_ok=True)
    except OSError:
        # An unreadable file is the harvest's to report; the trial is left alone.
        return ()
    return tuple(r for r in rows if r is not None)


def _trial_state(status: str, folder_state: str | None) -> str:
    from hpcx.run import rundir

    if folder_state is None:
        return _TRIAL_OF_STATUS.get(status, "failed")
    if folder_state in rundir.ACTIVE_STATES:
        return "running"
    if folder_state in rundir.FINAL_STATES or folder_state == "lost":
        return _TRIAL_OF_STATUS.get(folder_state, "failed")
    # Pending or between attempts: in flight. A decision on it is dropped when it is found
    # not running at the stop.
    return "running"


def _trials(rows: Sequence[PruneTrialRow], metric: str) -> list[Trial]:
    """The rules' trials: in-flight ones as their folders say, finished ones from the state."""
    from hpcx.plan.prune import Point, Trial
    from hpcx.run.executors.base import observe_run_dir
    from hpcx.state.schema import IN_FLIGHT_STATUSES

    trials: list[Trial] = []
    for n, row in enumerate(rows):
        number = row.search.get("trial")
        number = number if isinstance(number, int) else n
        if row.status in IN_FLIGHT_STATUSES:
            seen = observe_run_dir(row.run_id, row.run_dir).state if row.run_dir else "pending"
            state = _trial_state(row.status, seen)
            curve = _folder_curve(row.run_dir, metric) if row.run_dir else ()
        else:
            state = _trial_state(row.status, None)
            curve = tuple(Point(s, v, t) for s, v, t in row.curve)
        trials.append(Trial(row.run_id, number, state, curve))
    return trials


def prune_in_flight(writer: Writer) -> list[PruneDecision]:
    """Decide every pruning search with a trial in flight and stop the trials that fall
    behind; the decisions, in search and trial order. Raises nothing for a trial it could
    not stop (the decision carries the error); StateError when the state cannot be read."""
    from hpcx.plan.prune import decide

    with writer.open() as store:
        searches = store.prune_trials()
    out: list[PruneDecision] = []
    for key, rows in searches.items():
        settings = _settings(rows)
        if settings is None:
            continue
        trials = _trials(rows, settings.metric)
        by_id = {r.run_id: r for r in rows}
        for d in decide(settings, trials):
            row = by_id[d.trial]
            number = row.search.get("trial")
            out.append(
                PruneDecision(
                    row.run_id,
                    row.experiment,
                    key,
                    number if isinstance(number, int) else None,
                    d,
                )
            )
    if not out:
        return out
    return _stop(writer, out)


def _settings(rows: Sequence[PruneTrialRow]) -> PruneSettings | None:
    from hpcx.plan.prune import PruneSettings

    for row in reversed(rows):  # the latest trial's settings
        doc = row.search.get("prune")
        if isinstance(doc, dict):
            return PruneSettings.from_dict(doc, where=f"run {row.run_id}: extra.search.prune")
    return None


def _stop(writer: Writer, decisions: list[PruneDecision]) -> list[PruneDecision]:
    """prune.json, the stop file, then the executor's cancel, per submission."""
    import dataclasses
    from datetime import UTC, datetime

    from hpcx.errors import HpcxError
    from hpcx.run import rundir
    from hpcx.run.executors import Submission, get_executor
    from hpcx.run.executors.base import write_stop
    from hpcx.run.harvest import in_flight_submissions
    from hpcx.util.files import atomic_write_json

    wanted = {d.run_id: d for d in decisions}
    subs: dict[str, tuple[Submission, dict[str, Any]]] = {}
    for row in in_flight_submissions(writer):
        if row.state == "submitted" and row.detail.get("submission"):
            for rid in row.run_ids:
                if rid in wanted:
                    sub = Submission.from_json(row.detail["submission"])
                    subs[rid] = (sub, dict(row.detail.get("options") or {}))
    at = datetime.now(UTC).isoformat(timespec="seconds")
    out: list[PruneDecision] = []
    for d in decisions:
        found = subs.get(d.run_id)
        if found is None:
            out.append(dataclasses.replace(d, error="no submission in flight holds it"))
            continue
        sub, options = found
        path = Path(sub.run_dirs[d.run_id])
        doc = rundir.observe(path)
        if doc.get("state") not in rundir.ACTIVE_STATES:
            continue  # it ended (or has not started) since it was read: nothing to stop
        try:
            atomic_write_json(path / rundir.PRUNE, {**d.decision.to_dict(), "at": at})
            write_stop(path, "pruned", doc.get("attempt"))
            get_executor(sub.executor, options).cancel([sub], [d.run_id])
        except (HpcxError, OSError) as exc:
            out.append(dataclasses.replace(d, error=str(exc)))
            continue
        out.append(d)
    return out


class PruneTicker:
    """The pruner as a waiting loop's hook: runs :func:`prune_in_flight` at most once per
    ``interval`` seconds, and keeps what it stopped."""

    def __init__(self, writer: Writer, interval: float = 1.0) -> None:
        self.writer = writer
        self.interval = max(interval, 1.0)
        self.last = 0.0
        self.stopped: list[PruneDecision] = []

    def __call__(self) -> None:
        now = time.monotonic()
        if now - self.last < self.interval:
            return
        self.last = now
        self.stopped.extend(prune_in_flight(self.writer))
