"""Cancel runs in flight: ask each one's executor to stop it, wait a moment, harvest.

In: a state file and which runs (ids or prefixes, experiments, or all in flight). Out: a
:class:`CancelResult` saying what each asked run ended as, which have not ended yet, and which
submissions' schedulers could not be reached. ``hpcx runs cancel`` renders it.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from hpcx.errors import HpcxError
    from hpcx.run.executors.base import ObservedStatus
    from hpcx.state.writer import Writer


@dataclass(frozen=True, slots=True)
class Unreached:
    """A submission whose scheduler refused or did not answer: its runs were not cancelled."""

    key: str
    runs: int
    error: HpcxError


@dataclass(slots=True)
class CancelResult:
    """What one cancel did. ``asked``: the runs an executor was asked to stop; ``observed``:
    what the harvest after the wait saw of them."""

    asked: set[str] = field(default_factory=set)
    observed: dict[str, ObservedStatus] = field(default_factory=dict)
    unreached: list[Unreached] = field(default_factory=list)
    #: Runs whose folder their job was to make and which cannot be made (the submission's
    #: spec.json for them damaged or removed): their jobs were cancelled with the rest.
    unmade: list[str] = field(default_factory=list)

    @property
    def cancelled(self) -> int:
        return sum(1 for o in self.observed.values() if o.state == "cancelled")

    @property
    def stopping(self) -> int:
        """Asked runs that had not ended when the wait ran out."""
        return sum(1 for o in self.observed.values() if not o.final)

    @property
    def ended_on_their_own(self) -> dict[str, int]:
        """Asked runs that ended (succeeded, failed, ...) before the cancel reached them."""
        ended: dict[str, int] = {}
        for o in self.observed.values():
            if o.state != "cancelled" and o.final:
                ended[o.state] = ended.get(o.state, 0) + 1
        return ended


def cancel_session(
    state_path: Path,
    *,
    runs: Sequence[str] = (),
    experiments: Sequence[str] = (),
    all_in_flight: bool = False,
    lock_timeout: float = 0.0,
    wait: float = 15.0,
) -> CancelResult:
    """Cancel these runs (ids or unique prefixes), every in-flight run of ``experiments``, or
    with ``all_in_flight`` every run in flight: under the writer lock, ask each submission's
    executor (scancel, or a signal for local runs), wait up to ``wait`` seconds for them to
    end, and harvest them. A submission whose scheduler cannot be reached is listed in
    :attr:`CancelResult.unreached` and the others are still cancelled.
    Raises :class:`~hpcx.errors.HpcxError` (nothing selected, an unknown run or experiment).
    """
    from hpcx.errors import HpcxError, MissingRunFolders
    from hpcx.run.executors import Executor, Submission, get_executor
    from hpcx.run.harvest import harvest_submissions, in_flight_submissions
    from hpcx.state.store import open_reader
    from hpcx.state.writer import Writer
    from hpcx.util.selection import known_list, raise_unmatched, unknown_names

    if not (runs or experiments or all_in_flight):
        raise HpcxError("say what to cancel", hint="run ids, --experiment NAME, or --all")
    out = CancelResult()
    with Writer(state_path, "hpcx cancel", timeout=lock_timeout) as writer:
        with open_reader(state_path) as store:
            wanted = {store.resolve_run(r).run_id for r in runs}
            if experiments:
                known = store.experiment_names()
                raise_unmatched(unknown_names("-e", experiments, known), hint=known_list(known))
                wanted |= store.run_ids_of(experiments)
        subs: list[Submission] = []
        stoppers: list[tuple[Executor, Submission]] = []
        for row in in_flight_submissions(writer):
            if row.state != "submitted" or not row.detail.get("submission"):
                continue
            sub = Submission.from_json(row.detail["submission"])
            ids = set(row.run_ids) if all_in_flight else set(row.run_ids) & wanted
            if ids:
                ex = get_executor(sub.executor, row.detail.get("options"))
                try:
                    ex.cancel([sub], ids)
                except MissingRunFolders as exc:
                    # Cancelled all the same (stop files for the rest, the jobs scancelled).
                    out.unmade.extend(exc.paths)
                except HpcxError as exc:
                    # The scheduler could not be reached: these runs stay as they were
                    # (cancel pending); the other submissions are still cancelled.
                    out.unreached.append(Unreached(sub.key, len(ids), exc))
                    continue
                subs.append(sub)
                out.asked |= ids
                stoppers.append((ex, sub))
        # A signalled run ends once its wrapper has stopped the program (a local run) or the
        # scheduler has ended the job: until then it reads as running, and harvesting at once
        # would record nothing and say "Cancelled 0". Wait for that, bounded by ``wait``.
        deadline = time.monotonic() + wait
        while stoppers:
            seen = {rid: o for ex, sub in stoppers for rid, o in ex.poll([sub]).items()}
            if all(seen[r].final for r in out.asked if r in seen) or time.monotonic() >= deadline:
                break
            time.sleep(0.2)
        result = harvest_submissions(writer, subs)
        held = _cancel_queued(writer, None if all_in_flight else wanted)
    out.observed = {rid: result.observed[rid] for rid in out.asked if rid in result.observed}
    for obs in held:
        out.asked.add(obs.run_id)
        out.observed[obs.run_id] = obs
    return out


def _cancel_queued(writer: Writer, wanted: set[str] | None) -> list[ObservedStatus]:
    """Runs hpcx holds with no job (``queued`` for room, ``blocked`` behind a run that did
    not succeed) among ``wanted`` (all with None) are cancelled here: no scheduler holds them,
    so none is asked (a cancelled run is then what any cancelled run is: a later apply runs
    it again)."""
    from hpcx.run.executors.base import ObservedStatus
    from hpcx.state.schema import HELD_STATUSES

    with writer.open() as store:
        if wanted is None:
            ids = store.queued_run_ids(HELD_STATUSES)
        else:
            ids = [r for r, st in store.run_statuses(wanted).items() if st in HELD_STATUSES]
        if not ids:
            return []
        reason = "cancelled while hpcx held it (queued or blocked; never submitted)"
        with store.transaction() as tx:
            tx.update_runs(
                [{"run_id": rid, "status": "cancelled", "end_reason": reason} for rid in ids],
                event="cancelled",
            )
    return [ObservedStatus(rid, "cancelled", "state", reason=reason) for rid in sorted(ids)]
