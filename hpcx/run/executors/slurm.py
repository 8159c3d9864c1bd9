"""The SLURM executor: job arrays through ``sbatch --parsable``, status through one
``squeue --user`` per poll, and the room the scheduler's limits leave (:meth:`room`).

A submission (one key) lives in ``<runs_root>/.submissions/<key>/``::

    submission.json   the intent (chunks, run folders) before sbatch; the job ids added once
                      the last chunk went out (or one failed)
    chunk-NNN.sbatch  the script of one array (or of a single job)
    chunk-NNN.tasks   line i = RUN_DIR<TAB>ATTEMPT for array task i; packed
                      (``executor.pack: N``): N such pairs a line, all tab-separated;
                      ``<TAB>@OFFSET`` last when the task's run folders are the job's to make
    chunk-NNN.specs   the spec.json of those runs, a JSON line each, the task's from OFFSET
                      (:func:`hpcx.run.rundir.deferred_line`): the wrapper makes each folder
                      when its task starts (:func:`hpcx.run.rundir.materialize`), and
                      :func:`make_run_folders` before hpcx writes into one (a stop file)
    slurm-%A_%a.out   sbatch's own output (the wrapper's; the program's goes to the run folder)

Runs with the same resources and options share an array; arrays are split to the cluster's
MaxArraySize (task ids must stay below it). How many runs go out at once is apply's to decide
from :meth:`SlurmExecutor.room` (every array task one job against MaxSubmitJobs and
MaxJobCount: hpcx.cluster.limits); an sbatch refused for want of room anyway raises
``SubmitError(no_room=True)``, and apply keeps those runs ``queued``.
With ``executor.pack: N`` each job or array task runs N runs one after another (the job
wrapper's ``--tasks`` line holds them all, :func:`hpcx.run.job.run_packed`); its time limit is
the sum of theirs (:func:`pack_options`), and every run of it has the job's id
(:func:`_packed`). Every job is named ``hpcx-<key>`` with ``hpcx:<key>:<chunk>`` in its
comment, so ``squeue`` finds it by name after a crash (:meth:`SlurmExecutor.reconcile`).

Nothing here runs a shell: sbatch, squeue, scancel and scontrol get argument lists and an
explicit environment without the caller's ``SBATCH_*``/``SLURM_*`` variables (those would
otherwise change the job silently: ``SBATCH_PARTITION`` overrides the script's partition).
"""

from __future__ import annotations

import contextlib
import os
import shlex
import subprocess
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from hpcx.cluster.limits import (
    Room,
    UserLimit,
    count_jobs,
    is_limit_error,
    read_user_limits,
    room_of,
    user_name,
)
from hpcx.cluster.slurm import (
    _positive_int,
    check_line,
    check_path,
    check_value,
    extra_options,
    resource_options,
    runs_per_job,
)
from hpcx.errors import InvalidOptionError, MissingRunFolders, SchedulerError, SubmitError
from hpcx.manifest.spec import RunSpec
from hpcx.run import rundir
from hpcx.run.executors.base import (
    Executor,
    ObservedStatus,
    Submission,
    Upstream,
    observe_many,
    observe_run_dir,
    write_blocked,
    write_stop,
)
from hpcx.run.rundir import RunDir
from hpcx.util.backoff import Backoff
from hpcx.util.files import (
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
    link_or_copy,
    read_json,
    sync,
)
from hpcx.util.proc import utcnow

SUBMISSION_FILE = "submission.json"

_AMBIGUOUS = (
    "socket timed out",
    "unable to contact slurm controller",
    "zero bytes were transmitted",
    "communication connection failure",
    "timed out",
)

_SQUEUE_FINAL = {
    "COMPLETED": "lost",  # ended cleanly but wrote no status: the wrapper never ran it
    "CANCELLED": "cancelled",
    "TIMEOUT": "timeout",
    # Preempted and not requeued (PreemptMode=CANCEL, or a job held from requeueing): the
    # run did not end by anyone's choice; lost, the next apply runs it again.
    "PREEMPTED": "lost",
    "DEADLINE": "timeout",
    "FAILED": "failed",
    "NODE_FAIL": "failed",
    "BOOT_FAIL": "failed",
    "OUT_OF_MEMORY": "failed",
    "REVOKED": "cancelled",
    "SPECIAL_EXIT": "failed",
}


# --------------------------------------------------------------------------------------------
# The script: a pure function


def render_sbatch(
    *,
    job_name: str,
    comment: str,
    output: str,
    python: str,
    options: Sequence[tuple[str, str | None]] = (),
    array: str | None = None,
    tasks_file: str | None = None,
    run_dir: str | None = None,
    attempt: int | None = None,
    setup: Sequence[str] = (),
    task_index: int | None = None,
) -> str:
    """The sbatch script text. Pure: the same inputs give the same bytes (golden-tested).

    Either ``array`` + ``tasks_file`` (task i runs line i), ``tasks_file`` + ``task_index``
    (one job running that line: a packed job), or ``run_dir`` + ``attempt``.
    ``options`` are already validated (:func:`resource_options`, :func:`extra_options`).
    ``setup``: the manifest's ``executor.setup`` lines (``module load cuda``), run before the
    wrapper. They are shell by design, written by the manifest's author and reviewed with it;
    no parameter is ever substituted into them. One line each: control characters refused.
    """
    if task_index is not None:
        if array is not None or tasks_file is None or run_dir is not None:
            raise ValueError("task_index goes with tasks_file alone")
    elif (array is None) != (tasks_file is None) or (array is None) == (run_dir is None):
        raise ValueError("give array + tasks_file, or run_dir")
    lines = ["#!/bin/bash"]
    directives: list[tuple[str, str | None]] = [
        ("job-name", check_value("job name", job_name)),
        ("comment", check_value("comment", comment)),
        ("output", check_path("output", output)),
    ]
    if array is not None:
        directives.append(("array", check_value("array", array)))
    directives += list(options)
    # Requeues are safe: a requeued job's wrapper continues its run with the next attempt
    # (hpcx.run.job.follow_requeue), so a preemption costs an attempt, never the run.
    directives.append(("requeue", None))
    for name, value in directives:
        check_value("sbatch option", name)
        if value is None:
            lines.append(f"#SBATCH --{name}")
        elif name == "output":
            # A path may hold spaces: sbatch's parser takes a double-quoted value whole.
            if '"' in value:
                raise InvalidOptionError(f"output path may not contain a double quote: {value!r}")
            lines.append(
                f'#SBATCH --{name}="{value}"' if " " in value else f"#SBATCH --{name}={value}"
            )
        else:
            lines.append(f"#SBATCH --{name}={value}")
    lines.append("")
    lines.append("# Generated by hpcx. Each run's spec, logs and status are in its run folder.")
    if setup:
        lines.append("# executor.setup from the manifest:")
        lines.extend(check_line("setup line", line) for line in setup)
    # The wrapper without runpy (hpcx.job.COMMAND): its start-up is paid by every task.
    from hpcx.job import COMMAND

    if tasks_file is not None:
        cmd = [python, *COMMAND, "--tasks", check_path("tasks file", tasks_file)]
        if task_index is not None:
            cmd += ["--index", str(int(task_index))]
    else:
        assert run_dir is not None
        cmd = [python, *COMMAND, check_path("run folder", run_dir)]
        if attempt is not None:
            cmd += ["--attempt", str(int(attempt))]
    lines.append("exec " + " ".join(shlex.quote(check_path("python", c)) for c in cmd))
    return "\n".join(lines) + "\n"


def checkpoint_options(spec: Mapping[str, Any]) -> list[tuple[str, str | None]]:
    """``--signal=B:SIG@before`` for a run with ``spec.checkpoint``: the time limit's warning
    reaches the batch shell, which is the job wrapper (the script ``exec``s it), and the
    wrapper passes it on to the program's process group. Nothing for other runs."""
    from hpcx.run.job import checkpoint_settings

    ck = checkpoint_settings(spec)
    if ck is None:
        return []
    sig = str(ck["signal"]).upper().removeprefix("SIG")
    return [("signal", check_value("checkpoint signal", f"B:{sig}@{int(ck['before'])}"))]


def dependency_options(dependency: str | None) -> list[tuple[str, str | None]]:
    """The sbatch options of a job that waits for others: ``--dependency`` (``afterok:J[:J]``
    or ``aftercorr:J``), and ``--kill-on-invalid-dep=no`` said explicitly, so a job whose
    upstream failed stays PENDING (reason ``DependencyNeverSatisfied``) whatever the cluster's
    DependencyParameters, for a refresh to record it ``blocked``. Nothing without one."""
    if dependency is None:
        return []
    return [
        ("dependency", check_value("dependency", dependency)),
        ("kill-on-invalid-dep", "no"),
    ]


def dependency_sets(
    runs: Sequence[tuple[str, Sequence[str]]], max_array: int
) -> list[tuple[str | None, list[str]]]:
    """Group runs by what they wait for, for arrays: ``runs`` are (run id, the job ids of the
    runs it needs that have not succeeded), in submission order. Returns (the ``--dependency``
    value or None, the run ids in task order) per group, in order of first appearance.

    Runs with equal dependency sets share ``afterok:J1:J2...``. Runs that each need one task
    of the same array, covering its tasks 0..m-1 exactly once (the pipeline ``eval[i] needs
    train[i]``), become one array ordered by that task, with ``aftercorr:J``: task i waits
    for task i of J alone (SLURM: "after the corresponding task of the other array completed
    successfully"). Pure: golden-tested.
    """
    corr: dict[str, list[tuple[int, str]]] = {}
    for rid, ups in runs:
        if len(ups) == 1:
            job, sep, task = ups[0].partition("_")
            if sep and job.isdigit() and task.isdigit():
                corr.setdefault(job, []).append((int(task), rid))
    correlated: dict[str, str] = {}  # run id -> array job
    for job, items in corr.items():
        tasks = sorted(t for t, _ in items)
        if 2 <= len(items) <= max_array and tasks == list(range(len(items))):
            correlated.update((rid, job) for _, rid in items)
    groups: dict[str | None, list[str]] = {}
    for rid, ups in runs:
        if rid in correlated:
            dep: str | None = f"aftercorr:{correlated[rid]}"
        elif ups:
            dep = "afterok:" + ":".join(sorted(set(ups), key=_job_order))
        else:
            dep = None
        groups.setdefault(dep, []).append(rid)
    out: list[tuple[str | None, list[str]]] = []
    for dep, ids in groups.items():
        if dep is not None and dep.startswith("aftercorr:"):
            order = {rid: t for t, rid in corr[dep.removeprefix("aftercorr:")]}
            ids = sorted(ids, key=order.__getitem__)
        out.append((dep, ids))
    return out


def _job_order(job: str) -> tuple[int, int]:
    head, _, task = job.partition("_")
    return (int(head) if head.isdigit() else 0, int(task) if task.isdigit() else -1)


def array_spec(n: int, throttle: int | None) -> str:
    text = f"0-{n - 1}" if n > 1 else "0"
    return f"{text}%{throttle}" if throttle else text


# --------------------------------------------------------------------------------------------
# Commands


def clean_env(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The caller's environment without SBATCH_*/SLURM_* (except SLURM_CONF, which names the
    cluster rather than changing a job)."""
    env = dict(os.environ if environ is None else environ)
    return {
        k: v
        for k, v in env.items()
        if not (k.startswith(("SBATCH_", "SLURM_", "SALLOC_")) and k != "SLURM_CONF")
    }


@dataclass(frozen=True, slots=True)
class Limits:
    """What ``scontrol show config`` says caps a submission (read once per executor)."""

    max_array_size: int = 1001
    max_job_count: int = 10000
    accounting: bool = False
    cluster_name: str | None = None


def parse_config(text: str) -> Limits:
    conf: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            conf[key.strip()] = value.strip()

    def num(key: str, default: int) -> int:
        try:
            return int(conf.get(key, "").split()[0])
        except (ValueError, IndexError):
            return default

    acct = conf.get("AccountingStorageType", "accounting_storage/none")
    return Limits(
        max_array_size=num("MaxArraySize", 1001),
        max_job_count=num("MaxJobCount", 10000),
        accounting=bool(acct) and acct != "accounting_storage/none",
        cluster_name=conf.get("ClusterName") or None,
    )


#: Seconds a process reuses its last ``squeue`` of the user's jobs for a room count (a
#: refresh polls, then tops up: one squeue for both). Any sbatch of this process forgets it.
QUEUE_REUSE_S = 2.0
#: Seconds the submit limits read through sacctmgr are reused (a watch reads them again).
USER_LIMITS_REUSE_S = 60.0


@dataclass(frozen=True, slots=True)
class QueuedJob:
    """One line of ``squeue --user``: a job or array task of this user."""

    job_id: str
    state: str
    reason: str
    name: str


#: The last squeue of the user's jobs, per cluster (SLURM_CONF): (monotonic time, jobs).
_QUEUE_CACHE: dict[str, tuple[float, tuple[QueuedJob, ...]]] = {}
#: ``scontrol show config`` last read, per cluster: (monotonic time, its limits).
_CONFIG_CACHE: dict[str, tuple[float, Limits]] = {}
#: The submit limits last read, per cluster: (monotonic time, limits or None).
_LIMITS_CACHE: dict[str, tuple[float, list[UserLimit] | None]] = {}


def forget_queue() -> None:
    """Drop the reused squeue answer (after any sbatch: the queue has grown)."""
    _QUEUE_CACHE.clear()


@dataclass(frozen=True, slots=True)
class _Chunk:
    """One sbatch: its runs, flat, and ``pack`` of them per job or array task (task t runs
    ``runs[t * pack : (t + 1) * pack]`` one after another)."""

    index: int
    runs: tuple[RunDir, ...]
    options: tuple[tuple[str, str | None], ...]
    pack: int = 1

    @property
    def tasks(self) -> list[tuple[RunDir, ...]]:
        p = max(1, self.pack)
        return [self.runs[i : i + p] for i in range(0, len(self.runs), p)]

    @property
    def array(self) -> bool:
        return len(self.runs) > max(1, self.pack)

    def job_of(self, jid: str, i: int) -> str:
        """The job id of run ``i`` of this chunk: ``jid_TASK`` in an array, else ``jid``."""
        return f"{jid}_{i // max(1, self.pack)}" if self.array else jid


def pack_size(options: Mapping[str, Any]) -> int:
    """``executor.pack``: runs per job or array task (1, the default: one run each)."""
    raw = options.get("pack")
    if raw is None or (raw == 1 and not isinstance(raw, bool)):
        return 1
    return _positive_int("executor.pack", raw)


def pack_target(options: Mapping[str, Any]) -> float | None:
    """``executor.pack_time``: the time a packed job should hold, in seconds (None: unset).
    A number is minutes, text a SLURM time, as ``resources.time``."""
    from hpcx.cluster.units import time_limit_seconds

    raw = options.get("pack_time")
    if raw is None:
        return None
    try:
        seconds = time_limit_seconds(raw)
    except ValueError:
        seconds = None
    if not seconds or seconds <= 0:
        raise InvalidOptionError(
            f"executor.pack_time: {raw!r} is not a time limit",
            hint="a SLURM time (MM, MM:SS, HH:MM:SS, D-HH:MM:SS) or a number of minutes",
        )
    return seconds


def pack_time(seconds: float) -> str:
    """Seconds as an sbatch ``--time`` (``D-HH:MM:SS``, rounded up to a whole second)."""
    total = int(-(-seconds // 1))
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{days}-{hours:02d}:{minutes:02d}:{secs:02d}"


def pack_options(
    options: Sequence[tuple[str, str | None]], runs: int
) -> list[tuple[str, str | None]]:
    """A packed job's options: the runs' own, with ``--time`` the sum of ``runs`` of their
    time limits (each run may take its whole limit, one after another). A packed run needs a
    time limit: without one the job would get the partition's default, which says nothing
    of how many runs fit in it."""
    from hpcx.cluster.units import time_limit_seconds

    out: list[tuple[str, str | None]] = []
    seen = False
    for name, value in options:
        if name == "time":
            one = time_limit_seconds(value)
            if one is None:
                break
            seen = True
            value = pack_time(one * runs)
        out.append((name, value))
    if not seen:
        raise InvalidOptionError(
            "executor.pack needs resources.time: a packed job's time limit is the sum of its "
            "runs' limits",
            hint="set resources.time to what one run needs (the job gets pack x that)",
        )
    return out


class SlurmExecutor(Executor):
    """Options: ``sbatch`` (pass-through options, allow-listed), ``array_throttle`` (the
    ``%N`` of each array), ``python`` (interpreter on the nodes, default this one),
    ``sbatch_timeout`` (seconds), ``max_array_size`` (cap below the cluster's own),
    ``max_jobs`` (at most this many of the user's jobs pending or running at once, below the
    scheduler's own limits), ``poll_retries`` (times a squeue that cannot reach the controller
    is tried again, waiting ``poll_backoff`` seconds, doubled each time; defaults 1 and 1, or
    ``HPCX_SLURM_POLL_RETRIES``/``HPCX_SLURM_POLL_BACKOFF``: a refresh polls without the
    manifest's options)."""

    kind = "slurm"
    # submit() syncs the run folders with its own files before the first sbatch.
    syncs_before_submitting = True
    defers_run_folders = True

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        super().__init__(options)
        throttle = self.options.get("array_throttle")
        self.throttle = None if throttle in (None, 0) else _positive_int("array_throttle", throttle)
        self.extra = extra_options(self.options.get("sbatch"))
        setup = self.options.get("setup") or []
        if not isinstance(setup, list) or not all(isinstance(x, str) for x in setup):
            raise InvalidOptionError("executor.setup must be a list of lines (strings)")
        self.setup: tuple[str, ...] = tuple(check_line("setup line", x) for x in setup)
        self.timeout = float(self.options.get("sbatch_timeout", 60))
        self.pack = pack_size(self.options)
        self.pack_target = pack_target(self.options)
        #: Several runs a job (``pack`` above 1, or a ``pack_time``).
        self.packs = self.pack > 1 or self.pack_target is not None
        cap = self.options.get("max_jobs")
        self.max_jobs: int | None = None if cap is None else _positive_int("max_jobs", cap)
        retries = self.options.get("poll_retries")
        if retries is None:
            retries = _env_number("HPCX_SLURM_POLL_RETRIES", 1, int)
        if not isinstance(retries, int) or isinstance(retries, bool) or retries < 0:
            raise InvalidOptionError(
                f"executor.poll_retries must be a whole number 0 or above, not {retries!r}"
            )
        self.poll_retries = retries
        backoff = self.options.get("poll_backoff")
        if backoff is None:
            backoff = _env_number("HPCX_SLURM_POLL_BACKOFF", 1.0, float)
        if isinstance(backoff, bool) or not isinstance(backoff, int | float) or backoff <= 0:
            raise InvalidOptionError(
                f"executor.poll_backoff must be a number of seconds above 0, not {backoff!r}"
            )
        self.poll_backoff = float(backoff)
        #: How this executor waits between tries (tests replace it).
        self.sleep = time.sleep
        self.env = clean_env()
        self._limits: Limits | None = None
        #: Job ids whose pending cancel this process has sent again (see _retry_cancels).
        self._recancelled: set[str] = set()

    # -- commands

    def _cmd(
        self, argv: list[str], *, timeout: float | None = None
    ) -> subprocess.CompletedProcess[str]:
        try:
            return subprocess.run(
                argv,
                env=self.env,
                capture_output=True,
                text=True,
                timeout=timeout or self.timeout,
                check=False,
            )
        except FileNotFoundError as exc:
            raise SchedulerError(f"{argv[0]} not found: is SLURM installed here?") from exc
        except subprocess.TimeoutExpired as exc:
            raise SchedulerError(
                f"{argv[0]} did not answer within {timeout or self.timeout:g}s",
                hint="is the SLURM controller up? (`scontrol ping`)",
            ) from exc

    def limits(self) -> Limits:
        if self._limits is None:
            key = self._cluster_key()
            hit = _CONFIG_CACHE.get(key)
            if hit is not None and time.monotonic() - hit[0] < USER_LIMITS_REUSE_S:
                limits = hit[1]
            else:
                proc = self._cmd(["scontrol", "show", "config"])
                if proc.returncode != 0:
                    raise SchedulerError(f"scontrol show config failed: {proc.stderr.strip()}")
                limits = parse_config(proc.stdout)
                # Every executor of this process asks the same controller: once a minute.
                _CONFIG_CACHE[key] = (time.monotonic(), limits)
            cap = self.options.get("max_array_size")
            if cap:
                limits = replace(limits, max_array_size=min(limits.max_array_size, int(cap)))
            self._limits = limits
        return self._limits

    def _cluster_key(self) -> str:
        """Which cluster (its SLURM_CONF, as changed last): what this process reuses of one
        answer is never taken for another's, nor for the same file rewritten."""
        conf = self.env.get("SLURM_CONF", "")
        try:
            return f"{conf}@{os.stat(conf or '/etc/slurm/slurm.conf').st_mtime_ns}"
        except OSError:
            return conf

    def user_queue(self, *, reuse: bool = False) -> tuple[QueuedJob, ...]:
        """Every job (array tasks one by one) of this user the controller holds, ended ones
        within MinJobAge too: one ``squeue --user``, whatever their names, tried again with
        backoff while the controller does not answer. ``reuse``: the answer this process got
        less than :data:`QUEUE_REUSE_S` ago, when no sbatch went out since."""
        key = self._cluster_key()
        hit = _QUEUE_CACHE.get(key)
        if reuse and hit is not None and time.monotonic() - hit[0] < QUEUE_REUSE_S:
            return hit[1]
        argv = ["squeue", "-h", "-r", "-t", "all", f"--user={os.getuid()}"]
        argv += ["-o", "%i|%T|%r|%j"]
        backoff = Backoff(base=self.poll_backoff, cap=max(self.poll_backoff, 60.0), slow=1e9)
        tries = 0
        while True:
            try:
                proc = self._cmd(argv)
                err = proc.stderr.strip()
                unreachable = proc.returncode != 0 and any(m in err.lower() for m in _AMBIGUOUS)
                if proc.returncode != 0 and not unreachable:
                    raise SchedulerError(f"squeue failed: {err or f'exit code {proc.returncode}'}")
                if not unreachable:
                    break
                why = err
            except SchedulerError as exc:
                if "did not answer" not in str(exc):
                    raise
                why = str(exc)
            tries += 1
            if tries > self.poll_retries:
                raise SchedulerError(
                    f"cannot reach the SLURM controller: squeue failed {tries} time(s): {why}",
                    hint="nothing was changed; is slurmctld up? (`scontrol ping`) Try again "
                    "once it answers",
                )
            self.sleep(backoff.next(ok=False))
        jobs = []
        for line in proc.stdout.splitlines():
            parts = line.split("|", 3)
            if len(parts) == 4:
                jobs.append(QueuedJob(*(p.strip() for p in parts)))
        out = tuple(jobs)
        _QUEUE_CACHE[key] = (time.monotonic(), out)
        return out

    def user_limits(self) -> list[UserLimit]:
        """The submit limits accounting sets on this user (``sacctmgr``: its associations'
        MaxSubmitJobs, its QOS's MaxSubmitJobsPerUser), live (reused for
        :data:`USER_LIMITS_REUSE_S`); none without accounting."""
        if not self.limits().accounting:
            return []
        key = self._cluster_key()
        hit = _LIMITS_CACHE.get(key)
        if hit is not None and time.monotonic() - hit[0] < USER_LIMITS_REUSE_S:
            return list(hit[1] or [])

        def run(argv: list[str]) -> str | None:
            proc = self._cmd(argv)
            return proc.stdout if proc.returncode == 0 else None

        found = read_user_limits(run, user_name(), self.limits().cluster_name)
        _LIMITS_CACHE[key] = (time.monotonic(), found)
        return list(found or [])

    def room(self, *, reuse: bool = True) -> Room:
        """How many more jobs (array tasks one each) may go out now without the scheduler
        refusing any: the least, over MaxJobCount, the accounting limits and ``max_jobs``,
        of the limit less what the user has against it (one squeue, reused from this
        process's last poll when it is fresh)."""
        queue = self.user_queue(reuse=reuse)
        active, held = count_jobs(j.state for j in queue)
        room = room_of(
            max_job_count=self.limits().max_job_count,
            user_limits=self.user_limits(),
            active=active,
            held=held,
            cap=self.max_jobs,
        )
        hit = _LIMITS_CACHE.get(self._cluster_key())
        if self.limits().accounting and hit is not None and hit[1] is None:
            room = replace(
                room,
                unread="accounting is on, but sacctmgr did not answer: the submit limits on "
                "you (QOS MaxSubmitJobsPerUser, MaxSubmitJobs) are unknown, so only the "
                "others were counted; a submission the scheduler refuses for want of room "
                "still waits queued",
            )
        return room

    # -- submit

    def _chunks(
        self,
        run_dirs: Sequence[RunDir],
        after: Mapping[str, Sequence[Upstream]] | None = None,
    ) -> list[_Chunk]:
        # (--dependency cannot come from a manifest: hpcx.cluster.slurm refuses it.)
        from hpcx.util.memo import ByIdentity

        groups: dict[tuple[tuple[str, str | None], ...], list[RunDir]] = {}
        # Runs of one manifest share their resources object: its options are made once.
        options_of = ByIdentity(lambda res: tuple(resource_options(res or {})))
        extra = tuple(self.extra)
        for rd in run_dirs:
            spec = self.prepared_spec(rd)
            warning = checkpoint_options(spec)
            if warning and any(name == "signal" for name, _ in self.extra):
                raise InvalidOptionError(
                    f"run {rd.run_id}: executor.sbatch_args sets --signal and spec.checkpoint "
                    "sets it too (the checkpoint warning)",
                    hint="drop --signal from sbatch_args: spec.checkpoint's signal and before "
                    "say the same",
                )
            if warning and self.packs:
                raise InvalidOptionError(
                    f"run {rd.run_id}: executor.pack and spec.checkpoint: a packed job's time "
                    "limit warning would reach whichever run is last, not each run",
                    hint="pack short runs; give checkpointed runs a job each (drop pack)",
                )
            opts = options_of(spec.get("resources")) + extra + tuple(warning)
            groups.setdefault(opts, []).append(rd)
        chunks: list[_Chunk] = []
        max_array = max(1, self.limits().max_array_size)
        for opts, all_rds in groups.items():
            n = self._group_pack(opts)
            by_id = {rd.run_id: rd for rd in all_rds}
            waits = [
                (rd.run_id, [u.job_id for u in (after or {}).get(rd.run_id, ()) if u.job_id])
                for rd in all_rds
            ]
            # Packed, task i holds runs i*n..: the `aftercorr` pairing of task i with the
            # upstream's task i would not hold, so packed runs wait with `afterok` only.
            for dep, ids in dependency_sets(waits, max_array if n == 1 else 0):
                dep_opts = opts + tuple(dependency_options(dep))
                rds = [by_id[rid] for rid in ids]
                # An array holds at most MaxArraySize tasks, each of `n` runs.
                size = max_array * n
                for start in range(0, len(rds), size):
                    part = tuple(rds[start : start + size])
                    if n > 1 and len(part) > 1:
                        packed = tuple(pack_options(dep_opts, min(n, len(part))))
                        chunks.append(_Chunk(len(chunks), part, packed, n))
                    else:
                        chunks.append(_Chunk(len(chunks), part, dep_opts, n))
        return chunks

    def _group_pack(self, opts: Sequence[tuple[str, str | None]]) -> int:
        """Runs per job for runs with these options: ``pack``; with ``pack_time``, as many
        as their time limits fit in it (at least one, at most ``pack`` when it is set too)."""
        if self.pack_target is None:
            return self.pack
        from hpcx.cluster.units import time_limit_seconds

        one = next((time_limit_seconds(v) for k, v in opts if k == "time"), None)
        return runs_per_job(self.pack if "pack" in self.options else 1, self.pack_target, one)

    def runs_per_job(self, spec: RunSpec) -> int:
        """How many runs of ``spec``'s kind one job of this executor holds (1 unpacked):
        what apply counts the room under the scheduler's limits in."""
        if self.pack_target is None:
            return self.pack
        from hpcx.cluster.units import time_limit_seconds

        raw = (spec.resources or {}).get("time")
        one = time_limit_seconds(raw) if raw is not None else None
        return runs_per_job(self.pack if "pack" in self.options else 1, self.pack_target, one)

    def render(self, key: str, chunk: _Chunk, folder: Path) -> str:
        common = {
            "job_name": f"hpcx-{key}",
            "comment": f"hpcx:{key}:{chunk.index}",
            "python": self.python,
            "options": chunk.options,
            "setup": self.setup,
        }
        if len(chunk.runs) == 1:
            rd = chunk.runs[0]
            return render_sbatch(
                output=str(folder / "slurm-%j.out"),
                run_dir=str(rd.path),
                attempt=rd.attempt,
                **common,  # type: ignore[arg-type]
            )
        if not chunk.array:  # one packed job: line 0 of its tasks file
            return render_sbatch(
                output=str(folder / "slurm-%j.out"),
                tasks_file=str(folder / f"chunk-{chunk.index:03d}.tasks"),
                task_index=0,
                **common,  # type: ignore[arg-type]
            )
        return render_sbatch(
            output=str(folder / "slurm-%A_%a.out"),
            array=array_spec(len(chunk.tasks), self.throttle),
            tasks_file=str(folder / f"chunk-{chunk.index:03d}.tasks"),
            **common,  # type: ignore[arg-type]
        )

    def submit(
        self,
        key: str,
        run_dirs: Sequence[RunDir],
        *,
        after: Mapping[str, Sequence[Upstream]] | None = None,
    ) -> Submission:
        if not run_dirs:
            raise SubmitError("nothing to submit")
        # The folders prepare left to the jobs, taken now (a refusal below leaves none behind).
        deferred = {
            p: self._deferred.pop(p) for p in map(str, (rd.path for rd in run_dirs))
            if p in self._deferred
        }  # fmt: skip
        check_value("submission key", key)
        limits = self.limits()
        chunks = self._chunks(run_dirs, after)
        jobs = sum(len(c.tasks) for c in chunks)  # packed: one job (or array task) per pack
        if jobs > limits.max_job_count:
            raise SubmitError(
                f"{len(run_dirs)} runs ({jobs} jobs) exceed the cluster's MaxJobCount "
                f"({limits.max_job_count})",
                hint="apply a subset (by experiment or filter), or ask for a larger MaxJobCount",
            )
        root = run_dirs[0].path.parent.parent
        folder = self.submission_folder(root, key)
        folder.mkdir(parents=True, exist_ok=False)
        scripts: list[Path] = []
        for chunk in chunks:
            base = folder / f"chunk-{chunk.index:03d}"
            for rd in chunk.runs:
                check_path("run folder", str(rd.path))
                if "\t" in str(rd.path):
                    raise InvalidOptionError(f"run folder may not contain a tab: {rd.path}")
            script = base.with_suffix(".sbatch")
            if len(chunk.runs) > 1:
                specs = self._deferred_specs(chunk, script, deferred)
                if specs is not None:
                    atomic_write_bytes(base.with_suffix(".specs"), specs[0], fsync=False)
                atomic_write_text(
                    base.with_suffix(".tasks"),
                    tasks_text(chunk, specs[1] if specs is not None else None),
                    fsync=False,
                )
            atomic_write_text(script, self.render(key, chunk, folder), fsync=False)
            scripts.append(script)
            for rd in chunk.runs:
                links = deferred.get(str(rd.path))
                if links is None:
                    _link(script, rd)
                elif len(chunk.runs) == 1:
                    # A job of one run has no tasks file: its folder is made here.
                    doc = {**self.prepared_spec(rd), "attempt": rd.attempt}
                    rundir.materialize(
                        rd.path, doc, {rundir.SCRIPT: str(script), **links}, fsync=False
                    )
        intent: dict[str, Any] = {
            "key": key,
            "executor": self.kind,
            "folder": str(folder),
            "created_at": utcnow(),
            "chunks": [
                {
                    "index": c.index,
                    "script": str(scripts[c.index]),
                    "array": c.array,
                    "pack": c.pack,
                    "runs": [[rd.run_id, str(rd.path), rd.attempt] for rd in c.runs],
                    "job_id": None,
                }
                for c in chunks
            ],
        }
        sync()
        atomic_write_json(folder / SUBMISSION_FILE, intent)

        job_ids: list[str | None] = [None] * len(chunks)
        for chunk in chunks:
            try:
                job_ids[chunk.index] = self._sbatch(scripts[chunk.index], folder)
            except SubmitError as exc:
                exc.partial = (
                    self._submission(key, folder, chunks, job_ids) if any(job_ids) else None
                )
                self._record(folder, intent, job_ids)
                raise
        self._record(folder, intent, job_ids)
        return self._submission(key, folder, chunks, job_ids)

    def _deferred_specs(
        self, chunk: _Chunk, script: Path, deferred: Mapping[str, Mapping[str, str]]
    ) -> tuple[bytes, list[int | None]] | None:
        """The ``.specs`` file of a chunk whose new runs' folders its jobs make (``deferred``:
        folder -> links; None when apply made them all): for each task with such a run, a
        line per run of the task (:func:`hpcx.run.rundir.deferred_line`, or ``-`` for a
        folder apply made), and the byte offset where the task's lines start (None for a
        task without)."""
        parts: list[bytes] = []
        offsets: list[int | None] = []
        size = 0
        for task in chunk.tasks:
            if not any(str(rd.path) in deferred for rd in task):
                offsets.append(None)
                continue
            offsets.append(size)
            for rd in task:
                links = deferred.get(str(rd.path))
                if links is None:
                    line = b"-\n"
                else:
                    doc = {**self.prepared_spec(rd), "attempt": rd.attempt}
                    line = rundir.deferred_line(doc, {rundir.SCRIPT: str(script), **links}).encode()
                parts.append(line)
                size += len(line)
        if not parts:
            return None
        return b"".join(parts), offsets

    def _sbatch(self, script: Path, folder: Path) -> str:
        try:
            proc = subprocess.run(
                ["sbatch", "--parsable", str(script)],
                env=self.env,
                cwd=folder,
                capture_output=True,
                text=True,
                timeout=self.timeout,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            forget_queue()
            raise SubmitError(
                f"sbatch did not answer within {self.timeout:g}s",
                ambiguous=True,
                hint="the job may have been accepted: reconcile by key before submitting again",
            ) from exc
        except FileNotFoundError as exc:
            raise SubmitError("sbatch not found: is SLURM installed here?") from exc
        forget_queue()
        err = proc.stderr.strip()
        if proc.returncode != 0 and is_limit_error(err):
            raise SubmitError(
                f"sbatch refused: no room under the scheduler's limits: {err}",
                no_room=True,
                hint="the runs wait in hpcx's queue (status queued); `hpcx refresh` submits "
                "them as jobs finish",
            )
        if proc.returncode != 0:
            ambiguous = any(s in err.lower() for s in _AMBIGUOUS)
            raise SubmitError(
                f"sbatch failed: {err or f'exit code {proc.returncode}'}",
                ambiguous=ambiguous,
                hint=(
                    "the controller may have accepted the job: reconcile by key first"
                    if ambiguous
                    else None
                ),
            )
        first = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""
        job_id = first.split(";", 1)[0]
        if not job_id.isdigit():
            raise SubmitError(f"sbatch printed no job id: {proc.stdout!r} {err!r}", ambiguous=True)
        return job_id

    def _record(self, folder: Path, intent: dict[str, Any], job_ids: list[str | None]) -> None:
        for c, jid in zip(intent["chunks"], job_ids, strict=True):
            c["job_id"] = jid
        intent["submitted_at"] = utcnow()
        atomic_write_json(folder / SUBMISSION_FILE, intent)

    def _submission(
        self, key: str, folder: Path, chunks: Sequence[_Chunk], job_ids: Sequence[str | None]
    ) -> Submission:
        run_jobs: dict[str, str] = {}
        run_dirs: dict[str, str] = {}
        for chunk, jid in zip(chunks, job_ids, strict=True):
            if jid is None:
                continue
            for i, rd in enumerate(chunk.runs):
                run_jobs[rd.run_id] = chunk.job_of(jid, i)
                run_dirs[rd.run_id] = str(rd.path)
        return Submission(
            key=key,
            executor=self.kind,
            job_ids=tuple(j for j in job_ids if j is not None),
            run_ids=tuple(run_jobs),
            run_jobs=run_jobs,
            run_dirs=run_dirs,
            folder=str(folder),
            submitted_at=utcnow(),
            detail={
                "chunks": len(chunks),
                "arrays": sum(1 for c in chunks if c.array),
                **({"pack": most} if (most := max(c.pack for c in chunks)) > 1 else {}),
            },
        )

    # -- status

    def squeue(self, names: Iterable[str]) -> dict[str, tuple[str, str]]:
        """job id (``123`` or ``123_4``) -> (state, reason) for this user's jobs with these
        names: one ``squeue --user`` whatever their number (a ``--name=`` list of hundreds of
        submission keys would grow past what a command line holds), filtered here."""
        wanted = set(names)
        if not wanted:
            return {}
        return {j.job_id: (j.state, j.reason) for j in self.user_queue() if j.name in wanted}

    def sacct(self, job_ids: Iterable[str]) -> dict[str, str]:
        ids = sorted(set(job_ids))
        if not ids or not self.limits().accounting:
            return {}
        proc = self._cmd(["sacct", "-n", "-P", "-X", "-j", ",".join(ids), "-o", "JobID,State"])
        if proc.returncode != 0:
            if "accounting storage is disabled" in proc.stderr.lower():
                self._limits = replace(self.limits(), accounting=False)
                return {}
            raise SchedulerError(f"sacct failed: {proc.stderr.strip()}")
        out = {}
        for line in proc.stdout.splitlines():
            jid, _, state = line.partition("|")
            out[jid.strip()] = state.split()[0] if state.split() else ""
        return out

    def poll(self, submissions: Iterable[Submission]) -> dict[str, ObservedStatus]:
        subs = list(submissions)
        # The scheduler first, the files second: a job that ends in between is then seen
        # final in its file, never "gone from squeue without a status".
        queue = self.squeue(f"hpcx-{s.key}" for s in subs)
        files = observe_many(
            [(rid, sub.run_dirs[rid], sub.run_jobs.get(rid)) for sub in subs for rid in sub.run_ids]
        )
        missing = [
            sub.run_jobs[rid]
            for sub in subs
            for rid in sub.run_ids
            if not files[rid].final and sub.run_jobs.get(rid) not in queue
        ]
        acct = self.sacct({j.split("_")[0] for j in missing}) if missing else {}
        shared = _shared_jobs(subs)
        out: dict[str, ObservedStatus] = {}
        for sub in subs:
            for rid in sub.run_ids:
                job = sub.run_jobs.get(rid)
                out[rid] = _merge(files[rid], job, queue, acct)
                if job in shared:
                    out[rid] = _packed(files[rid], out[rid], job)
        self._retry_cancels(out, queue)
        self._block_never_satisfied(
            out, queue, {rid: sub.folder for sub in subs for rid in sub.run_ids}
        )
        return out

    def _block_never_satisfied(
        self,
        out: dict[str, ObservedStatus],
        queue: Mapping[str, tuple[str, str]],
        folders: Mapping[str, str],
    ) -> None:
        """Jobs pending with reason ``DependencyNeverSatisfied`` (a run they need ended
        without success: they would wait forever): cancel them, then record each run
        ``blocked`` in its folder, naming the run it needs. A job is cancelled before its
        folder says blocked: killed in between, the run reads cancelled and is planned again
        (and held blocked by that apply while what it needs has not succeeded)."""
        stuck = {
            rid: obs
            for rid, obs in out.items()
            if obs.state == "queued"
            and obs.run_dir
            and obs.job_id is not None
            and queue.get(obs.job_id, ("", ""))[1] == NEVER_SATISFIED
        }
        if not stuck:
            return
        failed, why = self._scancel(sorted({o.job_id for o in stuck.values() if o.job_id}))
        if failed:
            for rid, obs in stuck.items():
                out[rid] = obs._replace(reason=f"{NEVER_SATISFIED}; scancel failed: {why}")
            return
        unmade: set[str] = set()
        try:
            make_run_folders((obs.run_dir, folders.get(rid)) for rid, obs in stuck.items())
        except MissingRunFolders as exc:
            unmade.update(exc.paths)  # their jobs are gone; nothing to record them in
        for rid, obs in stuck.items():
            assert obs.run_dir is not None
            if obs.run_dir in unmade:
                out[rid] = obs._replace(
                    state="cancelled",
                    source="scheduler",
                    reason=f"{NEVER_SATISFIED}: cancelled; its run folder cannot be made "
                    "(the submission's spec.json for it is missing or damaged)",
                )
                continue
            reason = f"blocked: {_failed_needs(obs.run_dir)} (SLURM: {NEVER_SATISFIED})"
            write_blocked(obs.run_dir, rid, reason)
            out[rid] = observe_run_dir(rid, obs.run_dir, obs.job_id)

    def _retry_cancels(
        self, out: dict[str, ObservedStatus], queue: Mapping[str, tuple[str, str]]
    ) -> None:
        """Jobs the scheduler still holds whose run a stop file says was cancelled: a
        ``cancel`` that could not reach the scheduler. Cancel them now (once per process),
        so the run is not taken for cancelled while its job may still start and the next
        apply submits it again: a stale attempt would run beside the new one."""
        pending: dict[str, str] = {}
        for rid, obs in out.items():
            if obs.final or obs.job_id is None or obs.job_id not in queue or not obs.run_dir:
                continue
            if obs.job_id in self._recancelled:
                continue
            attempt = obs.attempt or rundir.current_attempt(obs.run_dir)
            if attempt is not None and rundir.stop_reason(obs.run_dir, attempt) == "cancelled":
                pending[rid] = obs.job_id
        if pending:
            # A packed job also runs runs nobody cancelled: it is not the job's to end. Its
            # wrapper skips a run whose stop file says cancelled when that run's turn comes.
            going_on = {
                obs.job_id
                for rid, obs in out.items()
                if rid not in pending and not obs.final and obs.job_id in pending.values()
            }
            pending = {rid: job for rid, job in pending.items() if job not in going_on}
        if not pending:
            return
        failed, why = self._scancel(sorted(set(pending.values())))
        if failed:
            for rid in pending:
                out[rid] = out[rid]._replace(reason=f"cancel pending: scancel failed: {why}")
            return
        self._recancelled.update(pending.values())
        for rid in pending:
            obs = out[rid]
            if obs.state == "queued":
                # Removed before it started (and its wrapper would refuse the stop file).
                out[rid] = obs._replace(
                    state="cancelled",
                    source="scheduler",
                    reason="cancelled: the cancel that could not reach the scheduler was "
                    "sent again",
                )
            else:
                out[rid] = obs._replace(reason="cancel pending: scancel sent again")

    def cancel(
        self, submissions: Iterable[Submission], run_ids: Iterable[str] | None = None
    ) -> None:
        wanted = None if run_ids is None else set(run_ids)
        subs = list(submissions)
        targets: list[str] = []
        #: Packed jobs whose other runs go on: only the batch shell (the wrapper) is signalled.
        batch: list[str] = []
        #: Run folders neither there nor makeable (MissingRunFolders), named at the end.
        unmade: dict[str, None] = {}
        for sub in subs:
            live: dict[str, list[str]] = {}  # job id -> its runs not final
            stopped: dict[str, list[ObservedStatus]] = {}
            # A run whose job has not started has no folder yet: made here, so its stop
            # file is where a job that starts anyway looks. (One that cannot be made cannot
            # be run by its job either: its job is cancelled all the same, then named.)
            try:
                make_run_folders(
                    (sub.run_dirs[rid], sub.folder)
                    for rid in sub.run_ids
                    if wanted is None or rid in wanted
                )
            except MissingRunFolders as exc:
                unmade.update(dict.fromkeys(exc.paths))
            for rid in sub.run_ids:
                path = sub.run_dirs[rid]
                obs = observe_run_dir(rid, path)
                if obs.final:
                    continue
                job = sub.run_jobs.get(rid)
                if job is not None:
                    live.setdefault(job, []).append(rid)
                if wanted is not None and rid not in wanted:
                    continue
                # Say why before signalling: the wrapper records "cancelled", not a guess.
                if path not in unmade:
                    write_stop(path, "cancelled")
                if job is not None:
                    stopped.setdefault(job, []).append(obs)
            for job, observed in stopped.items():
                if len(observed) == len(live[job]):
                    targets.append(job)  # every run of the job that is left: the job goes
                elif any(o.state in rundir.ACTIVE_STATES for o in observed):
                    # A packed job with runs to go: its wrapper stops the one running (its
                    # stop file names it) and goes on; the unstarted ones it cancelled find
                    # their stop files and never start.
                    batch.append(job)
        if batch:
            self._signal_batch(sorted(set(batch)))
        if not targets:
            if unmade:
                raise MissingRunFolders(list(unmade))
            return
        jobs = sorted(set(targets))
        failed, why = self._scancel(jobs)
        if failed:
            # The stop files stay: they mark the cancel pending. A job that starts anyway
            # finds its stop file and does not run the program; a refresh that reaches the
            # scheduler cancels the jobs it still holds before anything is submitted again.
            raise SchedulerError(
                f"scancel failed: {why}: {len(jobs)} job(s) not cancelled",
                hint="the runs stay as they were, marked cancel pending (a .stop file in "
                "each run folder: a job that starts anyway does not run its program); "
                "`hpcx refresh` cancels them once the scheduler answers (`scontrol ping`)",
            )
        self._recancelled.update(jobs)
        if unmade:
            raise MissingRunFolders(list(unmade))

    def _scancel(self, args: list[str]) -> tuple[bool, str]:
        """``scancel ARGS``: whether it failed (a job already gone is no failure) and why."""
        try:
            proc = self._cmd(["scancel", *args])
        except SchedulerError as exc:
            return True, str(exc)
        failed = proc.returncode != 0 and "invalid job id" not in proc.stderr.lower()
        return failed, proc.stderr.strip() or f"exit code {proc.returncode}"

    def _signal_batch(self, jobs: list[str]) -> None:
        """SIGTERM to the batch shell of these packed jobs (the job wrapper, which passes it
        on to the run it is running, named by that run's stop file), not to the job."""
        failed, why = self._scancel(["--batch", "--signal=TERM", *jobs])
        if failed:
            raise SchedulerError(
                f"scancel --batch failed: {why}: {len(jobs)} packed job(s) not signalled",
                hint="the runs stay marked cancel pending (a .stop file in each run folder: "
                "a run that has not started yet never starts); cancel again once the "
                "scheduler answers (`scontrol ping`)",
            )

    def reconcile(self, key: str, runs_root: str | os.PathLike[str]) -> Submission | None:
        """Find the jobs of ``key`` by name (``squeue``, then ``sacct``, then the run folders'
        status files, which carry their SLURM job ids) and rebuild the Submission."""
        folder = self.submission_folder(runs_root, key)
        try:
            intent = read_json(folder / SUBMISSION_FILE)
        except (OSError, ValueError):
            return None  # the intent file is written before any sbatch: nothing went out
        proc = self._cmd(["squeue", "-h", "-t", "all", f"--name=hpcx-{key}", "-o", "%F|%k"])
        if proc.returncode != 0:
            raise SchedulerError(f"squeue failed: {proc.stderr.strip()}")
        found: dict[int, str] = {}
        for line in proc.stdout.splitlines():
            jid, _, comment = line.partition("|")
            parts = comment.strip().split(":")
            if len(parts) == 3 and parts[0] == "hpcx" and parts[1] == key and parts[2].isdigit():
                found[int(parts[2])] = jid.strip()
        if self.limits().accounting and len(found) < len(intent["chunks"]):
            acct = self._cmd(
                ["sacct", "-n", "-P", "-X", f"--name=hpcx-{key}", "-o", "JobID,Comment"]
            )
            for line in acct.stdout.splitlines():
                jid, _, comment = line.partition("|")
                parts = comment.strip().split(":")
                if len(parts) == 3 and parts[1] == key and parts[2].isdigit():
                    found.setdefault(int(parts[2]), jid.split("_")[0].strip())
        chunks = _intent_chunks(intent)
        recorded = {int(c["index"]): c.get("job_id") for c in intent["chunks"]}
        job_ids = [
            found.get(c.index) or recorded.get(c.index) or _job_from_files(c.runs) for c in chunks
        ]
        if not any(job_ids):
            return None
        self._record(folder, intent, job_ids)
        return self._submission(key, folder, chunks, job_ids)

    @classmethod
    def recorded_submission(cls, intent: Mapping[str, Any]) -> Submission | None:
        """The Submission a ``submission.json`` records (the job ids sbatch answered,
        written once the last chunk went out or one failed), without asking the scheduler;
        None when it records none. What a state restored from before it adopts
        (:meth:`reconcile` asks the scheduler, for an apply that died before writing them)."""
        chunks = _intent_chunks(intent)
        job_ids = [c.get("job_id") for c in intent["chunks"]]
        if not any(job_ids):
            return None
        sub = cls({})._submission(
            str(intent["key"]), Path(intent["folder"]), chunks, [j and str(j) for j in job_ids]
        )
        when = intent.get("submitted_at") or intent.get("created_at")
        return replace(sub, submitted_at=str(when)) if when else sub


def _intent_chunks(intent: Mapping[str, Any]) -> list[_Chunk]:
    """The chunks of a ``submission.json`` (their runs and packing; options are not kept)."""
    return [
        _Chunk(
            int(c["index"]),
            tuple(RunDir(Path(p), Path(p).parent.name, rid, int(a)) for rid, p, a in c["runs"]),
            (),
            int(c.get("pack") or 1),
        )
        for c in intent["chunks"]
    ]


#: squeue's reason for a job whose dependency can never be met (an upstream failed).
NEVER_SATISFIED = "DependencyNeverSatisfied"


def _failed_needs(run_dir: str) -> str:
    """Which runs this run needs ended without success, as their folders say (spec.json's
    ``needs``; each at ``<runs root>/<experiment>/<run id>``)."""
    try:
        needs = read_json(Path(run_dir) / rundir.SPEC).get("needs") or []
    except (OSError, ValueError, AttributeError):
        needs = []
    root = Path(run_dir).parent.parent
    bad = []
    for item in needs:
        if not isinstance(item, list | tuple) or len(item) != 2:
            continue
        exp, up = str(item[0]), str(item[1])
        try:
            state = observe_run_dir(up, rundir.run_path(root, exp, up)).state
        except ValueError:
            continue
        if state != "succeeded":
            bad.append(f"{exp}/{up} ({state})")
    if not bad:
        return "a run it needs did not succeed"
    return "needs " + ", ".join(bad) + ", which did not succeed"


def _env_number(name: str, default: Any, kind: Any) -> Any:
    """A number from the environment (a refresh polls without the manifest's options), the
    default when unset; a value that is not one is refused, naming the variable."""
    raw = os.environ.get(name)
    if raw is None or not raw.strip():
        return default
    try:
        return kind(raw)
    except ValueError:
        raise InvalidOptionError(
            f"{name}={raw!r} is not a number", hint=f"unset it, or give e.g. {name}={default}"
        ) from None


def deferred_folders(
    folder: str | os.PathLike[str],
) -> dict[str, tuple[dict[str, Any], dict[str, str]]]:
    """The runs of a submission whose folders its jobs make (:func:`rundir.materialize`):
    run folder -> (its spec.json, its links), from the ``chunk-NNN.tasks`` lines that end
    ``@OFFSET`` and the ``.specs`` files beside them (a damaged line is left out: the run is
    then not found, and the caller says so)."""
    out: dict[str, tuple[dict[str, Any], dict[str, str]]] = {}
    for tasks in sorted(Path(folder).glob("chunk-*.tasks")):
        try:
            data = tasks.with_suffix(".specs").read_bytes()
            # "\n" only, as the wrapper reads it (splitlines would also split at \x85).
            lines = tasks.read_text(encoding="utf-8").split("\n")
        except (OSError, ValueError):
            continue
        for line in lines:
            fields, at = rundir.split_task_line(line)
            if at is None:
                continue
            for path in fields[::2]:
                end = data.find(b"\n", at)
                end = len(data) if end < 0 else end + 1
                try:
                    made = rundir.parse_deferred(data[at:end])
                except ValueError:
                    made = None
                at = end
                if made is not None:
                    out[path] = made
    return out


def make_run_folders(pairs: Iterable[tuple[str | None, str | None]]) -> list[str]:
    """Make the run folders their jobs were to make and have not yet (each pair: the run
    folder, its submission folder), before hpcx writes into one (a stop file, a blocked
    status), as a job makes them (synced once at the end): the folders made. Raises
    :class:`MissingRunFolders` naming the runs whose folder is missing and whose spec.json
    the submission folder does not hold (damaged or removed), once the others are made."""
    wanted: dict[str, list[str]] = {}
    for path, folder in pairs:
        if path and folder and not os.path.exists(path):
            wanted.setdefault(folder, []).append(path)
    made: list[str] = []
    missing: list[str] = []
    for folder, paths in wanted.items():
        specs = deferred_folders(folder)
        for path in paths:
            found = specs.get(path)
            if found is None:
                missing.append(path)
            elif rundir.materialize(path, *found, fsync=False):
                made.append(path)
    if made:
        sync()
    if missing:
        raise MissingRunFolders(missing)
    return made


def _link(script: Path, rd: RunDir) -> None:
    """The submission's script into the run folder as ``job.sbatch``: one hard link (a new
    attempt's folder has none: the last one's went to ``attempts/N/``), else link_or_copy."""
    try:
        os.link(script, os.path.join(rd.path, rundir.SCRIPT))
    except OSError:
        link_or_copy(script, rd.script_path)


def tasks_text(chunk: _Chunk, offsets: Sequence[int | None] | None = None) -> str:
    """The tasks file: line t holds task t's runs as RUN_DIR<TAB>ATTEMPT pairs, tab-separated
    (one pair a line unpacked, as ever; the wrapper runs a line's pairs in order), and
    ``@OFFSET`` last when ``offsets[t]`` is set: the task's lines in the ``.specs`` file
    (its runs' folders are made by the job)."""
    at = offsets if offsets is not None else [None] * len(chunk.tasks)
    return "".join(
        "\t".join(f"{rd.path}\t{rd.attempt}" for rd in task)
        + (f"\t@{offset}" if offset is not None else "")
        + "\n"
        for task, offset in zip(chunk.tasks, at, strict=True)
    )


def _job_from_files(runs: Sequence[RunDir]) -> str | None:
    """A job long gone from squeue (MinJobAge) without accounting: its wrapper wrote its ids."""
    for rd in runs:
        doc = rundir.read_status(rd.path)
        if doc is None or doc.get("attempt") != rd.attempt:
            continue
        job = doc.get("job") or {}
        jid = job.get("SLURM_ARRAY_JOB_ID") or job.get("SLURM_JOB_ID")
        if jid:
            return str(jid)
    return None


def _shared_jobs(subs: Sequence[Submission]) -> set[str]:
    """Job ids that several runs share: packed jobs (``executor.pack``)."""
    seen: set[str] = set()
    shared: set[str] = set()
    for sub in subs:
        for job in sub.run_jobs.values():
            (shared if job in seen else seen).add(job)
    return shared


def _packed(f: ObservedStatus, merged: ObservedStatus, job_id: str) -> ObservedStatus:
    """A packed run as the poll reports it: its own status once it started; before, waiting
    in its job (``queued``, never ``running``: another run of the job is running); and once
    its job ended without starting it, ``lost`` (the next plan runs it again), whatever
    SLURM says of the job, which was about another run."""
    if f.final and f.source == "stop_file":
        # Cancelled before its turn: the job's wrapper skips it (its stop file), whatever
        # the job does meanwhile for the runs packed with it, so the job is not cancelled
        # again for it (_retry_cancels) and the run is cancelled now.
        return f
    if f.state != "pending" or f.source != "run_dir":
        return merged  # started: as any run
    if merged.state == "running":
        return merged._replace(
            state="queued",
            reason=f"waiting in its packed job {job_id} for the runs before it",
        )
    if merged.final and merged.source == "scheduler":
        return merged._replace(
            state="lost",
            reason=f"its packed job {job_id} ended before this run started "
            f"({merged.reason or merged.state}); the next plan runs it again",
        )
    return merged


_HELD = frozenset({"PENDING", "RUNNING", "COMPLETING", "CONFIGURING", "SUSPENDED", "RESIZING"})


def _merge(
    f: ObservedStatus,
    job_id: str | None,
    queue: Mapping[str, tuple[str, str]],
    acct: Mapping[str, str],
) -> ObservedStatus:
    if f.final and f.source == "stop_file":
        # A stop file never outranks a job the scheduler still holds: the cancel may not have
        # reached it (the controller was down), and the job may still start.
        held = queue.get(job_id or "", ("", ""))[0] in _HELD | {"REQUEUED"}
        if not held:
            return f
        f = f._replace(state="pending", source="run_dir")
    elif f.state == "lost" and f.source == "run_dir" and job_id is not None and (
        job_id in queue or job_id in acct
    ):
        # Its wrapper is gone from this host (SLURM runs jobs on the machine hpcx runs on)
        # without a final status: the scheduler says why. A program deaf to SIGTERM at its
        # time limit is SIGKILLed, wrapper and all, after KillWait: SLURM says TIMEOUT, and
        # that is what it was, not lost. A job still held is ending: the next poll sees how.
        f = f._replace(state="running")
    elif f.final:
        return f
    if f.state == rundir.REQUEUED and f.requeue_by == "resubmit":
        return f  # the next attempt is hpcx's to submit, whatever became of the job
    if f.state == rundir.REQUEUED and job_id is not None and job_id in queue:
        state, _ = queue[job_id]
        if state not in _HELD | {"REQUEUED", "CANCELLED"}:
            # The attempt ended requeued, but the job ended before its next start (seen: a
            # restart refused with "Job credential revoked"). Not the program's failure: lost,
            # and the next apply resumes it from its checkpoint folder.
            return f._replace(
                state="lost",
                source="scheduler",
                job_id=job_id,
                reason=f"{f.reason}; but SLURM ended the job ({state}) before the next attempt "
                "started",
            )
    if job_id is not None and job_id in queue:
        state, reason = queue[job_id]
        if state == "PENDING":
            return f._replace(state="queued", source="scheduler", reason=reason, job_id=job_id)
        if state in ("RUNNING", "COMPLETING", "CONFIGURING", "SUSPENDED", "RESIZING", "REQUEUED"):
            if f.state in ("claimed", "running"):
                return f
            return f._replace(state="running", source="scheduler", job_id=job_id)
        mapped = _SQUEUE_FINAL.get(state, "lost")
        return f._replace(
            state=mapped,
            source="scheduler",
            job_id=job_id,
            reason=f"SLURM says {state}; the job left no final status",
        )
    if job_id is not None and job_id in acct:
        state = acct[job_id]
        if state in ("PENDING", "RUNNING", "REQUEUED"):
            return f._replace(
                state="queued" if state == "PENDING" else "running", source="scheduler"
            )
        return f._replace(
            state=_SQUEUE_FINAL.get(state, "lost"),
            source="scheduler",
            reason=f"sacct says {state}; the job left no final status",
        )
    if f.state == "cancelled":  # cancelled before it started: only its .stop file says so
        return f
    return f._replace(
        state="lost",
        source="scheduler",
        job_id=job_id,
        reason="the scheduler no longer knows the job and it left no final status",
    )


def prefetch_room() -> Callable[[], None]:
    """Start asking the controller what :meth:`SlurmExecutor.room` reads: ``scontrol show
    config`` (then ``sacctmgr`` where accounting is on) and the user's ``squeue``, the two at
    once, each in a background thread, while the caller goes on (apply: showing the plan,
    reading git's state). Their answers wait in this process's caches, which ``room()``
    reuses (the squeue for :data:`QUEUE_REUSE_S`). Returns the function that waits for both.

    Their errors are not kept: a question that failed here has left nothing in the cache, so
    ``room()`` asks it again itself and reports what it gets (and tries a controller that
    does not answer again, as it always did; here it is asked once).
    """
    import threading

    ex = SlurmExecutor({"poll_retries": 0})

    def config() -> None:
        ex.limits()
        ex.user_limits()

    def quietly(ask: Callable[[], object]) -> Callable[[], None]:
        def run() -> None:
            # Anything: the answer is only a cache warmed ahead; room() asks again.
            with contextlib.suppress(Exception):
                ask()

        return run

    threads = [
        threading.Thread(target=quietly(ask), name=f"hpcx-room-{name}", daemon=True)
        for name, ask in (("config", config), ("queue", ex.user_queue))
    ]
    for t in threads:
        t.start()

    def wait() -> None:
        for t in threads:
            t.join()

    return wait
