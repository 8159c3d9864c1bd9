"""The executor API: small steps that the ``apply``/``refresh`` orchestration calls in order.

The order, and why (see docs/executors.md)::

    ex = get_executor(kind, options)
    dirs = ex.prepare(runs, runs_root)           # spec.json, in run folders (SLURM arrays:
                                                 # in the submission, for the jobs to make)
    key = new_key()                              # made BEFORE submitting ...
    state.record_intent(key, ex.kind, run_ids)   # ... and recorded, so a crash is reconcilable
    sub = ex.submit(key, dirs)                   # sbatch / start the local queue
    state.record_submission(sub)                 # job ids
    ex.wait(sub)                                 # local foreground: runs the queue here
    observed = ex.poll([sub])                    # batched: one squeue + the run folders
    state.ingest(observed)                       # refresh reads metrics of the final ones

After a crash between ``record_intent`` and ``record_submission``: ``ex.reconcile(key,
runs_root)`` finds what was submitted under that key (by job name for SLURM) and returns its
Submission, or None if nothing went out (then the runs are planned again).
"""

from __future__ import annotations

import contextlib
import operator
import os
import secrets
import sys
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from hpcx.errors import ExecutorError
from hpcx.errors import SchedulerError as SchedulerError  # known here to callers of executors
from hpcx.errors import SubmitError as SubmitError
from hpcx.manifest.spec import RunSpec
from hpcx.run import rundir
from hpcx.run.rundir import RunDir
from hpcx.util.files import atomic_write_json, atomic_write_text, read_json, sync
from hpcx.util.proc import forked_chunks, utcnow

if TYPE_CHECKING:
    from hpcx.cluster.limits import Room

# --------------------------------------------------------------------------------------------
# Errors


# --------------------------------------------------------------------------------------------
# Values


def new_key() -> str:
    """A submission key: time-ordered, unique, safe in job names, file names and SQL."""
    return time.strftime("%Y%m%dT%H%M%S", time.gmtime()) + "-" + secrets.token_hex(4)


@dataclass(frozen=True, slots=True)
class Submission:
    """What went out under one key. ``run_jobs`` maps run id to its job id (``123`` or
    ``123_4`` for an array task; ``host:pid`` of the queue runner for the local executor)."""

    key: str
    executor: str
    job_ids: tuple[str, ...]
    run_ids: tuple[str, ...]
    run_jobs: dict[str, str]
    run_dirs: dict[str, str]
    folder: str
    submitted_at: str
    detail: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        # asdict() walks every run's entry one by one (a third of recording 1,000 submitted
        # runs); their values are strings, so plain copies of the big fields are as deep.
        small = asdict(replace(self, job_ids=(), run_ids=(), run_jobs={}, run_dirs={}))
        small["job_ids"] = tuple(self.job_ids)
        small["run_ids"] = tuple(self.run_ids)
        small["run_jobs"] = dict(self.run_jobs)
        small["run_dirs"] = dict(self.run_dirs)
        return small

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> Submission:
        return cls(
            key=doc["key"],
            executor=doc["executor"],
            job_ids=tuple(doc["job_ids"]),
            run_ids=tuple(doc["run_ids"]),
            run_jobs=dict(doc["run_jobs"]),
            run_dirs=dict(doc["run_dirs"]),
            folder=doc["folder"],
            submitted_at=doc["submitted_at"],
            detail=dict(doc.get("detail") or {}),
        )


class ObservedStatus(NamedTuple):
    """A run's state as a poll sees it: pending or queued (not started), claimed or running
    (active), requeued (an attempt ended and the next one is to start: not final),
    succeeded, failed, cancelled or timeout (from status.json), or lost (the job is gone and
    left no final status).

    A tuple: a poll makes one per run (10,000s), and a tuple is made in a third of the time
    of a frozen dataclass (1.4 against 4.8 us here). Change one with ``_replace``."""

    run_id: str
    state: str
    #: "run_dir" when status.json decided it, "scheduler" when squeue/sacct did,
    #: "stop_file" when only a ``.stop-N`` file says the run (never started) was stopped.
    source: str
    job_id: str | None = None
    attempt: int | None = None
    exit_code: int | None = None
    reason: str | None = None
    started_at: str | None = None
    ended_at: str | None = None
    host: str | None = None
    run_dir: str | None = None
    #: What status.json says was in force (numa_node, gpus, cpus...), once the run started.
    placement: dict[str, Any] | None = None
    #: Seconds the program ran (status.json ``duration_s``), once it ended.
    duration_s: float | None = None
    #: What other processes took of the run's cores while it ran (hpcx.run.contention).
    contention: dict[str, Any] | None = None
    #: Why the attempt ended ``requeued``: ``time-limit`` or ``preemption``; and who starts
    #: the next one: ``slurm`` (the job was requeued), ``local`` (the queue) or ``resubmit``
    #: (the next refresh submits it: the scheduler would not requeue the job).
    requeue_reason: str | None = None
    requeue_by: str | None = None

    @property
    def final(self) -> bool:
        return self.state in rundir.FINAL_STATES or self.state in ("lost", BLOCKED)


#: A run that did not start because a run it needs ended without success (its folder's
#: status.json says so: :func:`write_blocked`); the state records it ``blocked``.
BLOCKED = "blocked"


@dataclass(frozen=True, slots=True)
class Upstream:
    """A run another run needs, as an executor sees it: its id, its job (``123``, ``123_4``;
    None for a local run) and its run folder (where a local queue reads how it ended)."""

    run_id: str
    job_id: str | None
    run_dir: str


ProgressFn = Callable[[str, ObservedStatus], None]


# --------------------------------------------------------------------------------------------
# spec.json


def run_argv(spec: RunSpec, run_dir: Path, python: str | None = None) -> list[str]:
    """The argv a run executes: its command, or the built-in workload runner."""
    if spec.command is not None:
        # Placeholders ({params.x}, {run_id}, {run_dir}, {seed}) are filled in here, where the
        # run folder is known; each argument stays one argument (no shell ever sees them).
        from hpcx.manifest.loader import render_command

        return render_command(spec, str(run_dir))
    if spec.workload is None:
        raise ExecutorError(f"run {spec.run_id} has neither a workload nor a command")
    exe = python or sys.executable
    return [exe, "-m", "hpcx.workloads", "run", spec.workload, str(run_dir / rundir.SPEC)]


def _tracker_env(spec: RunSpec) -> dict[str, str]:
    """Environment for the trackers a manifest asks for (``spec.trackers``): for W&B the
    project, entity, run name = the run id (as the seed's SLURM scripts set), group = the
    experiment, and tags, so `wandb.init()` in the program needs no arguments."""
    trackers = spec.extra.get("trackers") or {}
    env: dict[str, str] = {}
    wandb = trackers.get("wandb")
    if isinstance(wandb, dict) and wandb.get("project"):
        env["WANDB_PROJECT"] = str(wandb["project"])
        if wandb.get("entity"):
            env["WANDB_ENTITY"] = str(wandb["entity"])
        env["WANDB_RUN_NAME"] = spec.run_id
        env["WANDB_NAME"] = spec.run_id
        env["WANDB_RUN_GROUP"] = spec.experiment
        tags = [*spec.tags, *(wandb.get("tags") or [])]
        if tags:
            env["WANDB_TAGS"] = ",".join(str(t) for t in tags)
    return env


#: RunSpec's field names, once (``dataclasses.fields`` per run was a tenth of prepare).
_SPEC_FIELDS = tuple(f.name for f in fields(RunSpec))
_spec_fields = operator.attrgetter(*_SPEC_FIELDS)


def spec_document(spec: RunSpec, run_dir: Path, *, python: str | None = None) -> dict[str, Any]:
    """spec.json for a run (without ``attempt``, which the run folder sets)."""
    # A shallow dict of the fields: asdict() deep-copies every nested param (a third of the
    # time of preparing 10,000 runs); json serialises the nested values as they are.
    doc = dict(zip(_SPEC_FIELDS, _spec_fields(spec), strict=True))
    doc["command"] = list(spec.command) if spec.command is not None else None
    doc["tags"] = list(spec.tags)
    doc["overrides"] = list(spec.overrides)
    doc["run_format"] = rundir.RUN_FORMAT
    doc["argv"] = run_argv(spec, run_dir, python)
    if spec.env or spec.cwd is not None:
        from hpcx.manifest.loader import render_cwd, render_env

        doc["env"] = render_env(spec, str(run_dir))
        doc["cwd"] = render_cwd(spec, str(run_dir))
    tracker_env = _tracker_env(spec)
    if tracker_env:
        # The manifest's own env wins over what the tracker settings imply.
        doc["env"] = {**tracker_env, **(doc.get("env") or {})}
    doc["prepared_at"] = utcnow()
    return doc


# --------------------------------------------------------------------------------------------
# The base class


class Executor(ABC):
    kind: str = ""
    #: Its :meth:`submit` syncs what is on disk before anything reaches the scheduler, so
    #: :meth:`prepare` leaves the run folders to that one sync (a sync flushes the whole
    #: machine's writes: two in a row cost twice).
    syncs_before_submitting: bool = False
    #: Its :meth:`submit` has the job make the folder of a new run on its node
    #: (:func:`hpcx.run.rundir.materialize`): :meth:`prepare` leaves those folders unmade and
    #: notes them in :attr:`_deferred`.
    defers_run_folders: bool = False

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        self.options: dict[str, Any] = dict(options or {})
        self.python: str = str(self.options.get("python") or sys.executable)
        #: What :meth:`prepare` wrote into each run folder's spec.json: :meth:`submit` needs
        #: its resources and need not read back the files just written.
        self._prepared: dict[str, dict[str, Any]] = {}
        #: Run folder -> the files to link into it, for the new runs whose folder
        #: :meth:`prepare` left to the job (:attr:`defers_run_folders`).
        self._deferred: dict[str, dict[str, str]] = {}

    def prepare(
        self,
        runs: Sequence[RunSpec],
        runs_root: str | os.PathLike[str],
        *,
        key: str | None = None,
        links: Mapping[str, Mapping[str, str]] | None = None,
        sent_before: Collection[str] = (),
    ) -> list[RunDir]:
        """Create (or start a new attempt in) each run's folder with its spec.json.

        ``key`` (the submission key these runs will go out under) is recorded in spec.json.
        ``links``: run id -> {file name: source} to hard-link into the folders left to the
        job to make (the caller links them into the others once they exist). ``sent_before``:
        runs submitted before (a retry): their folder is made here whatever the executor, so
        a job of the earlier submission that the scheduler still holds finds it taken.

        An executor that :attr:`defers_run_folders` leaves a new run's folder (none on disk
        yet) to :meth:`submit`: its job makes it when it starts. Writes without a per-file
        fsync and syncs once at the end (or leaves it to :meth:`submit`'s, see
        :attr:`syncs_before_submitting`): 10,000 fsyncs would cost seconds. Raises
        RunActiveError for a run whose current attempt is still active.
        """
        out = []
        root = Path(runs_root).absolute()
        #: Experiment -> the names in its folder (what is not there is new), once each.
        present: dict[str, frozenset[str]] = {}
        for spec in runs:
            path = rundir.run_path(root, spec.experiment, spec.run_id)
            names = present.get(spec.experiment)
            if names is None:
                path.parent.mkdir(parents=True, exist_ok=True)  # once per experiment
                listed = os.listdir(path.parent) if self.defers_run_folders else ()
                present[spec.experiment] = names = frozenset(listed)
            doc = spec_document(spec, path, python=self.python)
            doc["submission"] = {"key": key, "executor": self.kind}
            new = spec.run_id not in names and spec.run_id not in sent_before
            if self.defers_run_folders and new:
                rd = RunDir(path, spec.experiment, spec.run_id, 1)
                self._deferred[str(path)] = dict((links or {}).get(spec.run_id) or {})
            else:
                self._deferred.pop(str(path), None)
                rd = rundir.create(
                    root,
                    spec.experiment,
                    spec.run_id,
                    doc,
                    fsync=False,
                    parent_made=True,
                    path=path,
                )
            self._prepared[str(rd.path)] = doc
            out.append(rd)
        if out and not self.syncs_before_submitting:
            sync()
        return out

    def defers(self, rd: RunDir) -> bool:
        """Whether :meth:`prepare` left this run's folder to its job (until :meth:`submit`
        has sent it: the job makes the folder when it starts)."""
        return str(rd.path) in self._deferred

    def prepared_spec(self, rd: RunDir) -> dict[str, Any]:
        """The spec.json of a run this executor prepared (as written, less ``attempt``), else
        read from its folder."""
        doc = self._prepared.get(str(rd.path))
        if doc is not None and doc["run_id"] == rd.run_id:
            return doc
        try:
            spec: dict[str, Any] = read_json(rd.spec_path)
        except FileNotFoundError:
            raise ExecutorError(
                f"run {rd.run_id}: {rd.spec_path} does not exist",
                hint="submit runs with the executor that prepared them: a new SLURM run's "
                "folder is made by its job, from what that executor's submit writes",
            ) from None
        return spec

    @staticmethod
    def submission_folder(runs_root: str | os.PathLike[str], key: str) -> Path:
        return Path(runs_root).absolute() / ".submissions" / key

    def room(self, *, reuse: bool = True) -> Room | None:
        """How many more jobs the scheduler lets this user submit now, and the limit that
        decides it; None where no scheduler limits how many (the local queue). ``reuse``:
        the scheduler's answer this process got a moment ago may serve."""
        return None

    @abstractmethod
    def submit(
        self,
        key: str,
        run_dirs: Sequence[RunDir],
        *,
        after: Mapping[str, Sequence[Upstream]] | None = None,
    ) -> Submission:
        """Send prepared runs to the scheduler under ``key`` (made and recorded beforehand).

        ``after``: run id -> the runs it needs that have not succeeded yet (each already
        submitted, in this apply or an earlier one); the run starts only once they all
        succeeded, and ends ``blocked`` without running when one of them does not."""

    @abstractmethod
    def poll(self, submissions: Iterable[Submission]) -> dict[str, ObservedStatus]:
        """The state of every run of these submissions, with one batched scheduler call."""

    @abstractmethod
    def cancel(
        self, submissions: Iterable[Submission], run_ids: Iterable[str] | None = None
    ) -> None:
        """Stop these runs (all runs of the submissions when ``run_ids`` is None)."""

    @abstractmethod
    def reconcile(self, key: str, runs_root: str | os.PathLike[str]) -> Submission | None:
        """What went out under ``key`` after a crash or an ambiguous failure; None if nothing."""

    def wait(
        self,
        submission: Submission,
        *,
        progress: ProgressFn | None = None,
        interval: float = 2.0,
        timeout: float | None = None,
        tick: Callable[[], None] | None = None,
    ) -> dict[str, ObservedStatus]:
        """Poll until every run of ``submission`` is final (or ``timeout`` passes); ``tick``
        is called once per poll (the pruner)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        seen: dict[str, str] = {}
        while True:
            observed = self.poll([submission])
            for rid, obs in observed.items():
                if progress is not None and seen.get(rid) != obs.state:
                    progress(rid, obs)
                seen[rid] = obs.state
            if all(o.final for o in observed.values()):
                return observed
            if deadline is not None and time.monotonic() >= deadline:
                return observed
            if tick is not None:
                tick()
            time.sleep(interval)


# --------------------------------------------------------------------------------------------
# Reading run folders


def observe_run_dir(
    run_id: str, path: str | os.PathLike[str], job_id: str | None = None, raw: bytes | None = None
) -> ObservedStatus:
    """What a run folder says about its current attempt (``raw``: its status.json, read)."""
    doc = rundir.observe(path, raw)
    state = doc.get("state", "pending")
    source = "run_dir"
    if state in ("pending", rundir.REQUEUED):
        # A run between two attempts that was cancelled meanwhile never starts its next one.
        stop = _pending_stop(Path(path))
        if stop is not None:
            # Only a stop file says so: an executor whose scheduler still holds the job
            # checks with it (source "stop_file") rather than take the run as ended.
            state, source = stop, "stop_file"
    return ObservedStatus(
        run_id=run_id,
        state=state,
        source=source,
        job_id=job_id or _job_of(doc),
        attempt=doc.get("attempt"),
        exit_code=doc.get("exit_code"),
        reason=doc.get("reason"),
        started_at=doc.get("started_at"),
        ended_at=doc.get("ended_at"),
        host=doc.get("host"),
        run_dir=str(path),
        placement=doc.get("placement"),
        duration_s=doc.get("duration_s"),
        contention=doc.get("contention") if isinstance(doc.get("contention"), dict) else None,
        requeue_reason=doc.get("requeue_reason"),
        requeue_by=doc.get("requeue_by"),
    )


#: Above this many run folders, observe_many reads them in a pool of forked workers.
PARALLEL_MIN_RUNS = 4000
#: From this many on, their status files are read by the native module first.
NATIVE_MIN_RUNS = 500


def _observe_chunk(items: Sequence[tuple[str, str, str | None]]) -> list[ObservedStatus]:
    return [observe_run_dir(rid, path, job) for rid, path, job in items]


def observe_many(items: Sequence[tuple[str, str, str | None]]) -> dict[str, ObservedStatus]:
    """``observe_run_dir`` for many ``(run_id, run_dir, job_id)``: in this process for a few;
    from :data:`NATIVE_MIN_RUNS` on, the status files read by the native module's threads
    (:func:`hpcx.metrics.read_regular_many`) and parsed here; without that module, in a pool
    of forked workers (one per core) for tens of thousands, where reading the status files is
    most of a refresh's time."""
    workers = min(os.cpu_count() or 1, 8)
    if len(items) >= NATIVE_MIN_RUNS:
        from hpcx.metrics import read_regular_many

        # The status files read by the native module's threads (the opens and reads were most
        # of this), parsed here: no pool to fork. A file it did not read is read as usual.
        raws = read_regular_many([os.path.join(p, rundir.STATUS) for _, p, _ in items], workers)
        if raws is not None:
            return {
                rid: observe_run_dir(rid, path, job, raw)
                for (rid, path, job), raw in zip(items, raws, strict=True)
            }
    parts = forked_chunks(_observe_chunk, items, workers, PARALLEL_MIN_RUNS)
    return {o.run_id: o for part in (parts or [_observe_chunk(items)]) for o in part}


def _job_of(doc: Mapping[str, Any]) -> str | None:
    job = doc.get("job") or {}
    if job.get("SLURM_ARRAY_JOB_ID") and job.get("SLURM_ARRAY_TASK_ID") is not None:
        return f"{job['SLURM_ARRAY_JOB_ID']}_{job['SLURM_ARRAY_TASK_ID']}"
    return job.get("SLURM_JOB_ID")


def _pending_stop(path: Path) -> str | None:
    """A run cancelled before its wrapper started has only its .stop-N file to say so."""
    attempt = rundir.current_attempt(path)
    text = rundir.stop_reason(path, attempt) if attempt is not None else None
    return text if text in ("cancelled", "timeout", "pruned") else None


def write_blocked(path: str | os.PathLike[str], run_id: str, reason: str) -> None:
    """Record in the run folder that its current attempt never ran: a run it needs ended
    without success (status.json ``blocked``, with the reason naming that run). A stop file
    goes first, so a wrapper that starts anyway does not run the program."""
    p = Path(path)
    attempt = rundir.current_attempt(p) or 1
    with contextlib.suppress(ExecutorError):
        write_stop(p, BLOCKED, attempt)
    now = utcnow()
    doc = {
        "run_format": rundir.RUN_FORMAT,
        "run_id": run_id,
        "attempt": attempt,
        "state": BLOCKED,
        "reason": reason,
        "ended_at": now,
        "updated_at": now,
    }
    try:
        atomic_write_json(p / rundir.STATUS, doc)
    except OSError as exc:
        raise ExecutorError(
            f"cannot write {p / rundir.STATUS}: {exc.strerror or exc}",
            hint="free space in the runs folder, then refresh",
        ) from exc


def write_stop(path: str | os.PathLike[str], reason: str, attempt: int | None = None) -> None:
    """Say why a run is being stopped, before signalling it (the wrapper reads it; one that
    has not started yet then never starts the program). Raises ExecutorError when the file
    cannot be written (a full disk)."""
    p = Path(path)
    if attempt is None:
        attempt = rundir.current_attempt(p) or 1
    if reason != "pruned" and rundir.stop_reason(p, attempt) == "pruned":
        # The pruner writes its reason, then asks the executor to cancel the run (which
        # writes ``cancelled``): the attempt was pruned, and a later stop does not rename it.
        return
    try:
        atomic_write_text(p / f".stop-{attempt}", reason + "\n", fsync=False)
    except OSError as exc:
        raise ExecutorError(
            f"cannot write {p / f'.stop-{attempt}'}: {exc.strerror or exc}",
            hint="free space in the runs folder, then cancel again",
        ) from exc
