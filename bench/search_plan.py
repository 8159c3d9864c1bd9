"""`hpcx plan` of a search with N finished trials in the state, beside a grid plan of N runs.

Issue 15's figure: planning a search whose state holds 10,000 finished trials (the study
rebuilt from the state, then asked for the next batch), against a plain grid plan of the same
size against a state with the same 10,000 runs succeeded; the ratio between the two.

    .venv/bin/python bench/search_plan.py [--trials 10000] [--repeat 3] [--sampler tpe] [--tiny]

Both states are made through hpcx's own API (a real DuckDB file, runs recorded succeeded, one
objective value per run). Each round times the whole `hpcx plan` process of the search and of
the grid, interleaved, then where the search's time goes inside one process (reading the
trials, rebuilding the study, asking it).
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SEARCH = """\
apiVersion: hpcx/v1
kind: Experiment
metadata: {{name: big-search}}
spec:
  command: [python, train.py, "--x={{params.x}}", "--y={{params.y}}"]
  params: {{x: 0.0, y: 0.0}}
  sweep:
    search:
      sampler: {sampler}
      space: {{x: {{low: -5.0, high: 10.0}}, y: {{low: 0.0, high: 15.0}}}}
      objective: {{metric: loss}}
      budget: {budget}
      batch: 8
"""

GRID = """\
apiVersion: hpcx/v1
kind: Experiment
metadata: {{name: big-grid}}
spec:
  command: [python, train.py, "--x={{params.x}}", "--y={{params.y}}"]
  params: {{x: 0, y: 0}}
  sweep:
    grid:
      x: {{start: 0, stop: {per}}}
      y: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]
"""


def _project(root: Path, text: str) -> Path:
    (root / "manifests").mkdir(parents=True, exist_ok=True)
    path = root / "manifests" / "m.yaml"
    path.write_text(text)
    return path


def _record(root: Path, runs: list, values: list[float]) -> None:
    from hpcx.state.store import StateStore

    state = root / ".hpcx" / "state.duckdb"
    state.parent.mkdir(parents=True, exist_ok=True)
    with StateStore.open(state) as store:
        store.record_runs(runs, status="succeeded")
        store.add_metrics(
            [(r.run_id, "loss", None, v, 0.0, 1) for r, v in zip(runs, values, strict=True)]
        )


def build_search(root: Path, trials: int, sampler: str) -> None:
    from hpcx.manifest.loader import load_desired
    from hpcx.manifest.search import Trial

    path = _project(root, SEARCH.format(sampler=sampler, budget=trials + 8))
    (search,) = load_desired([path], project_root=root).searches
    rng = random.Random(0)
    made = [
        Trial(i + 1, {"params.x": rng.uniform(-5, 10), "params.y": rng.uniform(0, 15)})
        for i in range(trials)
    ]
    runs = search.make_runs(made)
    _record(root, runs, [rng.random() for _ in runs])


def build_grid(root: Path, runs: int) -> None:
    from hpcx.manifest.loader import load_desired

    path = _project(root, GRID.format(per=runs // 10))
    desired = load_desired([path], project_root=root)
    _record(root, desired.runs, [0.5] * len(desired.runs))


def time_plan(root: Path) -> float:
    hpcx = str(Path(sys.executable).parent / "hpcx")
    t = time.perf_counter()
    proc = subprocess.run([hpcx, "plan"], cwd=root, capture_output=True, text=True)
    took = time.perf_counter() - t
    if proc.returncode != 0:
        raise SystemExit(f"hpcx plan failed in {root}:\n{proc.stdout}\n{proc.stderr}")
    return took


def inside(root: Path) -> dict[str, float]:
    """Where a search plan's time goes, in this process."""
    from hpcx.manifest.loader import load_desired
    from hpcx.plan.search import propose
    from hpcx.state.store import StateStore

    out: dict[str, float] = {}
    t = time.perf_counter()
    desired = load_desired([root / "manifests" / "m.yaml"], project_root=root)
    (search,) = desired.searches
    out["load manifests"] = time.perf_counter() - t
    t = time.perf_counter()
    with StateStore.open(root / ".hpcx" / "state.duckdb", read_only=True) as store:
        records = store.search_trials({search.key: "loss"})[search.key]
    out["read trials"] = time.perf_counter() - t
    t = time.perf_counter()
    import optuna  # noqa: F401

    out["import optuna"] = time.perf_counter() - t
    t = time.perf_counter()
    _, status = propose(search, records)
    out["rebuild the study + ask 8 + make the runs"] = time.perf_counter() - t
    assert len(status.proposed) == 8, status
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--trials", type=int, default=10_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--sampler", default="tpe", choices=["tpe", "random", "qmc", "cmaes"])
    ap.add_argument("--tiny", action="store_true", help="100 trials, one round (CI runs it so)")
    args = ap.parse_args()
    if args.tiny:
        args.trials, args.repeat = 100, 1
    with tempfile.TemporaryDirectory(prefix="hpcx-search-bench-") as tmp:
        s_root, g_root = Path(tmp) / "search", Path(tmp) / "grid"
        t = time.perf_counter()
        build_search(s_root, args.trials, args.sampler)
        build_grid(g_root, args.trials)
        print(f"set-up: {time.perf_counter() - t:.1f} s ({args.trials:,} runs in each state)")
        searches, grids = [], []
        for i in range(args.repeat):
            s, g = time_plan(s_root), time_plan(g_root)
            searches.append(s)
            grids.append(g)
            print(f"round {i + 1}: search plan {s:.2f} s, grid plan {g:.2f} s, ratio {s / g:.2f}x")
        ms, mg = statistics.median(searches), statistics.median(grids)
        print(
            f"median of {args.repeat}: search {ms:.2f} s, grid {mg:.2f} s: the search plan is "
            f"{ms / mg:.2f}x the grid plan ({args.sampler}, {args.trials:,} finished trials; "
            f"load {os.getloadavg()[0]:.1f})"
        )
        for stage, took in inside(s_root).items():
            print(f"  {stage}: {took:.3f} s")


if __name__ == "__main__":
    main()
