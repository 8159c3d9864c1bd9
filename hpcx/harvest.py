"""Refresh: bring the state up to date with the schedulers and the run folders.

Only runs the state still has in flight (pending, submitted, running) are looked at, so a
refresh is incremental and a second one adds nothing. Per executor there is one batched poll
(one ``squeue`` for SLURM); a run folder's ``status.json`` is the truth once the run ended.
Finished runs' metrics files are read in a plain loop (faster than DuckDB's ``read_json`` over
many small files, measured) and land in one transaction in bulk. A malformed metrics line is
reported against its run and skipped; every other run's results still land.

Submissions left in ``intent`` or ``ambiguous`` (an apply killed between recording its intent
and recording the job ids, or an sbatch that timed out) are reconciled first: the executor
looks for jobs carrying the submission key; found ones are adopted, and runs that never
reached a scheduler become ``lost``, which the next plan retries.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hpcx.executors.base import Executor, ObservedStatus, Submission

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
    "lost": "lost",
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
    if dt.tzinfo is not None:
        dt = dt.astimezone(UTC).replace(tzinfo=None)
    return dt


def _metrics_rows(
    run_id: str,
    run_dir: str,
    result: HarvestResult,
    results: Mapping[str, Any] | None,
    expect: bool,
    attempt: int | None,
) -> tuple[list[tuple[Any, ...]], dict[str, Any]]:
    """A finished run folder's metric rows and meta: the metrics file, then what the
    manifest's ``results`` rules take from stdout and the files the program wrote."""
    from hpcx.metrics import read_final_json, read_metrics
    from hpcx.result_sources import read_sources

    results = results or {}

    rows: list[tuple[Any, ...]] = []
    try:
        mf = read_metrics(os.path.join(run_dir, "metrics.jsonl"), missing_ok=True)
    except OSError as exc:
        result.problems.append(f"run {run_id}: cannot read metrics.jsonl: {exc.strerror or exc}")
        return rows, {}
    for err in mf.errors:
        result.problems.append(f"run {run_id}: metrics.jsonl line {err.line}: {err.reason}")
    # The run folder's metrics.jsonl is the current attempt's (earlier attempts' files are
    # moved under attempts/): each row carries that attempt, so a rerun's values never mix
    # with the earlier try's.
    rows = [(run_id, r.name, r.step, r.value, r.time, attempt) for r in mf.rows]
    if results.get("stdout_json") is True:
        for name, value in read_final_json(os.path.join(run_dir, "stdout.log")).items():
            rows.append((run_id, name, None, value, None, attempt))
    meta = dict(mf.meta)
    if mf.errors:
        meta["hpcx.metrics_errors"] = [f"line {e.line}: {e.reason}" for e in mf.errors]
    if results.get("sources"):
        got = read_sources(run_dir, results["sources"], expect=expect)
        rows.extend((run_id, name, step, value, None, attempt) for name, step, value in got.rows)
        meta.update({f"units.{name}": unit for name, unit in got.units.items()})
        result.problems.extend(f"run {run_id}: {p}" for p in got.problems)
        if got.problems:
            meta["hpcx.results_errors"] = got.problems
    return rows, meta


def ingest(
    state_path: Path,
    observed: Mapping[str, ObservedStatus],
    result: HarvestResult | None = None,
) -> HarvestResult:
    """Write what was observed into the state: statuses, times, placement, metrics, meta."""
    import gc

    # Tens of thousands of small rows, none in a cycle: the cyclic GC would only walk them.
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        return _ingest(state_path, observed, result)
    finally:
        if was_enabled:
            gc.enable()


#: Below this many finished runs, metrics files are read in this process; above it, in a pool
#: of forked workers, one per core (reading and validating is most of a big harvest's time).
PARALLEL_MIN_RUNS = 4000


#: A finished run to read: run id, run folder, its ``results`` rules, and whether it succeeded
#: (only then is a missing result file or match reported), and the attempt its rows belong to.
_ToRead = tuple[str, str, Mapping[str, Any] | None, bool, int | None]


def _read_chunk(
    items: Sequence[_ToRead],
) -> tuple[list[tuple[Any, ...]], dict[str, dict[str, Any]], list[str]]:
    """Metric rows, metadata and problems of finished runs' folders (a pool worker's job)."""
    scratch = HarvestResult()
    rows: list[tuple[Any, ...]] = []
    metas: dict[str, dict[str, Any]] = {}
    for rid, run_dir, results, expect, attempt in items:
        mrows, meta = _metrics_rows(rid, run_dir, scratch, results, expect, attempt)
        rows.extend(mrows)
        if meta:
            metas[rid] = meta
    return rows, metas, scratch.problems


def _read_finished(
    items: list[_ToRead],
) -> tuple[list[tuple[Any, ...]], dict[str, dict[str, Any]], list[str]]:
    workers = min(os.cpu_count() or 1, 8)
    if len(items) < PARALLEL_MIN_RUNS or workers < 2:
        return _read_chunk(items)
    import multiprocessing

    # Forked here, with the state closed and no other thread of ours running: the workers only
    # read files and send rows back.
    step = -(-len(items) // (workers * 4))
    chunks = [items[i : i + step] for i in range(0, len(items), step)]
    rows: list[tuple[Any, ...]] = []
    metas: dict[str, dict[str, Any]] = {}
    problems: list[str] = []
    with multiprocessing.get_context("fork").Pool(workers) as pool:
        for r, m, p in pool.imap(_read_chunk, chunks):
            rows.extend(r)
            metas.update(m)
            problems.extend(p)
    return rows, metas, problems


def _ingest(
    state_path: Path,
    observed: Mapping[str, ObservedStatus],
    result: HarvestResult | None,
) -> HarvestResult:
    from hpcx.lock import open_for_write

    result = result or HarvestResult()
    result.observed.update(observed)
    if not observed:
        return result
    ids = list(observed)
    with open_for_write(state_path) as store:
        rows = store.connection.execute(
            "SELECT run_id, status, "
            "json_extract(spec, '$.extra.results')::VARCHAR, attempts "
            "FROM runs WHERE run_id IN (SELECT unnest(?::VARCHAR[]))",
            [ids],
        ).fetchall()
    # The state is closed while the run folders are read (we hold the writer lock: nobody
    # else writes meanwhile); reopened for the one transaction that records it all.
    current = {r[0]: r[1] for r in rows}
    rules = {r[0]: json.loads(r[2]) for r in rows if r[2]}
    attempts = {r[0]: r[3] for r in rows}
    updates: list[dict[str, Any]] = []
    metas: dict[str, dict[str, Any]] = {}
    to_read: list[_ToRead] = []
    for rid, obs in observed.items():
        if rid not in current:
            continue
        status = _STATUS_OF.get(obs.state, "lost")
        old = current[rid]
        if old in ("succeeded", "failed", "cancelled", "timeout", "lost") and old == status:
            continue  # already harvested: idempotent
        if status == old and status in ("submitted", "running"):
            continue
        upd: dict[str, Any] = {"run_id": rid, "status": status}
        if obs.job_id:
            upd["job_id"] = obs.job_id
        if obs.started_at:
            upd["started_at"] = _ts(obs.started_at)
        if obs.host:
            upd["host"] = obs.host
        if obs.final:
            upd["ended_at"] = _ts(obs.ended_at) or datetime.now(UTC).replace(tzinfo=None)
            upd["exit_code"] = obs.exit_code
            upd["end_reason"] = obs.reason
            if obs.run_dir:
                used = obs.placement or {}
                if isinstance(used.get("numa_node"), int):
                    upd["numa_node"] = used["numa_node"]
                if used.get("gpus"):
                    upd["gpus"] = used["gpus"]
                # The attempt the run folder says (status.json); else the state's count.
                attempt = obs.attempt if obs.attempt is not None else attempts.get(rid)
                to_read.append(
                    (rid, obs.run_dir, rules.get(rid), status == "succeeded", attempt)
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
    if updates or metric_rows:
        with open_for_write(state_path) as store, store.transaction() as tx:
            tx.update_runs(updates, event="observed")
            if metric_rows:
                tx.add_metrics(metric_rows)
            tx.set_run_meta_many(metas)
    result.changed += len(updates)
    result.metrics += len(metric_rows)
    return result


def harvest_submissions(
    state_path: Path,
    submissions: Sequence[Submission],
    *,
    executor: Executor | None = None,
) -> HarvestResult:
    """Poll these submissions (one batched call per executor kind) and ingest."""
    from hpcx.executors import get_executor

    by_kind: dict[str, list[Submission]] = {}
    for s in submissions:
        by_kind.setdefault(s.executor, []).append(s)
    observed: dict[str, ObservedStatus] = {}
    for kind, subs in by_kind.items():
        ex = executor if executor is not None and executor.kind == kind else get_executor(kind)
        observed.update(ex.poll(subs))
    return ingest(state_path, observed)


def in_flight_submissions(state_path: Path) -> list[dict[str, Any]]:
    """Submissions that still have a run in flight: key, executor, state, detail, run ids."""
    from hpcx.lock import open_for_write

    with open_for_write(state_path) as store:
        rows = store.connection.execute(
            "SELECT s.key, s.executor, s.state, s.detail, list(r.run_id ORDER BY r.run_id) "
            "FROM submissions s JOIN runs r ON r.submission_key = s.key "
            "WHERE r.status IN ('pending', 'submitted', 'running') "
            "GROUP BY s.key, s.executor, s.state, s.detail ORDER BY s.key"
        ).fetchall()
    return [
        {
            "key": r[0],
            "executor": r[1],
            "state": r[2],
            "detail": json.loads(r[3]) if r[3] else {},
            "run_ids": list(r[4]),
        }
        for r in rows
    ]


def refresh(state_path: Path, *, runs_root: Path | None = None) -> HarvestResult:
    """Reconcile unfinished submissions, poll every run in flight, and ingest. The caller holds
    the writer lock."""
    from hpcx.executors import Submission, get_executor
    from hpcx.lock import open_for_write

    result = HarvestResult()
    if not state_path.exists():
        return result
    subs: list[Submission] = []
    if runs_root is not None:
        from hpcx.apply import check_runs_root_owner

        # Before adopting anything from it: another state's runs are not ours to adopt.
        check_runs_root_owner(state_path, runs_root, create=False)
        subs.extend(adopt_unknown_submissions(state_path, runs_root, result))
    for row in in_flight_submissions(state_path):
        detail = row["detail"]
        options = dict(detail.get("options") or {})
        if row["state"] == "submitted" and detail.get("submission"):
            subs.append(Submission.from_json(detail["submission"]))
            continue
        if row["state"] not in ("intent", "ambiguous"):
            continue
        root = Path(detail.get("runs_root") or runs_root or ".")
        ex = get_executor(row["executor"], options)
        found = ex.reconcile(row["key"], root)
        with open_for_write(state_path) as store, store.transaction() as tx:
            if found is not None:
                from hpcx.apply import _record_submitted

                # Count an attempt only for runs not already recorded submitted (an ambiguous
                # submission records what did go out before the failure).
                pending = {
                    r[0]
                    for r in store.connection.execute(
                        "SELECT run_id FROM runs WHERE submission_key = ? AND status = 'pending'",
                        [row["key"]],
                    ).fetchall()
                }
                _record_submitted(tx, found, options, bump=pending)
                # Runs of chunks that never reached the scheduler (the apply died between two
                # sbatch calls, or a later one failed): lost, so the next plan retries them.
                # Left alone they stayed `pending` forever, never polled, never planned again.
                missing = [rid for rid in row["run_ids"] if rid not in found.run_jobs]
                if missing:
                    tx.update_runs(
                        [
                            {
                                "run_id": rid,
                                "status": "lost",
                                "end_reason": "its part of the submission never reached the "
                                "scheduler",
                            }
                            for rid in missing
                        ],
                        event="reconciled",
                    )
                    result.changed += len(missing)
                subs.append(found)
                result.reconciled[row["key"]] = "adopted"
            else:
                tx.record_submission(
                    row["key"],
                    executor=row["executor"],
                    state="failed",
                    detail={**detail, "reconciled": "nothing reached the scheduler"},
                )
                tx.update_runs(
                    [
                        {
                            "run_id": rid,
                            "status": "lost",
                            "end_reason": "its submission never reached the scheduler",
                        }
                        for rid in row["run_ids"]
                    ],
                    event="reconciled",
                )
                result.reconciled[row["key"]] = "lost"
                result.changed += len(row["run_ids"])
    if subs:
        polled = harvest_submissions(state_path, subs)
        result.observed.update(polled.observed)
        result.changed += polled.changed
        result.finished += polled.finished
        result.metrics += polled.metrics
        result.problems.extend(polled.problems)
    return result


def adopt_unknown_submissions(
    state_path: Path, runs_root: Path, result: HarvestResult | None = None
) -> list[Submission]:
    """Submissions on disk (``<runs_root>/.submissions/<key>/submission.json``) that the state
    does not hold, recorded into it, so their runs are polled and harvested, not resubmitted.

    This is what a state restored from a backup lacks: everything submitted after the backup
    was taken. The runs come back from their run folders' spec.json. Returns the adopted
    submissions, for the caller to poll.
    """
    import dataclasses
    import os

    from hpcx import rundir
    from hpcx.apply import _record_submitted
    from hpcx.backup import unknown_submissions
    from hpcx.executors import Submission
    from hpcx.lock import open_for_write
    from hpcx.spec import RunSpec
    from hpcx.state import spec_from_dict

    folders = unknown_submissions(state_path, runs_root)
    if not folders:
        return []
    names = {f.name for f in dataclasses.fields(RunSpec)}
    adopted: list[Submission] = []
    for folder in folders:
        try:
            sub = Submission.from_json(rundir.read_json(folder / "submission.json"))
        except (OSError, ValueError, KeyError, TypeError):
            continue  # an intent that never submitted anything: nothing to adopt
        specs = []
        for rid in sub.run_ids:
            try:
                doc = rundir.read_json(Path(sub.run_dirs[rid]) / rundir.SPEC)
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
        with open_for_write(state_path) as store, store.transaction() as tx:
            tx.record_runs(
                specs,
                status="pending",
                event="adopted",
                executor=sub.executor,
                submission_key=sub.key,
            )
            options = {"runs_root": os.fspath(runs_root)}
            _record_submitted(tx, sub, options)
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
    state_path: Path,
    *,
    experiments: Sequence[str] = (),
    run_ids: Sequence[str] = (),
    desired: Mapping[str, Any] | None = None,
) -> ReharvestResult:
    """Read finished runs' folders again and replace their metric rows, without rerunning.

    ``desired``: run id -> RunSpec from the current manifests. Their ``results`` rules win over
    the recorded ones (the point is to edit a rule and re-read), and a run whose settings
    differ gets the new spec recorded, as apply records an ``update``. Runs no manifest holds
    any more are read with the rules recorded for them. The caller holds the writer lock.
    Raises :class:`~hpcx.errors.HpcxError` when the selection matches no finished run.
    """
    from hpcx import rundir
    from hpcx.errors import HpcxError
    from hpcx.lock import open_for_write
    from hpcx.state import spec_to_dict

    with open_for_write(state_path) as store:
        found = store.finished_runs(experiments, run_ids)
    unmatched = [p for p in run_ids if not any(r["run_id"].startswith(p) for r in found)]
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
        rid, spec = r["run_id"], r["spec"]
        new = desired.get(rid)
        if new is not None and new.settings_digest != spec.get("settings_digest"):
            updated.append(new)
            spec = spec_to_dict(new)
        rules = (spec.get("extra") or {}).get("results")
        # The folder holds the current attempt's files: its rows are the ones re-read.
        doc = rundir.read_status(r["run_dir"]) or {}
        attempt = doc.get("attempt") if isinstance(doc.get("attempt"), int) else r["attempts"]
        attempts[rid] = attempt
        items.append((rid, r["run_dir"], rules, r["status"] == "succeeded", attempt))
    rows, metas, problems = _read_finished(items)
    out.problems.extend(problems)
    with open_for_write(state_path) as store, store.transaction() as tx:
        if updated:
            tx.record_runs(updated, detail={"by": "refresh --reharvest"})
        out.dropped = tx.clear_harvest(
            attempts, ("hpcx.metrics_errors", "hpcx.results_errors")
        )
        if rows:
            tx.add_metrics(rows)
        tx.set_run_meta_many(metas)
    out.runs = len(found)
    out.metrics = len(rows)
    out.settings_updated = len(updated)
    return out
