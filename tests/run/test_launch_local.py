"""`hpcx apply` of a 2-rank gloo all-reduce on the local executor through both launchers
(real CLI, real processes, the real state), and the metrics protocol's rank rule: in a
multi-rank run only rank 0 writes metrics unless every rank is asked to."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from support.cli import hpcx
from support.projects import HERE, query, runs

from hpcx.metrics import read_metrics

ALLREDUCE = str(HERE / "progs" / "allreduce.py")


def manifest(launcher: str, *args: str, **resources: object) -> str:
    doc = {
        "apiVersion": "hpcx/v1",
        "kind": "Experiment",
        "metadata": {"name": "ddp"},
        "spec": {
            "command": [sys.executable, ALLREDUCE, *args],
            "launcher": launcher,
            "resources": {"tasks_per_node": 2, **resources},
        },
    }
    return json.dumps(doc)


@pytest.mark.parametrize("launcher", ["srun", "torchrun"])
def test_apply_runs_two_ranks_that_all_reduce(project, launcher: str) -> None:
    root = project({"ddp": manifest(launcher, "--every-rank", cpus=1)})
    hpcx(root, "apply", "--yes", check=True, timeout=120)
    (run,) = runs(root).values()
    assert run["status"] == "succeeded" and run["exit_code"] == 0, run
    stdout = (Path(run["run_dir"]) / "stdout.log").read_text()
    for rank in (0, 1):
        assert f"rank={rank} local_rank={rank} world=2 local_world=2" in stdout
        assert f"rank={rank}/2 allreduce_sum=3.0" in stdout
    # allreduce_sum from rank 0 only; rank_seen asked for every rank
    rows = query(
        root,
        "SELECT name, value FROM metrics WHERE name NOT LIKE 'hpcx.%' ORDER BY name, value",
    )
    assert rows == [("allreduce_sum", 3.0), ("rank_seen", 0.0), ("rank_seen", 1.0)]


def test_a_failing_rank_fails_the_run_with_its_exit_code(project) -> None:
    root = project({"ddp": manifest("srun", "--fail-rank", "1")})
    hpcx(root, "apply", "--yes", timeout=120)
    (run,) = runs(root).values()
    assert run["status"] == "failed" and run["exit_code"] == 7, run


PROGRAM = """
import hpcx
hpcx.log_metric("a", 1.0)
hpcx.log_metrics({"b": 2.0})
hpcx.log_meta({"who": "me"})
hpcx.log_metric("c", 3.0, every_rank=True)
"""


@pytest.mark.parametrize(
    ("env", "names"),
    [
        ({}, ["a", "b", "c"]),  # not a multi-rank run
        ({"RANK": "0"}, ["a", "b", "c"]),
        ({"RANK": "1"}, ["c"]),
        ({"RANK": "1", "HPCX_METRICS_EVERY_RANK": "1"}, ["a", "b", "c"]),
    ],
)
def test_only_rank_zero_writes_unless_asked(
    tmp_path: Path, env: dict[str, str], names: list[str]
) -> None:
    path = tmp_path / "metrics.jsonl"
    base = {k: v for k, v in os.environ.items() if k not in ("RANK", "HPCX_METRICS_EVERY_RANK")}
    subprocess.run(
        [sys.executable, "-c", PROGRAM],
        env={**base, **env, "HPCX_METRICS": str(path)},
        check=True,
        timeout=60,
    )
    got = read_metrics(path, missing_ok=True)
    assert [r.name for r in got.rows] == names
    assert got.meta == ({"who": "me"} if "a" in names else {})


def test_a_launch_that_cannot_start_fails_the_run_with_the_reason(project) -> None:
    # SLURM_JOB_ID without the allocation's node list: the wrapper cannot know MASTER_ADDR
    root = project({"ddp": manifest("srun")})
    hpcx(root, "apply", "--yes", env={"SLURM_JOB_ID": "99"}, timeout=120)
    (run,) = runs(root).values()
    assert run["status"] == "failed", run
    assert run["end_reason"] == "launch: SLURM_JOB_NODELIST is not set: the allocation is unknown"
    assert not (Path(run["run_dir"]) / "stdout.log").exists()  # the program never started
