"""Submitting N runs to a real one-node SLURM cluster (issue 17).

Starts a private cluster (tests/support/slurm.py) with MaxJobCount raised above what is
submitted, its node drained so that no job starts while we measure (the jobs are cancelled
after each round). Needs root, slurm-wlm and munge. For each size, interleaved, medians:

* ``apply``: the whole ``hpcx apply --yes`` process (start to exit) on a fresh project whose
  manifest sweeps N runs of ``true`` on the SLURM executor (load, plan, state, run folders,
  sbatch, record);
* ``submitit``: submitit's whole process, ``executor.batch()`` of the same N jobs (import,
  pickles, sbatch), when a Python with submitit is found (``--submitit PY``, default
  /tmp/subvenv/bin/python; ``python3 -m venv --system-site-packages /tmp/subvenv &&
  /tmp/subvenv/bin/pip install submitit``). It fails above the cluster's MaxArraySize (1001 by
  default), where hpcx splits the array: it is run at N <= 1000 only;
* ``prepare+submit``: hpcx's executor in this process (run folders + spec.json, then tasks
  files, scripts and sbatch per array), up to the last job id recorded;
* ``into a state``: the whole ``hpcx apply`` of N new runs (a second manifest) into a state
  that holds N runs in flight from a first apply, as a project is used after its first day:
  the state is checked and backed up, refreshed (one squeue), planned against and written.
  Reported beside the goal (which is the first apply's), not instead of it.

Goals: the whole apply of 1,000 runs <= 1.5x submitit's whole process; 10,000 runs to SLURM
<= 5 s (median of 3: the whole apply, and prepare+submit beside it).

    PYTHONPATH=. .venv/bin/python bench/slurm_submit.py [N ...] [--rounds R]   # default 1000 10000
    PYTHONPATH=. .venv/bin/python bench/slurm_submit.py --tiny                  # 20 runs, 1 round

``--before DIR``: also time the whole apply of another checkout (e.g. ``git archive`` of an
earlier commit, with the native module copied in), interleaved with this one.
``--apply-only``: each round times only the whole first apply (and ``--before``'s): an A/B of
many rounds (``--rounds 25``), the machine's noise being 20-30% from run to run.
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import NamedTuple

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from _program import PROGRAM
from support.projects import make_project
from support.slurm import SlurmCluster
from support.specs import command_spec as make_spec

from hpcx.run.executors import new_key
from hpcx.run.executors.slurm import SlurmExecutor

ROOT = Path(__file__).resolve().parents[1]
APPLY_GOAL = 1.5  # x submitit's whole process, at 1,000 runs
TEN_K_GOAL = 5.0  # seconds for 10,000 runs

SUBMITIT = """
import sys
import submitit

def noop(i):
    return i

ex = submitit.AutoExecutor(folder=sys.argv[1], cluster="slurm")
ex.update_parameters(slurm_partition="debug", timeout_min=5, cpus_per_task=1)
with ex.batch():
    jobs = [ex.submit(noop, i) for i in range(int(sys.argv[2]))]
print(" ".join(sorted({j.job_id.split("_")[0] for j in jobs})))
"""


def _axes(n: int) -> dict[str, list[int]]:
    """A grid of n points as a person writes one: axes of 10 values (n = 10^k, or 2 x 10)."""
    axes: dict[str, list[int]] = {}
    left = n
    while left % 10 == 0 and left > 1:
        axes[f"p{len(axes)}"] = list(range(10))
        left //= 10
    if left > 1:
        axes[f"p{len(axes)}"] = list(range(left))
    return axes


def _manifest(n: int, name: str = "b") -> str:
    axes = _axes(n)
    spec = {
        # Run ids are content hashes: a second experiment needs a command of its own.
        "command": ["true"] if name == "b" else ["true", name],
        "params": {k: 0 for k in axes},
        "sweep": {"grid": axes},
        "executor": {"type": "slurm"},
        "resources": {"partition": "debug", "cpus": 1, "time": "00:05:00"},
    }
    doc = {"apiVersion": "hpcx/v1", "kind": "Experiment", "metadata": {"name": name}, "spec": spec}
    return json.dumps(doc) + "\n"


def _load() -> str:
    return f"{os.getloadavg()[0]:.2f}"


class Took(NamedTuple):
    """A whole process: wall seconds, and the CPU seconds (user + system) it and the children
    it waited for used (os.wait4), steadier than wall on a shared machine."""

    wall: float
    cpu: float


def _timed(
    argv: list[str], *, env: dict[str, str], cwd: Path | None = None
) -> tuple[int, str, str, Took]:
    """Run ``argv`` to its end: (exit code, stdout, stderr, what it took)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=out, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        text = out.read().decode(), err.read().decode()
    return proc.returncode, *text, Took(wall, usage.ru_utime + usage.ru_stime)


class Bench:
    def __init__(self, tmp: Path, cluster: SlurmCluster, submitit_py: str | None) -> None:
        self.tmp = tmp
        self.cluster = cluster
        self.submitit_py = submitit_py
        self.env = dict(cluster.env)
        self.env["PYTHONPATH"] = str(ROOT) + (
            os.pathsep + self.env["PYTHONPATH"] if self.env.get("PYTHONPATH") else ""
        )
        self.count = 0

    def _fresh(self, name: str) -> Path:
        self.count += 1
        return self.tmp / f"{name}-{self.count}"

    def apply(self, n: int, checkout: Path = ROOT, *, into_state: bool = False) -> Took:
        """The whole first apply of a new project's n runs; ``into_state``: the apply of n
        more (a second manifest) after it, with the first apply's jobs still pending."""
        root = make_project(self._fresh("proj"), {"b": _manifest(n)})
        env = dict(self.env)
        env["PYTHONPATH"] = str(checkout) + os.pathsep + env["PYTHONPATH"]
        pending: list[str] = []

        def apply() -> Took:
            code, out, err, took = _timed([*PROGRAM, "apply", "--yes", "--json"], cwd=root, env=env)
            if code != 0:
                raise SystemExit(f"hpcx apply failed ({code}): {err[-2000:]}")
            doc = json.loads(out)
            pending.extend(j for s in doc["submissions"] for j in s["job_ids"])
            assert sum(s["runs"] for s in doc["submissions"]) == n, doc
            return took

        took = apply()
        if into_state:
            (root / "manifests" / "c.yaml").write_text(_manifest(n, "c"))
            took = apply()
        self.cluster.run("scancel", *pending, check=False)
        return took

    def submitit(self, n: int) -> Took | None:
        if self.submitit_py is None:
            return None
        folder = self._fresh("submitit")
        code, out, err, took = _timed(
            [self.submitit_py, "-c", SUBMITIT, str(folder), str(n)], env=self.cluster.env
        )
        if code != 0:
            raise SystemExit(f"submitit failed: {err[-2000:]}")
        self.cluster.run("scancel", *out.split(), check=False)
        return took

    def in_process(self, n: int) -> tuple[float, float]:
        root = self._fresh("runs")
        ex = SlurmExecutor()
        specs = [make_spec(["true"], index=i, experiment="bench") for i in range(n)]
        key = new_key()
        t0 = time.perf_counter()
        dirs = ex.prepare(specs, root, key=key)
        t1 = time.perf_counter()
        sub = ex.submit(key, dirs)
        t2 = time.perf_counter()
        self.cluster.run("scancel", *sub.job_ids, check=False)
        return t1 - t0, t2 - t1


def _submitit_python(asked: str | None) -> str | None:
    for py in [asked] if asked else ["/tmp/subvenv/bin/python"]:
        if py and Path(py).exists():
            ok = subprocess.run([py, "-c", "import submitit"], capture_output=True, check=False)
            if ok.returncode == 0:
                return py
    return None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("sizes", type=int, nargs="*")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--tiny", action="store_true", help="20 runs, one round (CI)")
    ap.add_argument("--submitit", help="a Python that has submitit")
    ap.add_argument("--before", help="another checkout's root: its whole apply, interleaved")
    ap.add_argument(
        "--apply-only",
        action="store_true",
        help="each round only the whole first apply (and --before's): many rounds of the "
        "A/B, without submitit, the apply into a state or the in-process figures",
    )
    args = ap.parse_args()
    sizes = [20] if args.tiny else (args.sizes or [1000, 10000])
    rounds = 1 if args.tiny else args.rounds
    # An installed hpcx has its bytecode compiled (pip does it).
    compileall.compile_dir(str(ROOT / "hpcx"), quiet=1)
    before = Path(args.before).resolve() if args.before else None
    if before is not None:
        compileall.compile_dir(str(before / "hpcx"), quiet=1)
    py = _submitit_python(args.submitit)
    med = statistics.median
    with (
        tempfile.TemporaryDirectory() as tmp,
        # Cancelled jobs count against MaxJobCount until MinJobAge purges them: room for
        # every submission of every round.
        SlurmCluster(
            Path(tmp) / "cluster", MaxJobCount=sum(sizes) * 9 * rounds + 1000, MinJobAge=5
        ) as cluster,
    ):
        os.environ["SLURM_CONF"] = cluster.env["SLURM_CONF"]
        # Keep the node from starting the jobs while we measure.
        cluster.run("scontrol", "update", f"NodeName={cluster.host}", "State=DRAIN", "Reason=bench")
        bench = Bench(Path(tmp), cluster, py)
        print(f"submitit: {py or 'not found (--submitit PY)'}; rounds={rounds}; load={_load()}")
        for n in sizes:
            applies: list[Took] = []
            olds: list[Took] = []
            subs: list[Took] = []
            prep: list[float] = []
            sbatch: list[float] = []
            into: list[Took] = []
            olds_into: list[Took] = []
            for i in range(rounds):  # interleaved: apply, the earlier apply, submitit, in-process
                if before is not None and i % 2:  # every other round the earlier one first
                    olds.append(bench.apply(n, before))
                    applies.append(bench.apply(n))
                else:
                    applies.append(bench.apply(n))
                    if before is not None:
                        olds.append(bench.apply(n, before))
                if args.apply_only:
                    continue
                if n <= 1000:
                    into.append(bench.apply(n, into_state=True))
                    if before is not None:
                        olds_into.append(bench.apply(n, before, into_state=True))
                s = bench.submitit(n) if n <= 1000 else None
                if s is not None:
                    subs.append(s)
                p, q = bench.in_process(n)
                prep.append(p)
                sbatch.append(q)
            a = med(t.wall for t in applies)
            a_cpu = med(t.cpu for t in applies)
            line = f"runs={n:6d} hpcx apply (whole process) {a:6.2f}s (cpu {a_cpu:5.2f}s)"
            if subs:
                s_wall, s_cpu = med(t.wall for t in subs), med(t.cpu for t in subs)
                ratio = a / s_wall
                met = "met" if ratio <= APPLY_GOAL else "NOT met"
                # Beside the ratio of the medians (the verdict's), the median of each round's
                # own ratio: the two processes of a round run seconds apart, under one load.
                paired = med(t.wall / s.wall for t, s in zip(applies, subs, strict=True))
                line += (
                    f" | submitit batch (whole process) {s_wall:6.2f}s (cpu {s_cpu:5.2f}s) | "
                    f"ratio {ratio:4.2f}x, cpu {a_cpu / s_cpu:4.2f}x, by round {paired:4.2f}x "
                    f"(goal <= {APPLY_GOAL:g}x: {met})"
                )
            print(line + f" load={_load()}", flush=True)
            if olds:
                o, o_cpu = med(t.wall for t in olds), med(t.cpu for t in olds)
                line = (
                    f"           before: hpcx apply (whole process) {o:6.2f}s (cpu {o_cpu:5.2f}s) "
                    f"(after/before {a / o:4.2f}x, cpu {a_cpu / o_cpu:4.2f}x)"
                )
                if subs:
                    line += f" | ratio to submitit {o / s_wall:4.2f}x"
                print(line + f" load={_load()}", flush=True)
            if into:
                i_wall = med(t.wall for t in into)
                line = (
                    f"           into a state holding {n} in flight: hpcx apply of {n} more "
                    f"{i_wall:6.2f}s (cpu {med(t.cpu for t in into):5.2f}s)"
                )
                if subs:
                    line += f" | ratio to submitit {i_wall / s_wall:4.2f}x"
                if olds_into:
                    o = med(t.wall for t in olds_into)
                    line += f" | before {o:6.2f}s (after/before {i_wall / o:4.2f}x)"
                print(line + f" load={_load()}", flush=True)
            if args.apply_only:
                continue
            total = med(p + q for p, q in zip(prep, sbatch, strict=True))
            line = (
                f"           in process: prepare {med(prep):5.2f}s + submit {med(sbatch):5.2f}s "
                f"= {total:5.2f}s"
            )
            if n == 10000:
                met = "met" if a <= TEN_K_GOAL else "NOT met"
                line += f" | 10k goal <= {TEN_K_GOAL:g}s (whole apply {a:.2f}s): {met}"
            print(line + f" load={_load()}", flush=True)


if __name__ == "__main__":
    main()
