"""What the state's read methods return: typed rows, never raw tuples.

Each type is the answer to one question a command asks the state (:class:`StatusCount` for
``hpcx status``, :class:`RunDetail` for ``hpcx show``, :class:`HarvestTarget` for a refresh);
they hold plain values, so a caller never needs to know a column's position or how a JSON
column is stored. One type goes the other way: :class:`AttemptRow`, what a harvest writes
(:meth:`~hpcx.state.store.Transaction.record_attempts`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

if TYPE_CHECKING:
    from hpcx.manifest.spec import RunSpec


class StatusCount(NamedTuple):
    """How many runs of one experiment are in one status."""

    experiment: str
    status: str
    runs: int


class RunSummary(NamedTuple):
    """One line of ``hpcx status --runs``."""

    run_id: str
    experiment: str
    status: str
    attempts: int
    job_id: str | None
    host: str | None
    exit_code: int | None
    end_reason: str | None
    updated_at: datetime


class RunRef(NamedTuple):
    """A run named by an id or a unique prefix of one, and its run folder (None before it
    was ever submitted)."""

    run_id: str
    run_dir: str | None


class StoredRun(NamedTuple):
    """A run as the state recorded it: the spec it was last applied with."""

    run_id: str
    experiment: str
    status: str
    spec: RunSpec


@dataclass(frozen=True, slots=True)
class RunDetail:
    """Everything ``hpcx show`` prints about one run.

    ``record``: the run's columns (spec and identity left out: ``spec`` holds the former);
    ``meta``: its run_meta keys with their JSON values decoded; ``metrics``: per name (sorted)
    the final value and how many values the latest attempt that reported (``metrics_attempt``)
    gave; ``events``: its history, oldest first.
    """

    record: dict[str, Any]
    spec: dict[str, Any]
    meta: dict[str, Any]
    events: list[dict[str, Any]]
    metrics_attempt: int | None
    metrics: list[tuple[str, float, int]]
    #: Its attempts as recorded (the attempts table), earliest first.
    attempts: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class InFlightSubmission:
    """A submission that still has a run pending, submitted or running."""

    key: str
    executor: str
    #: One of SUBMISSION_STATES: ``intent`` and ``ambiguous`` ones are reconciled by a refresh.
    state: str
    #: What apply recorded: ``options`` (the executor's), ``runs_root``, and once submitted
    #: ``submission`` (the executor's Submission as JSON).
    detail: dict[str, Any]
    #: Its runs still in flight, sorted.
    run_ids: list[str] = field(default_factory=list)


class HarvestTarget(NamedTuple):
    """What a harvest needs of a run it observed: its recorded status, the manifest's
    ``results`` rules it was applied with (None: none), and its attempt count."""

    run_id: str
    status: str
    results: dict[str, Any] | None
    attempts: int


class AttemptRow(NamedTuple):
    """One attempt of a run, as a harvest records it (:meth:`Transaction.record_attempts`):
    the ``attempts`` table's columns less the serial, in :data:`~hpcx.state.schema.ATTEMPT_FIELDS`
    order after the run id."""

    run_id: str
    attempt: int
    state: str | None
    reason: str | None
    requeue_reason: str | None
    job_id: str | None
    host: str | None
    started_at: datetime | None
    ended_at: datetime | None
    exit_code: int | None


class UpstreamRun(NamedTuple):
    """A run another run needs, as the state holds it: what apply must know to make the
    dependent wait for it (its job), skip waiting (succeeded) or hold it ``blocked``."""

    run_id: str
    status: str
    executor: str | None
    job_id: str | None
    run_dir: str | None


class FinishedRun(NamedTuple):
    """A run that ended with a run folder, for ``refresh --reharvest``."""

    run_id: str
    experiment: str
    status: str
    run_dir: str
    attempts: int
    settings_digest: str | None
    #: The ``results`` rules recorded with the run (None: none).
    results: dict[str, Any] | None


class TrialRecord(NamedTuple):
    """One trial of a search (a run whose spec has ``extra.search``), for the sampler."""

    run_id: str
    status: str
    #: The run's ``extra.search``: key, trial, values, system_attrs, ...
    search: dict[str, Any]
    #: The last value of the objective metric the run logged (None: none logged).
    objective: float | None
    #: Pruned trials only: the objective metric's (step, value) pairs, by step.
    curve: tuple[tuple[int, float], ...] = ()


class PruneTrialRow(NamedTuple):
    """One trial of a search that prunes and has a trial in flight, for the pruner."""

    run_id: str
    experiment: str
    status: str
    run_dir: str | None
    #: The run's ``extra.search`` (key, trial, prune, ...).
    search: dict[str, Any]
    #: Finished trials only: the prune metric's (step, value, time) of the run's latest
    #: attempt that logged it, in logged order (time, then step); empty for runs in flight.
    curve: tuple[tuple[int, float, float], ...] = ()


class SubmittedJobs(Protocol):
    """What an executor sent under one submission key (structurally, the executors'
    ``Submission``; the state package cannot import the run stage). ``folder`` is
    ``<runs root>/.submissions/<key>``."""

    @property
    def key(self) -> str: ...
    @property
    def executor(self) -> str: ...
    @property
    def job_ids(self) -> tuple[str, ...]: ...
    @property
    def run_ids(self) -> tuple[str, ...]: ...
    @property
    def run_jobs(self) -> dict[str, str]: ...
    @property
    def run_dirs(self) -> dict[str, str]: ...
    @property
    def folder(self) -> str: ...
    def to_json(self) -> dict[str, Any]: ...
