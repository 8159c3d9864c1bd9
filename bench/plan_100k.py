"""`hpcx plan` of an N-run sweep against a state that already holds N runs, at several sizes.

Half the sweep is already in the state (succeeded), half is new; the state's other N/2 runs
are orphans. Goals: issue 3, at 100k: <= 2 s wall and <= 500 MB peak RSS; issue 17, at 1M:
<= 4 s, <= 700 MB, and linear from 10k to 1M (the exponent of a log-log fit of the median wall
over the sizes; linear: <= 1.10).

    .venv/bin/python bench/plan_100k.py [SIZES...] [--repeat 3] [--keep DIR]
                                        [--baseline-tree /path/to/other/checkout] [--stages]
    .venv/bin/python bench/plan_100k.py 10000 100000 1000000 --keep /tmp/plan-states
    .venv/bin/python bench/plan_100k.py --tiny        # 1,000 and 10,000 runs, < 20 s (CI)

Each figure is a whole `hpcx plan --detailed-exitcode` process; its peak RSS is that child's
own (os.wait4's rusage). With --baseline-tree, the same plan of another checkout (through
PYTHONPATH, e.g. the one before a change) is timed too, interleaved round by round (baseline,
this, baseline, this, ...); medians of --repeat; the load average beside each figure. --stages
adds where the time goes inside one process (in-process timings of each stage).
"""

from __future__ import annotations

import argparse
import itertools
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

MANIFEST = """\
apiVersion: hpcx/v1
kind: Experiment
metadata:
  name: big-sweep
spec:
  command: [python, train.py, "--x={{params.x}}", "--y={{params.y}}"]
  params: {{x: 0, y: 0}}
  sweep:
    grid:
      x: {{start: {start}, stop: {stop}}}
      y: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]
  resources: {{cpus: 1, time: 10}}
"""


def write_manifest(root: Path, start: int, stop: int) -> None:
    (root / "manifests").mkdir(parents=True, exist_ok=True)
    (root / "manifests" / "big.yaml").write_text(MANIFEST.format(start=start, stop=stop))


def build(root: Path, runs: int) -> None:
    from hpcx.manifest.loader import load_desired
    from hpcx.state.store import StateStore

    per = runs // 10
    # The state: the sweep over x in [0, per) (all succeeded) ...
    write_manifest(root, 0, per)
    t0 = time.perf_counter()
    old = load_desired([root / "manifests"], project_root=root)
    t1 = time.perf_counter()
    with StateStore.open(root / ".hpcx" / "state.duckdb") as store, store.transaction() as tx:
        tx.record_runs(old.runs, status="pending")
        tx.set_status([r.run_id for r in old.runs], "succeeded", event="harvested")
    t2 = time.perf_counter()
    print(
        f"setup: loaded {len(old.runs):,} runs in {t1 - t0:.2f} s, recorded them in the state "
        f"in {t2 - t1:.2f} s ({(root / '.hpcx' / 'state.duckdb').stat().st_size / 1e6:.0f} MB)"
    )
    # ... and the manifest now asks for x in [per/2, per*3/2): half done, half new.
    write_manifest(root, per // 2, per + per // 2)


def build_in_child(root: Path, runs: int) -> None:
    """:func:`build` in a child process: a child forked from a parent that held the states'
    runs would report the parent's peak RSS as its own (the peak is inherited across fork
    and exec), so the parent of the timed children never loads them."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    subprocess.run(
        [
            sys.executable,
            str(Path(__file__).resolve()),
            "--build-only",
            str(runs),
            "--keep",
            str(root.parent),
        ],
        env=env,
        check=True,
    )


def run_plan(root: Path, tree: Path) -> tuple[float, float, str, float]:
    """(wall s, peak RSS MB, last line, CPU s) of one whole `hpcx plan` of ``tree``'s hpcx; the
    peak and the CPU time (user + system: steadier than wall on a loaded machine) are that
    child's own (os.wait4's rusage)."""
    hpcx = str(Path(sys.executable).with_name("hpcx"))
    env = dict(os.environ, PYTHONPATH=str(tree))
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(
            [hpcx, "plan", "--detailed-exitcode"], cwd=root, env=env, stdout=out, stderr=err
        )
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
        if proc.returncode not in (0, 2):
            err.seek(0)
            raise SystemExit(f"hpcx plan failed ({proc.returncode}):\n{err.read()}")
        out.seek(0)
        last = (out.read().strip().splitlines() or [""])[-1]
    return wall, usage.ru_maxrss / 1024, last, usage.ru_utime + usage.ru_stime


def stages(root: Path) -> None:
    """Where the time goes, stage by stage, in this process."""
    import gc
    import resource

    from hpcx.manifest.loader import load_desired
    from hpcx.plan.planner import make_plan
    from hpcx.plan.render import render_json, render_text
    from hpcx.state.store import StateStore

    def rss() -> float:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6

    gc.collect()
    t = [time.perf_counter()]
    c = [time.process_time()]
    m = [rss()]

    def mark() -> None:
        t.append(time.perf_counter())
        c.append(time.process_time())
        m.append(rss())

    import duckdb  # noqa: F401

    mark()
    desired = load_desired([root / "manifests"], project_root=root)
    mark()
    with StateStore.open(root / ".hpcx" / "state.duckdb", read_only=True) as store:
        mark()
        snap = store.snapshot()
    mark()
    plan = make_plan(desired, snap)
    mark()
    text = render_text(plan)
    mark()
    render_json(plan)
    mark()
    names = [
        "import duckdb",
        "load manifests",
        "open state",
        "snapshot",
        "make_plan",
        "render text",
        "render json (not in a text plan)",
    ]
    print("stages (in-process, already-imported modules excluded; RSS after each stage):")
    for i, name in enumerate(names):
        print(
            f"  {name:<34} {t[i + 1] - t[i]:6.3f} s wall, {c[i + 1] - c[i]:6.3f} s CPU, "
            f"RSS {m[i + 1]:6.0f} MB ({m[i + 1] - m[i]:+5.0f})"
        )
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"  peak RSS of this process {peak:.0f} MB (load {os.getloadavg()[0]:.1f})")
    print("  " + text.strip().splitlines()[-1])


def fit_exponent(sizes: list[int], walls: list[float]) -> float | None:
    """The slope of log(wall) against log(size), least squares (None with one size)."""
    if len(sizes) < 2:
        return None
    xs = [math.log(n) for n in sizes]
    ys = [math.log(w) for w in walls]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    num = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True))
    den = sum((x - mx) ** 2 for x in xs)
    return num / den


def goals(n: int, wall: float, peak: float) -> str:
    if n == 1_000_000:
        ok = wall <= 4.0 and peak <= 700
        return f"goal at 1M <= 4 s, <= 700 MB (#17): {'met' if ok else 'not met'}"
    if n == 100_000:
        ok = wall <= 2.0 and peak <= 500
        return f"goal at 100k <= 2 s, <= 500 MB (#3): {'met' if ok else 'not met'}"
    return "no goal at this size"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("sizes", type=int, nargs="*", help="runs (default: 100000)")
    ap.add_argument("--runs", type=int, help="one size (the old spelling)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--tiny", action="store_true", help="1,000 and 10,000 runs, 1 round (CI)")
    ap.add_argument("--keep", type=Path, help="build the states under this folder, keep them")
    ap.add_argument("--baseline-tree", type=Path, help="also time the plan of this checkout")
    ap.add_argument("--stages", action="store_true", help="in-process stage timings (this tree)")
    ap.add_argument("--build-only", type=int, help=argparse.SUPPRESS)  # the child of build_in_child
    a = ap.parse_args()
    if a.build_only:
        build(a.keep / f"plan-{a.build_only}", a.build_only)
        return
    sizes = a.sizes or ([a.runs] if a.runs else [100_000])
    if a.tiny:
        sizes, a.repeat = [1_000, 10_000], 1
    tmp = Path(tempfile.mkdtemp(prefix="hpcx-bench-plan-"))
    base = a.keep or tmp
    trees = {"this": ROOT}
    if a.baseline_tree:
        trees = {"baseline": a.baseline_tree.resolve(), "this": ROOT}
    medians: dict[str, list[float]] = {k: [] for k in trees}
    cpu_medians: dict[str, list[float]] = {k: [] for k in trees}
    table: list[str] = []
    try:
        for n in sizes:
            root = base / f"plan-{n}"
            if not (root / ".hpcx" / "state.duckdb").exists():
                build_in_child(root, n)
            walls: dict[str, list[float]] = {k: [] for k in trees}
            cpus: dict[str, list[float]] = {k: [] for k in trees}
            peaks = dict.fromkeys(trees, 0.0)
            loads = []
            last = ""
            for _ in range(a.repeat):
                for name, tree in trees.items():
                    wall, peak, last, cpu = run_plan(root, tree)
                    walls[name].append(wall)
                    cpus[name].append(cpu)
                    peaks[name] = max(peaks[name], peak)
                loads.append(os.getloadavg()[0])
            print(last)
            load = f"load {min(loads):.1f}-{max(loads):.1f}"
            for name in trees:
                med = statistics.median(walls[name])
                medians[name].append(med)
                cpu_medians[name].append(statistics.median(cpus[name]))
                line = (
                    f"{n:>9,} runs  {name:<8} median {med:6.2f} s of {a.repeat} "
                    f"(min {min(walls[name]):.2f}, max {max(walls[name]):.2f}), "
                    f"CPU {statistics.median(cpus[name]):6.2f} s, "
                    f"peak RSS {peaks[name]:5.0f} MB  ({load})"
                )
                print(line)
                table.append(line)
            if "baseline" in trees:
                r = statistics.median(walls["this"]) / statistics.median(walls["baseline"])
                m = peaks["this"] / peaks["baseline"]
                c = statistics.median(cpus["this"]) / statistics.median(cpus["baseline"])
                print(
                    f"{n:>9,} runs  this / baseline: wall {r:.2f}x, CPU {c:.2f}x, peak RSS {m:.2f}x"
                    f" ({load})"
                )
            print(f"{n:>9,} runs  {goals(n, statistics.median(walls['this']), peaks['this'])}")
            if a.stages:
                stages(root)
        for name in trees:
            for what, meds in (("wall", medians[name]), ("CPU", cpu_medians[name])):
                k = fit_exponent(sizes, meds)
                if k is None:
                    continue
                verdict = "linear" if k <= 1.10 else "not linear"
                over = ", ".join(f"{s:,}" for s in sizes)
                print(
                    f"exponent ({name}, {what}): ~ N^{k:.2f} over {over} -> {verdict} "
                    "(goal: linear, <= 1.10)"
                )
                # The fit over all sizes includes the fixed cost of a process (imports, ~0.5 s),
                # which flattens it; each step between sizes says how the rest grows.
                steps = [
                    f"{a:,}->{b:,}: N^{math.log(tb / ta) / math.log(b / a):.2f}"
                    for (a, ta), (b, tb) in itertools.pairwise(zip(sizes, meds, strict=True))
                ]
                if len(steps) > 1:
                    print(f"  steps ({name}, {what}): " + ", ".join(steps))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
