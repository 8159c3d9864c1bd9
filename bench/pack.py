"""Packing small runs (issue 14): N runs of 1 s each, packed by P (``executor.pack: P``),
against one job per run, on a real one-node SLURM cluster (tests/support/slurm.py).

The bench cluster's node is given more CPUs than the machine has (``--cpus``, default 32,
with ``SlurmdParameters=config_overrides``): the runs sleep, so what is measured is the
scheduler's and hpcx's cost per job, not the machine's cores. Each round is a fresh project:
``hpcx apply --yes`` of the sweep, then the wall time until every run folder says
``succeeded`` (read from the folders every 0.2 s; one ``hpcx refresh`` afterwards checks the
state agrees, outside the timing). Rounds are interleaved (packed, unpacked, packed, ...) and
each line prints the load beside it. Needs root, slurm-wlm and munge.

    PYTHONPATH=. .venv/bin/python bench/pack.py [--runs 1000] [--pack 50] [--rounds 2]
    PYTHONPATH=. .venv/bin/python bench/pack.py --tiny     # 40 runs by 10, one round each
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from support.projects import make_project
from support.slurm import SlurmCluster

ROOT = Path(__file__).resolve().parents[1]


def _manifest(n: int, pack: int) -> str:
    executor: dict[str, object] = {"type": "slurm"}
    if pack > 1:
        executor["pack"] = pack
    spec = {
        "command": ["sleep", "1"],
        "params": {"i": 0},
        "sweep": {"grid": {"i": list(range(n))}},
        "executor": executor,
        "resources": {"partition": "debug", "cpus": 1, "time": "00:02:00"},
    }
    doc = {"apiVersion": "hpcx/v1", "kind": "Experiment", "metadata": {"name": "p"}, "spec": spec}
    return json.dumps(doc) + "\n"


def _load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


class Bench:
    def __init__(self, tmp: Path, cluster: SlurmCluster) -> None:
        self.tmp = tmp
        self.cluster = cluster
        self.env = dict(cluster.env)
        self.env["PYTHONPATH"] = str(ROOT) + (
            os.pathsep + self.env["PYTHONPATH"] if self.env.get("PYTHONPATH") else ""
        )
        self.hpcx = str(Path(sys.executable).parent / "hpcx")
        self.count = 0

    def _hpcx(self, root: Path, *args: str) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [self.hpcx, *args], cwd=root, env=self.env, capture_output=True, text=True, check=False
        )
        if proc.returncode != 0:
            raise SystemExit(f"hpcx {' '.join(args)} failed: {proc.stderr[-2000:]}")
        return proc

    def round(self, n: int, pack: int, limit: float) -> tuple[float, float, int, int]:
        """(seconds to all submitted, seconds to all finished, sbatch calls, jobs)."""
        self.count += 1
        root = make_project(self.tmp / f"proj-{self.count}", {"p": _manifest(n, pack)})
        t0 = time.perf_counter()
        doc = json.loads(self._hpcx(root, "apply", "--yes", "--json").stdout)
        submitted = time.perf_counter() - t0
        sbatches = sum(len(s["job_ids"]) for s in doc["submissions"])
        # A job makes its runs' folders when it starts: the folders its submissions name.
        folders = [
            Path(path)
            for key in (s["key"] for s in doc["submissions"])
            for c in json.loads(
                (root / "runs" / ".submissions" / key / "submission.json").read_text()
            )["chunks"]
            for _, path, _ in c["runs"]
        ]
        assert len(set(folders)) == n, len(folders)
        left = set(folders)
        deadline = time.monotonic() + limit
        while left:
            for f in list(left):
                try:
                    state = json.loads((f / "status.json").read_text()).get("state")
                except (OSError, ValueError):
                    continue
                if state == "succeeded":
                    left.discard(f)
                elif state in ("failed", "cancelled", "timeout"):
                    raise SystemExit(f"run {f.name} ended {state}")
            if time.monotonic() > deadline:
                raise SystemExit(f"{len(left)} of {n} runs not finished after {limit:.0f}s")
            time.sleep(0.2)
        took = time.perf_counter() - t0
        self._hpcx(root, "refresh")
        status = json.loads(self._hpcx(root, "status", "--json").stdout)
        rows = status["runs"] if isinstance(status, dict) and "runs" in status else status
        jobs = len({r["job_id"] for r in rows})
        bad = [r for r in rows if r["status"] != "succeeded"]
        assert not bad and len(rows) == n, (len(rows), bad[:3])
        return submitted, took, sbatches, jobs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=1000)
    ap.add_argument("--pack", type=int, default=50)
    ap.add_argument("--rounds", type=int, default=2, help="rounds of each, interleaved")
    ap.add_argument("--cpus", type=int, default=32, help="CPUs the bench node says it has")
    ap.add_argument("--tiny", action="store_true", help="40 runs by 10, one round each (CI)")
    args = ap.parse_args()
    n, pack, rounds = (40, 10, 1) if args.tiny else (args.runs, args.pack, args.rounds)
    limit = 120.0 + 2.0 * n  # generous: a stuck sweep ends the bench, it does not hang it
    with tempfile.TemporaryDirectory() as tmp:
        cluster = SlurmCluster(
            Path(tmp) / "cluster",
            MaxJobCount=n * 4 * rounds + 1000,
            MinJobAge=30,
            SlurmdParameters="config_overrides",
        )
        cluster.cpus = args.cpus  # the runs sleep: room for many at once
        with cluster:
            _bench(Path(tmp), cluster, n, pack, rounds, args.cpus, limit)


def _bench(
    tmp: Path, cluster: SlurmCluster, n: int, pack: int, rounds: int, cpus: int, limit: float
) -> None:
    bench = Bench(tmp, cluster)
    print(
        f"runs={n} of 1 s, pack={pack}, rounds={rounds} each, node CPUs={cpus} "
        f"(machine: {os.cpu_count()}); load={_load()}",
        flush=True,
    )
    got: dict[str, list[tuple[float, float, int, int]]] = {"packed": [], "unpacked": []}
    for r in range(rounds):
        for label, p in (("packed", pack), ("unpacked", 1)):
            res = bench.round(n, p, limit)
            got[label].append(res)
            sub, took, sbatches, jobs = res
            print(
                f"round {r + 1} {label:8s}: all finished {took:7.2f}s (submitted in "
                f"{sub:5.2f}s), sbatch calls {sbatches}, jobs {jobs} load={_load()}",
                flush=True,
            )
    med = statistics.median
    a = med(t for _, t, _, _ in got["packed"])
    b = med(t for _, t, _, _ in got["unpacked"])
    print(
        f"median wall to all finished: packed {a:.2f}s ({got['packed'][0][3]} jobs), "
        f"unpacked {b:.2f}s ({got['unpacked'][0][3]} jobs): unpacked/packed {b / a:.2f}x "
        f"load={_load()}",
        flush=True,
    )


if __name__ == "__main__":
    main()
