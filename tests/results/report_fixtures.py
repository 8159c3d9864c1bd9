"""A state for the report's honesty tests, made through the real StateStore API: noisy repeats,
a run measured under contention (the job wrapper's ``contention.*`` metadata keys), bars spread
over 1000x, per-step learning curves, and a declared report that counts runs per experiment."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from support.states import make_spec

from hpcx.state.store import StateStore

#: Declared in bench-study's spec: its SQL sees every experiment unless the report scopes it.
COUNT_REPORT = {
    "title": "Runs per experiment",
    "sql": "SELECT experiment, count(*) AS n FROM runs GROUP BY 1 ORDER BY 1",
    "chart": "table",
}
#: Declared in tiny-study's spec.
TINY_REPORT = {
    "title": "Tiny variants",
    "sql": 'SELECT "params.variant" AS variant, throughput_samples_per_s AS tput FROM results '
    "WHERE experiment = 'tiny-study'",
    "chart": "bar",
    "x": "variant",
    "y": "tput",
}

# bench-study: throughput by batch size, three repeats each; 16 is noisy (CV 0.32).
BENCH = {8: [100.0, 101.0, 99.0], 16: [200.0, 290.0, 150.0], 32: [400.0, 404.0, 396.0]}
# tiny-study: one run per variant, spread over 10,000x.
TINY = {"a": 50_000.0, "b": 800.0, "c": 5.0}


def build_quality_state(path: Path) -> dict[str, Any]:
    specs = []
    bench: dict[tuple[int, int], str] = {}
    i = 0
    for bs, values in BENCH.items():
        for rep in range(len(values)):
            s = make_spec(
                "bench-study",
                i,
                {"batch_size": bs, "lr": 0.001},
                repeat=rep,
                extra={"reports": [COUNT_REPORT]},
            )
            bench[(bs, rep)] = s.run_id
            specs.append(s)
            i += 1
    tiny: dict[str, str] = {}
    for v in TINY:
        s = make_spec("tiny-study", i, {"variant": v}, extra={"reports": [TINY_REPORT]})
        tiny[v] = s.run_id
        specs.append(s)
        i += 1
    rows: list[tuple[Any, ...]] = []
    for (bs, rep), rid in bench.items():
        rows.append((rid, "throughput_samples_per_s", None, BENCH[bs][rep], 1.7e9))
        # a learning curve: 5 steps of loss per run, going down
        for step in range(5):
            rows.append((rid, "loss", step, 2.0 / (1 + step) + 0.01 * bs + 0.05 * rep, 1.7e9))
    for v, rid in tiny.items():
        rows.append((rid, "throughput_samples_per_s", None, TINY[v], 1.7e9))
    contended = bench[(32, 1)]
    calm = bench[(8, 0)]
    with StateStore.open(path) as store:
        store.record_runs(specs)
        store.set_status([s.run_id for s in specs], "succeeded", event="finished")
        store.add_metrics(rows)
        with store.transaction() as tx:
            tx.set_run_meta(
                contended,
                {
                    "contention.load_start": 1.25,
                    "contention.load_end": 6.5,
                    "contention.cores": [0, 1],
                    "contention.other_cpu_s": 12.4,
                    "contention.other_frac": 0.31,
                    "contention.heavy": True,
                },
            )
            tx.set_run_meta(
                calm,
                {
                    "contention.load_start": 0.1,
                    "contention.load_end": 0.2,
                    "contention.cores": [0, 1],
                    "contention.other_cpu_s": 0.1,
                    "contention.other_frac": 0.02,
                    "contention.heavy": False,
                },
            )
    return {"bench": bench, "tiny": tiny, "contended": contended, "calm": calm}
