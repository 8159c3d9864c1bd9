"""The job wrapper: ``python -m hpcx.job RUN_DIR [--attempt N]``, run on the node for one run.

It claims the attempt (a second copy exits 0 without running anything), applies placement,
runs the argv from ``spec.json`` with no shell, streams stdout/stderr into the run folder,
and always leaves a final ``status.json``: succeeded, failed (exit code or signal), cancelled
or timeout. In a SLURM array it is started as ``python -m hpcx.job --tasks FILE`` and reads its
run folder from line ``$SLURM_ARRAY_TASK_ID`` of FILE (``RUN_DIR<TAB>ATTEMPT``).

Placement is applied to the wrapper itself, before it starts the program: CPU affinity and
the NUMA memory policy are inherited across fork and exec, so the program runs bound without
a second interpreter in between (``hpcx exec`` would cost one more Python start per run) and
without ``preexec_fn`` (not safe once threads exist). A placement that cannot be honoured
(no such NUMA node, a GPU that is not there) fails the run with that reason before the
program starts; it is never silently ignored.

Signals: SIGTERM, SIGINT and SIGHUP are forwarded to the program's process group (the program
runs as the leader of its own group, so its children get them too); after a grace period the
group gets SIGKILL. The reason is named by the ``.stop-N`` file the executor writes before
signalling (``timeout`` or ``cancelled``); under SLURM, a SIGTERM once the job's time limit has
passed is a timeout, any other is a cancellation (scancel, preemption).

Imports are kept light: this runs once per run, and its start-up is hpcx's overhead per run.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from typing import Any

from hpcx.cluster.units import time_limit_seconds
from hpcx.errors import HpcxError
from hpcx.errors import PlacementFailed as PlacementFailed  # known here to the wrapper's callers
from hpcx.run import contention, rundir
from hpcx.run.rundir import RunDir
from hpcx.util.files import append_line, atomic_write_json, read_json
from hpcx.util.proc import hostname, process_start_ticks, utcnow

#: Seconds between forwarding a stop signal to the program and killing it.
DEFAULT_KILL_GRACE = 10.0

_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


def slurm_job_env(environ: dict[str, str] | os._Environ[str] = os.environ) -> dict[str, str]:
    keys = (
        "SLURM_JOB_ID",
        "SLURM_ARRAY_JOB_ID",
        "SLURM_ARRAY_TASK_ID",
        "SLURM_JOB_NODELIST",
        "SLURM_JOB_PARTITION",
    )
    return {k: environ[k] for k in keys if environ.get(k)}


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
            raise PlacementFailed(
                f"cannot pin to the cores the queue holds ({assigned}): {exc}"
            ) from exc
    if env.get("HPCX_EXCLUSIVE") == "1":
        used["exclusive"] = True
    if env.get("CUDA_VISIBLE_DEVICES"):
        used["gpus"] = env["CUDA_VISIBLE_DEVICES"].split(",")
    with contextlib.suppress(OSError):
        used["cpus"] = sorted(os.sched_getaffinity(0))
    return used


# --------------------------------------------------------------------------------------------
# The wrapper


class Wrapper:
    def __init__(self, rd: RunDir, attempt: int) -> None:
        self.rd = rd
        self.attempt = attempt
        self.child: subprocess.Popen[bytes] | None = None
        self.stop_signal: int | None = None
        self.stop_time: float | None = None
        self.grace = DEFAULT_KILL_GRACE
        self.time_limit: float | None = None
        self.started = time.time()
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

    # Only the final status is fsynced: it is the lasting truth about the run. An
    # intermediate one lost in a crash reads as pending/lost, which is what it is then.
    def write(self, state: str, **fields: Any) -> None:
        self.status.update(fields)
        self.status["state"] = state
        self.status["updated_at"] = utcnow()
        final = state in rundir.FINAL_STATES
        if state == "running":
            # Only informative: a full disk now must not fail a program that has started.
            with contextlib.suppress(OSError):
                atomic_write_json(self.rd.status_path, self.status, fsync=False)
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
                    f"nor in {self.rd.final_path(self.attempt).name}: {exc2}"
                )
                raise exc from None
            _say(
                f"hpcx.run.job: status.json not writable ({exc.strerror or exc}); final status "
                f"{state!r} kept in {self.rd.final_path(self.attempt).name}"
            )
            return
        rundir.drop_final(self.rd, self.attempt)

    def _on_signal(self, signum: int, _frame: Any) -> None:
        if self.stop_signal is None:
            self.stop_signal = signum
            self.stop_time = time.time()
            # Escalate to SIGKILL if the program ignores the signal past the grace period.
            signal.signal(signal.SIGALRM, self._on_alarm)
            signal.setitimer(signal.ITIMER_REAL, max(self.grace, 0.01))
        self._forward(signum)

    def _on_alarm(self, _signum: int, _frame: Any) -> None:
        self._forward(signal.SIGKILL)

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
            return self.rd.stop_path(self.attempt).read_text().strip() or None
        except OSError:
            return None

    def run(self) -> int:
        for sig in _STOP_SIGNALS:
            signal.signal(sig, self._on_signal)
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
                with contextlib.suppress(OSError):
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
                self.write_final(
                    state, ended_at=utcnow(), duration_s=round(duration, 6), **final
                )
        return exit_code

    def _run(self, spec: dict[str, Any]) -> tuple[dict[str, Any], int]:
        argv = spec.get("argv")
        if not isinstance(argv, list) or not argv or not all(isinstance(a, str) for a in argv):
            return {"state": "failed", "reason": f"spec.json has no usable argv: {argv!r}"}, 2
        options = spec.get("executor") or {}
        if "kill_grace" in options:
            self.grace = float(options["kill_grace"])
        resources = spec.get("resources") or {}
        try:
            self.time_limit = time_limit_seconds(resources.get("time"))
        except ValueError:
            self.time_limit = None

        env = dict(os.environ)
        env.update({str(k): str(v) for k, v in (spec.get("env") or {}).items()})
        env["HPCX_RUN_ID"] = self.rd.run_id
        env["HPCX_EXPERIMENT"] = self.rd.experiment
        env["HPCX_RUN_DIR"] = str(self.rd.path)
        env["HPCX_ATTEMPT"] = str(self.attempt)
        env["HPCX_METRICS"] = str(self.rd.metrics_path)
        try:
            used = apply_placement(spec.get("placement") or {}, env)
        except PlacementFailed as exc:
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
            state = said if said in ("timeout", "cancelled") else "cancelled"
            return {"state": state, "reason": f"{state} before the program started"}, 0

        try:  # the launcher (spec.launcher) turns the program into what starts its ranks
            from hpcx.run import launch

            argv, env = launch.prepare(argv, spec, env)
        except HpcxError as exc:
            return {"state": "failed", "reason": f"launch: {exc}"}, 2
        cores = [int(c) for c in used.get("cpus") or []]
        cwd = spec.get("cwd") or None
        before = contention.sample(cores)
        with open(self.rd.stdout_path, "wb") as out, open(self.rd.stderr_path, "wb") as err:
            try:
                self.child = subprocess.Popen(
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=err,
                    env=env,
                    cwd=cwd,
                    close_fds=True,
                    process_group=0,
                )
            except OSError as exc:
                return {
                    "state": "failed",
                    "exit_code": 127,
                    "reason": f"cannot start {argv[0]!r}: {exc.strerror or exc}",
                }, 127
            if self.stop_signal is not None:  # arrived while the child was being started
                self._forward(self.stop_signal)
            self.write("running", pid=self.child.pid, started_at=utcnow())
            rc = self.child.wait()
            self.status["contention"] = contention.measure(
                before, contention.sample(cores), cores
            )
        signal.setitimer(signal.ITIMER_REAL, 0)

        if self.stop_signal is not None:
            return self._stopped(rc), (rc if rc >= 0 else 128 - rc)
        if rc == 0:
            return {"state": "succeeded", "exit_code": 0, "reason": None}, 0
        if rc < 0:
            name = signal.Signals(-rc).name
            return {
                "state": "failed",
                "exit_code": None,
                "signal": name,
                "reason": f"killed by {name}",
            }, 128 - rc
        return {"state": "failed", "exit_code": rc, "reason": f"exit code {rc}"}, rc

    def _stopped(self, rc: int | None) -> dict[str, Any]:
        assert self.stop_signal is not None
        got = signal.Signals(self.stop_signal).name
        fields: dict[str, Any] = {"stop_signal": got}
        if rc is not None and rc < 0:
            fields["signal"] = signal.Signals(-rc).name
            fields["exit_code"] = None
        else:
            fields["exit_code"] = rc
        said = self._stop_reason()
        if said in ("timeout", "cancelled"):
            detail = "time limit reached" if said == "timeout" else "cancelled"
            return {"state": said, "reason": f"{detail} ({got})", **fields}
        elapsed = (self.stop_time or time.time()) - self.started
        in_slurm = bool(self.status["job"].get("SLURM_JOB_ID"))
        if in_slurm and self.time_limit is not None and elapsed >= self.time_limit - 1.0:
            return {
                "state": "timeout",
                "reason": f"time limit reached ({got} from SLURM)",
                **fields,
            }
        if in_slurm and self.stop_signal == signal.SIGTERM:
            why = f"{got} from SLURM (scancel, preemption or node shutdown)"
            return {"state": "cancelled", "reason": why, **fields}
        return {"state": "cancelled", "reason": f"{got} received", **fields}


def _from_tasks(tasks: str, index: int | None) -> tuple[str, int]:
    if index is None:
        raw = os.environ.get("SLURM_ARRAY_TASK_ID")
        if raw is None:
            raise SystemExit("hpcx.run.job: --tasks needs SLURM_ARRAY_TASK_ID or --index")
        index = int(raw)
    with open(tasks, encoding="utf-8") as f:
        for i, line in enumerate(f):
            if i == index:
                path, _, attempt = line.rstrip("\n").partition("\t")
                return path, int(attempt or 0)
    raise SystemExit(f"hpcx.run.job: {tasks} has no line {index}")


def main(argv: list[str] | None = None) -> int:
    import argparse

    ap = argparse.ArgumentParser(prog="python -m hpcx.job", description=__doc__.split("\n")[0])
    ap.add_argument("run_dir", nargs="?")
    ap.add_argument("--attempt", type=int, default=0)
    ap.add_argument("--tasks", help="a tasks file: line i = RUN_DIR<TAB>ATTEMPT")
    ap.add_argument("--index", type=int, help="the line of --tasks (default SLURM_ARRAY_TASK_ID)")
    args = ap.parse_args(argv)
    attempt = args.attempt
    if args.tasks:
        path, attempt_in_file = _from_tasks(args.tasks, args.index)
        attempt = attempt or attempt_in_file
    elif args.run_dir:
        path = args.run_dir
    else:
        ap.error("give RUN_DIR or --tasks")
    rd = RunDir.open(path)
    attempt = attempt or rd.attempt
    # Before the claim, so a stale copy (a requeue, a job the scheduler kept while its run
    # moved on, a cancelled one that started anyway) writes nothing at all.
    why = stale_reason(rd, attempt)
    if why is not None:
        _say(f"hpcx.job: run {rd.experiment}/{rd.run_id} attempt {attempt}: {why}; not running it")
        return 0
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
    return Wrapper(rd, attempt).run()


def stale_reason(rd: RunDir, attempt: int) -> str | None:
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


def _say(text: str) -> None:
    """A line on stderr (the wrapper's log), never an error: that log may be on a full disk."""
    with contextlib.suppress(OSError, ValueError):
        print(text, file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
