"""Harvest (``hpcx refresh``) of N finished runs, side by side with two baselines on the same files.

Issue 5's figures: harvesting 100,000 finished runs' files (status and a few metrics each) in at
most twice what merely reading the same files takes (``cat`` them all), and no slower than the
seed's own approach (a Python loop of ``json.load`` per run into a pandas DataFrame, then CSV);
issue 4's: ``hpcx refresh`` of 10,000 runs in at most 3 s.

Usage: python bench/harvest.py [N] (default 10000; 100000 takes a few minutes to set up).
The state and the run folders are made through hpcx's own API (a real local submission whose
queue "ran"), then each contender runs on a cold-ish page cache (files were just written, so
all three read from memory: the comparison is of the work, not the disk).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from hpcx.manifest.spec import RunSpec
from hpcx.run.executors.base import Submission
from hpcx.run.harvest import refresh
from hpcx.state.store import StateStore
from hpcx.state.writer import Writer
from hpcx.util.proc import utcnow

METRICS = ("loss", "accuracy", "throughput", "latency_ms")


def make_spec(i: int) -> RunSpec:
    rid = f"{i:016x}"
    return RunSpec(
        experiment="bench",
        run_id=rid,
        base_id=rid,
        index=i,
        identity={"i": i},
        params={"i": i, "lr": 0.001 * (i % 7)},
        workload="noop",
        command=None,
        env={},
        cwd=None,
        placement={},
        seed=None,
        repeat=0,
        resources={},
        executor={"type": "local"},
        retries=0,
        tags=(),
        overrides=(),
        source="bench.yaml",
        settings_digest="0",
    )


def setup(n: int, root: Path) -> Path:
    state = root / ".hpcx" / "state.duckdb"
    runs_root = root / "runs"
    specs = [make_spec(i) for i in range(n)]
    key = "20260101T000000-bench"
    run_dirs: dict[str, str] = {}
    for s in specs:
        d = runs_root / "bench" / s.run_id
        d.mkdir(parents=True)
        (d / "spec.json").write_text(json.dumps({"run_id": s.run_id, "attempt": 1}))
        now = utcnow()
        (d / "status.json").write_text(
            json.dumps(
                {
                    "state": "succeeded",
                    "run_id": s.run_id,
                    "attempt": 1,
                    "host": "bench",
                    "exit_code": 0,
                    "started_at": now,
                    "ended_at": now,
                    "duration_s": 1.0,
                }
            )
        )
        with open(d / "metrics.jsonl", "w") as f:
            for step in range(3):
                for m in METRICS:
                    f.write(json.dumps({"name": m, "value": step * 0.5 + 1, "step": step}) + "\n")
        run_dirs[s.run_id] = str(d)
    sub = Submission(
        key=key,
        executor="local",
        job_ids=("bench:1",),
        run_ids=tuple(run_dirs),
        run_jobs={r: "bench:1" for r in run_dirs},
        run_dirs=run_dirs,
        folder=str(runs_root / ".submissions" / key),
        submitted_at=utcnow(),
    )
    with StateStore.open(state) as store, store.transaction() as tx:
        tx.record_runs(specs, status="pending", submission_key=key, executor="local")
        tx.record_submission(
            key,
            executor="local",
            state="submitted",
            run_ids=list(run_dirs),
            job_ids=["bench:1"],
            detail={"submission": sub.to_json()},
        )
        tx.update_runs(
            [
                {"run_id": r, "status": "submitted", "run_dir": d, "job_id": "bench:1"}
                for r, d in run_dirs.items()
            ],
            event="submitted",
        )
    return state


def time_cat(runs_root: Path) -> float:
    t0 = time.perf_counter()
    subprocess.run(
        f"find {runs_root}/bench -name '*.json*' -print0 | xargs -0 cat > /dev/null",
        shell=True,
        check=True,
    )
    return time.perf_counter() - t0


def time_seed_approach(runs_root: Path, out: Path) -> tuple[float, str]:
    """The seed's harvest: json.load per run, one record per run, a DataFrame, then CSV."""
    t0 = time.perf_counter()
    records = []
    for d in sorted((runs_root / "bench").iterdir()):
        with open(d / "status.json") as f:
            status = json.load(f)
        rec = {"exp_id": d.name, "status": status["state"]}
        with open(d / "metrics.jsonl") as f:
            for line in f:
                m = json.loads(line)
                rec[m["name"]] = m["value"]
        records.append(rec)
    try:
        import pandas as pd

        pd.DataFrame(records).to_csv(out, index=False)
        how = "pandas"
    except ImportError:
        import csv

        with open(out, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(records[0]))
            w.writeheader()
            w.writerows(records)
        how = "csv module (pandas not installed)"
    return time.perf_counter() - t0, how


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    with tempfile.TemporaryDirectory(prefix="hpcx-bench-harvest-") as tmp:
        root = Path(tmp)
        t0 = time.perf_counter()
        state = setup(n, root)
        print(f"setup: {n:,} finished runs in {time.perf_counter() - t0:.1f} s")
        cat_s = time_cat(root / "runs")
        seed_s, how = time_seed_approach(root / "runs", root / "seed.csv")
        # The lock only: the check and backup `hpcx refresh` does first are not what is timed.
        with Writer(state, "bench refresh", pre_write="none") as writer:
            t0 = time.perf_counter()
            result = refresh(writer, runs_root=root / "runs")
            hpcx_s = time.perf_counter() - t0
            assert result.finished == n, result.to_dict()
            assert result.metrics == n * len(METRICS) * 3
            t0 = time.perf_counter()
            again = refresh(writer, runs_root=root / "runs")
            second_s = time.perf_counter() - t0
        assert again.changed == 0 and again.metrics == 0
        print(f"cat of every status and metrics file:   {cat_s:7.2f} s")
        print(f"seed approach (json.load loop, {how}): {seed_s:7.2f} s")
        print(
            f"hpcx refresh (poll + validate + ingest): {hpcx_s:7.2f} s"
            f"  = {hpcx_s / cat_s:.2f}x cat (target <= 2), "
            f"{hpcx_s / seed_s:.2f}x seed (target <= 1)"
        )
        print(f"second refresh (nothing in flight):      {second_s:7.2f} s")
        print(f"machine: {os.cpu_count()} cpus, load {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
