"""``hpcx report`` for a 10,000-run experiment (target <= 5 s), timed in-process and as a CLI.

    .venv/bin/python bench/report_10k.py [--runs 10000]
    .venv/bin/python bench/report_10k.py --tiny      # 500 runs, a few seconds (CI smoke run)

The 100,000-run report against a hand-built summary is bench/report_100k.py.

A depth x dim x batch x compile sweep with repeats, each run with a few final metrics, built
through the real StateStore.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))


def build(path: Path, runs: int) -> None:
    from support.states import make_spec, throughput, vit_params

    from hpcx.state.store import StateStore

    specs, rows = [], []
    i = 0
    while len(specs) < runs:
        depth = (2, 4, 6, 8, 12)[i % 5]
        dim = (128, 256, 512, 768)[(i // 5) % 4]
        bs = (8, 16, 32, 64, 128)[(i // 20) % 5]
        comp = bool((i // 100) % 2)
        rep = i // 200
        s = make_spec("big-sweep", i, vit_params(depth, dim, comp, bs), repeat=rep)
        specs.append(s)
        rows.append(
            (
                s.run_id,
                "throughput_samples_per_s",
                None,
                throughput(depth, dim, comp, True, rep),
                1.7e9,
            )
        )
        rows.append((s.run_id, "latency_ms_p50", None, depth * dim / 100.0, 1.7e9))
        i += 1
    with StateStore.open(path) as store:
        store.record_runs(specs)
        store.set_status([s.run_id for s in specs], "succeeded", event="finished")
        store.add_metrics(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=10_000)
    ap.add_argument("--tiny", action="store_true", help="500 runs (CI smoke run)")
    args = ap.parse_args()
    if args.tiny:
        args.runs = 500
    from hpcx.results.report import build_report

    with tempfile.TemporaryDirectory() as tmp:
        state = Path(tmp) / "state.duckdb"
        t = time.perf_counter()
        build(state, args.runs)
        print(f"built state: {args.runs:,} runs in {time.perf_counter() - t:.1f} s")
        out = Path(tmp) / "report.html"
        t = time.perf_counter()
        summary = build_report(state, out)
        lib_s = time.perf_counter() - t
        print(
            f"build_report: {lib_s:.2f} s, {summary.figures} figures, "
            f"{out.stat().st_size / 1e3:.0f} kB"
        )
        t = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "hpcx", "report", "--state", str(state), "-o", str(out)],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        cli_s = time.perf_counter() - t
        verdict = "OK" if cli_s <= 5 else "OVER"
        print(f"hpcx report (whole process): {cli_s:.2f} s -> {verdict} (target <= 5 s)")


if __name__ == "__main__":
    main()
