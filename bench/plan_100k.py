"""`hpcx plan` of a 100,000-run sweep against a state that already holds 100,000 runs.

Half the sweep is already in the state (succeeded), half is new; the state's other 50,000 runs
are orphans. Targets (issue 3): at most 2 s wall and 500 MB peak RSS for the whole process.

    .venv/bin/python bench/plan_100k.py [--runs 100000] [--repeat 3] [--keep DIR]

Prints the figures for the whole process, then where the time goes inside it (in-process
timings of each stage), so a miss can be pinned on the stage that causes it.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

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


def time_process(root: Path, args: list[str]) -> tuple[float, float, str]:
    hpcx = str(Path(sys.executable).with_name("hpcx"))
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t0 = time.perf_counter()
    res = subprocess.run([hpcx, *args], cwd=root, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if res.returncode not in (0, 2):
        raise SystemExit(f"hpcx plan failed ({res.returncode}):\n{res.stderr}")
    # ru_maxrss of children is the max over all waited-for children, in KiB: measure each run in
    # a fresh interpreter below when it matters; here the first run sets it.
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return wall, max(peak, before) / 1024, res.stdout


def peak_rss_alone(root: Path, args: list[str]) -> float:
    """Peak RSS (MB) of one `hpcx plan` measured in a fresh wrapper process."""
    code = (
        "import resource, subprocess, sys; "
        "subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL); "
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
    )
    hpcx = str(Path(sys.executable).with_name("hpcx"))
    out = subprocess.run(
        [sys.executable, "-c", code, hpcx, *args],
        cwd=root,
        capture_output=True,
        text=True,
        check=True,
    )
    return int(out.stdout.strip()) / 1024


def stages(root: Path) -> None:
    """Where the time goes, stage by stage, in this process."""
    import gc

    from hpcx.manifest.loader import load_desired
    from hpcx.plan.planner import make_plan
    from hpcx.plan.render import render_json, render_text
    from hpcx.state.store import StateStore

    gc.collect()
    t = [time.perf_counter()]
    import duckdb  # noqa: F401

    t.append(time.perf_counter())
    desired = load_desired([root / "manifests"], project_root=root)
    t.append(time.perf_counter())
    with StateStore.open(root / ".hpcx" / "state.duckdb", read_only=True) as store:
        t.append(time.perf_counter())
        snap = store.snapshot()
    t.append(time.perf_counter())
    plan = make_plan(desired, snap)
    t.append(time.perf_counter())
    text = render_text(plan)
    t.append(time.perf_counter())
    render_json(plan)
    t.append(time.perf_counter())
    names = [
        "import duckdb",
        "load manifests",
        "open state",
        "snapshot",
        "make_plan",
        "render text",
        "render json (not in a text plan)",
    ]
    print("stages (in-process, already-imported modules excluded):")
    for name, a, b in zip(names, t, t[1:], strict=False):
        print(f"  {name:<34} {b - a:6.3f} s")
    print("  " + text.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--keep", type=Path, help="build in this folder and keep it")
    a = ap.parse_args()
    root = a.keep or Path(tempfile.mkdtemp(prefix="hpcx-bench-plan-"))
    try:
        if not (root / ".hpcx" / "state.duckdb").exists():
            build(root, a.runs)
        args = ["plan", "--detailed-exitcode"]
        walls = []
        for _ in range(a.repeat):
            wall, _, out = time_process(root, args)
            walls.append(wall)
        peak = peak_rss_alone(root, args)
        print(out.strip().splitlines()[-1])
        med = statistics.median(walls)
        print(f"hpcx plan, {a.runs:,} desired x {a.runs:,} in state, {os.cpu_count()} CPUs:")
        print(
            f"  wall: median {med:.2f} s of {a.repeat} (min {min(walls):.2f}, max {max(walls):.2f})"
            f"   target <= 2.0 s: {'OK' if med <= 2.0 else 'MISSED'}"
        )
        print(f"  peak RSS: {peak:.0f} MB   target <= 500 MB: {'OK' if peak <= 500 else 'MISSED'}")
        stages(root)
    finally:
        if a.keep is None:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
