"""The README's main job measured as hpcx runs it now, against the way it ran before.

quick_test is two tiny ViT runs on the CPU. Before resource scheduling, the local executor
started both at once on this 2-core machine, each with torch threads for both cores, and each
measured the other. This script runs, interleaved, ``--rounds`` times:

- **hpcx**: ``hpcx apply manifests/quick_test.yaml`` in a fresh project: the runs hold the
  machine one at a time (vit-pipeline is a measurement);
- **side by side**: the same two runs' workload processes (``python -m hpcx.workloads run``
  on their own spec.json) started together, unpinned: what the old queue did.

It prints each round's throughput per run, the medians, the ratio, whether hpcx's runs
overlapped (they must not), the contention each hpcx run recorded, and the load average.

    .venv/bin/python bench/measurement_isolation.py [--rounds 3] [--tiny]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
HPCX = str(Path(sys.executable).with_name("hpcx"))


def _project(base: Path) -> Path:
    root = base / "proj"
    shutil.copytree(REPO / "manifests" / "bases", root / "manifests" / "bases")
    shutil.copy(REPO / "manifests" / "quick_test.yaml", root / "manifests" / "quick_test.yaml")
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    return root


def _query(root: Path, sql: str) -> list[dict[str, object]]:
    argv = [HPCX, "query", sql, "--format", "json"]
    out = subprocess.run(argv, cwd=root, check=True, capture_output=True, text=True).stdout
    return list(json.loads(out))


def hpcx_round(base: Path) -> tuple[list[float], bool, list[object]]:
    root = _project(base)
    subprocess.run(
        [HPCX, "apply", "manifests/quick_test.yaml", "--yes"],
        cwd=root,
        check=True,
        capture_output=True,
    )
    rows = _query(
        root,
        'SELECT started_at, ended_at, throughput_samples_per_s AS t, '
        '"meta.contention.other_frac" AS other FROM results ORDER BY started_at',
    )
    overlap = str(rows[0]["ended_at"]) > str(rows[1]["started_at"])
    return [float(str(r["t"])) for r in rows], overlap, [r["other"] for r in rows]


def side_by_side_round(base: Path, specs: list[Path]) -> list[float]:
    procs = []
    for i, spec in enumerate(specs):
        run_dir = base / f"sbs{i}"
        run_dir.mkdir()
        env = {**os.environ, "HPCX_METRICS": str(run_dir / "metrics.jsonl")}
        procs.append(
            subprocess.Popen(
                [sys.executable, "-m", "hpcx.workloads", "run", "vit-pipeline", str(spec)],
                env=env,
                stdout=subprocess.DEVNULL,
            )
        )
    for p in procs:
        p.wait()
    out = []
    for i in range(len(specs)):
        for line in (base / f"sbs{i}" / "metrics.jsonl").read_text().splitlines():
            doc = json.loads(line)
            if doc.get("name") == "throughput_samples_per_s":
                out.append(float(doc["value"]))
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--tiny", action="store_true", help="one round (CI runs it so)")
    args = ap.parse_args()
    if args.tiny:
        args.rounds = 1
    print(f"machine: {os.cpu_count()} cores; load before: {os.getloadavg()}")
    hx: list[float] = []
    sb: list[float] = []
    specs: list[Path] = []
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            base = Path(tmp) / f"r{r}"
            base.mkdir()
            tput, overlap, other = hpcx_round(base / "hpcx")
            if not specs:
                specs = sorted((base / "hpcx" / "proj" / "runs").glob("quick-test/*/spec.json"))
                keep = Path(tmp) / "specs"
                keep.mkdir()
                specs = [Path(shutil.copy(s, keep / f"{i}.json")) for i, s in enumerate(specs)]
            sbs = side_by_side_round(base, specs)
            hx += tput
            sb += sbs
            print(
                f"round {r}: hpcx {[round(t) for t in tput]} samples/s (overlap: {overlap}, "
                f"others' share of cores: {other}); side by side {[round(t) for t in sbs]}; "
                f"load {os.getloadavg()[0]:.2f}"
            )
    mh, ms = statistics.median(hx), statistics.median(sb)
    print(f"median samples/s: hpcx {mh:.0f}, side by side {ms:.0f}, ratio {mh / ms:.1f}x")


if __name__ == "__main__":
    main()
