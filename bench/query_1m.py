"""An aggregating query over 1,000,000 metric rows inside the query engine (target <= 0.3 s),
side by side with pandas doing the same from the CSV export of the metrics.

    .venv/bin/python bench/query_1m.py [--rows 1000000] [--runs 10000]
    .venv/bin/python bench/query_1m.py --tiny     # 20,000 rows over 200 runs (< 20 s)

The whole ``hpcx query`` process against its floor (a bare duckdb process) is in
``bench/cli_floor.py``; this one times the query inside an open session.

The state is built through the real StateStore (record_runs, add_metrics). Process start and
the session's opening are reported apart from the query. pandas is optional: without it the
comparison is skipped with a message. Without touching .venv:
``pip install --no-deps --target /tmp/pdlib pandas python-dateutil pytz`` and run with
``PYTHONPATH=/tmp/pdlib`` (numpy is already in .venv).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

SQL = """SELECT experiment, name, count(*) AS n, avg(value) AS mean, min(value) AS lo,
       max(value) AS hi, stddev_samp(value) AS sd
FROM metrics GROUP BY experiment, name ORDER BY experiment, name"""


def build(path: Path, runs: int, rows: int) -> None:
    from support.states import make_spec, vit_params

    from hpcx.state.store import StateStore

    specs = [
        make_spec(f"exp{i % 4}", i, vit_params(2 + i % 8, 64 * (1 + i % 5)), repeat=i // 40)
        for i in range(runs)
    ]
    names = ["throughput_samples_per_s", "latency_ms_p50", "h2d_gbps", "loss", "peak_mem_bytes"]
    per_run = rows // runs
    with StateStore.open(path) as store:
        store.record_runs(specs)
        batch = []
        for i, s in enumerate(specs):
            for k in range(per_run):
                batch.append((s.run_id, names[k % 5], k // 5, float((i * 31 + k) % 997), 1.7e9 + k))
        store.add_metrics(batch)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=10_000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--tiny", action="store_true", help="20,000 rows over 200 runs")
    args = ap.parse_args()
    if args.tiny:
        args.rows, args.runs, args.repeat = 20_000, 200, 3
    from hpcx.results.query import QuerySession

    with tempfile.TemporaryDirectory() as tmp:
        state = Path(tmp) / "state.duckdb"
        t = time.perf_counter()
        build(state, args.runs, args.rows)
        print(
            f"built state: {args.rows:,} metric rows, {args.runs:,} runs "
            f"in {time.perf_counter() - t:.1f} s"
        )
        t = time.perf_counter()
        session = QuerySession.open(state)
        open_s = time.perf_counter() - t
        times = []
        for _ in range(args.repeat):
            t = time.perf_counter()
            result = session.query(SQL)
            times.append(time.perf_counter() - t)
        csv_path = Path(tmp) / "metrics.csv"
        from hpcx.results.query import write_csv_file

        write_csv_file(session.query("SELECT * FROM metrics"), csv_path)
        session.close()
        best, med = min(times), statistics.median(times)
        verdict = "OK" if med <= 0.3 else "OVER"
        print(
            f"hpcx query: open {open_s:.3f} s; query median {med:.3f} s, best {best:.3f} s "
            f"over {args.repeat} ({len(result.rows)} groups) -> {verdict} (target <= 0.3 s)"
        )
        try:
            import pandas as pd
        except ImportError:
            print("pandas: not installed; skipped (pip install pandas to compare)")
            return
        t = time.perf_counter()
        df = pd.read_csv(csv_path)
        load_s = time.perf_counter() - t
        ptimes = []
        for _ in range(args.repeat):
            t = time.perf_counter()
            df.groupby(["experiment", "name"])["value"].agg(["count", "mean", "min", "max", "std"])
            ptimes.append(time.perf_counter() - t)
        print(
            f"pandas: read_csv {load_s:.3f} s; groupby median {statistics.median(ptimes):.3f} s "
            f"(read + groupby {load_s + statistics.median(ptimes):.3f} s)"
        )


if __name__ == "__main__":
    main()
