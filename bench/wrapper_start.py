"""The job wrapper's start on a node, against a bare ``python -c pass`` (issue 17: <= 2x).

Each SLURM array task (and each local run without the fork server) starts its own wrapper,
with the command line the executors write (``hpcx.job.COMMAND``: ``python -c 'from hpcx.job
import run; run()'``; ``python -m hpcx.job`` in a tree without it): its start-up is hpcx's cost
per task. Two figures, each against ``python -c pass`` started the same way (same interpreter,
same environment), interleaved A, B, A, B, medians, with the 1-minute load beside each and the
CPU time of the process (``wait4``: user + system, steadier than wall on a busy machine):

* start: from spawning the wrapper to the user's program starting (the program is a tiny
  one that prints ``time.time()``: its own interpreter start is subtracted, measured the same
  way);
* whole: the whole wrapper around ``true``, spawn to exit (claim, status, program, final
  status with its fsync); its CPU time includes ``true``'s;
* task: the same as an array task of new runs starts it (``--tasks FILE --index 0``, the
  line ending ``@OFFSET``): the wrapper makes the run's folder from the ``.specs`` line
  first (:func:`hpcx.run.rundir.materialize`, fsynced), as every new SLURM run now does.

Also prints what the wrapper imports (``python -X importtime``), heaviest first.

    PYTHONPATH=. .venv/bin/python bench/wrapper_start.py [N]         # N rounds (default 30)
    PYTHONPATH=. .venv/bin/python bench/wrapper_start.py --tiny      # 5 rounds (< 20 s)

``--before DIR``: also time the wrapper of another checkout (e.g. ``git archive`` of an
earlier commit, with the native module copied in), interleaved with this one.
"""

from __future__ import annotations

import argparse
import ast
import compileall
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

GOAL = 2.0

_STAMP = "import time; print(repr(time.time()))"


def _env(root: str = str(Path(__file__).resolve().parents[1])) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    for k in list(env):
        if k.startswith(("SLURM_", "SBATCH_", "HPCX_")):
            del env[k]
    return env


def _run_folder(root: Path, i: int, argv: list[str]) -> Path:
    from hpcx.run import rundir

    doc = {
        "experiment": "bench",
        "run_id": f"r{i}",
        "argv": argv,
        "run_format": rundir.RUN_FORMAT,
        "resources": {},
        "placement": {},
        "executor": {"type": "slurm"},
    }
    return rundir.create(root, "bench", f"r{i}", doc, fsync=False).path


def _task_files(root: Path, i: int, argv: list[str]) -> tuple[Path, Path]:
    """A one-line tasks file whose run's folder the task makes (apply's chunk-NNN.tasks and
    .specs for one new run), and that folder (not made yet)."""
    from hpcx.run import rundir

    run = root / "bench" / f"t{i}"
    doc = {
        "experiment": "bench",
        "run_id": f"t{i}",
        "argv": argv,
        "run_format": rundir.RUN_FORMAT,
        "resources": {},
        "placement": {},
        "executor": {"type": "slurm"},
        "attempt": 1,
    }
    script = root / f"chunk-{i}.sbatch"
    script.write_text("#!/bin/sh\n")
    (root / f"chunk-{i}.specs").write_text(rundir.deferred_line(doc, {"job.sbatch": str(script)}))
    tasks = root / f"chunk-{i}.tasks"
    tasks.write_text(f"{run}\t1\t@0\n")
    return tasks, run


def _timed(argv: list[str], env: dict[str, str]) -> tuple[float, float, float]:
    """(spawn time as time.time(), seconds to exit, CPU seconds of the process and the
    children it waited for)."""
    t_wall = time.time()
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{argv} exited {proc.returncode}")
    return t_wall, elapsed, usage.ru_utime + usage.ru_stime


def wrapper_command(env: dict[str, str]) -> list[str]:
    """The wrapper's command line as the executors of that tree write it (``hpcx.job.COMMAND``),
    or ``-m hpcx.job`` for a tree from before it."""
    probe = "import hpcx.job as j; print(repr(list(getattr(j, 'COMMAND', ['-m', 'hpcx.job']))))"
    out = subprocess.run(
        [sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True
    ).stdout
    return [sys.executable, *ast.literal_eval(out.strip().splitlines()[-1])]


def _stamp_delay(argv: list[str], env: dict[str, str]) -> float:
    """Seconds from spawning ``argv`` (a python printing time.time()) to its print."""
    t_wall = time.time()
    out = subprocess.run(argv, env=env, check=True, capture_output=True, text=True).stdout
    return float(out.strip().splitlines()[-1]) - t_wall


def importtime(env: dict[str, str], run_dir: Path) -> list[tuple[int, str]]:
    cmd = wrapper_command(env)
    proc = subprocess.run(
        [cmd[0], "-X", "importtime", *cmd[1:], str(run_dir)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    rows = []
    for line in proc.stderr.splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        parts = line.split("|")
        try:
            cum = int(parts[1].strip())
        except ValueError:
            continue
        name = parts[2].rstrip()
        if not name.startswith("  "):  # a top-level import: its cumulative time
            rows.append((cum, name.strip()))
    return sorted(rows, reverse=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("rounds", type=int, nargs="?", default=30)
    ap.add_argument("--tiny", action="store_true", help="5 rounds (CI)")
    ap.add_argument("--before", help="another checkout's root, timed interleaved with this one")
    args = ap.parse_args()
    rounds = 5 if args.tiny else args.rounds
    env = _env()
    versions = {"": env}
    if args.before:
        compileall.compile_dir(str(Path(args.before) / "hpcx"), quiet=1)
        versions["before "] = _env(str(Path(args.before).resolve()))
    py = sys.executable
    # An installed hpcx has its bytecode compiled (pip does it); a checkout run with
    # PYTHONDONTWRITEBYTECODE=1 would compile every module at each start instead.
    compileall.compile_dir(str(Path(__file__).resolve().parents[1] / "hpcx"), quiet=1)
    tmp = Path(tempfile.mkdtemp(prefix="hpcx-wrapper-bench-"))
    # `python -m` and `-c` put the working folder first on sys.path: from a checkout's root
    # they would import that checkout whatever PYTHONPATH says (--before would time this one).
    here = os.getcwd()
    os.chdir(tmp)
    try:
        sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
        stamp_prog = [py, "-S", "-c", _STAMP]
        commands = {name: wrapper_command(venv) for name, venv in versions.items()}
        bare: list[float] = []
        bare_cpu: list[float] = []
        prog: list[float] = []
        loads: list[float] = []
        start: dict[str, list[float]] = {v: [] for v in versions}
        whole: dict[str, list[float]] = {v: [] for v in versions}
        whole_cpu: dict[str, list[float]] = {v: [] for v in versions}
        task: list[float] = []
        task_cpu: list[float] = []
        n = 0
        for _ in range(rounds):
            # Interleaved: the floor, the program alone, then for each version the wrapper up
            # to the program and the whole wrapper around `true`.
            _, wall, cpu = _timed([py, "-c", "pass"], env)
            bare.append(wall)
            bare_cpu.append(cpu)
            prog.append(_stamp_delay(stamp_prog, env))
            for name, venv in versions.items():
                d = _run_folder(tmp, n, stamp_prog)
                t_wall, _, _ = _timed([*commands[name], str(d)], venv)
                printed = float((d / "stdout.log").read_text().strip())
                start[name].append(printed - t_wall)
                d2 = _run_folder(tmp, n + 1, ["true"])
                _, wall, cpu = _timed([*commands[name], str(d2)], venv)
                whole[name].append(wall)
                whole_cpu[name].append(cpu)
                status = json.loads((d2 / "status.json").read_text())
                assert status["state"] == "succeeded", status
                n += 2
            # This checkout only: a tree from before the job made its folder cannot.
            tasks, made = _task_files(tmp, n, ["true"])
            _, wall, cpu = _timed([*commands[""], "--tasks", str(tasks), "--index", "0"], env)
            assert json.loads((made / "status.json").read_text())["state"] == "succeeded"
            task.append(wall)
            task_cpu.append(cpu)
            n += 1
            loads.append(os.getloadavg()[0])
        med = statistics.median
        floor = med(bare)
        floor_cpu = med(bare_cpu)
        load = f"load={med(loads):.2f} (min {min(loads):.2f}, max {max(loads):.2f})"
        print(f"rounds={rounds} python={py} cpus={os.cpu_count()} {load}")
        print(
            f"floor: python -c pass                : {1000 * floor:7.1f} ms "
            f"(cpu {1000 * floor_cpu:5.1f} ms)"
        )
        print(f"       (program alone, python -S     : {1000 * med(prog):7.1f} ms to its print)")
        for name in versions:
            print(f"{name}wrapper command: {' '.join(commands[name][1:])}")
            # The program's own start (a python -S printing the time) is not the wrapper's.
            to_program = med(s - p for s, p in zip(start[name], prog, strict=True))
            for what, value, cpu in (
                ("start to program", to_program, None),
                ("whole around true", med(whole[name]), med(whole_cpu[name])),
            ):
                ratio = value / floor
                met = "met" if ratio <= GOAL else "NOT met"
                label = f"{name}wrapper {what}"
                cpu_text = (
                    "" if cpu is None else f"; cpu {1000 * cpu:5.1f} ms = {cpu / floor_cpu:4.2f}x"
                )
                print(
                    f"{label:37s}: {1000 * value:7.1f} ms = {ratio:4.2f}x the floor "
                    f"(goal <= {GOAL:g}x: {met}){cpu_text} {load}"
                )
        ratio = med(task) / floor
        print(
            f"{'array task around true, folder made':37s}: {1000 * med(task):7.1f} ms = "
            f"{ratio:4.2f}x the floor (goal <= {GOAL:g}x: {'met' if ratio <= GOAL else 'NOT met'})"
            f"; cpu {1000 * med(task_cpu):5.1f} ms = {med(task_cpu) / floor_cpu:4.2f}x {load}"
        )
        if "before " in versions:
            for what, after, before in (
                ("start", [s - p for s, p in zip(start[""], prog, strict=True)],
                 [s - p for s, p in zip(start["before "], prog, strict=True)]),
                ("whole", whole[""], whole["before "]),
                ("whole cpu", whole_cpu[""], whole_cpu["before "]),
            ):  # fmt: skip
                print(f"after/before, {what:10s}: {med(after) / med(before):4.2f}x")
        print("what the wrapper imports (top level, cumulative ms):")
        probe = _run_folder(tmp, 10**6, ["true"])
        for us, name in importtime(env, probe)[:12]:
            print(f"  {us / 1000:7.1f}  {name}")
    finally:
        os.chdir(here)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
