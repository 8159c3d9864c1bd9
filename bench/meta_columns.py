"""What typing the runs view's ``meta.*`` columns costs each query session (issue 16).

The view types a meta key as a number or boolean column when all its values are, which needs
each value's JSON type: ``SELECT key, list(DISTINCT json_type(value)) ... GROUP BY key``
instead of ``SELECT DISTINCT key``. Both over the same in-memory ``run_meta`` of N rows
(10 keys, half numbers), alternated, medians of 5.

    .venv/bin/python bench/meta_columns.py [--rows 1000000] [--tiny]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import duckdb


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--tiny", action="store_true", help="10,000 rows (CI runs it so)")
    args = ap.parse_args()
    n = 10_000 if args.tiny else args.rows
    con = duckdb.connect()
    con.execute("CREATE TABLE run_meta (run_id VARCHAR, key VARCHAR, value JSON, serial BIGINT)")
    con.execute(
        "INSERT INTO run_meta SELECT 'r' || (i // 10), 'k' || (i % 10), (CASE WHEN i % 2 = 0 "
        "THEN (i * 0.5)::VARCHAR ELSE '\"x\"' END)::JSON, 1 FROM range(?) t(i)",
        [n],
    )
    old = "SELECT DISTINCT key FROM run_meta ORDER BY 1"
    new = "SELECT key, list(DISTINCT json_type(value)) FROM run_meta GROUP BY key ORDER BY 1"
    a, b = [], []
    for _ in range(5):
        t = time.perf_counter()
        con.execute(old).fetchall()
        a.append(time.perf_counter() - t)
        t = time.perf_counter()
        con.execute(new).fetchall()
        b.append(time.perf_counter() - t)
    ma, mb = statistics.median(a), statistics.median(b)
    print(
        f"{n:,} run_meta rows: keys only {ma * 1e3:.1f} ms, keys + types {mb * 1e3:.1f} ms "
        f"(+{(mb - ma) * 1e3:.1f} ms, {mb / ma:.1f}x); load {os.getloadavg()[0]:.2f}"
    )


if __name__ == "__main__":
    main()
