"""``hpcx query "select count(*) from runs"`` as a whole process over a state of 100,000 runs,
half of them trials of searches (``extra.search`` in their spec), to weigh what the runs view's
``trial``, ``sampler`` and ``search`` columns cost each session.

    .venv/bin/python bench/query_search_100k.py [--runs 100000] [--repeat 5] [--state PATH] [--tiny]

With ``--state PATH`` the state is built there once and reused by later calls (so the same file
is timed before and after a change); without, it lives in a temporary folder. The state is built
through the real StateStore (record_runs, set_status, add_metrics). Each timing is one ``hpcx
query`` process, start to exit (Python start, imports, the session's views, the query).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

SQL = "select count(*) from runs"


def build(path: Path, runs: int) -> None:
    from support.specs import make_spec

    from hpcx.state.store import StateStore

    specs = []
    for i in range(runs):
        extra = {}
        if i % 2:
            key = f"{i % 20:016x}"
            extra = {
                "search": {
                    "key": key,
                    "trial": i // 2 + 1,
                    "budget": runs,
                    "batch": 8,
                    "sampler": ("tpe", "random")[i % 4 // 2],
                    "objective": {"metric": "val_acc", "direction": "maximize"},
                    "values": {"params.x": (i % 97) / 10.0, "params.kind": "abc"[i % 3]},
                    "prune": None,
                    "system_attrs": {},
                }
            }
        specs.append(
            make_spec(
                f"exp{i % 4}",
                i,
                {"x": (i % 97) / 10.0, "kind": "abc"[i % 3], "lr": 10.0 ** -(i % 5), "i": i},
                extra=extra,
            )
        )
    with StateStore.open(path) as store:
        store.record_runs(specs)
        store.set_status([s.run_id for s in specs], "succeeded", event="finished")
        store.add_metrics(
            [(s.run_id, "val_acc", None, (i % 101) / 100.0, 1.7e9) for i, s in enumerate(specs)]
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--state", type=Path, default=None)
    ap.add_argument("--tiny", action="store_true", help="1,000 runs, 2 repeats (CI runs it so)")
    args = ap.parse_args()
    if args.tiny:
        args.runs, args.repeat = 1_000, 2
    hpcx = str(Path(sys.executable).with_name("hpcx"))
    with tempfile.TemporaryDirectory() as tmp:
        state = args.state or Path(tmp) / "state.duckdb"
        if not state.exists():
            t = time.perf_counter()
            build(state, args.runs)
            print(f"built state: {args.runs:,} runs in {time.perf_counter() - t:.1f} s")
        env = dict(os.environ, HPCX_STATE=str(state))
        times = []
        out = ""
        for _ in range(args.repeat):
            t = time.perf_counter()
            out = subprocess.run(
                [hpcx, "query", "-f", "csv", SQL],
                env=env,
                check=True,
                capture_output=True,
                text=True,
            ).stdout
            times.append(time.perf_counter() - t)
        print(
            f"hpcx query {SQL!r}: median {statistics.median(times):.3f} s, best "
            f"{min(times):.3f} s over {args.repeat} (answer {out.split()[-1]}; load "
            f"{os.getloadavg()[0]:.1f})"
        )


if __name__ == "__main__":
    main()
