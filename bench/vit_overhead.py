"""How much of a vit-pipeline run is the workload's own overhead, not the model's forward passes.

    .venv/bin/python bench/vit_overhead.py [--sizes quick,base] [--repeats 3] [--json] [--tiny]

For each size the workload runs in-process (as ``python -m hpcx.workloads run`` would, minus
the interpreter start) with ``ViT.forward`` wrapped to sum the time spent inside it, so the
forward time is measured independently of the workload's own clocks:

    overhead = (wall time of vit.run() - time inside ViT.forward) / wall time of vit.run()

It counts everything the workload adds: building the model and batches, the NUMA page query and
native probe, the host-to-device copies and loop bookkeeping, statistics, and writing the meta
line and metrics. The torch import is shown apart (it is the interpreter's, paid once per
process). One full process (``python -m hpcx.workloads run``) is timed too, for sizing runs.

Target (issue 5): overhead under 5% of the run time.
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
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

SIZES: dict[str, dict[str, Any]] = {
    # manifests/quick_test.yaml's larger point (batch 8)
    "quick": {
        "model": {
            "image_size": 32,
            "patch_size": 8,
            "num_classes": 10,
            "dim": 64,
            "depth": 2,
            "heads": 4,
            "mlp_dim": 128,
        },
        "batch_size": 8,
        "num_samples": 64,
        "warmup_batches": 1,
        "device": "cpu",
        "pinned": False,
    },
    # the seed's base ViT (manifests/bases/vit.yaml), fewer samples to stay short on 2 cores
    "base": {
        "model": {
            "image_size": 224,
            "patch_size": 32,
            "num_classes": 1000,
            "dim": 512,
            "depth": 6,
            "heads": 8,
            "mlp_dim": 2048,
        },
        "batch_size": 32,
        "num_samples": 128,
        "warmup_batches": 1,
        "device": "cpu",
        "pinned": True,
    },
}


def in_process(params: dict[str, Any], tmp: Path) -> dict[str, float]:
    import vit_pytorch

    from hpcx.workloads import RunContext, validate_params, vit

    inside = [0.0, 0]
    forward = vit_pytorch.ViT.forward

    def timed_forward(self: Any, img: Any) -> Any:
        t = time.perf_counter()
        try:
            return forward(self, img)
        finally:
            inside[0] += time.perf_counter() - t
            inside[1] += 1

    vit_pytorch.ViT.forward = timed_forward
    try:
        ctx = RunContext(
            "vit-pipeline", validate_params("vit-pipeline", params), seed=0, run_dir=tmp
        )
        t = time.perf_counter()
        summary = vit.run(ctx)
        wall = time.perf_counter() - t
    finally:
        vit_pytorch.ViT.forward = forward
    return {
        "wall_s": wall,
        "forward_s": inside[0],
        "forward_calls": inside[1],
        "overhead_s": wall - inside[0],
        "overhead_frac": (wall - inside[0]) / wall,
        "self_reported_overhead_frac": summary["overhead_frac"],
        "throughput_samples_per_s": summary["throughput_samples_per_s"],
    }


def whole_process(params: dict[str, Any], tmp: Path) -> dict[str, float]:
    spec = tmp / "spec.json"
    spec.write_text(json.dumps({"params": params, "seed": 0, "placement": {}}))
    env = dict(os.environ, HPCX_METRICS=str(tmp / "proc.jsonl"), HPCX_RUN_DIR=str(tmp))
    env["PYTHONPATH"] = str(REPO)
    t = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "hpcx.workloads", "run", "vit-pipeline", str(spec)],
        env=env,
        check=True,
        capture_output=True,
    )
    wall = time.perf_counter() - t
    from hpcx.metrics import read_metrics

    v = {r.name: r.value for r in read_metrics(tmp / "proc.jsonl").rows}
    return {"process_wall_s": wall, "import_s": v["import_s"], "timed_s": v["timed_s"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--sizes", default="quick,base")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--tiny", action="store_true", help="quick size, one repeat (CI runs it so)")
    args = ap.parse_args()
    if args.tiny:
        args.sizes, args.repeats = "quick", 1

    t = time.perf_counter()
    import torch  # noqa: F401  (imported once here, so in-process runs time the workload only)
    import vit_pytorch  # noqa: F401

    import_s = time.perf_counter() - t
    results: dict[str, Any] = {"torch_import_s": import_s}
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        os.environ["HPCX_METRICS"] = str(tmp / "metrics.jsonl")
        for name in args.sizes.split(","):
            params = SIZES[name]
            in_process(params, tmp)  # first run pays one-off costs (kernels, allocator)
            runs = [in_process(params, tmp) for _ in range(args.repeats)]
            proc = whole_process(params, tmp)
            results[name] = {
                "params": params,
                "overhead_frac_median": statistics.median(r["overhead_frac"] for r in runs),
                "overhead_ms_median": statistics.median(r["overhead_s"] for r in runs) * 1e3,
                "run_wall_ms_median": statistics.median(r["wall_s"] for r in runs) * 1e3,
                "runs": runs,
                "process": proc,
            }
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print(f"torch + vit_pytorch import: {import_s:.2f} s (once per process, not counted)")
    for name in args.sizes.split(","):
        r = results[name]
        p = r["process"]
        print(
            f"{name:6s} overhead {r['overhead_frac_median'] * 100:5.1f}% "
            f"({r['overhead_ms_median']:.1f} ms of a {r['run_wall_ms_median']:.0f} ms run; "
            f"median of {args.repeats})  |  whole process {p['process_wall_s']:.2f} s "
            f"(import {p['import_s']:.2f} s, timed loop {p['timed_s'] * 1e3:.0f} ms)"
        )


if __name__ == "__main__":
    main()
