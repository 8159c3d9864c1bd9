"""Time to submit N runs as job arrays to a real one-node SLURM cluster (default 10,000).

Starts a private cluster (tests/support/slurm.py) with MaxJobCount raised above N,
then measures prepare (run folders + spec.json) and submit (tasks files, scripts, sbatch per
array) up to the last job id recorded. Target: 10,000 runs <= 10 s. The jobs are cancelled
before they run. Needs root, slurm-wlm and munge.

Side by side, when submitit is importable (`pip install submitit`; not a dependency):
submitit's `executor.batch()` on the same sizes, timed the same way (start to the last job id),
which fails above the cluster's MaxArraySize (1001 by default) where hpcx splits the array.

    .venv/bin/python bench/slurm_submit.py [N ...]
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from support.slurm import SlurmCluster
from support.specs import command_spec as make_spec

from hpcx.run.executors import new_key
from hpcx.run.executors.slurm import SlurmExecutor


def _noop(i: int) -> int:
    return i


def submitit_batch(n: int, folder: Path, cluster: SlurmCluster) -> str:
    """submitit's executor.batch() of n jobs: the time to the last job id, or its error."""
    try:
        import submitit
    except ImportError:
        return "submitit not installed"
    ex = submitit.AutoExecutor(folder=folder, cluster="slurm")
    ex.update_parameters(slurm_partition="debug", timeout_min=5)
    t0 = time.perf_counter()
    try:
        with ex.batch():
            jobs = [ex.submit(_noop, i) for i in range(n)]
        ids = [j.job_id for j in jobs]
    except Exception as exc:  # what a user of submitit would see
        return f"FAILED after {time.perf_counter() - t0:.2f}s: {str(exc).splitlines()[0][:90]}"
    took = time.perf_counter() - t0
    cluster.run("scancel", *{i.split("_")[0] for i in ids}, check=False)
    return f"{took:6.2f}s ({len(ids)} job ids)"


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
            print(
                f"           submitit executor.batch(): {submitit_batch(n, root / 'sub', cluster)}"
            )


if __name__ == "__main__":
    main()
