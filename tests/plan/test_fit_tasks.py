"""The fit check of multi-task runs: a node holds tasks_per_node x gpus_per_task GPUs and
tasks_per_node x cpus CPUs (SLURM's --cpus-per-task is per task), and hpcx plan refuses a run
whose node would need more than its partition has."""

from __future__ import annotations

import json
from pathlib import Path

from support.cli import hpcx
from support.projects import REPO, make_project
from support.specs import run_spec

from hpcx.cluster.profiles import load_profile
from hpcx.plan.fit import Need, check_fit

EXAMPLE = REPO / "hpcx" / "templates" / "_clusters" / "example.yaml"


def test_need_counts_per_node_sums_of_the_tasks() -> None:
    need = Need.of([run_spec(resources={"tasks_per_node": 4, "gpus_per_task": 2, "cpus": 6})])
    assert (need.gpus, need.cpus) == (8, 24)
    # several tasks with no cpus asked for hold one CPU each
    assert Need.of([run_spec(resources={"tasks_per_node": 3})]).cpus == 3
    # one task: as before
    need = Need.of([run_spec(resources={"gpus": 2, "cpus": 6})])
    assert (need.gpus, need.cpus) == (2, 6)


def test_tasks_that_fill_more_than_a_node_are_refused_and_the_fitting_named() -> None:
    profile = load_profile(EXAMPLE)
    ok = run_spec(
        run_id="ok",
        resources={"partition": "a100_public", "tasks_per_node": 4, "gpus_per_task": 1},
    )
    assert check_fit([ok], profile) == []
    big = run_spec(
        run_id="big",
        resources={"partition": "a100_public", "nodes": 2, "tasks_per_node": 4, "gpus_per_task": 2},
    )
    (f,) = check_fit([big], profile)
    assert f.problem == "gpus" and f.run_ids == ("big",)
    assert "asks for 8 GPUs per node; a100_public has 4 per node" in f.message
    assert f.fits == ("h200_tandon",)
    cpus = run_spec(
        run_id="cpu",
        resources={"partition": "a100_public", "tasks_per_node": 4, "cpus": 16},
    )
    (f,) = check_fit([cpus], profile)
    assert f.problem == "cpus" and "asks for 64 CPUs; a100_public has 48 per node" in f.message


def test_plan_refuses_a_multi_node_run_the_cluster_cannot_hold(tmp_path: Path) -> None:
    doc = {
        "apiVersion": "hpcx/v1",
        "kind": "Experiment",
        "metadata": {"name": "ddp"},
        "spec": {
            "command": ["python", "train.py"],
            "launcher": "torchrun",
            "executor": {"type": "slurm"},
            "resources": {
                "partition": "h200_tandon",
                "nodes": 2,
                "tasks_per_node": 8,
                "gpus_per_task": 2,
            },
        },
    }
    root = make_project(tmp_path / "p", {"ddp": json.dumps(doc)})
    proc = hpcx(root, "plan", "--cluster", str(EXAMPLE))
    assert proc.returncode == 1
    assert "asks for 16 GPUs per node; h200_tandon has 8 per node" in proc.stderr
    assert "nothing was planned" in proc.stderr
    doc["spec"]["resources"]["gpus_per_task"] = 1  # type: ignore[index]
    (root / "manifests" / "ddp.yaml").write_text(json.dumps(doc))
    proc = hpcx(root, "plan", "--cluster", str(EXAMPLE))
    assert proc.returncode == 0, proc.stderr
