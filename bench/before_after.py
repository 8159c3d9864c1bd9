"""`hpcx plan`, `hpcx apply` and `hpcx refresh --reharvest` of this checkout against another
version of hpcx, interleaved round by round on the same machine, so load moves both alike.

    .venv/bin/python bench/before_after.py --baseline-python /tmp/basevenv/bin/python [--rounds 5]
    .venv/bin/python bench/before_after.py --tiny     (this checkout against itself, seconds)

The baseline interpreter must import the other hpcx (its own venv, or one whose ``.pth`` puts an
older checkout first) with the same dependencies. Each side builds its own projects through its
own code, so nothing one version writes is read by the other. Figures are whole processes
(``python -m hpcx ...``), the way a user meets them.

* plan: a 20,000-run sweep against a state holding 10,000 of them (half done, half new);
* apply: ``--runs`` (300) runs of ``true`` on the local executor, from an empty state to all
  harvested;
* refresh --reharvest: read those finished runs' folders again.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# The plan's sweep: recorded x in [0, 1000), then planned x in [500, 2500) (y: 10 values each).
PLAN_SIZES = (0, 1000, 500, 2500)

PLAN_MANIFEST = """\
apiVersion: hpcx/v1
kind: Experiment
metadata: {{name: big}}
spec:
  command: ["true", "--x={{params.x}}", "--y={{params.y}}"]
  params: {{x: 0, y: 0}}
  sweep:
    grid:
      x: {{start: {start}, stop: {stop}}}
      y: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]
  resources: {{cpus: 1, time: 10}}
"""

APPLY_MANIFEST = """\
apiVersion: hpcx/v1
kind: Experiment
metadata: {{name: many}}
spec:
  command: ["true", "--i={{params.i}}"]
  params: {{i: 0}}
  executor: {{type: local, max_parallel: 2}}
  sweep:
    grid:
      i: {{start: 0, stop: {runs}}}
"""

# Runs under each side's interpreter: record the first half of the sweep as succeeded.
BUILD = """\
import sys
from pathlib import Path
from hpcx.manifest import load_desired
from hpcx.state import StateStore
root = Path(sys.argv[1])
desired = load_desired([root / "manifests"], project_root=root)
with StateStore.open(root / ".hpcx" / "state.duckdb") as store, store.transaction() as tx:
    tx.record_runs(desired.runs, status="pending")
    tx.set_status([r.run_id for r in desired.runs], "succeeded", event="harvested")
"""


def env() -> dict[str, str]:
    out = {k: v for k, v in os.environ.items() if not k.startswith(("HPCX_", "SLURM_"))}
    out["HPCX_SLOTS_DIR"] = tempfile.mkdtemp(prefix="hpcx-bench-slots-")
    return out


def git_project(root: Path) -> None:
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    (root / ".gitignore").write_text(".hpcx/\nruns/\n")


def plan_project(python: str, base: Path) -> Path:
    root = base / "plan"
    root.mkdir(parents=True)
    git_project(root)
    (root / "manifests").mkdir()
    start, stop, start2, stop2 = PLAN_SIZES
    (root / "manifests" / "big.yaml").write_text(PLAN_MANIFEST.format(start=start, stop=stop))
    subprocess.run([python, "-c", BUILD, str(root)], check=True, env=env(), cwd=base)
    (root / "manifests" / "big.yaml").write_text(PLAN_MANIFEST.format(start=start2, stop=stop2))
    return root


def timed(python: str, args: list[str], cwd: Path, ok: tuple[int, ...] = (0,)) -> float:
    t0 = time.perf_counter()
    res = subprocess.run(
        [python, "-m", "hpcx", *args], cwd=cwd, env=env(), capture_output=True, text=True
    )
    wall = time.perf_counter() - t0
    if res.returncode not in ok:
        raise SystemExit(f"{python} -m hpcx {' '.join(args)}: exit {res.returncode}\n{res.stderr}")
    return wall


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--baseline-python",
        help="the other hpcx's interpreter (required, but for --tiny: this one against itself)",
    )
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--runs", type=int, default=300, help="runs apply starts, refresh re-reads")
    ap.add_argument(
        "--tiny",
        action="store_true",
        help="one round, 20 runs, a 200-run plan; with no --baseline-python, this checkout against "
        "itself (a smoke run: CI runs every bench so)",
    )
    args = ap.parse_args()
    if args.tiny:
        args.rounds, args.runs, args.baseline_python = 1, 20, args.baseline_python or sys.executable
        global PLAN_SIZES
        PLAN_SIZES = (0, 10, 5, 25)
    if not args.baseline_python:
        ap.error("--baseline-python is required (the interpreter that imports the other hpcx)")
    sides = {"baseline": args.baseline_python, "this": sys.executable}
    work = Path(tempfile.mkdtemp(prefix="hpcx-before-after-"))
    try:
        plans = {name: plan_project(py, work / name) for name, py in sides.items()}
        times: dict[str, dict[str, list[float]]] = {
            s: {"plan": [], "apply": [], "reharvest": []} for s in sides
        }
        for rnd in range(args.rounds):
            order = list(sides) if rnd % 2 == 0 else list(reversed(sides))
            for name in order:
                py = sides[name]
                times[name]["plan"].append(timed(py, ["plan"], plans[name], ok=(0, 2)))
                root = work / name / f"apply-{rnd}"
                root.mkdir(parents=True)
                git_project(root)
                (root / "manifests").mkdir()
                manifest = APPLY_MANIFEST.format(runs=args.runs)
                (root / "manifests" / "many.yaml").write_text(manifest)
                times[name]["apply"].append(timed(py, ["apply", "--yes"], root))
                times[name]["reharvest"].append(timed(py, ["refresh", "--reharvest"], root))
                shutil.rmtree(root)
            print(f"round {rnd + 1}/{args.rounds} done (load {os.getloadavg()[0]:.1f})", flush=True)
        print(f"\n{'':<22}{'baseline':>10}{'this':>10}{'this/base':>11}   (median s, "
              f"{args.rounds} rounds, interleaved)")
        for what in ("plan", "apply", "reharvest"):
            b = statistics.median(times["baseline"][what])
            t = statistics.median(times["this"][what])
            label = {"plan": "plan 20k vs 10k", "apply": f"apply {args.runs} x true",
                     "reharvest": f"reharvest {args.runs}"}[what]
            print(f"{label:<22}{b:>10.3f}{t:>10.3f}{t / b:>11.2f}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
