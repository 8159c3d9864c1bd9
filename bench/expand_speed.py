"""Loading a grid sweep into RunSpecs (`load_desired`: read, check, expand, hash), in process,
this checkout against another one, interleaved.

    .venv/bin/python bench/expand_speed.py [SIZES...] [--repeat 3] [--baseline-tree DIR]
    .venv/bin/python bench/expand_speed.py 100000 1000000 --baseline-tree /work/main
    .venv/bin/python bench/expand_speed.py --tiny     # 10,000 runs, 1 round (< 20 s, CI)
    .venv/bin/python bench/expand_speed.py 10000 --needs   # + what spec.needs costs

With --needs (and --tiny), each size is also loaded as a pipeline: the sweep plus an `eval`
experiment of as many runs, once without and once with `needs: {big-sweep: {match: [params.x,
params.y]}}` (one-to-one, N runs against N), on this checkout: the difference is the cost of
matching the needs and hashing them into the identities (issue 14: well under a second at
10,000 x 10,000).

The sweep is bench/plan_100k.py's (x over N/10 values times y over 10: the manifest `hpcx plan`
of N runs reads). Each figure is a fresh process that imports hpcx first (not timed), then
times one `load_desired`: its CPU seconds, wall seconds and what it added to the peak RSS
(ru_maxrss after minus before: the RunSpecs, their dicts and the expansion's own peak). With
--baseline-tree the same is timed for that checkout (through PYTHONPATH), round by round
(baseline, this, baseline, this, ...); medians of --repeat, the load average beside each.

Goal (issue 17): `hpcx plan` of 1M runs against 1M in the state in <= 4 s and <= 700 MB peak;
this stage is the largest part of it, so it is shown against that whole budget (met means this
stage alone fits in it, not that the plan does: bench/plan_100k.py measures the plan).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

CHILD = """
import json, resource, sys, time
from pathlib import Path
from hpcx.manifest.loader import load_desired
import hpcx.state.store  # what a plan imports too: not this stage's memory
root = Path(sys.argv[1])
rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t, c = time.perf_counter(), time.process_time()
state = load_desired([root / "manifests"], project_root=root)
wall, cpu = time.perf_counter() - t, time.process_time() - c
rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
import hpcx
print(json.dumps({"tree": str(Path(hpcx.__file__).parents[1]),
                  "runs": len(state.runs), "wall": wall, "cpu": cpu, "mb": (rss1 - rss0) / 1024,
                  "id0": state.runs[0].run_id, "idn": state.runs[-1].run_id}))
"""


def one(tree: Path, root: Path) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    # Run outside any checkout: `python -c` puts the working folder first on sys.path.
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, str(root)],
        env=env,
        capture_output=True,
        text=True,
        cwd=root,
    )
    if proc.returncode != 0:
        raise SystemExit(f"load_desired failed in {tree}:\n{proc.stderr}")
    out: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    if Path(out.pop("tree")) != tree:
        raise SystemExit(f"the child imported hpcx from elsewhere than {tree}")
    out["load"] = os.getloadavg()[0]
    return out


EVAL = """\
apiVersion: hpcx/v1
kind: Experiment
metadata:
  name: eval
spec:
  command: [python, eval.py, "--x={{params.x}}", "--y={{params.y}}"{ckpt}]
  params: {{x: 0, y: 0}}
  sweep:
    grid:
      x: {{start: {start}, stop: {stop}}}
      y: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]
{needs}"""


def needs_case(n: int, repeat: int) -> None:
    """The sweep and an eval of it, without and with one-to-one needs, interleaved."""
    sys.path.insert(0, str(ROOT / "bench"))
    from plan_100k import write_manifest

    per = n // 10
    got: dict[str, list[dict[str, Any]]] = {"plain": [], "needs": []}
    with tempfile.TemporaryDirectory() as d:
        roots = {}
        for name in got:
            root = Path(d) / name
            write_manifest(root, 0, per)
            with_needs = name == "needs"
            (root / "manifests" / "eval.yaml").write_text(
                EVAL.format(
                    start=0,
                    stop=per,
                    ckpt=', "{needs.big-sweep.run_dir}"' if with_needs else "",
                    needs="  needs: {big-sweep: {match: [params.x, params.y]}}\n"
                    if with_needs
                    else "",
                )
            )
            roots[name] = root
        for _ in range(repeat):
            for name, root in roots.items():
                r = one(ROOT, root)
                got[name].append(r)
                print(
                    f"  {n:>9,} x {n:,} {name:<6} cpu {r['cpu']:6.2f} s  wall {r['wall']:6.2f} s"
                    f"  +{r['mb']:5.0f} MB  (load {r['load']:.2f})"
                )
    med = {
        name: {k: statistics.median(x[k] for x in rs) for k in ("cpu", "wall", "mb")}
        for name, rs in got.items()
    }
    extra = med["needs"]["cpu"] - med["plain"]["cpu"]
    print(
        f"{n:>9,} x {n:,} one-to-one needs: +{extra:.2f} CPU s, "
        f"+{med['needs']['wall'] - med['plain']['wall']:.2f} wall s, "
        f"+{med['needs']['mb'] - med['plain']['mb']:.0f} MB over the same runs without needs "
        f"({'under' if extra < 1 else 'NOT under'} a second)  (load {os.getloadavg()[0]:.2f})"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("sizes", type=int, nargs="*", help="runs (default: 100000 1000000)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--tiny", action="store_true", help="10,000 runs, 1 round (CI)")
    ap.add_argument("--baseline-tree", type=Path, help="also time this checkout's hpcx")
    ap.add_argument(
        "--needs", action="store_true", help="also time a pipeline with one-to-one needs"
    )
    a = ap.parse_args()
    sizes = [10_000] if a.tiny else (a.sizes or [100_000, 1_000_000])
    repeat = 1 if a.tiny else a.repeat
    sys.path.insert(0, str(ROOT / "bench"))
    from plan_100k import write_manifest

    trees = [("this", ROOT)]
    if a.baseline_tree is not None:
        trees.insert(0, ("baseline", a.baseline_tree.resolve()))
    for n in sizes:
        with tempfile.TemporaryDirectory() as d:
            root = Path(d)
            per = n // 10
            write_manifest(root, per // 2, per + per // 2)
            got: dict[str, list[dict[str, Any]]] = {name: [] for name, _ in trees}
            for _ in range(repeat):
                for name, tree in trees:
                    r = one(tree, root)
                    got[name].append(r)
                    print(
                        f"  {n:>9,} {name:<8} cpu {r['cpu']:6.2f} s  wall {r['wall']:6.2f} s  "
                        f"+{r['mb']:5.0f} MB  (load {r['load']:.2f})"
                    )
            med = {
                name: {k: statistics.median(x[k] for x in rs) for k in ("cpu", "wall", "mb")}
                for name, rs in got.items()
            }
            ids = {name: (rs[0]["id0"], rs[0]["idn"]) for name, rs in got.items()}
            if len(set(ids.values())) != 1:
                raise SystemExit(f"the trees disagree on run ids: {ids}")
            this = med["this"]
            line = (
                f"{n:>9,} runs: cpu {this['cpu']:.2f} s, wall {this['wall']:.2f} s, "
                f"+{this['mb']:.0f} MB ({this['mb'] * 2**20 / n:.0f} B/run)"
            )
            if "baseline" in med:
                b = med["baseline"]
                line += (
                    f"; baseline cpu {b['cpu']:.2f} s, wall {b['wall']:.2f} s, +{b['mb']:.0f} MB"
                    f"; ratio cpu {this['cpu'] / b['cpu']:.2f}x, wall "
                    f"{this['wall'] / b['wall']:.2f}x, MB {this['mb'] / b['mb']:.2f}x"
                )
            print(line + f"  (load {os.getloadavg()[0]:.2f})")
            if n == 1_000_000:
                ok = this["wall"] <= 4.0 and this["mb"] <= 700
                print(
                    "  this stage alone within the plan's 1M budget (<= 4 s, <= 700 MB, #17): "
                    + ("met" if ok else "not met")
                )
            else:
                print("  no goal at this size (the plan's goal is at 1M)")
        if a.needs or a.tiny:
            needs_case(n, repeat)


if __name__ == "__main__":
    main()
