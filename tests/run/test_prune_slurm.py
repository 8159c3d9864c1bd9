"""Early stopping on the real one-node SLURM cluster: a bad search trial is stopped by
``hpcx refresh`` through scancel, its wrapper records it ``pruned`` with the pruner's reason
(not ``cancelled``), and the good trials succeed."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from support.cli import hpcx
from support.specs import desired_of
from support.trials import records, trial

from hpcx.plan.planner import make_plan
from hpcx.run.apply import apply_plan
from hpcx.state.store import StateSnapshot
from hpcx.state.writer import Writer

pytestmark = pytest.mark.slurm


def test_refresh_prunes_a_slurm_trial_by_scancel(
    slurm_cluster: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SLURM_CONF", slurm_cluster.env["SLURM_CONF"])
    slurm = {"executor": {"type": "slurm"}}
    res = {"partition": "debug", "cpus": 1, "time": "00:05:00"}
    specs = [
        trial(n, kind, "median", slurm=slurm, resources=res)
        for n, kind in enumerate(["good", "good", "bad"], 1)
    ]
    state, runs_root = tmp_path / "state.duckdb", tmp_path / "runs"
    with Writer(state, "test apply") as writer:
        apply_plan(
            make_plan(desired_of(specs), StateSnapshot.empty()), writer=writer, runs_root=runs_root
        )
    args = ("--state", str(state), "--runs-root", str(runs_root))
    env = {"SLURM_CONF": slurm_cluster.env["SLURM_CONF"]}
    pruned: list[dict[str, Any]] = []
    deadline = time.monotonic() + 35
    while True:
        doc = json.loads(hpcx(tmp_path, "refresh", "--json", *args, env=env, check=True).stdout)
        pruned += doc["pruned"]
        got = records(state, specs)
        if all(r["status"] in ("succeeded", "pruned") for r in got.values()):
            break
        assert time.monotonic() < deadline, got
        time.sleep(0.3)
    assert [d["run_id"] for d in pruned] == [specs[2].run_id]
    assert [got[k]["status"] for k in ("good1", "good2", "bad3")] == [
        "succeeded", "succeeded", "pruned"
    ]  # fmt: skip
    bad = got["bad3"]
    assert bad["attempt"] == "pruned"
    assert bad["reason"] == pruned[0]["reason"]
    assert bad["reason"].startswith("pruned by the median rule at step ")
    assert bad["values"] < 60
