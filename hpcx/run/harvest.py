"""Refresh: bring the state up to date with the schedulers and the run folders.

Only runs the state still has in flight (pending, submitted, running) are looked at, so a
refresh is incremental and a second one adds nothing. Per executor there is one batched poll
(one ``squeue`` for SLURM); a run folder's ``status.json`` is the truth once the run ended.
Finished runs' metrics files are read by the native module's reader (C++ threads, plain
lines only: :func:`hpcx.metrics.read_plain_files`); every file it cannot prove clean is read
by the Python reader (:func:`hpcx.metrics.read_metric_rows`, which reports bad lines by
number). The rows land in one transaction in bulk. A malformed metrics line is reported
against its run and skipped; every other run's results still land.

Submissions left in ``intent`` or ``ambiguous`` (an apply killed between recording its intent
and recording the job ids, or an sbatch that timed out) are reconciled first: the executor
looks for jobs carrying the submission key; found ones are adopted, and runs that never
reached a scheduler become ``lost``, which the next plan retries.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias

from hpcx.state.schema import FINAL_STATUSES
from hpcx.util.files import read_json

if TYPE_CHECKING:
    from hpcx.run.executors.base import Executor, ObservedStatus, Submission
    from hpcx.state.records import AttemptRow, HarvestTarget, InFlightSubmission
    from hpcx.state.store import MetricColumns
    from hpcx.state.writer import KeptOpen, Writer

#: Metric rows on their way to the state: a tuple ``(run_id, name, step, value, time,
#: attempt)`` each, or (read by a pool of workers) the same rows as columns.
_Rows: TypeAlias = "list[tuple[Any, ...]] | MetricColumns"

#: Observed state (executor) -> run status (state file).
_STATUS_OF = {
    "pending": "submitted",
    "queued": "submitted",
    "claimed": "running",
    "running": "running",
    "succeeded": "succeeded",
    "failed": "failed",
    "cancelled": "cancelled",
    "timeout": "timeout",
    "pruned": "pruned",
    "lost": "lost",
    # Not started: a run it needs ended without success (the run folder or the scheduler
    # says so); held, at no scheduler, until a retry of that run releases it.
    "blocked": "blocked",
    # An attempt ended and the run's next one is to start (a checkpoint, a preemption): the
    # run is in flight, waiting as a submitted one does.
    "requeued": "submitted",
}


@dataclass(slots=True)
class HarvestResult:
    observed: dict[str, ObservedStatus] = field(default_factory=dict)
    #: Runs whose status changed in the state.
    changed: int = 0
    finished: int = 0
    metrics: int = 0
    #: "run <id>: metrics.jsonl line 3: ..." for every file problem met.
    problems: list[str] = field(default_factory=list)
    #: Submission key -> "adopted" | "lost" for reconciled submissions.
    reconciled: dict[str, str] = field(default_factory=dict)
    #: What the state held before the poll, read by the same open, for the steps that follow
    #: a refresh (each would open and close the state to find out): a run waiting ``queued``
    #: (for a top-up), a trial in flight of a search that prunes (for a prune). Its poll and
    #: ingest make neither; True where not read: no state, or a refresh that settles or
    #: adopts a submission first (which may queue runs or put trials in flight).
    queued_waiting: bool = True
    pruning_in_flight: bool = True

    def requeued_to_resubmit(self) -> list[str]:
        """The runs that ended an attempt ``requeued`` that hpcx itself resubmits (their
        scheduler does not requeue them), with a run folder to resume in."""
        return [
            obs.run_id
            for obs in self.observed.values()
            if obs.state == "requeued" and obs.requeue_by == "resubmit" and obs.run_dir
        ]

    def top_up_due(self) -> bool:
        """Whether a top-up after this refresh may find a run ``queued``: one waited before
        the poll, or a requeued run is resubmitted (and may wait queued for room)."""
        return self.queued_waiting or bool(self.requeued_to_resubmit())

    def to_dict(self) -> dict[str, Any]:
        by_state: dict[str, int] = {}
        for o in self.observed.values():
            by_state[o.state] = by_state.get(o.state, 0) + 1
        return {
            "polled": len(self.observed),
            "changed": self.changed,
            "finished": self.finished,
            "metrics": self.metrics,
            "by_state": by_state,
            "problems": self.problems,
            "reconciled": self.reconciled,
        }


def _ts(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        return None
    tz = dt.tzinfo
    if tz is UTC:
        # What run folders hold (utcnow's +00:00): the same naive UTC wall time as below,
        # built directly (astimezone and replace cost ~1.5 us, twice a run).
        return datetime(dt.year, dt.month, dt.day, dt.hour, dt.minute, dt.second, dt.microsecond)
    if tz is not None:
        dt = dt.astimezone(UTC).replace(tzinfo=None)
    return dt


def _metrics_rows(
    run_id: str,
    run_dir: str,
    result: HarvestResult,
    results: Mapping[str, Any] | None,
    expect: bool,
    attempt: int | None,
    first: int | None = None,
) -> tuple[list[tuple[Any, ...]], dict[str, Any]]:
    """A finished run folder's metric rows and meta: the metrics file, then what the
    manifest's ``results`` rules take from stdout and the files the program wrote.

    What the run wrote is data: a file that is not a regular one (a FIFO, a device, a
    symlink) or cannot be read is reported and skipped, and the run's own meta keys never
    replace what hpcx recorded (:func:`hpcx.run.provenance.own_meta`)."""
    from hpcx.manifest.result_sources import read_sources
    from hpcx.metrics import UnreadableFile, read_final_json, read_metric_rows
    from hpcx.run.provenance import own_meta

    results = results or {}

    # The run folder's metrics.jsonl is the current attempt's (earlier attempts' files are
    # moved under attempts/): each row carries that attempt, so a rerun's values never mix
    # with the earlier try's. Rows are built as the insert wants them, one tuple per line.
    def make(name: str, value: float, step: int | None, t: float | None, _line: int) -> Any:
        return (run_id, name, step, value, t, attempt)

    rows: list[tuple[Any, ...]] = []
    meta: dict[str, Any] = {}
    if first is not None and attempt is not None and first < attempt:
        # The requeued attempts before this one (the same try, resumed): their metrics files
        # were moved under attempts/N/ when the next attempt started, unread.
        rows.extend(_requeued_rows(run_id, run_dir, first, attempt, result))
    try:
        own, errors, file_meta, _ = read_metric_rows(
            os.path.join(run_dir, "metrics.jsonl"), make, missing_ok=True
        )
        rows.extend(own)
    except UnreadableFile as exc:
        result.problems.append(f"run {run_id}: metrics.jsonl: {exc.strerror}; not read")
        meta["hpcx.metrics_errors"] = [f"metrics.jsonl: {exc.strerror}"]
        errors, file_meta = [], {}
    except OSError as exc:
        result.problems.append(f"run {run_id}: cannot read metrics.jsonl: {exc.strerror or exc}")
        meta["hpcx.metrics_errors"] = [f"cannot read metrics.jsonl: {exc.strerror or exc}"]
        errors, file_meta = [], {}
    for err in errors:
        result.problems.append(f"run {run_id}: metrics.jsonl line {err.line}: {err.reason}")
    if results.get("stdout_json") is True:
        try:
            final = read_final_json(os.path.join(run_dir, "stdout.log"))
        except OSError as exc:
            result.problems.append(f"run {run_id}: stdout.log: {exc.strerror or exc}; not read")
            final = {}
        for name, value in final.items():
            rows.append((run_id, name, None, value, None, attempt))
    meta.update(own_meta(file_meta))
    if errors:
        meta["hpcx.metrics_errors"] = [f"line {e.line}: {e.reason}" for e in errors]
    if results.get("sources"):
        got = read_sources(run_dir, results["sources"], expect=expect)
        rows.extend((run_id, name, step, value, None, attempt) for name, step, value in got.rows)
        meta.update({f"units.{name}": unit for name, unit in got.units.items()})
        result.problems.extend(f"run {run_id}: {p}" for p in got.problems)
        if got.problems:
            meta["hpcx.results_errors"] = got.problems
    return rows, meta


def _requeued_rows(
    run_id: str, run_dir: str, first: int, attempt: int, result: HarvestResult
) -> list[tuple[Any, ...]]:
    """Metric rows of attempts ``first`` .. ``attempt - 1`` (archived under attempts/N/),
    each row with its own attempt."""
    from hpcx.metrics import UnreadableFile, read_metric_rows

    rows: list[tuple[Any, ...]] = []
    for n in range(first, attempt):

        def make(
            name: str, value: float, step: int | None, t: float | None, _line: int, n: int = n
        ) -> Any:
            return (run_id, name, step, value, t, n)

        path = os.path.join(run_dir, "attempts", str(n), "metrics.jsonl")
        try:
            got, errors, _, _ = read_metric_rows(path, make, missing_ok=True)
        except (UnreadableFile, OSError) as exc:
            result.problems.append(
                f"run {run_id}: attempts/{n}/metrics.jsonl: {exc.strerror or exc}; not read"
            )
            continue
        rows.extend(got)
        for err in errors:
            result.problems.append(
                f"run {run_id}: attempts/{n}/metrics.jsonl line {err.line}: {err.reason}"
            )
    return rows


def attempt_rows(run_id: str, obs: ObservedStatus) -> tuple[list[AttemptRow], int | None]:
    """The run's attempts as its folder records them (an attempt row each, for the state),
    and the first attempt of its current chain (the requeued attempts right before the
    current one; None without a folder). Only a run past its first attempt has archived
    ones to read: the first is the observation itself."""
    from hpcx.state.records import AttemptRow

    if not obs.run_dir or not isinstance(obs.attempt, int):
        return [], None
    current = AttemptRow(
        run_id,
        obs.attempt,
        obs.state,
        obs.reason,
        obs.requeue_reason,
        obs.job_id,
        obs.host,
        _ts(obs.started_at),
        _ts(obs.ended_at),
        obs.exit_code,
    )
    if obs.attempt <= 1:
        return [current], obs.attempt
    from hpcx.run import rundir

    rows = []
    first = obs.attempt
    chain = True
    for doc in reversed(rundir.archived_statuses(obs.run_dir)):
        n = doc.get("attempt")
        if not isinstance(n, int) or n >= obs.attempt:
            continue
        if chain and n == first - 1 and doc.get("state") == rundir.REQUEUED:
            first = n
        else:
            chain = False
        job = doc.get("job") or {}
        rows.append(
            AttemptRow(
                run_id,
                n,
                doc.get("state"),
                doc.get("reason"),
                doc.get("requeue_reason"),
                _job_of_status(job),
                doc.get("host"),
                _ts(doc.get("started_at")),
                _ts(doc.get("ended_at")),
                doc.get("exit_code"),
            )
        )
    rows.reverse()
    rows.append(current)
    return rows, first


def _job_of_status(job: Mapping[str, Any]) -> str | None:
    if job.get("SLURM_ARRAY_JOB_ID") and job.get("SLURM_ARRAY_TASK_ID") is not None:
        return f"{job['SLURM_ARRAY_JOB_ID']}_{job['SLURM_ARRAY_TASK_ID']}"
    jid = job.get("SLURM_JOB_ID")
    return str(jid) if jid else None


def ingest(
    writer: Writer,
    observed: Mapping[str, ObservedStatus],
    result: HarvestResult | None = None,
    *,
    targets: Mapping[str, HarvestTarget] | None = None,
) -> HarvestResult:
    """Write what was observed into the state: statuses, times, placement, metrics, meta.
    ``targets``: the observed runs' :class:`HarvestTarget` rows, when the caller read them from
    the state since it last changed (under this writer); else they are read here."""
    import gc

    # Tens of thousands of small rows, none in a cycle: the cyclic GC would only walk them.
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        return _ingest(writer, observed, result, targets)
    finally:
        if was_enabled:
            gc.enable()


#: Below this many finished runs, metrics files are read in this process; above it, in a pool
#: of forked workers, one per core (reading and validating is most of a big harvest's time).
PARALLEL_MIN_RUNS = 4000


#: A finished run to read: run id, run folder, its ``results`` rules, and whether it succeeded
#: (only then is a missing result file or match reported), the attempt its rows belong to, and
#: the first attempt of its chain (requeued attempts before it, read with it).
_ToRead = tuple[str, str, Mapping[str, Any] | None, bool, int | None, int | None]


def _read_chunk(
    items: Sequence[_ToRead],
) -> tuple[list[tuple[Any, ...]], dict[str, dict[str, Any]], list[str]]:
    """Metric rows, metadata and problems of finished runs' folders (a pool worker's job)."""
    scratch = HarvestResult()
    rows: list[tuple[Any, ...]] = []
    metas: dict[str, dict[str, Any]] = {}
    for rid, run_dir, results, expect, attempt, first in items:
        try:
            mrows, meta = _metrics_rows(rid, run_dir, scratch, results, expect, attempt, first)
        except Exception as exc:
            reason = f"its folder could not be read: {_describe(exc)}"
            scratch.problems.append(f"run {rid}: quarantined: {reason}")
            mrows, meta = [], {QUARANTINE_KEY: reason}
        rows.extend(mrows)
        if meta:
            metas[rid] = meta
    return rows, metas, scratch.problems


def _read_chunk_columns(
    items: Sequence[_ToRead],
) -> tuple[_Rows, dict[str, dict[str, Any]], list[str]]:
    """:func:`_read_chunk`, its rows sent back as columns: a pool worker's job. A few arrays
    pickle far cheaper than a tuple per row (a 100k-run harvest spent a sixth of its workers'
    time pickling 1.2M tuples), and the state inserts the columns as they are. Rows no column
    can hold (a step past int64, which the state refuses too) or no numpy: the tuples, and the
    commit finds what the state refuses as it always did."""
    from hpcx.state.store import MetricColumns

    rows, metas, problems = _read_chunk(items)
    try:
        cols = MetricColumns.from_rows(rows)
    except (OverflowError, ValueError, TypeError):
        cols = None
    return (rows if cols is None else cols), metas, problems


def _join_rows(parts: Sequence[_Rows]) -> _Rows:
    """The workers' rows in one: columns when every part is columns, else tuples."""
    from hpcx.state.store import MetricColumns

    cols = [p for p in parts if isinstance(p, MetricColumns)]
    if cols and len(cols) == len(parts):
        return MetricColumns.concat(cols)
    rows: list[tuple[Any, ...]] = []
    for p in parts:
        rows.extend(p.to_rows() if isinstance(p, MetricColumns) else p)
    return rows


#: From this many finished runs on, their metrics files are read by the native module first
#: (:func:`hpcx.metrics.read_plain_files`: C++ threads, no GIL, no pool); below it, numpy's
#: import would cost more than it saves.
NATIVE_MIN_RUNS = 500


def _plain(item: _ToRead) -> bool:
    """Whether all a harvest reads of this run is its metrics.jsonl, with rows that carry an
    int (or no) attempt: no ``results`` rules, no requeued attempts before this one."""
    _, _, results, _, attempt, first = item
    if results:
        if not isinstance(results, Mapping):
            return False
        if results.get("stdout_json") is True or results.get("sources"):
            return False
    if attempt is not None and (type(attempt) is not int or not -(2**63) <= attempt < 2**63):
        return False
    return not (first is not None and attempt is not None and first < attempt)


def _read_native(
    items: list[_ToRead], threads: int
) -> tuple[_Rows, dict[str, dict[str, Any]], list[str]] | None:
    """:func:`_read_finished` with the plain runs' metrics files read by the native module;
    every file it does not find clean (and every run that is not plain) is read by the Python
    reader as before, so problems, meta and quarantine are its. None without the native
    reader (or numpy)."""
    from hpcx.metrics import read_plain_files

    plain = [i for i, item in enumerate(items) if _plain(item)]
    if not plain:
        return None
    got = read_plain_files([os.path.join(items[i][1], "metrics.jsonl") for i in plain], threads)
    if got is None:
        return None
    import numpy as np

    from hpcx.state.store import MetricColumns

    done = {plain[j] for j in np.flatnonzero(got.clean).tolist()}
    rest = [item for i, item in enumerate(items) if i not in done]
    counts = got.counts
    attempts = [items[i][4] for i in plain]
    cols = MetricColumns(
        {
            "run_id": np.repeat(np.array([items[i][0] for i in plain], dtype=object), counts),
            "name": got.name,
            "step": got.step,
            "has_step": got.has_step,
            "value": got.value,
            "time": got.time,
            "has_time": got.has_time,
            "attempt": np.repeat(
                np.array([0 if a is None else a for a in attempts], dtype=np.int64), counts
            ),
            "has_attempt": np.repeat(np.array([a is not None for a in attempts]), counts),
        }
    )
    if not rest:
        return cols, {}, []
    rows, metas, problems = _read_python(rest, threads)
    parts: list[_Rows] = [cols]
    if not isinstance(rows, list):
        parts.append(rows)
    elif rows:
        try:
            more = MetricColumns.from_rows(rows)
        except (OverflowError, ValueError, TypeError):
            more = None
        parts.append(rows if more is None else more)
    return _join_rows(parts), metas, problems


def _read_finished(
    items: list[_ToRead],
) -> tuple[_Rows, dict[str, dict[str, Any]], list[str]]:
    """Metric rows, metadata and problems of finished runs' folders."""
    workers = min(os.cpu_count() or 1, 8)
    if len(items) >= NATIVE_MIN_RUNS:
        got = _read_native(items, workers)
        if got is not None:
            return got
    return _read_python(items, workers)


def _read_python(
    items: list[_ToRead], workers: int
) -> tuple[_Rows, dict[str, dict[str, Any]], list[str]]:
    """:func:`_read_finished` in Python: in this process, or a pool of forked workers (never
    while the state is kept open: :class:`~hpcx.util.proc.NoForkPools`)."""
    from hpcx.util.proc import forked_chunks

    if len(items) >= PARALLEL_MIN_RUNS:
        with contextlib.suppress(ImportError):
            # Imported once here rather than in each worker (the commit inserts with it).
            import numpy  # noqa: F401

    # Forked here, with the state closed and no other thread of ours running: the workers only
    # read files and send rows back.
    done = forked_chunks(_read_chunk_columns, items, workers, PARALLEL_MIN_RUNS)
    if done is None:
        return _read_chunk(items)
    parts: list[_Rows] = []
    metas: dict[str, dict[str, Any]] = {}
    problems: list[str] = []
    for r, m, p in done:
        parts.append(r)
        metas.update(m)
        problems.extend(p)
    return _join_rows(parts), metas, problems


def _ingest(
    writer: Writer,
    observed: Mapping[str, ObservedStatus],
    result: HarvestResult | None,
    targets: Mapping[str, HarvestTarget] | None = None,
) -> HarvestResult:
    result = result or HarvestResult()
    result.observed.update(observed)
    if not observed:
        return result
    if targets is None:
        with writer.open() as store:
            targets = store.harvest_targets(list(observed))
    # The state is closed while the run folders are read (we hold the writer lock: nobody
    # else writes meanwhile), unless the caller keeps it open (a small local refresh);
    # reopened for the one transaction that records it all.
    updates: list[dict[str, Any]] = []
    metas: dict[str, dict[str, Any]] = {}
    to_read: list[_ToRead] = []
    attempts: list[AttemptRow] = []
    for rid, obs in observed.items():
        target = targets.get(rid)
        if target is None:
            continue
        status = _STATUS_OF.get(obs.state, "lost")
        old = target.status
        if old == status and (old in FINAL_STATUSES or old == "blocked"):
            continue  # already harvested: idempotent
        moved_on = isinstance(obs.attempt, int) and obs.attempt > target.attempts
        if status == old and status in ("submitted", "running") and not moved_on:
            continue
        upd: dict[str, Any] = {"run_id": rid, "status": status}
        first: int | None = None
        # The current attempt's times, parsed once: its attempt row has them (the last row).
        current: AttemptRow | None = None
        if obs.final or moved_on or obs.state == "requeued":
            rows, first = attempt_rows(rid, obs)
            attempts.extend(rows)
            current = rows[-1] if rows else None
        if moved_on:
            # Requeues start attempts the state did not submit: it follows the folder.
            upd["attempts"] = obs.attempt
        if obs.job_id:
            upd["job_id"] = obs.job_id
        if obs.started_at:
            upd["started_at"] = current.started_at if current else _ts(obs.started_at)
        if obs.host:
            upd["host"] = obs.host
        if obs.final:
            ended = current.ended_at if current else _ts(obs.ended_at)
            upd["ended_at"] = ended or datetime.now(UTC).replace(tzinfo=None)
            upd["exit_code"] = obs.exit_code
            upd["end_reason"] = obs.reason
            if obs.run_dir:
                used = obs.placement or {}
                if isinstance(used.get("numa_node"), int):
                    upd["numa_node"] = used["numa_node"]
                if used.get("gpus"):
                    upd["gpus"] = used["gpus"]
                # The attempt the run folder says (status.json); else the state's count.
                attempt = obs.attempt if obs.attempt is not None else target.attempts
                to_read.append(
                    (rid, obs.run_dir, target.results, status == "succeeded", attempt, first)
                )
                meta: dict[str, Any] = {}
                if obs.duration_s is not None:
                    meta["duration_s"] = obs.duration_s
                if obs.attempt is not None:
                    meta["attempt"] = obs.attempt
                if used:
                    meta["placement"] = used
                # Flat keys, so the runs view has a column per figure (meta.contention.heavy).
                for key, value in (obs.contention or {}).items():
                    meta[f"contention.{key}"] = value
                if meta:
                    metas[rid] = meta
            result.finished += 1
        if obs.reason:
            upd["detail"] = {"source": obs.source, "reason": obs.reason}
        updates.append(upd)
    metric_rows, file_metas, problems = _read_finished(to_read)
    result.problems.extend(problems)
    for rid, meta in file_metas.items():
        metas[rid] = {**meta, **metas.get(rid, {})}
    # A resumed try is read from its first attempt on: rows an earlier harvest took from
    # those attempts (one that found the run lost between two of them) are replaced, not
    # doubled.
    clear = {
        rid: first
        for rid, _, _, _, attempt, first in to_read
        if first is not None and attempt is not None and first < attempt
    }
    if updates or metric_rows:
        result.metrics += _write_isolated(
            writer, updates, metric_rows, metas, result, clear or None, attempts=attempts
        )
    result.changed += len(updates)
    return result


#: The run_meta key of a run whose results could not be read or stored: the reason.
QUARANTINE_KEY = "hpcx.quarantined"


def _describe(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else ""
    text = text if len(text) <= 200 else text[:197] + "..."
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


#: Meta keys a harvest writes from a run folder, dropped before the folder is read again.
_HARVEST_KEYS = ("hpcx.metrics_errors", "hpcx.results_errors", QUARANTINE_KEY)


def _commit(
    writer: Writer,
    updates: Sequence[Mapping[str, Any]],
    rows: _Rows,
    metas: Mapping[str, Mapping[str, Any]],
    clear: Mapping[str, int | None] | None = None,
    specs: Sequence[Any] = (),
    attempts: Sequence[AttemptRow] = (),
) -> int:
    """One transaction: ``specs`` recorded (a reharvest's new settings), the ``clear`` runs'
    earlier harvest dropped (run id -> attempt), then statuses, attempts, rows and meta.
    Returns the metric rows dropped."""
    dropped = 0
    with writer.transaction() as tx:
        if specs:
            tx.record_runs(specs, detail={"by": "refresh --reharvest"})
        if clear:
            dropped = tx.clear_harvest(clear, _HARVEST_KEYS)
        if updates:
            tx.update_runs(updates, event="observed")
        if attempts:
            tx.record_attempts(attempts)
        if isinstance(rows, list):
            if rows:
                tx.add_metrics(rows)
        else:
            tx.add_metric_columns(rows)
        tx.set_run_meta_many(metas)
    return dropped


def _write_isolated(
    writer: Writer,
    updates: list[dict[str, Any]],
    rows: _Rows,
    metas: dict[str, dict[str, Any]],
    result: HarvestResult | ReharvestResult,
    clear: Mapping[str, int | None] | None = None,
    specs: Sequence[Any] = (),
    attempts: Sequence[AttemptRow] = (),
) -> int:
    """Record the harvest in one transaction; returns the metric rows that landed.

    The reader checks every line against what the state can store, so this is one bulk
    write. Should the state still refuse something a run wrote, no run may take the others
    down with it: the runs are halved until the one(s) refused are found (each good half
    commits on its own), and each of those is quarantined: its status is recorded, its
    metrics and meta are not, and ``hpcx.quarantined`` says why. Trouble with the state
    itself (locked, full disk, damage: an :class:`~hpcx.errors.HpcxError` or OSError) is
    not a run's fault and is raised as it is. ``clear`` and ``specs``: see :func:`_commit`
    (a reharvest's; a ReharvestResult's ``dropped`` is counted here).
    """
    from hpcx.errors import HpcxError

    def dropped(n: int) -> None:
        if isinstance(result, ReharvestResult):
            result.dropped += n

    try:
        dropped(_commit(writer, updates, rows, metas, clear, specs, attempts))
        return len(rows)
    except (HpcxError, OSError):
        raise
    except Exception as first:
        failure = first
    if specs:
        _commit(writer, [], [], {}, specs=specs)  # settings are hpcx's, never refused
    if not isinstance(rows, list):
        rows = rows.to_rows()  # run by run from here on
    upd_of = {u["run_id"]: u for u in updates}
    rows_of: dict[str, list[tuple[Any, ...]]] = {}
    for r in rows:
        rows_of.setdefault(r[0], []).append(r)
    attempts_of: dict[str, list[AttemptRow]] = {}
    for a in attempts:
        attempts_of.setdefault(a.run_id, []).append(a)
    ids = sorted(set(upd_of) | set(rows_of) | set(metas) | set(clear or ()) | set(attempts_of))
    landed = 0

    def cleared(group: list[str]) -> dict[str, int | None] | None:
        return {rid: clear[rid] for rid in group if rid in clear} if clear else None

    def attempt(group: list[str]) -> Exception | None:
        nonlocal landed
        part = [r for rid in group for r in rows_of.get(rid, ())]
        try:
            n = _commit(
                writer,
                [upd_of[rid] for rid in group if rid in upd_of],
                part,
                {rid: metas[rid] for rid in group if rid in metas},
                cleared(group),
                attempts=[a for rid in group for a in attempts_of.get(rid, ())],
            )
        except (HpcxError, OSError):
            raise
        except Exception as exc:
            return exc
        dropped(n)
        landed += len(part)
        return None

    def settle(group: list[str], exc: Exception) -> None:
        if len(group) > 1:
            half = len(group) // 2
            for part in (group[:half], group[half:]):
                err = attempt(part)
                if err is not None:
                    settle(part, err)
            return
        (rid,) = group
        reason = f"the state refused its results: {_describe(exc)}"
        try:
            n = _commit(
                writer,
                [upd_of[rid]] if rid in upd_of else [],
                [],
                {rid: {QUARANTINE_KEY: reason}},
                cleared(group),
            )
            dropped(n)
        except Exception:
            # Not even its status could be written: not the run's data after all.
            raise failure from None
        result.problems.append(
            f"run {rid}: quarantined: {reason}; its status is recorded, its metrics and meta "
            f"are not (fix or remove what it wrote, then `hpcx refresh --reharvest {rid}`)"
        )

    settle(ids, failure)
    return landed


def harvest_submissions(
    writer: Writer,
    submissions: Sequence[Submission],
    *,
    executor: Executor | None = None,
    targets: Mapping[str, HarvestTarget] | None = None,
) -> HarvestResult:
    """Poll these submissions (one batched call per executor kind) and ingest (``targets``:
    see :func:`ingest`)."""
    from hpcx.run.executors import get_executor

    by_kind: dict[str, list[Submission]] = {}
    for s in submissions:
        by_kind.setdefault(s.executor, []).append(s)
    observed: dict[str, ObservedStatus] = {}
    for kind, subs in by_kind.items():
        ex = executor if executor is not None and executor.kind == kind else get_executor(kind)
        observed.update(ex.poll(subs))
    return ingest(writer, observed, targets=targets)


def in_flight_submissions(writer: Writer) -> list[InFlightSubmission]:
    """Submissions that still have a run in flight, each with those runs."""
    with writer.open() as store:
        found: list[InFlightSubmission] = store.in_flight_submissions()
    return found


#: Up to this many runs in flight, a local refresh keeps the state open from its first read to
#: its commit: readers (`hpcx status`) wait meanwhile, 5 s at most by default. A 10k-run hold
#: took ~1.1 s here, 100k ~6.4 s; the two opens it saves are worth ~0.1 s whatever the size.
KEEP_OPEN_MAX_RUNS = 15_000

#: Submission states a refresh settles with the scheduler before polling (it writes then).
_RECONCILED = ("intent", "ambiguous")


def refresh(writer: Writer, *, runs_root: Path | None = None) -> HarvestResult:
    """Reconcile unfinished submissions, poll every run in flight, and ingest.

    When every run in flight is the local queue's (its poll reads run folders and asks no
    scheduler), the native readers are here (no pool of workers is forked), fewer than
    :data:`PARALLEL_MIN_RUNS` of them have ``results`` rules, they are at most
    :data:`KEEP_OPEN_MAX_RUNS`, and no submission on disk is to be adopted, the state is
    opened once for it all (:meth:`~hpcx.state.writer.Writer.kept_open`: 0.1 s of a 10k-run
    refresh); otherwise it is closed while runs are polled and read, and opened again to
    record."""
    result = HarvestResult()
    if not writer.path.exists():
        return result
    with writer.kept_open() as kept:
        return _refresh(writer, result, runs_root, kept)


def _refresh(
    writer: Writer, result: HarvestResult, runs_root: Path | None, kept: KeptOpen
) -> HarvestResult:
    from hpcx.metrics import native_readers
    from hpcx.run.executors import Submission, get_executor
    from hpcx.state.backup import unknown_submissions

    subs: list[Submission] = []
    targets: dict[str, HarvestTarget] | None = None
    unknown: list[Path] = []
    # One open for everything read before the poll (each open and close of the state costs
    # a checkpoint, and the open itself ~2 ms, ~25 ms where it makes the process's instance).
    with writer.open() as store:
        if runs_root is not None:
            from hpcx.run.runs_root import check_runs_root_owner

            # Before adopting anything from it: another state's runs are not ours to adopt.
            check_runs_root_owner(writer, runs_root, create=False, store=store)
            unknown = unknown_submissions(writer.path, runs_root, store.known_submissions)
        in_flight = store.in_flight_submissions()
        settles = bool(unknown) or any(row.state in _RECONCILED for row in in_flight)
        if not settles:
            # Nothing below queues a run or puts a trial in flight: the ingest only ends runs.
            # Settling a submission may do both (a top-up's runs that never went out wait
            # queued again; adopted trials are in flight): then the follow-ups go ahead.
            result.queued_waiting, result.pruning_in_flight = store.follow_ups()
            # Nothing below writes to the state before the ingest, and we hold the writer
            # lock: the runs' harvest targets read now are the ones the ingest would read
            # (those of every run in flight: the ones polled among them).
            targets = store.in_flight_targets()
    local = all(row.executor == "local" and row.state not in _RECONCILED for row in in_flight)
    # Runs with `results` rules are read by the Python reader, in a pool from so many on.
    ruled = sum(1 for t in (targets or {}).values() if t.results)
    many = len(targets or ()) > KEEP_OPEN_MAX_RUNS
    if unknown or not local or not native_readers() or ruled >= PARALLEL_MIN_RUNS or many:
        # A scheduler is asked, a pool may be forked, or readers would wait too long: the
        # state is closed while the runs are polled and read, and opened again to record.
        kept.release()
    if unknown and runs_root is not None:
        subs.extend(adopt_unknown_submissions(writer, runs_root, result, folders=unknown))
        in_flight = in_flight_submissions(writer)  # with what adoption recorded
    for row in in_flight:
        detail = row.detail
        options = dict(detail.get("options") or {})
        if row.state == "submitted" and detail.get("submission"):
            sub = Submission.from_json(detail["submission"])
            # Only its runs still in flight under this key: a run sent again since (a retry,
            # a released blocked run) is polled under its new job, never its old one's end.
            mine = set(row.run_ids)
            if len(mine) < len(sub.run_ids):
                sub = dataclasses.replace(sub, run_ids=tuple(r for r in sub.run_ids if r in mine))
            subs.append(sub)
            continue
        if row.state not in _RECONCILED:
            continue
        root = Path(detail.get("runs_root") or runs_root or ".")
        ex = get_executor(row.executor, options)
        found = ex.reconcile(row.key, root)
        with writer.transaction() as tx:
            if found is not None:
                # Count an attempt only for runs not already recorded submitted (an ambiguous
                # submission records what did go out before the failure).
                tx.record_submitted(found, options, count_attempts="pending")
                # Runs of chunks that never reached the scheduler (the apply died between two
                # sbatch calls, or a later one failed): lost, so the next plan retries them.
                # Left alone they stayed `pending` forever, never polled, never planned again.
                missing = [rid for rid in row.run_ids if rid not in found.run_jobs]
                if missing:
                    tx.update_runs(
                        _never_sent(
                            missing,
                            "its part of the submission never reached the scheduler",
                            bool(detail.get("from_queue")),
                        ),
                        event="reconciled",
                    )
                    result.changed += len(missing)
                subs.append(found)
                result.reconciled[row.key] = "adopted"
            else:
                tx.record_submission(
                    row.key,
                    executor=row.executor,
                    state="failed",
                    detail={**detail, "reconciled": "nothing reached the scheduler"},
                )
                tx.update_runs(
                    _never_sent(
                        row.run_ids,
                        "its submission never reached the scheduler",
                        bool(detail.get("from_queue")),
                    ),
                    event="reconciled",
                )
                result.reconciled[row.key] = "lost"
                result.changed += len(row.run_ids)
    if subs:
        polled = harvest_submissions(writer, subs, targets=targets)
        result.observed.update(polled.observed)
        result.changed += polled.changed
        result.finished += polled.finished
        result.metrics += polled.metrics
        result.problems.extend(polled.problems)
    return result


def _never_sent(run_ids: Sequence[str], why: str, from_queue: bool) -> list[dict[str, Any]]:
    """Runs of a submission that never reached the scheduler: ``lost`` (the next plan retries
    them), or, taken from hpcx's queue by a top-up, back to ``queued`` (the next refresh
    tops them up again: a refresh loop alone finishes the sweep)."""
    if from_queue:
        return [
            {
                "run_id": rid,
                "status": "queued",
                "submission_key": None,
                "job_id": None,
                "detail": {"why": f"{why}: back in hpcx's queue"},
            }
            for rid in run_ids
        ]
    return [{"run_id": rid, "status": "lost", "end_reason": why} for rid in run_ids]


def _slurm_submission(intent: Mapping[str, Any], runs_root: Path) -> Submission | None:
    """What a SLURM ``submission.json`` sent: the job ids it records, else (an apply that
    died between its sbatch and writing them) what the scheduler holds under its key; None
    when nothing went out. Raises HpcxError or OSError when the scheduler cannot be asked."""
    from hpcx.run.executors.slurm import SlurmExecutor

    if all(c.get("job_id") for c in intent["chunks"]):
        return SlurmExecutor.recorded_submission(intent)
    return SlurmExecutor({}).reconcile(str(intent["key"]), runs_root)


def adopt_unknown_submissions(
    writer: Writer,
    runs_root: Path,
    result: HarvestResult | None = None,
    *,
    folders: Sequence[Path] | None = None,
) -> list[Submission]:
    """Submissions on disk (``<runs_root>/.submissions/<key>/submission.json``) that the state
    does not hold, recorded into it, so their runs are polled and harvested, not resubmitted.

    This is what a state restored from a backup lacks: everything submitted after the backup
    was taken. The runs come back from their run folders' spec.json (or the submission's
    ``chunk-NNN.specs``, for a SLURM run whose job has not made its folder); a SLURM
    submission that recorded no job id for a chunk is asked of the scheduler by its key, and
    one of which nothing reached it is recorded failed. Returns the adopted
    submissions, for the caller to poll. ``folders``: those submission folders, when the
    caller has found them (:func:`~hpcx.state.backup.unknown_submissions`).
    """
    import dataclasses
    import os

    from hpcx.errors import HpcxError
    from hpcx.manifest.spec import RunSpec
    from hpcx.run import rundir
    from hpcx.run.executors import Submission
    from hpcx.state.backup import unknown_submissions
    from hpcx.state.store import spec_from_dict

    if folders is None:
        folders = unknown_submissions(writer.path, runs_root)
    if not folders:
        return []
    names = {f.name for f in dataclasses.fields(RunSpec)}
    adopted: list[Submission] = []
    for folder in folders:
        try:
            doc = read_json(folder / "submission.json")
            if isinstance(doc, dict) and "chunks" in doc:
                try:
                    found = _slurm_submission(doc, runs_root)
                except (HpcxError, OSError) as exc:
                    if result is not None:
                        result.problems.append(
                            f"submission {doc['key']} on disk records no job id for a chunk "
                            f"and the scheduler could not be asked ({exc}): not adopted yet; "
                            "the next refresh tries again"
                        )
                    continue
                if found is None:
                    # Nothing of it reached the scheduler: recorded so, not asked again.
                    with writer.transaction() as tx:
                        tx.record_submission(
                            str(doc["key"]),
                            executor="slurm",
                            state="failed",
                            detail={"reconciled": "nothing reached the scheduler (on disk)"},
                        )
                    continue
                sub = found
            else:
                sub = Submission.from_json(doc)
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            continue  # an intent that never submitted anything: nothing to adopt
        specs = []
        #: The spec.json of runs whose jobs make their folders, once a folder is missing.
        deferred: dict[str, tuple[dict[str, Any], dict[str, str]]] | None = None
        for rid in sub.run_ids:
            try:
                try:
                    doc = read_json(Path(sub.run_dirs[rid]) / rundir.SPEC)
                except FileNotFoundError:
                    if deferred is None:
                        from hpcx.run.executors.slurm import deferred_folders

                        deferred = deferred_folders(folder)
                    doc = deferred[sub.run_dirs[rid]][0]
                specs.append(spec_from_dict({k: v for k, v in doc.items() if k in names}))
            except (OSError, ValueError, KeyError, TypeError):
                continue
        ids = {s.run_id for s in specs}
        if not ids:
            continue
        sub = dataclasses.replace(
            sub,
            run_ids=tuple(r for r in sub.run_ids if r in ids),
            run_jobs={r: j for r, j in sub.run_jobs.items() if r in ids},
            run_dirs={r: d for r, d in sub.run_dirs.items() if r in ids},
        )
        with writer.transaction() as tx:
            tx.record_runs(
                specs,
                status="pending",
                event="adopted",
                executor=sub.executor,
                submission_key=sub.key,
            )
            options = {"runs_root": os.fspath(runs_root)}
            tx.record_submitted(sub, options)
        adopted.append(sub)
        if result is not None:
            result.reconciled[sub.key] = "adopted from disk"
    return adopted


@dataclass(slots=True)
class ReharvestResult:
    """What ``refresh --reharvest`` did."""

    #: Finished runs whose folders were read again.
    runs: int = 0
    #: Metric rows they gave (replacing the rows they had).
    metrics: int = 0
    #: Metric rows dropped first.
    dropped: int = 0
    #: Runs whose recorded settings (results rules among them) were replaced by the manifests'.
    settings_updated: int = 0
    problems: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "runs": self.runs,
            "metrics": self.metrics,
            "dropped": self.dropped,
            "settings_updated": self.settings_updated,
            "problems": self.problems,
        }


def reharvest(
    writer: Writer,
    *,
    experiments: Sequence[str] = (),
    run_ids: Sequence[str] = (),
    desired: Mapping[str, Any] | None = None,
) -> ReharvestResult:
    """Read finished runs' folders again and replace their metric rows, without rerunning.

    ``desired``: run id -> RunSpec from the current manifests. Their ``results`` rules win over
    the recorded ones (the point is to edit a rule and re-read), and a run whose settings
    differ gets the new spec recorded, as apply records an ``update``. Runs no manifest holds
    any more are read with the rules recorded for them.
    Raises :class:`~hpcx.errors.HpcxError` when the selection matches no finished run.
    """
    from hpcx.errors import HpcxError
    from hpcx.run import rundir

    with writer.open() as store:
        found = store.finished_runs(experiments, run_ids)
        if experiments and not found:
            from hpcx.util.selection import known_list, raise_unmatched, unknown_names

            # Name a typo as such (numa_study vs numa-study), with the experiments there are.
            known = {r.experiment for r in store.finished_runs()}
            raise_unmatched(
                unknown_names("-e", experiments, known, what="experiment with finished runs"),
                hint=known_list(known),
            )
    unmatched = [p for p in run_ids if not any(r.run_id.startswith(p) for r in found)]
    if not found or unmatched:
        what = []
        if experiments:
            what.append("experiment(s) " + ", ".join(experiments))
        if unmatched:
            what.append("run id(s) " + ", ".join(unmatched))
        raise HpcxError(
            "no finished run to re-read" + (f" for {' and '.join(what)}" if what else ""),
            hint="`hpcx status --runs` lists the runs and their status; only runs that ended "
            "(succeeded, failed, cancelled, timeout) are re-read",
        )
    desired = desired or {}
    out = ReharvestResult()
    updated = []
    items: list[_ToRead] = []
    attempts: dict[str, int | None] = {}
    for r in found:
        rid, rules = r.run_id, r.results
        new = desired.get(rid)
        if new is not None and new.settings_digest != r.settings_digest:
            updated.append(new)
            rules = new.extra.get("results")
        # The folder holds the current attempt's files (and the requeued attempts of the same
        # try under attempts/): their rows are the ones re-read.
        doc = rundir.read_status(r.run_dir) or {}
        attempt = doc.get("attempt") if isinstance(doc.get("attempt"), int) else r.attempts
        first = attempt - rundir.requeues_before(r.run_dir, attempt) if attempt else attempt
        attempts[rid] = first
        items.append((rid, r.run_dir, rules, r.status == "succeeded", attempt, first))
    rows, metas, problems = _read_finished(items)
    out.problems.extend(problems)
    # One transaction, or (should the state refuse a run's results) one per good group and
    # the refused run quarantined, as a refresh does.
    out.metrics = _write_isolated(writer, [], rows, metas, out, attempts, updated)
    out.runs = len(found)
    out.settings_updated = len(updated)
    return out
