"""Time to submit N runs as job arrays to a real one-node SLURM cluster (default 10,000).

Starts a private cluster (tests/executors/slurm_cluster.py) with MaxJobCount raised above N,
then measures prepare (run folders + spec.json) and submit (tasks files, scripts, sbatch per
array) up to the last job id recorded. Target: 10,000 runs <= 10 s. The jobs are cancelled
before they run. Needs root, slurm-wlm and munge.

    .venv/bin/python bench/slurm_submit.py [N ...]
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "executors"))

from executor_helpers import make_spec
from slurm_cluster import SlurmCluster

from hpcx.executors import new_key
from hpcx.executors.slurm import SlurmExecutor


def main() -> None:
    sizes = [int(a) for a in sys.argv[1:]] or [1000, 2000, 10000]
    with (
        tempfile.TemporaryDirectory() as tmp,
        SlurmCluster(Path(tmp) / "cluster", MaxJobCount=max(sizes) * 3 + 100) as cluster,
    ):
        os.environ["SLURM_CONF"] = cluster.env["SLURM_CONF"]
        # Keep the node from starting the jobs while we measure.
        cluster.run("scontrol", "update", f"NodeName={cluster.host}", "State=DRAIN", "Reason=bench")
        for n in sizes:
            root = Path(tmp) / f"runs-{n}"
            ex = SlurmExecutor()
            specs = [make_spec(["true"], index=i, experiment="bench") for i in range(n)]
            key = new_key()
            t0 = time.perf_counter()
            dirs = ex.prepare(specs, root, key=key)
            t1 = time.perf_counter()
            sub = ex.submit(key, dirs)
            t2 = time.perf_counter()
            print(
                f"runs={n:6d} arrays={len(sub.job_ids):3d} prepare={t1 - t0:6.2f}s "
                f"submit={t2 - t1:6.2f}s total={t2 - t0:6.2f}s (target 10,000 <= 10 s)",
                flush=True,
            )
            cluster.run("scancel", *sub.job_ids, check=False)


if __name__ == "__main__":
    main()
