"""Search trials built in code for the pruning tests: runs of progs/curve.py whose spec has
``extra.search`` as the search core writes it (key, trial number, prune settings), and what the
state recorded of them."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from hpcx.manifest.spec import RunSpec
from hpcx.state.store import open_reader
from support.specs import make_spec

CURVE = str(Path(__file__).parent / "progs" / "curve.py")
#: A bad trial left alone runs this long (60 steps of 0.1 s): pruned, it ends far sooner.
BAD_STEPS = 60


def prune_settings(rule: str) -> dict[str, Any]:
    return {
        "metric": "val_loss",
        "direction": "minimize",
        "rule": rule,
        "warmup_steps": 2,
        "startup_trials": 2,
        "min_resource": 2,
        "reduction_factor": 2,
    }


def trial(
    n: int,
    kind: str,
    rule: str,
    key: str = "0123456789abcdef",
    *,
    slurm: dict[str, Any] | None = None,
    resources: dict[str, Any] | None = None,
) -> RunSpec:
    # The same steps (the median rule compares values at the same step), the good ones fast.
    step_s = 0.005 if kind == "good" else 0.1
    argv = [
        sys.executable,
        CURVE,
        "--kind",
        kind,
        "--steps",
        str(BAD_STEPS),
        "--step-s",
        str(step_s),
    ]
    return make_spec(
        "search",
        n,
        {"kind": kind, "n": n},
        command=[*argv, "--tag", str(n)],
        resources=resources,
        **(slurm or {}),
        extra={
            "search": {
                "key": key,
                "trial": n,
                "budget": 5,
                "batch": 5,
                "sampler": "random",
                "objective": {"metric": "val_loss", "direction": "minimize"},
                "values": {"params.kind": kind},
                "prune": prune_settings(rule),
            }
        },
    )


def trials(rule: str) -> list[RunSpec]:
    # The queue starts them in this order, two at a time on a small machine: the good ones
    # finish first and are the company the bad ones are judged against.
    return [trial(n, k, rule) for n, k in enumerate(["good", "good", "good", "bad", "bad"], 1)]


def records(state: Path, specs: list[RunSpec]) -> dict[str, dict[str, Any]]:
    out = {}
    with open_reader(state) as store:
        snap = store.snapshot()
        for s in specs:
            d = store.run_detail(s.run_id)
            out[s.params["kind"] + str(s.params["n"])] = {
                "status": snap.runs[s.run_id].status,
                "reason": d.record.get("end_reason"),
                "attempt": d.attempts[-1]["state"] if d.attempts else None,
                "values": dict((m[0], m[2]) for m in d.metrics).get("val_loss"),
                "run_dir": d.record.get("run_dir"),
            }
    return out
