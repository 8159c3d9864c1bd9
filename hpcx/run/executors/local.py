"""The local executor: a queue of job wrappers on this machine with a concurrency limit.

Each run is one ``python -m hpcx.job RUN_DIR --attempt N`` process in its own session (so a
Ctrl-C at the terminal reaches only the queue, which then stops the runs in order); the
wrapper applies placement, runs the program and writes status.json. The queue enforces time
limits (``resources.time``): it writes ``.stop-N`` = ``timeout`` and sends SIGTERM, the
wrapper forwards it to the program and records the timeout; after ``kill_grace`` seconds both
process groups get SIGKILL, and a wrapper that died without a final word gets one written
for it. Ctrl-C (or SIGTERM to a detached queue) does the same with ``cancelled`` for every
run it stopped, and marks the runs it never started cancelled too, so the next ``apply``
takes them all up again.

``detach=True``: ``submit`` writes the queue to the submission folder and starts
``python -m hpcx.run.executors.local QUEUE_FILE`` in a new session, then returns; ``poll`` reads
the run folders (and notices a dead queue: its unstarted runs are reported ``lost``).
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import selectors
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hpcx.cluster.units import time_limit_seconds
from hpcx.errors import ExecutorError, InvalidOptionError
from hpcx.run import rundir
from hpcx.run.executors.base import (
    Executor,
    ObservedStatus,
    ProgressFn,
    Submission,
    Upstream,
    observe_many,
    observe_run_dir,
    write_blocked,
    write_stop,
)
from hpcx.run.executors.slots import Demand, Hold, Ledger, demand_of, machine_cores
from hpcx.run.rundir import RunDir
from hpcx.util.files import atomic_write_json, read_json
from hpcx.util.proc import hostname, pid_alive, utcnow

QUEUE_FILE = "queue.json"
SUBMISSION_FILE = "submission.json"
RUNNER_LOG = "runner.log"
#: Seconds the queue gives a wrapper past the kill grace to record a run it had to kill.
WRAPPER_MARGIN = 2.0


def visible_gpus() -> list[str]:
    """GPU indices this process may use: CUDA_VISIBLE_DEVICES, else /dev/nvidiaN."""
    cvd = os.environ.get("CUDA_VISIBLE_DEVICES")
    if cvd is not None:
        return [g for g in cvd.split(",") if g.strip() and g.strip() != "-1"]
    try:
        names = os.listdir("/dev")
    except OSError:
        return []
    return sorted((n[6:] for n in names if n.startswith("nvidia") and n[6:].isdigit()), key=int)


def default_parallelism() -> int:
    """One run per usable core, but no more than one per GPU when there are GPUs."""
    cores = len(os.sched_getaffinity(0))
    gpus = len(visible_gpus())
    return max(1, min(cores, gpus) if gpus else cores)


@dataclass
class _Task:
    run_id: str
    run_dir: str
    attempt: int
    time_limit: float | None
    demand: Demand
    proc: subprocess.Popen[bytes] | _Forked | None = None
    pidfd: int | None = None
    started: float = 0.0
    deadline: float | None = None
    kill_at: float | None = None
    stop_reason: str | None = None
    hold: Hold | None = None
    #: spec.checkpoint's signal (a number) and its lead time: the time limit's warning.
    checkpoint_signal: int | None = None
    checkpoint_before: float = 0.0
    warn_at: float | None = None
    #: The runs this one needs that had not succeeded at submit: (run id, run folder, the
    #: ``host:pid`` of the queue running it, if local). It starts once they all succeeded.
    needs: tuple[tuple[str, str, str | None], ...] = ()


def _task_demand(task: Mapping[str, Any], cores: Sequence[int]) -> Demand:
    """A queue entry's demand; a queue file written before demands existed asks one core."""
    doc = task.get("demand")
    if isinstance(doc, Mapping):
        return Demand.from_json(doc, cores)
    return Demand(cpus=1, candidates=tuple(cores), gpus=int(task.get("gpus") or 0))


def _task_of(entry: Mapping[str, Any], cores: Sequence[int]) -> _Task:
    ck = entry.get("checkpoint")
    task = _Task(
        run_id=entry["run_id"],
        run_dir=entry["run_dir"],
        attempt=int(entry["attempt"]),
        time_limit=entry.get("time_limit"),
        demand=_task_demand(entry, cores),
    )
    task.needs = tuple(
        (str(n["run_id"]), str(n["run_dir"]), n.get("job_id")) for n in entry.get("needs") or ()
    )
    if isinstance(ck, Mapping):
        from hpcx.run.job import signal_number

        task.checkpoint_signal = signal_number(str(ck.get("signal", "USR1")))
        task.checkpoint_before = float(ck.get("before", 120))
    return task


def _queue_entry(
    rd: RunDir,
    spec: Mapping[str, Any],
    cores: Sequence[int],
    needs: Sequence[Upstream] = (),
) -> dict[str, Any]:
    """A run's line in the queue file: what the queue needs without reading spec.json again."""
    from hpcx.run.job import checkpoint_settings

    res = spec.get("resources") or {}
    entry: dict[str, Any] = {
        "run_id": rd.run_id,
        "run_dir": str(rd.path),
        "attempt": rd.attempt,
        "time_limit": time_limit_seconds(res.get("time")),
        "demand": demand_of(spec, cores).to_json(),
    }
    ck = checkpoint_settings(dict(spec))
    if ck is not None:
        entry["checkpoint"] = {"signal": ck["signal"], "before": ck["before"]}
    if needs:
        entry["needs"] = [
            {"run_id": u.run_id, "run_dir": u.run_dir, "job_id": u.job_id} for u in needs
        ]
    return entry


def _upstream_state(run_id: str, run_dir: str, runner: str | None) -> str:
    """How a run another one needs stands, as its folder says: ``lost`` when it never
    started and the local queue that was to start it is gone."""
    state = observe_run_dir(run_id, run_dir).state
    if state in ("pending", rundir.REQUEUED) and runner:
        host, _, pid = runner.rpartition(":")
        mine = host == hostname() and pid.isdigit() and int(pid) != os.getpid()
        if mine and not pid_alive(int(pid)):
            return "lost"
    return state


class _Forked:
    """A wrapper forked by the zygote: not our child, so its exit is seen through a pidfd or
    by its pid disappearing (the zygote's kernel reaps it), and its exit code is unknown; the
    run folder's status.json says what happened."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None

    def poll(self) -> int | None:
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return -1
        except PermissionError:
            return None
        return None

    def wait(self, timeout: float | None = None) -> int | None:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if deadline is not None and time.monotonic() > deadline:
                return None
            time.sleep(0.005)
        return self.returncode


class _Zygote:
    """The fork server (:mod:`hpcx.run.executors.zygote`), started on first use."""

    def __init__(self, python: str) -> None:
        self.python = python
        self.proc: subprocess.Popen[str] | None = None
        self.broken = False

    def spawn(self, run_dir: str, attempt: int, log: str, env: Mapping[str, str]) -> int | None:
        if self.broken:
            return None
        try:
            if self.proc is None:
                self.proc = subprocess.Popen(
                    [self.python, "-m", "hpcx.run.executors.zygote"],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    text=True,
                    start_new_session=True,
                    close_fds=True,
                )
            assert self.proc.stdin is not None and self.proc.stdout is not None
            req = {"run_dir": run_dir, "attempt": attempt, "log": log, "env": dict(env)}
            self.proc.stdin.write(json.dumps(req) + "\n")
            self.proc.stdin.flush()
            answer = json.loads(self.proc.stdout.readline() or "{}")
        except (OSError, ValueError):
            answer = {}
        pid = answer.get("pid")
        if not isinstance(pid, int):
            # Fall back to one interpreter per run from now on, rather than fail the runs.
            self.broken = True
            self.close()
            return None
        return pid

    def close(self) -> None:
        if self.proc is not None:
            with contextlib.suppress(OSError):
                if self.proc.stdin is not None:
                    self.proc.stdin.close()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=5)
            self.proc = None


class LocalQueue:
    """Runs a queue of prepared runs to the end. Used in the foreground and by ``--detach``.

    A run starts when the slots it asks for (:mod:`hpcx.run.executors.slots`: cores, GPUs, or the
    whole machine for a measurement) are free in the machine-wide ledger, which other hpcx
    queues on this machine use too; ``max_parallel`` caps the runs at once on top of that and
    never lets a run start beside one whose slots it needs. Runs start in queue order: a big
    run at the head is not starved by small ones behind it.
    """

    #: Seconds between tries while the head of the queue waits for slots another queue holds.
    SLOT_POLL = 0.2

    def __init__(
        self,
        tasks: Sequence[Mapping[str, Any]],
        *,
        max_parallel: int | None,
        kill_grace: float,
        python: str,
        gpus: Sequence[str] | None = None,
        progress: ProgressFn | None = None,
        ledger: Ledger | None = None,
        tick: Callable[[], None] | None = None,
    ) -> None:
        cores = machine_cores()
        self.pending = collections.deque(_task_of(t, cores) for t in tasks)
        self.max_parallel = max(1, max_parallel) if max_parallel else None
        self.kill_grace = kill_grace
        self.python = python
        self.gpus = list(gpus if gpus is not None else visible_gpus())
        self.ledger = ledger or Ledger()
        self.progress = progress
        #: Called between waits while runs are running, at least once a second (the pruner).
        self.tick = tick
        self.running: dict[int, _Task] = {}
        self.sel = selectors.DefaultSelector()
        self.results: dict[str, ObservedStatus] = {}
        #: True while the head of the queue waits for slots held outside this queue.
        self.blocked = False
        #: True while runs wait for runs they need (polled, as those may be another queue's).
        self.waiting = False
        self._has_needs = any(t.needs for t in self.pending)
        self._told_blocked: str | None = None
        # Wrappers fork from a warm zygote (a few ms each) unless HPCX_NO_ZYGOTE=1, or it
        # cannot start, in which case each is its own `python -m hpcx.job` (60-100 ms).
        self.zygote: _Zygote | None = (
            None if os.environ.get("HPCX_NO_ZYGOTE") == "1" else _Zygote(python)
        )

    # -- the loop

    def run(self) -> dict[str, ObservedStatus]:
        try:
            while self.pending or self.running:
                self._start_some()
                self._wait_some()
                if self.tick is not None and self.running:
                    self.tick()
        except BaseException:
            self._stop_all("cancelled")
            raise
        finally:
            self.sel.close()
            if self.zygote is not None:
                self.zygote.close()
        return self.results

    def _ready(self) -> _Task | None:
        """The first pending run whose needs have all succeeded (runs whose need ended
        without success end ``blocked`` here, without running); None when none is ready."""
        self.waiting = False
        states: dict[str, str] = {}
        for task in list(self.pending):
            missing: list[str] = []
            bad: list[str] = []
            for up, up_dir, runner in task.needs:
                if up not in states:
                    states[up] = _upstream_state(up, up_dir, runner)
                state = states[up]
                if state == "succeeded":
                    continue
                if state in rundir.FINAL_STATES or state in ("lost", "blocked"):
                    bad.append(f"{Path(up_dir).parent.name}/{up} ({state})")
                else:
                    missing.append(up)
            if bad:
                self.pending.remove(task)
                try:
                    write_blocked(
                        task.run_dir,
                        task.run_id,
                        f"blocked: needs {', '.join(bad)}, which did not succeed",
                    )
                except ExecutorError as exc:
                    _warn(f"hpcx: run {task.run_id}: {exc}")
                states[task.run_id] = "blocked"
                self._finish(task)
                continue
            if missing:
                self.waiting = True
                continue
            return task
        return None

    def _start_some(self) -> None:
        self.blocked = False
        while self.pending:
            if self.max_parallel is not None and len(self.running) >= self.max_parallel:
                return
            if self._has_needs:
                ready = self._ready()
                if ready is None:
                    return
                if ready is not self.pending[0]:
                    self.pending.remove(ready)
                    self.pending.appendleft(ready)
            task = self.pending[0]
            d = task.demand
            if self.gpus and (d.gpus > len(self.gpus)):
                raise ExecutorError(
                    f"run {task.run_id} asks for {d.gpus} GPUs; this machine has "
                    f"{len(self.gpus)} ({','.join(self.gpus)})"
                )
            if observe_run_dir(task.run_id, task.run_dir).state == "cancelled":
                self.pending.popleft()
                self._finish(task)  # cancelled before it started
                continue
            holder = {
                "pid": os.getpid(),
                "host": hostname(),
                "run_id": task.run_id,
                "run_dir": task.run_dir,
                "since": utcnow(),
            }
            hold = self.ledger.try_hold(d, self.gpus, holder)
            if hold is None:
                # Wait, in order, for this queue's runs to end or another queue to let go.
                self.blocked = True
                self._tell_blocked(task)
                return
            self.pending.popleft()
            task.hold = hold
            self._start(task)

    def _tell_blocked(self, task: _Task) -> None:
        """Say once per waiting run when it waits for slots held by another hpcx queue: once
        none of this queue's runs is left to wait for (the usual wait, one not worth a line or
        a look at the lock files on every poll)."""
        if self._told_blocked == task.run_id or self.running:
            return
        others = self.ledger.holders(task.demand)
        if not others:
            return
        self._told_blocked = task.run_id
        who = "; ".join(
            f"run {h.get('run_id')} (queue pid {h.get('pid')} on {h.get('host')})"
            for h in others[:3]
        )
        print(
            f"hpcx: run {task.run_id} waits for {task.demand.describe()}, held by {who}",
            file=sys.stderr,
            flush=True,
        )

    def _start(self, task: _Task) -> None:
        extra: dict[str, str] = {}
        assert task.hold is not None
        if task.hold.gpus:
            extra["HPCX_ASSIGNED_GPUS"] = ",".join(task.hold.gpus)
        # The wrapper pins the run to the cores it holds (and records the contention there).
        extra["HPCX_ASSIGNED_CPUS"] = ",".join(str(c) for c in task.hold.cores)
        if task.demand.exclusive:
            extra["HPCX_EXCLUSIVE"] = "1"
        # The wrapper's own messages (not the program's), e.g. "already claimed".
        log_path = os.path.join(task.run_dir, f".wrapper-{task.attempt}.log")
        pid = (
            self.zygote.spawn(task.run_dir, task.attempt, log_path, extra) if self.zygote else None
        )
        if pid is not None:
            task.proc = _Forked(pid)
        else:
            from hpcx.job import COMMAND  # the wrapper without runpy

            argv = [self.python, *COMMAND, task.run_dir, "--attempt", str(task.attempt)]
            env = {**os.environ, **extra} if extra else None
            try:
                log: Any = open(log_path, "ab")  # noqa: SIM115 - closed below
            except OSError:  # a full disk: the wrapper's messages are lost, not the run
                log = subprocess.DEVNULL
            try:
                task.proc = subprocess.Popen(
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=env,
                    start_new_session=True,  # a terminal's Ctrl-C reaches the queue only
                    close_fds=True,
                )
            finally:
                if log is not subprocess.DEVNULL:
                    log.close()
        task.started = time.monotonic()
        if task.time_limit is not None:
            task.deadline = task.started + task.time_limit
            if task.checkpoint_signal is not None:
                # The warning comes `before` seconds ahead of the limit (at once when the
                # limit is shorter, as SLURM does).
                task.warn_at = task.started + max(0.0, task.time_limit - task.checkpoint_before)
        pid = task.proc.pid
        self.running[pid] = task
        try:
            task.pidfd = os.pidfd_open(pid)
            self.sel.register(task.pidfd, selectors.EVENT_READ, pid)
        except (AttributeError, OSError):
            task.pidfd = None  # polled below
        if self.progress is not None:
            self.progress(task.run_id, ObservedStatus(task.run_id, "running", "executor"))

    def _wait_some(self) -> None:
        if not self.running:
            if self.blocked or self.waiting:
                time.sleep(self.SLOT_POLL)  # only other queues' runs can free the slots
            return
        now = time.monotonic()
        wakeups = [t.kill_at or t.deadline for t in self.running.values()]
        wakeups += [t.warn_at for t in self.running.values() if t.stop_reason is None]
        soonest = min((w for w in wakeups if w is not None), default=None)
        timeout = None if soonest is None else max(0.0, soonest - now)
        if self.blocked or self.waiting:
            timeout = self.SLOT_POLL if timeout is None else min(timeout, self.SLOT_POLL)
        if self.tick is not None:
            timeout = 1.0 if timeout is None else min(timeout, 1.0)
        if any(t.pidfd is None for t in self.running.values()):
            timeout = 0.01 if timeout is None else min(timeout, 0.01)
        for key, _ in self.sel.select(timeout):
            self._reap(key.data)
        for pid, task in list(self.running.items()):
            if task.pidfd is None and task.proc is not None and task.proc.poll() is not None:
                self._reap(pid)
        now = time.monotonic()
        for task in list(self.running.values()):
            if task.kill_at is not None and now >= task.kill_at:
                self._kill(task)
                task.kill_at = now + 5.0  # keep trying, slowly, until it is reaped
            elif task.deadline is not None and now >= task.deadline and task.stop_reason is None:
                self._signal_stop(task, "timeout")
            elif task.warn_at is not None and now >= task.warn_at and task.stop_reason is None:
                task.warn_at = None
                self._warn_checkpoint(task)

    def _reap(self, pid: int) -> None:
        task = self.running.pop(pid, None)
        if task is None or task.proc is None:
            return
        task.proc.wait()
        if task.pidfd is not None:
            with contextlib.suppress(KeyError, ValueError):
                self.sel.unregister(task.pidfd)
            os.close(task.pidfd)
            task.pidfd = None
        try:
            self._settle(task)
        finally:
            # Only once the wrapper and the program are gone (``_settle`` kills a program
            # that outlived its wrapper) may another run have its cores.
            if task.hold is not None:
                task.hold.release()
                task.hold = None
        if not self._requeue(task):
            self._finish(task)

    def _warn_checkpoint(self, task: _Task) -> None:
        """The time limit's warning: the checkpoint signal to the wrapper, which passes it on
        to the program's process group (as SLURM's ``--signal=B:`` reaches the batch shell)."""
        if task.proc is not None and task.checkpoint_signal is not None:
            with contextlib.suppress(OSError):
                os.kill(task.proc.pid, task.checkpoint_signal)

    def _requeue(self, task: _Task) -> bool:
        """Start the run's next attempt at once when this one ended requeued (it
        checkpointed at the time limit): first in the queue, with a fresh time limit."""
        obs = observe_run_dir(task.run_id, task.run_dir)
        if obs.state != rundir.REQUEUED:
            return False
        nxt = rundir.advance(task.run_dir, task.attempt)
        if nxt is None:
            return False
        if self.progress is not None:
            self.progress(task.run_id, obs)
        again = _Task(
            run_id=task.run_id,
            run_dir=task.run_dir,
            attempt=nxt.attempt,
            time_limit=task.time_limit,
            demand=task.demand,
            checkpoint_signal=task.checkpoint_signal,
            checkpoint_before=task.checkpoint_before,
        )
        self.pending.appendleft(again)
        return True

    def _finish(self, task: _Task) -> None:
        obs = observe_run_dir(task.run_id, task.run_dir)
        self.results[task.run_id] = obs
        if self.progress is not None:
            self.progress(task.run_id, obs)

    def _settle(self, task: _Task) -> None:
        """A wrapper that exited without a final status (SIGKILL, crash) gets one written."""
        doc = rundir.read_status(task.run_dir)
        if doc is not None and doc.get("state") in rundir.ATTEMPT_END_STATES:
            return
        if doc is not None and doc.get("attempt") not in (None, task.attempt):
            return
        # The program may outlive its wrapper in its own group: make sure it is gone.
        if doc is not None and isinstance(doc.get("pid"), int):
            with contextlib.suppress(OSError):
                os.killpg(doc["pid"], signal.SIGKILL)
        rc = task.proc.returncode if task.proc is not None else None
        stop = rundir.stop_reason(task.run_dir, task.attempt)
        if doc is None and stop is not None:
            return  # stopped before it started: its stop file says so (read as cancelled)
        state = task.stop_reason or "failed"
        base = doc or {
            "run_format": rundir.RUN_FORMAT,
            "run_id": task.run_id,
            "attempt": task.attempt,
            "host": hostname(),
        }
        holder = (
            "wrapper ended"
            if isinstance(task.proc, _Forked)
            else "wrapper exited"
            if rc is not None and rc >= 0
            else "wrapper killed"
        )
        try:
            atomic_write_json(
                Path(task.run_dir) / rundir.STATUS,
                {
                    **base,
                    "state": state,
                    "reason": f"{state if task.stop_reason else 'failed'}: {holder} "
                    f"({rc}) without a final status; recorded by the local executor",
                    "ended_at": utcnow(),
                    "updated_at": utcnow(),
                },
            )
        except OSError as exc:
            # A full disk: the queue goes on with the other runs. This one reads as pending
            # (never started: the wrapper refuses to start a run it could not record) or
            # lost, and the next apply runs it again.
            _warn(
                f"hpcx: cannot record how run {task.run_id} ended ({exc.strerror or exc}) in "
                f"{task.run_dir}; the next refresh reports it lost and apply runs it again"
            )

    # -- stopping

    def _signal_stop(self, task: _Task, reason: str) -> None:
        task.stop_reason = reason
        try:
            write_stop(task.run_dir, reason, task.attempt)
        except ExecutorError as exc:
            # Stop it all the same; the wrapper then records the signal, this queue the reason.
            _warn(f"hpcx: run {task.run_id}: {exc}")
        if task.proc is not None:
            with contextlib.suppress(OSError):
                os.killpg(task.proc.pid, signal.SIGTERM)
        # The wrapper kills an ignoring program itself after the same grace, then records how
        # the run ended; this queue's SIGKILL comes a moment later, for a wrapper that hangs.
        task.kill_at = time.monotonic() + self.kill_grace + WRAPPER_MARGIN

    def _kill(self, task: _Task) -> None:
        if task.proc is not None:
            with contextlib.suppress(OSError):
                os.killpg(task.proc.pid, signal.SIGKILL)
        doc = rundir.read_status(task.run_dir)
        if doc is not None and isinstance(doc.get("pid"), int):
            with contextlib.suppress(OSError):
                os.killpg(doc["pid"], signal.SIGKILL)

    def _stop_all(self, reason: str) -> None:
        # Ignore further Ctrl-C while stopping: a second one must not leave runs "running".
        old = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            while self.pending:
                task = self.pending.popleft()
                with contextlib.suppress(ExecutorError):
                    # Unwritten (a full disk), the run reads pending, then lost: run again.
                    write_stop(task.run_dir, reason, task.attempt)
                self._finish(task)
            for task in self.running.values():
                if task.stop_reason is None:
                    self._signal_stop(task, reason)
            deadline = time.monotonic() + self.kill_grace + WRAPPER_MARGIN
            while self.running and time.monotonic() < deadline:
                self._wait_some()
            for task in list(self.running.values()):
                self._kill(task)
            for pid in list(self.running):
                self._reap(pid)
        finally:
            signal.signal(signal.SIGINT, old)


class LocalExecutor(Executor):
    """Options: ``max_parallel`` (a cap on runs at once over the resource scheduling; default
    none), ``detach``
    (run the queue in a background process), ``kill_grace`` (seconds, default 10),
    ``python`` (the interpreter for the wrapper, default this one)."""

    kind = "local"

    def __init__(
        self, options: Mapping[str, Any] | None = None, *, progress: ProgressFn | None = None
    ) -> None:
        super().__init__(options)
        if self.options.get("pack") not in (None, 1):
            # Packing saves scheduler jobs; here each run is its own process already, and a
            # pack would only serialise runs the machine could run side by side.
            raise InvalidOptionError(
                f"executor.pack ({self.options['pack']!r}) applies to the SLURM executor only",
                hint="drop executor.pack, or use executor type slurm; max_parallel caps the "
                "runs the local queue runs at once",
            )
        cap = self.options.get("max_parallel")
        #: None: as many runs at once as their resources allow.
        self.max_parallel: int | None = int(cap) if cap else None
        self.detach = bool(self.options.get("detach", False))
        self.kill_grace = float(self.options.get("kill_grace", 10.0))
        self.progress = progress
        #: Keys of submissions whose foreground queue this executor ran to its end.
        self._ended: set[str] = set()

    def submit(
        self,
        key: str,
        run_dirs: Sequence[RunDir],
        *,
        after: Mapping[str, Sequence[Upstream]] | None = None,
    ) -> Submission:
        if not run_dirs:
            raise ExecutorError("nothing to submit")
        root = run_dirs[0].path.parent.parent
        folder = self.submission_folder(root, key)
        folder.mkdir(parents=True, exist_ok=False)
        cores = machine_cores()
        waits = after or {}
        tasks = [
            _queue_entry(rd, read_json(rd.spec_path), cores, waits.get(rd.run_id, ()))
            for rd in run_dirs
        ]
        queue = {
            "key": key,
            "tasks": tasks,
            "max_parallel": self.max_parallel,
            "kill_grace": self.kill_grace,
            "python": self.python,
        }
        atomic_write_json(folder / QUEUE_FILE, queue)
        if self.detach:
            with open(folder / RUNNER_LOG, "ab") as log:
                proc = subprocess.Popen(
                    [self.python, "-m", "hpcx.run.executors.local", str(folder / QUEUE_FILE)],
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                    close_fds=True,
                )
            runner = f"{hostname()}:{proc.pid}"
        else:
            runner = f"{hostname()}:{os.getpid()}"
        sub = Submission(
            key=key,
            executor=self.kind,
            job_ids=(runner,),
            run_ids=tuple(rd.run_id for rd in run_dirs),
            run_jobs={rd.run_id: runner for rd in run_dirs},
            run_dirs={rd.run_id: str(rd.path) for rd in run_dirs},
            folder=str(folder),
            submitted_at=utcnow(),
            detail={"detached": self.detach, "max_parallel": self.max_parallel},
        )
        atomic_write_json(folder / SUBMISSION_FILE, sub.to_json())
        return sub

    def wait(
        self,
        submission: Submission,
        *,
        progress: ProgressFn | None = None,
        interval: float = 1.0,
        timeout: float | None = None,
        tick: Callable[[], None] | None = None,
    ) -> dict[str, ObservedStatus]:
        """Foreground: run the queue here, to the end (Ctrl-C stops it cleanly and re-raises
        KeyboardInterrupt), calling ``tick`` at least once a second while runs run.
        Detached: poll until every run is final."""
        if submission.detail.get("detached"):
            return super().wait(
                submission, progress=progress, interval=interval, timeout=timeout, tick=tick
            )
        queue = read_json(Path(submission.folder) / QUEUE_FILE)
        q = LocalQueue(
            queue["tasks"],
            max_parallel=queue.get("max_parallel"),
            kill_grace=float(queue["kill_grace"]),
            python=str(queue["python"]),
            progress=progress or self.progress,
            tick=tick,
        )
        q.run()
        # The queue has ended: a run it did not start (its wrapper could not record it, e.g.
        # on a full disk) never will. poll reports those lost, so the next apply runs them.
        self._ended.add(submission.key)
        return self.poll([submission])

    def poll(self, submissions: Iterable[Submission]) -> dict[str, ObservedStatus]:
        subs = list(submissions)
        seen = observe_many(
            [(rid, sub.run_dirs[rid], sub.run_jobs.get(rid)) for sub in subs for rid in sub.run_ids]
        )
        out: dict[str, ObservedStatus] = {}
        host = hostname()
        for sub in subs:
            # The queue runs in the apply process (foreground) or a detached runner: either
            # way, once that process is gone, a run it never started will never start.
            h, _, pid = sub.job_ids[0].rpartition(":")
            runner_alive = h != host or int(pid) == os.getpid() or pid_alive(int(pid))
            ended = sub.key in self._ended
            for rid in sub.run_ids:
                obs = seen[rid]
                if obs.state == rundir.REQUEUED and (ended or not runner_alive):
                    # Only the queue starts a local run's next attempt: with it gone, none
                    # will start. Lost: the next apply runs it again, and it resumes from its
                    # checkpoint folder (kept across attempts).
                    obs = obs._replace(
                        state="lost",
                        reason=f"{obs.reason}; but the local queue ended before starting the "
                        "next attempt",
                    )
                elif obs.state == "pending" and ended:
                    obs = obs._replace(
                        state="lost",
                        reason="the local queue ended without starting it (its wrapper could "
                        "not record it: see .wrapper-N.log in its folder)",
                    )
                elif obs.state == "pending" and not runner_alive:
                    obs = obs._replace(state="lost", reason="the local queue runner is gone")
                out[rid] = obs
        return out

    def cancel(
        self, submissions: Iterable[Submission], run_ids: Iterable[str] | None = None
    ) -> None:
        wanted = None if run_ids is None else set(run_ids)
        host = hostname()
        for sub in submissions:
            for rid in sub.run_ids:
                if wanted is not None and rid not in wanted:
                    continue
                path = sub.run_dirs[rid]
                doc = rundir.observe(path)
                if doc.get("state") in rundir.FINAL_STATES or doc.get("state") == "lost":
                    continue
                # The queue skips a run whose stop file exists, a wrapper about to start
                # finds it and does not run; a running one is signalled. The stop file goes
                # first and the status is read again after it: a wrapper writes "claimed"
                # before it reads the stop file, so one of the two sees the other.
                write_stop(path, "cancelled", doc.get("attempt"))
                doc = rundir.observe(path)
                if doc.get("state") in rundir.ACTIVE_STATES and doc.get("host") == host:
                    with contextlib.suppress(OSError):
                        os.killpg(int(doc["wrapper_pid"]), signal.SIGTERM)

    def reconcile(self, key: str, runs_root: str | os.PathLike[str]) -> Submission | None:
        path = self.submission_folder(runs_root, key) / SUBMISSION_FILE
        try:
            return Submission.from_json(read_json(path))
        except (OSError, ValueError, KeyError):
            return None


def _warn(text: str) -> None:
    with contextlib.suppress(OSError, ValueError):
        print(text, file=sys.stderr, flush=True)


def _main(argv: list[str]) -> int:
    """``python -m hpcx.run.executors.local QUEUE_FILE``: the detached queue runner."""
    if len(argv) != 1:
        print("usage: python -m hpcx.run.executors.local QUEUE_FILE", file=sys.stderr)
        return 2
    queue = read_json(Path(argv[0]))

    def on_term(signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt

    for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(sig, on_term)
    q = LocalQueue(
        queue["tasks"],
        max_parallel=queue.get("max_parallel"),
        kill_grace=float(queue["kill_grace"]),
        python=str(queue["python"]),
    )
    try:
        q.run()
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
