"""How fast manifests validate and sweeps expand.

    .venv/bin/python bench/validate_speed.py

1. ``hpcx validate manifests/quick_test.yaml`` as a fresh process (imports included): the
   issue's target is under 0.5 s.
2. Loading and expanding a 100,000-run sweep (3 axes) into RunSpecs with run ids, in process:
   the planner's budget for a whole ``hpcx plan`` of 100k runs is 2 s, so this should stay
   well under 1 s.

Wall and CPU time are both printed: on a shared machine wall time includes waiting for a core.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
HPCX = [sys.executable, "-m", "hpcx"]

BIG = """apiVersion: hpcx/v1
kind: Experiment
metadata: {name: big}
spec:
  workload: vit-pipeline
  params:
    model: {image_size: 224, patch_size: 32, num_classes: 1000, dim: 512, depth: 6, heads: 8,
            mlp_dim: 2048}
    batch_size: 32
    num_samples: 1000
    warmup_batches: 3
    compile: false
    device: cuda
    dtype: float32
    pinned: true
    lr: 0.1
  placement: {numa: 0, gpus: [0]}
  sweep:
    grid:
      model.depth: {start: 0, stop: 100}
      model.dim: {start: 0, stop: 100}
      lr: [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]
"""


def bench_cli(repeats: int = 7) -> None:
    walls = []
    for _ in range(repeats):
        t = time.perf_counter()
        proc = subprocess.run(
            [*HPCX, "validate", "-q", "manifests/quick_test.yaml"], cwd=REPO, capture_output=True
        )
        walls.append(time.perf_counter() - t)
        assert proc.returncode == 0, proc.stderr
    print(
        f"hpcx validate quick_test.yaml (process): median {statistics.median(walls):.3f} s, "
        f"min {min(walls):.3f} s  (target < 0.5 s)"
    )


def bench_expand(repeats: int = 5) -> None:
    from hpcx.manifest.loader import load_desired

    with tempfile.TemporaryDirectory() as d:
        f = Path(d) / "big.yaml"
        f.write_text(BIG)
        load_desired([f])  # warm imports and the schema
        walls, cpus = [], []
        for _ in range(repeats):
            t, c = time.perf_counter(), time.process_time()
            state = load_desired([f])
            walls.append(time.perf_counter() - t)
            cpus.append(time.process_time() - c)
            assert len(state.runs) == 100_000
    print(
        f"load + expand + hash 100,000 runs: wall median {statistics.median(walls):.3f} s "
        f"(min {min(walls):.3f}), cpu median {statistics.median(cpus):.3f} s "
        f"(min {min(cpus):.3f})"
    )


if __name__ == "__main__":
    bench_cli()
    bench_expand()
