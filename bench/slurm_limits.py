"""A sweep far larger than the scheduler lets one user submit, finishing through top-ups
(issue 14): N runs of ``true`` against a QOS with ``MaxSubmitJobsPerUser=L`` on a private
one-node cluster with accounting (tests/support/slurm.py AccountingSlurmCluster: slurmdbd over
a private MariaDB). Needs root, slurm-wlm, munge, slurmdbd and mariadb-server.

``hpcx apply`` submits what fits and records the rest ``queued``; ``hpcx refresh`` in a loop
harvests and tops up until every run succeeded. Meanwhile a sampler counts the user's pending
and running jobs every 0.2 s (``squeue``, not counted below) to check the controller never
held more than the limit. Every SLURM command hpcx ran is counted through a folder of
wrappers first on PATH (tests/support/slurm.py command_shims): sbatch, squeue, sacct,
sacctmgr, scontrol, with how many sbatch calls the scheduler refused (must be 0).

    PYTHONPATH=. .venv/bin/python bench/slurm_limits.py                 # 10,000 runs, limit 1,000
    PYTHONPATH=. .venv/bin/python bench/slurm_limits.py --runs 1000 --limit 100
    PYTHONPATH=. .venv/bin/python bench/slurm_limits.py --tiny          # 40 runs, limit 10

``--cpus C`` declares C CPUs on the node (SlurmdParameters=config_overrides), so C jobs run
at once on a small machine (each is a ``python -m hpcx.job`` wrapper around ``true``).
Prints one JSON document; exits 1 when a run did not succeed, a run went out twice, an sbatch
was refused, or the queue went over the limit.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from support.projects import make_project
from support.slurm import AccountingSlurmCluster, command_shims, shim_calls

ROOT = Path(__file__).resolve().parents[1]


def _manifest(n: int) -> str:
    spec = {
        "command": ["true"],
        "params": {"i": 0},
        "sweep": {"grid": {"i": list(range(n))}},
        "executor": {"type": "slurm"},
        "resources": {"partition": "debug", "cpus": 1, "time": "00:05:00"},
    }
    doc = {"apiVersion": "hpcx/v1", "kind": "Experiment", "metadata": {"name": "big"}, "spec": spec}
    return json.dumps(doc, indent=2) + "\n"


class Sampler(threading.Thread):
    """The user's jobs pending or running (array tasks one each), every ``every`` seconds."""

    def __init__(self, env: dict[str, str], every: float = 0.2) -> None:
        super().__init__(daemon=True)
        self.env, self.every = env, every
        self.stop = threading.Event()
        self.peak = 0
        self.samples = 0

    def run(self) -> None:
        argv = ["squeue", "-h", "-r", f"--user={os.getuid()}", "-t", "PD,R,CG,CF,S", "-o", "%i"]
        while not self.stop.is_set():
            out = subprocess.run(argv, env=self.env, capture_output=True, text=True, check=False)
            if out.returncode == 0:
                self.peak = max(self.peak, sum(1 for ln in out.stdout.splitlines() if ln.strip()))
                self.samples += 1
            self.stop.wait(self.every)


def _state(root: Path) -> list[tuple[str, str, int]]:
    import duckdb

    con = duckdb.connect(str(root / ".hpcx" / "state.duckdb"), read_only=True)
    try:
        rows = con.execute("SELECT run_id, status, attempts FROM runs").fetchall()
        return [(str(r[0]), str(r[1]), int(r[2])) for r in rows]
    finally:
        con.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=10_000)
    ap.add_argument("--limit", type=int, default=1_000)
    ap.add_argument("--cpus", type=int, default=None, help="CPUs declared on the node")
    ap.add_argument("--timeout", type=float, default=7200.0, help="seconds before giving up")
    ap.add_argument("--interval", type=float, default=1.0, help="seconds between refreshes")
    ap.add_argument("--tiny", action="store_true", help="40 runs against a limit of 10")
    ap.add_argument("--keep", action="store_true", help="keep the work folder (cluster, runs)")
    args = ap.parse_args()
    if args.tiny:
        args.runs, args.limit, args.timeout = 40, 10, 300.0
    work = Path(tempfile.mkdtemp(prefix="hpcx-bench-limits-"))
    conf: dict[str, object] = {
        "MaxJobCount": max(10_000, 3 * args.runs),
        "MinJobAge": 10,
        "MaxArraySize": 1001,
    }
    cluster = AccountingSlurmCluster(work / "slurm", max_submit=args.limit, **conf)
    if args.cpus:
        cluster.cpus = args.cpus
        cluster.conf["SlurmdParameters"] = "config_overrides"
    log = work / "calls.log"
    shims = command_shims(work / "shims", log)
    started = time.monotonic()
    with cluster:
        start_s = time.monotonic() - started
        env = dict(cluster.env)
        env["PATH"] = f"{shims}{os.pathsep}{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
        env["PYTHONPATH"] = str(ROOT) + (
            os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else ""
        )
        root = make_project(work / "proj", {"big": _manifest(args.runs)})
        hpcx = [sys.executable, "-m", "hpcx"]
        sampler = Sampler(cluster.env)
        sampler.start()
        t0 = time.monotonic()
        first = subprocess.run(
            [*hpcx, "apply", "--yes", "--json"], cwd=root, env=env, capture_output=True, text=True
        )
        if first.returncode != 0:
            print(first.stdout[-2000:], first.stderr[-2000:], file=sys.stderr)
            return 1
        applied = json.loads(first.stdout)
        apply_s = time.monotonic() - t0
        refreshes = 0
        deadline = t0 + args.timeout
        statuses: dict[str, int] = {}
        while time.monotonic() < deadline:
            proc = subprocess.run(
                [*hpcx, "refresh", "--json"], cwd=root, env=env, capture_output=True, text=True
            )
            refreshes += 1
            if proc.returncode != 0:
                print(f"refresh failed: {proc.stderr[-1000:]}", file=sys.stderr)
            rows = _state(root)
            statuses = {}
            for _, status, _ in rows:
                statuses[status] = statuses.get(status, 0) + 1
            if statuses.get("succeeded", 0) == args.runs:
                break
            time.sleep(args.interval)
        wall = time.monotonic() - t0
        sampler.stop.set()
        sampler.join()
        rows = _state(root)
    calls = shim_calls(log)
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    count: dict[str, int] = {}
    for name, _, _ in calls:
        count[name] = count.get(name, 0) + 1
    refused = [a for name, rc, a in calls if name == "sbatch" and rc != 0]
    twice = [rid for rid, _, attempts in rows if attempts != 1]
    result = {
        "runs": args.runs,
        "limit": args.limit,
        "cpus": cluster.cpus,
        "cluster_start_s": round(start_s, 1),
        "first_apply": {
            "submitted": applied.get("submitted"),
            "queued": applied.get("queued"),
            "seconds": round(apply_s, 2),
        },
        "wall_s": round(wall, 1),
        "runs_per_s": round(args.runs / wall, 2) if wall else None,
        "refreshes": refreshes,
        "statuses": statuses,
        "calls": count,
        "calls_per_run": {k: round(v / args.runs, 4) for k, v in sorted(count.items())},
        "sbatch_refused": len(refused),
        "runs_not_once": len(twice),
        "peak_in_queue": sampler.peak,
        "queue_samples": sampler.samples,
        "loadavg": Path("/proc/loadavg").read_text().split()[:3],
    }
    print(json.dumps(result, indent=2))
    problems = [
        f"{args.runs - statuses.get('succeeded', 0)} of {args.runs} runs not succeeded after "
        f"{wall:.0f}s: {statuses}"
    ] * (statuses.get("succeeded", 0) != args.runs)
    problems += [f"{len(refused)} sbatch refused"] * bool(refused)
    problems += [f"{len(twice)} runs not run exactly once"] * bool(twice)
    problems += [f"the queue peaked at {sampler.peak} > {args.limit}"] * (sampler.peak > args.limit)
    for p in problems:
        print(p, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
