"""The state's bulk writes on the apply path, in process (issue 17, statewrites).

What a whole ``hpcx apply`` of N runs writes to the state, timed alone on a fresh state:

* ``record_runs``: the intent's rows (status ``pending``, one ``planned`` event each);
* ``set_run_meta_many``: each run's provenance (16 keys; every run of a manifest shares one
  dict, as apply passes it);
* ``record_submitted``: the job ids and ``submitted`` status of every run;
* ``with_cwd``: apply's making each run's cwd absolute;
* ``open_new``: opening (creating) a new state file and closing it, as a project's first
  apply does (duckdb imported beforehand).

Each phase is timed in a fresh process of this checkout and, with ``--before DIR``, of another
checkout (e.g. ``git archive`` of main with the native module copied in), interleaved
(A, B, A, B, ...); medians, the ratio and the load beside each. The goal it serves: the whole
apply of 10,000 runs <= 5 s and of 1,000 runs <= 1.5x submitit (bench/slurm_submit.py has
the whole figures); here the state's share is shown.

    PYTHONPATH=. python bench/state_writes.py [N ...] [--rounds R] [--before DIR]  # 1000 10000
    PYTHONPATH=. python bench/state_writes.py --tiny                              # 200 runs
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent

WORKER = r"""
import json, sys, tempfile, time
from dataclasses import dataclass, field
from pathlib import Path
from hpcx.manifest.spec import RunSpec
from hpcx.state.store import StateStore
import hpcx.run.apply as apply_mod

n = int(sys.argv[1])
executor = {"kind": "slurm", "partition": "debug", "account": None, "array": True}
resources = {"gpus": 1, "cpus": 4, "mem": "16G", "time": "01:00:00"}
env = {"A": "1"}
placement = {}
specs = []
for i in range(n):
    rid = f"{i:016x}"
    specs.append(RunSpec(
        experiment="exp" + str(i % 2), run_id=rid, base_id="b" + rid, index=i,
        identity={"workload": "train", "params": {"lr": i * 0.001, "seed": i % 10}, "v": 3},
        params={"lr": i * 0.001, "seed": i % 10}, workload="train", command=None, env=env,
        cwd=None if i % 3 else "sub", placement=placement, seed=i % 10, repeat=0,
        resources=resources, executor=executor, retries=1, tags=("a", "b"), overrides=(),
        source="exp.yaml", settings_digest="d" * 16, code_hash=None, extra={},
    ))
metas = [{f"k{j}": (f"value-{j}" if j % 3 else (j if j % 2 else None)) for j in range(16)}
         for _ in range(2)]

@dataclass
class Sub:
    key: str
    executor: str
    job_ids: tuple
    run_ids: tuple
    run_jobs: dict
    run_dirs: dict
    folder: str
    def to_json(self):
        return {"key": self.key, "job_ids": list(self.job_ids)}

with tempfile.TemporaryDirectory() as tmp:
    out = {}
    t = time.perf_counter()
    moved = [apply_mod._with_cwd(s, Path(tmp)) for s in specs]
    out["with_cwd"] = time.perf_counter() - t
    import duckdb  # its import is not the state's opening
    t = time.perf_counter()
    StateStore.open(Path(tmp) / "state.duckdb").close()
    out["open_new"] = time.perf_counter() - t
    store = StateStore.open(Path(tmp) / "state.duckdb")
    t = time.perf_counter()
    with store.transaction() as tx:
        tx.record_runs(specs, status="pending", event="planned", executor="slurm",
                       submission_key="key1")
    out["record_runs"] = time.perf_counter() - t
    t = time.perf_counter()
    with store.transaction() as tx:
        tx.set_run_meta_many({s.run_id: metas[s.index % 2] for s in specs})
    out["set_run_meta_many"] = time.perf_counter() - t
    ids = tuple(s.run_id for s in specs)
    sub = Sub("key1", "slurm", ("100",), ids, {r: f"100_{i}" for i, r in enumerate(ids)},
              {r: f"{tmp}/runs/{r}" for r in ids}, f"{tmp}/runs/.submissions/key1")
    t = time.perf_counter()
    with store.transaction() as tx:
        tx.record_submitted(sub, {"partition": "debug"})
    out["record_submitted"] = time.perf_counter() - t
    store.close()
print(json.dumps(out))
"""

PHASES = ("open_new", "record_runs", "set_run_meta_many", "record_submitted", "with_cwd")


def once(checkout: Path, n: int) -> dict[str, float]:
    env = dict(os.environ, PYTHONPATH=str(checkout))
    with tempfile.TemporaryDirectory() as cwd:  # -c puts the cwd first on sys.path
        out = subprocess.run(
            [sys.executable, "-c", WORKER, str(n)],
            env=env,
            cwd=cwd,
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    result: dict[str, float] = json.loads(out.strip().splitlines()[-1])
    return result


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("sizes", nargs="*", type=int)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--before", type=Path)
    ap.add_argument("--tiny", action="store_true")
    args = ap.parse_args()
    sizes = args.sizes or ([200] if args.tiny else [1000, 10000])
    rounds = 1 if args.tiny else args.rounds
    for n in sizes:
        after: list[dict[str, float]] = []
        before: list[dict[str, float]] = []
        loads: list[float] = []
        for _ in range(rounds):
            if args.before is not None:
                before.append(once(args.before, n))
            after.append(once(HERE, n))
            loads.append(os.getloadavg()[0])
        load = statistics.median(loads)
        total_a = statistics.median(sum(r[p] for p in PHASES) for r in after)
        print(f"N={n} ({rounds} rounds, load {load:.2f})")
        for p in PHASES:
            a = statistics.median(r[p] for r in after)
            if before:
                b = statistics.median(r[p] for r in before)
                print(f"  {p:18s} before {b:7.3f} s  after {a:7.3f} s  ratio {a / b:5.2f}x")
            else:
                print(f"  {p:18s} {a:7.3f} s")
        if before:
            total_b = statistics.median(sum(r[p] for p in PHASES) for r in before)
            print(
                f"  {'total':18s} before {total_b:7.3f} s  after {total_a:7.3f} s  "
                f"ratio {total_a / total_b:5.2f}x"
            )
        else:
            print(f"  {'total':18s} {total_a:7.3f} s")
        print(
            "  (the issue's goals are on the whole apply: 10,000 runs <= 5 s, 1,000 runs <= 1.5x "
            "submitit; bench/slurm_submit.py measures those. This is the state's share.)"
        )


if __name__ == "__main__":
    main()
