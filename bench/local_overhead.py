"""hpcx's overhead per run on the local executor: N runs of `true` (default 1,000).

Prints wall time per run through the executor (prepare + queue + wrapper + status), and two
floors measured the same way: starting `true` directly and starting `python -c pass`
(the wrapper is one Python start), both with the same parallelism. Target: <= 50 ms a run.

    .venv/bin/python bench/local_overhead.py [N] [--parallel P]
    .venv/bin/python bench/local_overhead.py --tiny          # 20 runs (a smoke run, < 20 s)
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from support.specs import command_spec as make_spec

from hpcx.run.executors import new_key
from hpcx.run.executors.local import LocalExecutor, default_parallelism


def floor(argv: list[str], n: int, parallel: int) -> float:
    def one(_: int) -> None:
        subprocess.run(argv, check=True)

    t0 = time.perf_counter()
    with ThreadPoolExecutor(parallel) as pool:
        list(pool.map(one, range(n)))
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("n", type=int, nargs="?", default=1000)
    ap.add_argument("--parallel", type=int, default=default_parallelism())
    ap.add_argument("--tiny", action="store_true", help="20 runs (CI's smoke run)")
    args = ap.parse_args()
    n, par = (20 if args.tiny else args.n), args.parallel
    with tempfile.TemporaryDirectory() as root:
        ex = LocalExecutor({"max_parallel": par})
        specs = [make_spec(["true"], index=i) for i in range(n)]
        t0 = time.perf_counter()
        dirs = ex.prepare(specs, root)
        t1 = time.perf_counter()
        result = ex.wait(ex.submit(new_key(), dirs))
        t2 = time.perf_counter()
        assert all(o.state == "succeeded" for o in result.values()), "some runs failed"
    direct = floor(["true"], n, par)
    python = floor([sys.executable, "-c", "pass"], n, par)
    per = lambda s: 1000 * s / n  # noqa: E731
    print(f"runs={n} parallel={par} cpus={os.cpu_count()} load={os.getloadavg()[0]:.2f}")
    print(
        f"hpcx local executor : {per(t2 - t0):7.2f} ms/run "
        f"(prepare {per(t1 - t0):.2f}, run {per(t2 - t1):.2f})"
    )
    print(f"floor: true         : {per(direct):7.2f} ms/run")
    print(f"floor: python -c pass: {per(python):7.2f} ms/run")
    print(f"hpcx overhead vs true: {per(t2 - t0 - direct):7.2f} ms/run (target <= 50)")


if __name__ == "__main__":
    main()
