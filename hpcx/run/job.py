"""The job wrapper: ``python -m hpcx.job RUN_DIR [--attempt N]``, run on the node for one run.

It claims the attempt (a second copy exits 0 without running anything), applies placement,
runs the argv from ``spec.json`` with no shell, streams stdout/stderr into the run folder,
and always leaves a final ``status.json``: succeeded, failed (exit code or signal), cancelled
or timeout. In a SLURM array it is started as ``python -m hpcx.job --tasks FILE`` and reads its
run folder from line ``$SLURM_ARRAY_TASK_ID`` of FILE (``RUN_DIR<TAB>ATTEMPT``). A packed job
(``executor.pack``) has several such pairs on its line (``--index I`` for a packed job that is
no array): :func:`run_packed` runs them one after another, each claimed and recorded as a run
alone, each held to its own time limit; a stop signal for the job stops the run it is running
and leaves the rest unstarted (:class:`_Pack`).

Placement is applied to the wrapper itself, before it starts the program: CPU affinity and
the NUMA memory policy are inherited across fork and exec, so the program runs bound without
a second interpreter in between (``hpcx exec`` would cost one more Python start per run) and
without ``preexec_fn`` (not safe once threads exist). A placement that cannot be honoured
(no such NUMA node, a GPU that is not there) fails the run with that reason before the
program starts; it is never silently ignored.

Signals: SIGTERM, SIGINT and SIGHUP are forwarded to the program's process group (the program
runs as the leader of its own group, so its children get them too); after a grace period the
group gets SIGKILL. The reason is named by the ``.stop-N`` file the executor writes before
signalling (``timeout``, ``cancelled`` or ``pruned``: a search trial the pruner stopped, whose
reason it wrote in ``prune.json``); under SLURM, a SIGTERM once the job's time limit has
passed is a timeout, any other is a cancellation (scancel, preemption).

Checkpoints (``spec.checkpoint``, docs/checkpoint.md): the program sees
``HPCX_CHECKPOINT_DIR`` (the run's ``checkpoint/`` folder, kept across attempts),
``HPCX_CHECKPOINT_SIGNAL`` and ``HPCX_ATTEMPT``. The checkpoint signal (the time limit's
warning: SLURM's ``--signal=B:SIG@before``, or the local queue) is forwarded to the program's
group with no SIGKILL after it: the limit itself is the deadline. A program that exits after it
ends its attempt ``requeued`` (up to ``max_requeues``); under SLURM the wrapper then requeues its
own job or array task (``scontrol requeue``), and the job's next start continues with the next
attempt. A SIGTERM under SLURM is told apart by the scheduler's own account of the job
(``scontrol show job``): a restart count above this start's means SLURM requeued it (a
preemption: the attempt is ``requeued``, the program got the checkpoint signal too), reason
``TimeLimit`` is the limit, anything else a cancellation.

Start-up: this runs once per run (each SLURM array task starts one), and its start-up is
hpcx's overhead per run (issue 17: at most 2x a bare ``python -c pass``; bench/wrapper_start.py).
So up to the program's start it imports nothing beyond what that bare interpreter has loaded,
save C modules and :mod:`hpcx.run.rundir`, :mod:`hpcx.run.contention`, :mod:`hpcx.util.files`
and :mod:`hpcx.util.proc`, which keep to the same rule (tests/run/test_wrapper_start.py): no
``subprocess`` (the program starts through ``posix_spawn``, :func:`hpcx.util.proc.spawn`), no
``pathlib`` (the run folder is a ``str`` here, :class:`_Run`), no ``json`` module, no
``signal`` module (``_signal``: its numbers, and names only where a message needs one), no
``typing`` nor ``contextlib``. Placement on NUMA nodes, launchers, checkpoints, requeues and
packed jobs import what they need when they need it. The executors start it as
``python -c 'from hpcx.job import run; run()' ARGS`` (:data:`hpcx.job.COMMAND`), without
``runpy``; ``python -m hpcx.job ARGS`` is the same wrapper.
"""

from __future__ import annotations

import os
import sys
import time

from hpcx.run import contention, rundir
from hpcx.util.files import append_line, atomic_write_json, read_json
from hpcx.util.proc import Child, hostname, process_start_ticks, spawn, utcnow

TYPE_CHECKING = False
if TYPE_CHECKING:
    import signal as _signal
    import subprocess
    from collections.abc import Mapping
    from typing import Any

    from hpcx.errors import PlacementFailed as PlacementFailed

    #: One run of a task: its folder, its attempt, and (a folder the job makes itself) its
    #: spec.json and links from the submission's ``.specs`` file.
    _Entry = tuple[str, int, tuple[dict[str, Any], dict[str, str]] | None]
else:
    import _signal  # the C module; `signal` itself builds its enums at import

    # Not seen by mypy (it sees the import above; a module __getattr__ would hide typos).
    def __getattr__(name: str) -> Any:
        # hpcx.run.job.PlacementFailed, where callers knew it before it moved to hpcx.errors,
        # imported when asked for: hpcx.errors imports typing.
        if name == "PlacementFailed":
            from hpcx.errors import PlacementFailed

            return PlacementFailed
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _signame(number: int) -> str:
    """``signal.Signals(number).name`` (``SIGTERM``): the enum only where a message needs it."""
    import signal

    return signal.Signals(number).name


#: Seconds between forwarding a stop signal to the program and killing it.
DEFAULT_KILL_GRACE = 10.0

_STOP_SIGNALS = (_signal.SIGTERM, _signal.SIGINT, _signal.SIGHUP)

#: ``spec.checkpoint`` defaults (the manifest checker fills them in; a spec.json written by
#: hand may leave them out).
CHECKPOINT_DEFAULTS: dict[str, Any] = {"signal": "USR1", "before": 120, "max_requeues": 5}
#: How many times a run without ``spec.checkpoint`` may be requeued by preemptions.
DEFAULT_MAX_REQUEUES = 5


def slurm_job_env(environ: dict[str, str] | os._Environ[str] = os.environ) -> dict[str, str]:
    keys = (
        "SLURM_JOB_ID",
        "SLURM_ARRAY_JOB_ID",
        "SLURM_ARRAY_TASK_ID",
        "SLURM_JOB_NODELIST",
        "SLURM_JOB_PARTITION",
        "SLURM_RESTART_COUNT",
    )
    return {k: environ[k] for k in keys if environ.get(k)}


def checkpoint_settings(spec: Mapping[str, Any]) -> dict[str, Any] | None:
    """The run's ``spec.checkpoint`` with defaults, or None when it has none."""
    ck = (spec.get("extra") or {}).get("checkpoint")
    if not isinstance(ck, dict):
        return None
    return {**CHECKPOINT_DEFAULTS, **ck}


def signal_number(name: str) -> int:
    """``USR1`` / ``SIGUSR1`` / ``10`` -> the signal's number. Raises KeyError (no such name)
    or ValueError (no such number)."""
    import signal

    text = str(name).strip().upper()
    if text.isdigit():
        return int(signal.Signals(int(text)))
    return int(signal.Signals[text if text.startswith("SIG") else "SIG" + text])


def restart_count(environ: dict[str, str] | os._Environ[str] = os.environ) -> int:
    """How many times SLURM has requeued this job (``SLURM_RESTART_COUNT``; 0 when unset)."""
    raw = environ.get("SLURM_RESTART_COUNT", "")
    return int(raw) if raw.isdigit() else 0


def slurm_job_ref(environ: dict[str, str] | os._Environ[str] = os.environ) -> str | None:
    """This job as scontrol names it: ``ARRAYJOB_TASK`` for an array task, else the job id."""
    if environ.get("SLURM_ARRAY_JOB_ID") and environ.get("SLURM_ARRAY_TASK_ID"):
        return f"{environ['SLURM_ARRAY_JOB_ID']}_{environ['SLURM_ARRAY_TASK_ID']}"
    return environ.get("SLURM_JOB_ID") or None


def scontrol(*args: str, timeout: float = 20.0) -> subprocess.CompletedProcess[str] | None:
    """``scontrol ARGS`` (None when it cannot run at all)."""
    import subprocess

    try:
        return subprocess.run(
            ["scontrol", *args], capture_output=True, text=True, timeout=timeout, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None


def parse_job_record(text: str) -> dict[str, str]:
    """``scontrol show job -o`` output (``Key=Value`` words) as a dict."""
    out: dict[str, str] = {}
    for word in text.split():
        key, sep, value = word.partition("=")
        if sep and key not in out:
            out[key] = value
    return out


def why_terminated(record: dict[str, str] | None, restarts_at_start: int) -> tuple[str, str] | None:
    """Why SLURM is ending this job, from its own record at the SIGTERM: ``("preempted",
    reason)`` when its restart count rose above this start's (SLURM requeued it),
    ``("preempted-cancelled", reason)`` when SLURM preempted it without a requeue,
    ``("timeout", reason)`` for reason TimeLimit, ``("cancelled", reason)`` otherwise; None
    when unknown."""
    if not record:
        return None
    restarts = record.get("Restarts", "")
    if restarts.isdigit() and int(restarts) > restarts_at_start:
        return "preempted", f"SLURM requeued the job (restart {int(restarts)})"
    reason = record.get("Reason", "")
    if reason == "TimeLimit":
        return "timeout", "time limit reached (SLURM: TimeLimit)"
    if record.get("JobState") == "PREEMPTED":
        return "preempted-cancelled", "SLURM preempted the job without requeueing it"
    return "cancelled", f"SIGTERM from SLURM (job {record.get('JobState', '?')}, reason {reason})"


# --------------------------------------------------------------------------------------------
# Placement


def apply_placement(placement: dict[str, Any], env: dict[str, str]) -> dict[str, Any]:
    """Apply ``placement`` to this process and ``env``; return what was actually used.

    Uses hpcx.node.placement (the same checks as ``hpcx exec``): the node must exist and have
    CPUs, ``local-to-gpu`` resolves through sysfs, GPU numbers are PCI bus order.
    """
    used: dict[str, Any] = {}
    # Explicit GPUs from the manifest win; else the ones the local queue assigned this run.
    gpus = [str(g) for g in placement.get("gpus") or []] or [
        g for g in env.get("HPCX_ASSIGNED_GPUS", "").split(",") if g
    ]
    numa = placement.get("numa")
    if numa in (None, "none", ""):
        numa = None
    if gpus:
        env["CUDA_DEVICE_ORDER"] = "PCI_BUS_ID"
        env["CUDA_VISIBLE_DEVICES"] = ",".join(gpus)
    if numa is not None:
        from hpcx.errors import HpcxError, PlacementFailed

        if isinstance(numa, bool) or not isinstance(numa, int | str):
            raise PlacementFailed(f"unknown numa placement {numa!r}")
        import warnings

        from hpcx.node import placement as pl

        gpu = gpus[0] if numa == pl.LOCAL_TO_GPU and gpus else None
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                resolved = pl.resolve(numa, gpu)
                notes = pl.apply_binding(resolved)
        except HpcxError as exc:
            raise PlacementFailed(str(exc)) from exc
        used["numa_node"] = resolved.numa_node
        used["numa_binding"] = "; ".join(notes) or "cpus + memory"
    assigned = env.get("HPCX_ASSIGNED_CPUS", "")
    if assigned:
        # The local queue holds these cores for this run: pin to them (within the NUMA
        # binding above, which they were chosen from), so runs side by side never share one.
        want = {int(c) for c in assigned.split(",") if c.strip().isdigit()}
        try:
            allowed = os.sched_getaffinity(0)
            if want & allowed:
                os.sched_setaffinity(0, want & allowed)
                used["cpus_held"] = sorted(want & allowed)
        except OSError as exc:
            from hpcx.errors import PlacementFailed

            raise PlacementFailed(
                f"cannot pin to the cores the queue holds ({assigned}): {exc}"
            ) from exc
    if env.get("HPCX_EXCLUSIVE") == "1":
        used["exclusive"] = True
    if env.get("CUDA_VISIBLE_DEVICES"):
        used["gpus"] = env["CUDA_VISIBLE_DEVICES"].split(",")
    try:  # noqa: SIM105 - contextlib is not imported (start-up)
        used["cpus"] = sorted(os.sched_getaffinity(0))
    except OSError:
        pass
    return used


# --------------------------------------------------------------------------------------------
# The wrapper


class _Run:
    """The run folder as the wrapper sees it: :class:`~hpcx.run.rundir.RunDir`'s names on a
    ``str`` path (``pathlib`` is a tenth of a start), absolute as ``RunDir.open`` makes it."""

    __slots__ = ("attempt", "experiment", "key", "path", "run_id")

    def __init__(
        self, path: str, experiment: str, run_id: str, attempt: int, key: str | None = None
    ) -> None:
        self.path = path
        self.experiment = experiment
        self.run_id = run_id
        self.attempt = attempt
        #: The submission key spec.json names (None: none recorded).
        self.key = key

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> _Run:
        where = _absolute(os.fspath(path))
        spec = read_json(os.path.join(where, rundir.SPEC))
        sub = spec.get("submission")
        key = sub.get("key") if isinstance(sub, dict) else None
        return cls(
            where,
            spec["experiment"],
            spec["run_id"],
            int(spec.get("attempt", 1)),
            str(key) if key else None,
        )

    @property
    def spec_path(self) -> str:
        return os.path.join(self.path, rundir.SPEC)

    @property
    def status_path(self) -> str:
        return os.path.join(self.path, rundir.STATUS)

    @property
    def metrics_path(self) -> str:
        return os.path.join(self.path, rundir.METRICS)

    @property
    def stdout_path(self) -> str:
        return os.path.join(self.path, rundir.STDOUT)

    @property
    def stderr_path(self) -> str:
        return os.path.join(self.path, rundir.STDERR)

    def claim_path(self, attempt: int | None = None) -> str:
        return os.path.join(self.path, f".claim-{attempt or self.attempt}")

    def stop_path(self, attempt: int | None = None) -> str:
        return os.path.join(self.path, f".stop-{attempt or self.attempt}")

    def final_path(self, attempt: int | None = None) -> str:
        return os.path.join(self.path, f".final-{attempt or self.attempt}")


def _absolute(path: str) -> str:
    """``str(Path(path).absolute())``: the same text (the wrapper hands it to the program as
    HPCX_RUN_DIR), through pathlib only for a path that is not already in its clean form."""
    if not os.path.isabs(path):
        path = os.path.join(os.getcwd(), path)
    clean = (
        path.startswith("/")
        and not path.startswith("//")
        and "//" not in path
        and "/./" not in path
        and not path.endswith(("/", "/."))
    )
    if clean:
        return path
    from pathlib import Path

    return str(Path(path).absolute())


class Wrapper:
    def __init__(self, rd: _Run, attempt: int) -> None:
        self.rd = rd
        self.attempt = attempt
        self.child: Child | None = None
        self.stop_signal: int | None = None
        self.stop_time: float | None = None
        #: The stop signal came once the program had already exited on its own.
        self.stop_late = False
        self.grace = DEFAULT_KILL_GRACE
        #: The run's ``resources.time`` as spec.json says it, read as seconds only when a stop
        #: signal needs it (:attr:`time_limit`): parsing it imports what a start does not need.
        self.time_text: Any = None
        self.started = time.time()
        #: spec.checkpoint with its defaults, once the spec is read (None: no checkpointing).
        self.checkpoint: dict[str, Any] | None = None
        self.checkpoint_signal: int | None = None
        #: When the checkpoint signal (the time limit's warning) reached the wrapper.
        self.warned_at: float | None = None
        #: What SLURM's own record said at a SIGTERM (see why_terminated).
        self.slurm_why: tuple[str, str] | None = None
        #: The wrapper itself stops the program at its ``resources.time`` (a packed run: the
        #: job's limit is the sum of its runs', and one run must not take the next one's).
        self.limit_own = False
        #: It did (:meth:`_wait_child`).
        self.timed_out = False
        self.restarts = restart_count()
        self.status: dict[str, Any] = {
            "run_format": rundir.RUN_FORMAT,
            "experiment": rd.experiment,
            "run_id": rd.run_id,
            "attempt": attempt,
            "host": hostname(),
            "wrapper_pid": os.getpid(),
            "wrapper_start_ticks": process_start_ticks(os.getpid()),
            "claimed_at": utcnow(),
            "job": slurm_job_env(),
        }

    @property
    def time_limit(self) -> float | None:
        """The run's time limit in seconds (``resources.time``), None when it has none."""
        from hpcx.cluster.units import time_limit_seconds

        try:
            return time_limit_seconds(self.time_text)
        except ValueError:
            return None

    # Only the final status is fsynced: it is the lasting truth about the run. An
    # intermediate one lost in a crash reads as pending/lost, which is what it is then.
    def write(self, state: str, **fields: Any) -> None:
        self.status.update(fields)
        self.status["state"] = state
        self.status["updated_at"] = utcnow()
        final = state in rundir.ATTEMPT_END_STATES
        if state == "running":
            # Only informative: a full disk now must not fail a program that has started.
            try:  # noqa: SIM105 - contextlib is not imported (start-up)
                atomic_write_json(self.rd.status_path, self.status, fsync=False)
            except OSError:
                pass
            return
        atomic_write_json(self.rd.status_path, self.status, fsync=final)

    def write_final(self, state: str, **fields: Any) -> None:
        """The final status: into status.json, else (a full disk) into the space reserved at
        the start (``.final-N``), which readers take over a status left claimed/running."""
        try:
            self.write(state, **fields)
        except OSError as exc:
            try:
                rundir.write_final(self.rd, self.attempt, self.status)
            except OSError as exc2:
                _say(
                    f"hpcx.run.job: cannot record the final status {state!r}: {exc}; "
                    f"nor in {os.path.basename(self.rd.final_path(self.attempt))}: {exc2}"
                )
                raise exc from None
            _say(
                f"hpcx.run.job: status.json not writable ({exc.strerror or exc}); final status "
                f"{state!r} kept in {os.path.basename(self.rd.final_path(self.attempt))}"
            )
            return
        rundir.drop_final(self.rd, self.attempt)

    def _on_signal(self, signum: int, _frame: Any) -> None:
        first = self.stop_signal is None
        if first:
            self.stop_signal = signum
            self.stop_time = time.time()
            self.stop_late = self.child is not None and self.child.returncode is not None
            in_slurm = bool(self.status["job"].get("SLURM_JOB_ID"))
            if in_slurm and signum == _signal.SIGTERM and self._stop_reason() is None:
                # Asked now, while the scheduler's record still says why (a preemption has
                # already raised the restart count; a time limit says TimeLimit).
                self.slurm_why = self._ask_slurm()
            if self.slurm_why is not None and self.slurm_why[0].startswith("preempted"):
                # Preempted: the program gets its checkpoint signal first (SLURM sends only
                # TERM), and SLURM's KillWait, not ours, bounds how long it may take.
                if self.checkpoint_signal is not None:
                    self._forward(self.checkpoint_signal)
            else:
                # Escalate to SIGKILL if the program ignores the signal past the grace period.
                _signal.signal(_signal.SIGALRM, self._on_alarm)
                _signal.setitimer(_signal.ITIMER_REAL, max(self.grace, 0.01))
        self._forward(signum)

    def _on_checkpoint(self, signum: int, _frame: Any) -> None:
        """The time limit's warning: passed on to the program, no SIGKILL after it (the limit
        itself ends the attempt of a program that does not exit)."""
        if self.warned_at is None:
            self.warned_at = time.time()
        self._forward(signum)

    def _ask_slurm(self) -> tuple[str, str] | None:
        job = self.status["job"].get("SLURM_JOB_ID")
        proc = scontrol("show", "job", "-o", str(job), timeout=10.0)
        if proc is None or proc.returncode != 0:
            return None
        return why_terminated(parse_job_record(proc.stdout), self.restarts)

    def _on_alarm(self, _signum: int, _frame: Any) -> None:
        self._forward(_signal.SIGKILL)

    def _forward(self, signum: int) -> None:
        child = self.child
        if child is not None and child.returncode is None:
            try:
                os.killpg(child.pid, signum)
            except ProcessLookupError:
                pass
            except PermissionError:
                os.kill(child.pid, signum)

    def _stop_reason(self) -> str | None:
        try:
            with open(self.rd.stop_path(self.attempt), encoding="utf-8") as f:
                said = f.read().strip() or None
        except OSError:
            said = None
        return said or ("timeout" if self.timed_out else None)

    def _wait_child(self) -> int:
        """The program's exit code; with :attr:`limit_own`, stopped as a timeout (a stop file
        first, as an executor does, then SIGTERM and the kill grace) once its limit passed."""
        assert self.child is not None
        limit = self.time_limit if self.limit_own else None
        if limit is None:
            return _exit_of(self.child)
        rc = self.child.wait(timeout=max(0.0, self.started + limit - time.time()))
        if rc is not None:
            return rc
        self.timed_out = True
        try:
            with open(self.rd.stop_path(self.attempt), "w", encoding="utf-8") as f:
                f.write("timeout\n")
        except OSError:
            pass
        self._on_signal(_signal.SIGTERM, None)
        return _exit_of(self.child)

    def run(self, handler: Any = None) -> int:
        """Run the attempt. ``handler``: who takes the stop signals (a packed job's, which
        passes them on to this run), else this run itself."""
        for sig in _STOP_SIGNALS:
            _signal.signal(sig, handler or self._on_signal)
        final: dict[str, Any] = {"state": "failed", "reason": "wrapper did not finish"}
        exit_code = 1
        try:
            # Room for the final status first: a run that cannot be recorded does not start
            # (it would finish unrecorded, be taken for lost, and run again).
            rundir.reserve_final(self.rd, self.attempt)
            self.write("claimed")
        except OSError as exc:
            rundir.drop_final(self.rd, self.attempt)
            _say(
                f"hpcx.run.job: cannot record run {self.rd.run_id} attempt {self.attempt} in "
                f"{self.rd.path}: {exc.strerror or exc}; not running it"
            )
            return 1
        try:
            spec = read_json(self.rd.spec_path)
            final, exit_code = self._run(spec)
        except BaseException as exc:
            final = {
                "state": "failed",
                "reason": f"wrapper error: {type(exc).__name__}: {exc}",
            }
            exit_code = 1
            if not isinstance(exc, Exception):
                raise
        finally:
            ended = time.time()
            state = final.pop("state")
            duration = ended - self.started
            current = rundir.current_attempt(self.rd.path)
            if current != self.attempt:
                # The run moved on to another attempt meanwhile: its status.json and
                # metrics.jsonl are that attempt's now, never ours to write.
                _say(
                    f"hpcx.run.job: run {self.rd.run_id} is at attempt {current} now, not "
                    f"{self.attempt}: its {state} status is not recorded"
                )
                rundir.drop_final(self.rd, self.attempt)
            else:
                # The summary metrics are a convenience: a full disk must not cost the status.
                try:
                    append_line(
                        self.rd.metrics_path,
                        {"name": "hpcx.duration_s", "value": round(duration, 6), "time": ended},
                        fsync=False,
                    )
                    if final.get("exit_code") is not None:
                        append_line(
                            self.rd.metrics_path,
                            {"name": "hpcx.exit_code", "value": final["exit_code"], "time": ended},
                            fsync=False,
                        )
                except OSError:
                    pass
                self.write_final(state, ended_at=utcnow(), duration_s=round(duration, 6), **final)
                if (
                    state == rundir.REQUEUED
                    and final.get("requeue_by") == "slurm"
                    and final.get("requeue_reason") == "time-limit"
                ):
                    self._requeue_job()
        return exit_code

    def _requeue_job(self) -> None:
        """Ask SLURM to requeue this job (or array task) for the next attempt. The status is
        written first: the requeue ends this process. Where the cluster refuses (a job without
        ``--requeue``, JobRequeue=0), the status says so and the next ``hpcx refresh``
        submits the next attempt instead."""
        ref = slurm_job_ref()
        proc = scontrol("requeue", ref) if ref else None
        if proc is not None and proc.returncode == 0:
            return
        why = (proc.stderr.strip() if proc is not None else "") or "scontrol could not run"
        _say(f"hpcx.run.job: scontrol requeue {ref} failed: {why}; refresh resubmits the run")
        try:  # noqa: SIM105 - contextlib is not imported (start-up)
            self.write("requeued", requeue_by="resubmit", requeue_error=why)
        except OSError:
            pass

    def _run(self, spec: dict[str, Any]) -> tuple[dict[str, Any], int]:
        argv = spec.get("argv")
        if not isinstance(argv, list) or not argv or not all(isinstance(a, str) for a in argv):
            return {"state": "failed", "reason": f"spec.json has no usable argv: {argv!r}"}, 2
        options = spec.get("executor") or {}
        if "kill_grace" in options:
            self.grace = float(options["kill_grace"])
        self.time_text = (spec.get("resources") or {}).get("time")

        env = dict(os.environ)
        env.update({str(k): str(v) for k, v in (spec.get("env") or {}).items()})
        env["HPCX_RUN_ID"] = self.rd.run_id
        env["HPCX_EXPERIMENT"] = self.rd.experiment
        env["HPCX_RUN_DIR"] = self.rd.path
        env["HPCX_ATTEMPT"] = str(self.attempt)
        env["HPCX_METRICS"] = str(self.rd.metrics_path)
        self.checkpoint = checkpoint_settings(spec)
        if self.checkpoint is not None:
            try:
                self.checkpoint_signal = signal_number(self.checkpoint["signal"])
            except (KeyError, ValueError):
                return {
                    "state": "failed",
                    "reason": f"spec.checkpoint.signal {self.checkpoint['signal']!r} is no signal",
                }, 2
            folder = os.path.join(self.rd.path, rundir.CHECKPOINT_DIR)
            try:
                _mkdir(folder)
            except OSError as exc:
                return {
                    "state": "failed",
                    "reason": f"cannot make the checkpoint folder {folder}: {exc.strerror or exc}",
                }, 1
            env["HPCX_CHECKPOINT_DIR"] = folder
            env["HPCX_CHECKPOINT_SIGNAL"] = _signame(self.checkpoint_signal)[3:]
            if self.checkpoint_signal not in _STOP_SIGNALS:
                _signal.signal(self.checkpoint_signal, self._on_checkpoint)
            self.status["checkpoint"] = self.checkpoint
        try:
            placement = dict(spec.get("placement") or {})
            launcher = (spec.get("extra") or {}).get("launcher")
            if launcher and placement.get("numa") == "local-to-gpu":
                # Each rank binds next to its own GPU (hpcx.run.launch), not the wrapper.
                placement.pop("numa")
            used = apply_placement(placement, env)
        except Exception as exc:
            from hpcx.errors import PlacementFailed

            if not isinstance(exc, PlacementFailed):
                raise
            return {"state": "failed", "reason": f"placement cannot be honoured: {exc}"}, 2
        self.status["placement"] = used
        self.status["numa_node"] = used.get("numa_node")
        self.status["gpus"] = used.get("gpus")

        if self.stop_signal is not None:
            return self._stopped(None), 128 + self.stop_signal
        said = self._stop_reason()
        if said is not None:
            # A stop written after the check in main() but before the program starts (its
            # writer saw no active run to signal): honour it, the program never starts.
            state = said if said in ("timeout", "cancelled", "pruned") else "cancelled"
            if state == "pruned":
                return {"state": state, "reason": self._pruned_why()}, 0
            return {"state": state, "reason": f"{state} before the program started"}, 0

        if launcher and launcher != "none":  # none: the argv as it is (launch.command)
            try:  # the launcher (spec.launcher) turns the program into what starts its ranks
                from hpcx.run import launch

                argv, env = launch.prepare(argv, spec, env)
            except Exception as exc:
                from hpcx.errors import HpcxError

                if not isinstance(exc, HpcxError):
                    raise
                return {"state": "failed", "reason": f"launch: {exc}"}, 2
        cores = [int(c) for c in used.get("cpus") or []]
        cwd = spec.get("cwd") or None
        before = contention.sample(cores)
        out = _open_log(self.rd.stdout_path)
        try:
            err = _open_log(self.rd.stderr_path)
            try:
                # The program leads its own process group (the signals go to the group), gets
                # /dev/null as stdin and no descriptor of the wrapper's but its two logs.
                self.child = spawn(argv, env=env, cwd=cwd, stdout=out, stderr=err)
            except OSError as exc:
                return {
                    "state": "failed",
                    "exit_code": 127,
                    "reason": f"cannot start {argv[0]!r}: {exc.strerror or exc}",
                }, 127
            finally:
                os.close(err)
        finally:
            os.close(out)
        if self.stop_signal is not None:  # arrived while the child was being started
            self._forward(self.stop_signal)
        self.write("running", pid=self.child.pid, started_at=utcnow())
        rc = self._wait_child()
        self.status["contention"] = contention.measure(before, contention.sample(cores), cores)
        _signal.setitimer(_signal.ITIMER_REAL, 0)

        if self.stop_signal is not None and not (
            # A trial that finished before the pruner's stop reached it keeps its result.
            self.stop_late and self._stop_reason() == "pruned"
        ):
            return self._stopped(rc), (rc if rc >= 0 else 128 - rc)
        if self.warned_at is not None:
            return self._after_warning(rc), 0
        if rc == 0:
            return {"state": "succeeded", "exit_code": 0, "reason": None}, 0
        if rc < 0 and self.stop_signal is None and self._stop_reason() is not None:
            # Stopped (a cancel, a prune, a time limit: the stop file says which) by a signal
            # that reached the program before this wrapper: scancel signals every process of
            # the job, in no set order. It is the stop, as if the wrapper had passed it on.
            self.stop_signal = -rc
            return self._stopped(rc), 128 - rc
        if rc < 0:
            name = _signame(-rc)
            return {
                "state": "failed",
                "exit_code": None,
                "signal": name,
                "reason": f"killed by {name}",
            }, 128 - rc
        return {"state": "failed", "exit_code": rc, "reason": f"exit code {rc}"}, rc

    def _max_requeues(self) -> int:
        if self.checkpoint is not None:
            return int(self.checkpoint.get("max_requeues", DEFAULT_MAX_REQUEUES))
        return DEFAULT_MAX_REQUEUES

    def _requeue(self, why: str, reason: str, by: str, fields: dict[str, Any]) -> dict[str, Any]:
        """The attempt ends ``requeued`` (``why``: time-limit or preemption; ``by``: who starts
        the next attempt: slurm, local or resubmit), or, past ``max_requeues``, the run ends."""
        done = rundir.requeues_before(self.rd.path, self.attempt)
        limit = self._max_requeues()
        if done >= limit:
            state = "timeout" if why == "time-limit" else "failed"
            return {
                "state": state,
                "reason": f"{reason}; not requeued: the run was requeued {done} time(s) "
                f"already (max_requeues {limit})",
                "requeue_reason": why,
                **fields,
            }
        return {
            "state": rundir.REQUEUED,
            "reason": f"{reason}; requeued ({done + 1} of at most {limit})",
            "requeue_reason": why,
            "requeue_by": by,
            **fields,
        }

    def _requeue_by(self) -> str:
        return "slurm" if self.status["job"].get("SLURM_JOB_ID") else "local"

    def _after_warning(self, rc: int) -> dict[str, Any]:
        """The program exited after the time limit's warning: it checkpointed (any exit after
        the signal ends the attempt; the next one resumes from what it saved, if anything)."""
        assert self.checkpoint_signal is not None
        sig = _signame(self.checkpoint_signal)
        how = f"exit code {rc}" if rc >= 0 else f"killed by {_signame(-rc)}"
        fields: dict[str, Any] = {"exit_code": rc if rc >= 0 else None}
        before = self.checkpoint.get("before") if self.checkpoint else None
        reason = f"time limit: the program exited ({how}) on {sig}, {before} s before the limit"
        return self._requeue("time-limit", reason, self._requeue_by(), fields)

    def _pruned_why(self) -> str:
        """The pruner's reason (``prune.json``), which it writes before the stop file."""
        try:
            doc = read_json(os.path.join(self.rd.path, rundir.PRUNE))
        except (OSError, ValueError):
            doc = None
        why = doc.get("reason") if isinstance(doc, dict) else None
        if not isinstance(why, str) or not why:
            why = "pruned (prune.json unreadable)"
        return why

    def _stopped(self, rc: int | None) -> dict[str, Any]:
        assert self.stop_signal is not None
        got = _signame(self.stop_signal)
        fields: dict[str, Any] = {"stop_signal": got}
        if rc is not None and rc < 0:
            fields["signal"] = _signame(-rc)
            fields["exit_code"] = None
        else:
            fields["exit_code"] = rc
        said = self._stop_reason()
        if said == "timeout" and self.warned_at is not None and self.checkpoint_signal:
            sig = _signame(self.checkpoint_signal)
            waited = round((self.stop_time or time.time()) - self.warned_at)
            return {
                "state": "timeout",
                "reason": f"time limit reached ({got}): the program did not exit within "
                f"{waited} s of {sig}",
                **fields,
            }
        if said == "pruned":
            return {"state": "pruned", "reason": self._pruned_why(), **fields}
        if said in ("timeout", "cancelled"):
            detail = "time limit reached" if said == "timeout" else "cancelled"
            return {"state": said, "reason": f"{detail} ({got})", **fields}
        if self.slurm_why is not None:
            kind, why = self.slurm_why
            if kind.startswith("preempted"):
                # Requeued by SLURM, the job comes back; cancelled, hpcx submits it again.
                by = "slurm" if kind == "preempted" else "resubmit"
                return self._requeue("preemption", f"preempted: {why}", by, fields)
            if kind == "timeout" and self.warned_at is not None and self.checkpoint_signal:
                sig = _signame(self.checkpoint_signal)
                why = f"{why}: the program did not exit after {sig}"
            return {"state": kind, "reason": why, **fields}
        elapsed = (self.stop_time or time.time()) - self.started
        in_slurm = bool(self.status["job"].get("SLURM_JOB_ID"))
        if in_slurm and self.time_limit is not None and elapsed >= self.time_limit - 1.0:
            return {
                "state": "timeout",
                "reason": f"time limit reached ({got} from SLURM)",
                **fields,
            }
        if in_slurm and self.stop_signal == _signal.SIGTERM:
            why = f"{got} from SLURM (scancel, preemption or node shutdown)"
            return {"state": "cancelled", "reason": why, **fields}
        return {"state": "cancelled", "reason": f"{got} received", **fields}


def _from_tasks(tasks: str, index: int | None) -> list[_Entry]:
    """Line ``index`` of a tasks file (default ``$SLURM_ARRAY_TASK_ID``): its
    ``RUN_DIR<TAB>ATTEMPT`` pairs, one for a task of one run, several for a packed one, and
    for runs whose folders the job makes (:func:`hpcx.run.rundir.materialize`) a last field
    ``@OFFSET``: their lines in the ``.specs`` file beside it start there."""
    if index is None:
        raw = os.environ.get("SLURM_ARRAY_TASK_ID")
        if raw is None:
            raise SystemExit("hpcx.run.job: --tasks needs SLURM_ARRAY_TASK_ID or --index")
        index = int(raw)
    with open(tasks, encoding="utf-8") as f:
        for i, line in enumerate(f):
            if i == index:
                fields, offset = rundir.split_task_line(line)
                if len(fields) == 1:
                    fields.append("")
                if len(fields) % 2:
                    raise SystemExit(
                        f"hpcx.run.job: {tasks} line {index}: not RUN_DIR<TAB>ATTEMPT pairs"
                    )
                pairs = [(fields[j], int(fields[j + 1] or 0)) for j in range(0, len(fields), 2)]
                if offset is None:
                    return [(path, attempt, None) for path, attempt in pairs]
                specs = tasks[: -len(".tasks")] + ".specs" if tasks.endswith(".tasks") else ""
                try:
                    made = rundir.read_deferred(specs, offset, len(pairs))
                except (OSError, ValueError) as exc:
                    why = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
                    raise SystemExit(
                        f"hpcx.run.job: {specs} at byte {offset}: {why}: cannot make the run "
                        "folders of this task (the submission folder was damaged or removed)"
                    ) from None
                return [(p, a, d) for (p, a), d in zip(pairs, made, strict=True)]
    raise SystemExit(f"hpcx.run.job: {tasks} has no line {index}")


def _made_here(path: str, deferred: tuple[dict[str, Any], dict[str, str]] | None) -> str | None:
    """Make the run's folder when the job is to (a deferred one): the submission key its
    spec.json must name, else None (apply made the folder)."""
    if deferred is None:
        return None
    doc, links = deferred
    rundir.materialize(path, doc, links)
    key = (doc.get("submission") or {}).get("key")
    return str(key) if key else None


class _Args:
    def __init__(self) -> None:
        self.run_dir: str | None = None
        self.attempt = 0
        self.tasks: str | None = None
        self.index: int | None = None


def _quick_args(argv: list[str]) -> _Args | None:
    """The command lines hpcx writes (``RUN_DIR [--attempt N]``, ``--tasks FILE [--index
    N]``) parsed without argparse, which costs a start a few ms more: None for anything else
    (then argparse parses it, and says what is wrong)."""
    args = _Args()
    rest = list(argv)
    while rest:
        word = rest.pop(0)
        if word in ("--attempt", "--index", "--tasks") and rest:
            value = rest.pop(0)
            if word == "--tasks" and value and not value.startswith("-"):
                args.tasks = value
            elif word != "--tasks" and value.isdigit() and value.isascii():
                setattr(args, word[2:], int(value))
            else:
                return None
        elif word and not word.startswith("-") and args.run_dir is None:
            args.run_dir = word
        else:
            return None
    return args if (args.run_dir or args.tasks) else None


def _parse_args(argv: list[str] | None) -> _Args:
    quick = _quick_args(sys.argv[1:] if argv is None else argv)
    if quick is not None:
        return quick
    import argparse

    ap = argparse.ArgumentParser(prog="python -m hpcx.job", description=__doc__.split("\n")[0])
    ap.add_argument("run_dir", nargs="?")
    ap.add_argument("--attempt", type=int, default=0)
    ap.add_argument(
        "--tasks", help="a tasks file: line i = RUN_DIR<TAB>ATTEMPT (several pairs: packed)"
    )
    ap.add_argument("--index", type=int, help="the line of --tasks (default SLURM_ARRAY_TASK_ID)")
    args = _Args()
    ap.parse_args(argv, namespace=args)
    if not args.tasks and not args.run_dir:
        ap.error("give RUN_DIR or --tasks")
    return args


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    if args.tasks:
        entries = _from_tasks(args.tasks, args.index)
        if len(entries) > 1:
            return run_packed(entries)
        path, attempt_in_file, deferred = entries[0]
        try:
            key = _made_here(path, deferred)
        except OSError as exc:
            raise SystemExit(
                f"hpcx.run.job: cannot make the run folder {path}: {exc.strerror or exc}"
            ) from None
        return run_one(path, args.attempt or attempt_in_file, key=key)
    assert args.run_dir
    return run_one(args.run_dir, args.attempt)


def run_one(path: str, attempt: int, pack: _Pack | None = None, key: str | None = None) -> int:
    """Run ``attempt`` of the run in ``path`` (0: the attempt its spec.json names), as the
    one run of a job or as one run of a packed job (``pack``: the signals go through it).
    ``key``: the submission whose spec.json the job made (a deferred folder): a folder whose
    spec.json another submission wrote is not this job's to run."""
    rd = _Run.open(path)
    attempt = attempt or rd.attempt
    if restart_count() > 0:
        # SLURM started this job again (a requeue): continue the run where it now is.
        attempt = follow_requeue(rd.path, attempt)
        rd = _Run.open(path)
    # Before the claim, so a stale copy (a requeue, a job the scheduler kept while its run
    # moved on, a cancelled one that started anyway) writes nothing at all.
    why = stale_reason(rd, attempt)
    if why is None and key is not None and rd.key != key:
        # The job's folder was never made, and a later apply made it for the same attempt
        # under its own submission (a job the scheduler held on to while the run moved on).
        why = f"the run folder belongs to submission {rd.key}, not to this job's {key}"
    if why is not None:
        _say(f"hpcx.job: run {rd.experiment}/{rd.run_id} attempt {attempt}: {why}; not running it")
        return 0
    if pack is not None and pack.stop_signal is not None:
        return 0  # the packed job is stopping: this run stays unstarted, unclaimed
    failed = _needs_not_succeeded(rd)
    if failed:
        # The scheduler let it start (``afterok`` on a job that ended 0 although a run of it
        # did not succeed: a packed job, a cancel that came late), but a run it needs did not
        # succeed: never run on its output. Held blocked; a nonzero exit keeps the runs that
        # need this one waiting in turn.
        from hpcx.run.executors.base import write_blocked

        reason = "blocked: needs " + ", ".join(failed) + ", which did not succeed"
        _say(f"hpcx.job: run {rd.experiment}/{rd.run_id}: {reason}; not running it")
        write_blocked(rd.path, rd.run_id, reason)
        return 1
    holder = rundir.claim(rd, attempt)
    if holder is not None:
        _say(
            f"hpcx.run.job: run {rd.experiment}/{rd.run_id} attempt {attempt} is already claimed "
            f"by pid {holder.get('pid')} on {holder.get('host')} at {holder.get('time')}; "
            "not running it again"
        )
        return 0
    # Again after the claim: a new attempt prepared between the check and the claim wins.
    why = stale_reason(rd, attempt)
    if why is not None:
        _say(f"hpcx.job: run {rd.experiment}/{rd.run_id} attempt {attempt}: {why}; not running it")
        return 0
    wrapper = Wrapper(rd, attempt)
    if pack is None:
        return wrapper.run()
    return pack.run(wrapper)


class _Pack:
    """The signals of a packed job (``executor.pack``): several runs one after another in one
    job or array task. A stop signal reaches the run that is running (its Wrapper); after it,
    the packed job stops, the runs not started stay unstarted (the poll reports them lost,
    the next plan runs them again), unless the run's own stop file named it: ``hpcx cancel``
    or the pruner stopping that run alone (``scancel --batch``), and the next run goes on.
    Each run is held to its own ``resources.time`` (``Wrapper.limit_own``): it ends
    ``timeout`` there and the next run goes on, in the time the job holds for it."""

    def __init__(self) -> None:
        self.current: Wrapper | None = None
        #: A stop signal for the whole job (scancel, the time limit, a preemption).
        self.stop_signal: int | None = None

    def _on_signal(self, signum: int, frame: Any) -> None:
        current = self.current
        if current is not None:
            current._on_signal(signum, frame)
            if current._stop_reason() is not None:
                return  # aimed at that run (its stop file says so), not at the job
        if self.stop_signal is None:
            self.stop_signal = signum

    def install(self) -> None:
        for sig in _STOP_SIGNALS:
            _signal.signal(sig, self._on_signal)

    def run(self, wrapper: Wrapper) -> int:
        self.current = wrapper
        try:
            if self.stop_signal is not None:
                # Stopped between its claim and its start: unclaimed again, unstarted.
                try:  # noqa: SIM105 - contextlib is not imported (start-up)
                    os.unlink(wrapper.rd.claim_path(wrapper.attempt))
                except OSError:
                    pass
                return 0
            wrapper.limit_own = True
            return wrapper.run(handler=self._on_signal)
        finally:
            self.current = None
            self.install()
            if wrapper.stop_signal is not None and wrapper._stop_reason() is None:
                # The signal was the job's (scancel, time limit, preemption): stop here.
                self.stop_signal = self.stop_signal or wrapper.stop_signal


def run_packed(entries: list[_Entry]) -> int:
    """The runs of one packed job or array task, in order, each claimed, run and recorded as
    a run alone is (a run already final is skipped: a requeued job starts the packed list
    again). The job ends 0 once every run had its turn, whatever each run's own end (that is
    in its folder): SLURM's ``afterok`` on a packed job then never holds back the runs that
    need only its runs that succeeded, and a run that needs one that did not is held
    ``blocked`` by its own wrapper (:func:`_needs_not_succeeded`). A job stopped by a signal
    ends as the signal says."""
    pack = _Pack()
    pack.install()
    for n, (path, attempt, deferred) in enumerate(entries):
        if pack.stop_signal is not None:
            name = _signame(pack.stop_signal)
            _say(
                f"hpcx.run.job: the packed job got {name}: {len(entries) - n} run(s) not "
                "started (the next plan runs them again)"
            )
            return 128 + pack.stop_signal
        try:
            key = _made_here(path, deferred)
            if _already_final(path, attempt):
                continue
            run_one(path, attempt, pack, key=key)
        except Exception as exc:
            from hpcx.errors import HpcxError

            if not isinstance(exc, OSError | ValueError | HpcxError):
                raise
            # One unreadable run folder does not cost the others their turn.
            _say(f"hpcx.run.job: run folder {path}: {type(exc).__name__}: {exc}; skipped")
    return 0


def _needs_not_succeeded(rd: _Run) -> list[str]:
    """The runs this run needs (spec.json's ``needs``) whose folder does not say succeeded,
    as ``experiment/run_id (state)``: empty for most runs, which need none."""
    try:
        needs = read_json(rd.spec_path).get("needs") or []
    except (OSError, ValueError, AttributeError):
        return []
    root = os.path.dirname(os.path.dirname(rd.path))
    out = []
    for item in needs:
        if not isinstance(item, list | tuple) or len(item) != 2:
            continue
        exp, up = str(item[0]), str(item[1])
        try:
            doc = rundir.read_status(rundir.run_path(root, exp, up))
        except ValueError:
            doc = None
        state = (doc or {}).get("state") or "not started"
        if state != "succeeded":
            out.append(f"{exp}/{up} ({state})")
    return out


def _already_final(path: str, attempt: int) -> bool:
    """The run's current attempt (``attempt`` or later) ended for good: a packed job that
    SLURM started again skips it (the claim would refuse it too, with a louder line)."""
    doc = rundir.read_status(path)
    if doc is None:
        return False
    return doc.get("state") in rundir.FINAL_STATES and int(doc.get("attempt") or 0) >= attempt


def follow_requeue(
    path: str | os.PathLike[str],
    first: int,
    environ: dict[str, str] | os._Environ[str] = os.environ,
) -> int:
    """The attempt a requeued SLURM job runs now. Its script names the attempt it was
    submitted for (``first``); each requeue since moved the run on by one attempt, all of them
    under this job's submission key. The current attempt ends ``requeued`` (the last start
    recorded it): the next one is started here. It is claimed/running from an earlier start
    of this job (SLURM requeued the job before that start could write its end: a node failure,
    a preemption past KillWait): it is recorded requeued, then the next one starts. Anything
    else is returned as it is, for :func:`stale_reason` and the claim to judge."""
    current = rundir.current_attempt(path)
    if current is None or current < first:
        return first
    restarts = restart_count(environ)
    if current > first:
        key = environ.get("SLURM_JOB_NAME", "").removeprefix("hpcx-")
        try:
            spec = read_json(os.path.join(path, rundir.SPEC))
        except (OSError, ValueError):
            return first
        if not key or (spec.get("submission") or {}).get("key") != key:
            return first  # not this job's chain: stale_reason refuses it
    doc = rundir.read_status(path)
    if doc is None or doc.get("attempt") != current:
        return current
    state = doc.get("state")
    started = restart_count(doc.get("job") or {})
    if state in rundir.ACTIVE_STATES and started < restarts:
        # That start is gone (SLURM ended every process of the job before requeueing it).
        try:  # noqa: SIM105 - contextlib is not imported (start-up)
            atomic_write_json(
                os.path.join(path, rundir.STATUS),
                {
                    **doc,
                    "state": rundir.REQUEUED,
                    "reason": f"SLURM requeued the job (restart {restarts}) before attempt "
                    f"{current} could record its end (preemption or node failure)",
                    "requeue_reason": "preemption",
                    "requeue_by": "slurm",
                    "ended_at": utcnow(),
                },
            )
        except OSError:
            pass
        state = rundir.REQUEUED
    if state == rundir.REQUEUED:
        nxt = rundir.advance(path, current)
        return nxt.attempt if nxt is not None else (rundir.current_attempt(path) or current)
    return current


def stale_reason(rd: _Run | rundir.RunDir, attempt: int) -> str | None:
    """Why ``attempt`` of this run must not run (or write) now, or None while it may.

    It must be the attempt the run folder's spec.json names (a later one supersedes it), and
    no ``.stop-N`` file may name it (a cancel or timeout that came before it started, e.g.
    written while the scheduler could not be reached to remove the job).
    """
    current = rundir.current_attempt(rd.path)
    if current is None:
        return "the run folder has no readable spec.json"
    if current != attempt:
        return f"it is not the current attempt (the run folder is at attempt {current})"
    stop = rundir.stop_reason(rd.path, attempt)
    if stop is not None:
        return f"a stop file says {stop!r} (.stop-{attempt})"
    return None


def _exit_of(child: Child) -> int:
    """The program's exit (``Popen.returncode``), once it ended."""
    rc = child.wait()
    assert rc is not None
    return rc


def _open_log(path: str) -> int:
    """``open(path, "wb")``'s descriptor: created or emptied, mode 0o666 less the umask."""
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o666)


def _mkdir(path: str) -> None:
    """``Path(path).mkdir(exist_ok=True)``: a folder already there is fine, anything else
    there is not."""
    try:
        os.mkdir(path)
    except OSError:
        if not os.path.isdir(path):
            raise


def _say(text: str) -> None:
    """A line on stderr (the wrapper's log), never an error: that log may be on a full disk."""
    try:  # noqa: SIM105 - contextlib is not imported (start-up)
        print(text, file=sys.stderr, flush=True)
    except (OSError, ValueError):
        pass


if __name__ == "__main__":
    sys.exit(main())
