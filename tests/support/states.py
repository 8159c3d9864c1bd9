"""State builders for the query, export and report tests: real DuckDB files made through the
real StateStore API (record_runs, set_status, add_metrics, set_run_meta, record_probe).

"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hpcx.manifest.spec import RunSpec
from hpcx.state.store import StateStore
from support import specs

#: What the compile study's manifest declares (carried in each run's spec extra).
DECLARED_REPORTS = [
    {
        "title": "Compile speed-up by batch size",
        "sql": 'SELECT "params.batch_size" AS batch, "params.compile" AS compiled, '
        "throughput_samples_per_s AS tput FROM results WHERE experiment = 'compile-study'",
        "chart": "line",
        "x": "batch",
        "y": "tput",
        "group": "compiled",
    },
    {"title": "Broken report", "sql": "SELECT nope FROM nowhere", "chart": "bar", "x": "a"},
]


def make_spec(
    experiment: str,
    index: int,
    params: dict[str, Any],
    *,
    workload: str = "vit-pipeline",
    tags: tuple[str, ...] = ("vit",),
    **kw: Any,
) -> RunSpec:
    """A run of the ViT workload on one GPU for an hour (the query and report tests' shape)."""
    return specs.make_spec(
        experiment,
        index,
        params,
        workload=workload,
        tags=tags,
        resources={"gpus": 1, "time": "01:00:00"},
        **kw,
    )


def vit_params(
    depth: int, dim: int, compile_: bool = False, batch_size: int = 32
) -> dict[str, Any]:
    return {
        "model": {"depth": depth, "dim": dim, "heads": 8, "patch_size": 32},
        "batch_size": batch_size,
        "compile": compile_,
        "device": "cuda",
    }


def throughput(depth: int, dim: int, compile_: bool, numa_local: bool, repeat: int) -> float:
    """A made-up but plausible throughput model: deeper/wider is slower, compile and local
    memory help, repeats jitter by a few percent."""
    base = 9.0e5 / (depth * dim**0.9)
    base *= 1.25 if compile_ else 1.0
    base *= 1.0 if numa_local else 0.82
    return base * (1.0 + 0.03 * ((repeat * 7919) % 5 - 2) / 2)


def build_state(path: Path) -> dict[str, Any]:
    """Three experiments: a scaling sweep (depth x dim, 2 repeats), a NUMA study (gpu x numa,
    3 repeats) and a compile study (compile x batch); a few runs failed or still pending; a
    probe of the node. Returns what the tests check against."""
    specs: list[RunSpec] = []
    scaling = []
    i = 0
    for depth in (2, 4, 8):
        for dim in (128, 256, 512):
            for rep in (0, 1):
                s = make_spec(
                    "scaling-study",
                    i,
                    vit_params(depth, dim),
                    repeat=rep,
                    placement={"gpus": [0], "numa": "local-to-gpu"},
                )
                scaling.append((s, depth, dim, rep))
                specs.append(s)
                i += 1
    numa = []
    for gpu in (0, 1):
        for node in (0, 1):
            for rep in range(3):
                s = make_spec(
                    "numa-study",
                    i,
                    vit_params(6, 512),
                    repeat=rep,
                    placement={"gpus": [gpu], "numa": node},
                    tags=("vit", "numa"),
                )
                numa.append((s, gpu, node, rep))
                specs.append(s)
                i += 1
    comp = []
    for c in (False, True):
        for bs in (8, 16, 32):
            s = make_spec(
                "compile-study",
                i,
                vit_params(6, 512, c, bs),
                seed=0,
                placement={"gpus": [0]},
                tags=("vit", "compile"),
                extra={"reports": DECLARED_REPORTS},
            )
            comp.append((s, c, bs))
            specs.append(s)
            i += 1
    # The probe says GPU 0 hangs off NUMA node 0 and GPU 1 off node 1.
    gpu_node = {0: 0, 1: 1}
    with StateStore.open(path) as store:
        store.record_runs(specs)
        ok: list[str] = []
        rows: list[tuple[Any, ...]] = []
        for s, depth, dim, rep in scaling:
            ok.append(s.run_id)
            for step in range(3):
                # throughput climbs over the steps; the final (step 2) value is the result.
                rows.append(
                    (
                        s.run_id,
                        "throughput_samples_per_s",
                        step,
                        throughput(depth, dim, False, True, rep) * (0.5 + step / 4),
                        1.7e9 + step,
                    )
                )
            rows.append((s.run_id, "latency_ms_p50", None, 1000.0 * depth * dim / 1e5, 1.7e9))
        for s, gpu, node, rep in numa:
            ok.append(s.run_id)
            rows.append(
                (
                    s.run_id,
                    "throughput_samples_per_s",
                    None,
                    throughput(6, 512, False, gpu_node[gpu] == node, rep),
                    1.7e9,
                )
            )
            rows.append(
                (s.run_id, "h2d_gbps", None, 24.0 if gpu_node[gpu] == node else 17.5, 1.7e9)
            )
        for s, c, bs in comp:
            ok.append(s.run_id)
            rows.append(
                (
                    s.run_id,
                    "throughput_samples_per_s",
                    None,
                    throughput(6, 512, c, True, 0) * (bs / 32) ** 0.2,
                    1.7e9,
                )
            )
        failed = [scaling[-1][0].run_id]
        ok.remove(failed[0])
        store.set_status(
            ok,
            "succeeded",
            event="finished",
            fields={"host": "gpu-node-01", "job_id": "4242", "numa_node": 0},
        )
        store.set_status(failed, "failed", event="finished", fields={"exit_code": 1})
        store.add_metrics([r for r in rows if r[0] != failed[0]])
        with store.transaction() as tx:
            tx.set_run_meta(specs[0].run_id, {"git_commit": "abc1234", "description": "first"})
        store.record_probe(
            {
                "host": "gpu-node-01",
                "source": "live",
                "gpus": [
                    {"index": 0, "name": "H100", "numa_node": 0, "bdf": "0000:17:00.0"},
                    {"index": 1, "name": "H100", "numa_node": 1, "bdf": "0000:b1:00.0"},
                ],
                "topology": {"nodes": [{"id": 0}, {"id": 1}]},
                "duration_s": 1.5,
            }
        )
    return {
        "runs": len(specs),
        "scaling": scaling,
        "numa": numa,
        "compile": comp,
        "failed": failed,
        "first": specs[0].run_id,
    }
