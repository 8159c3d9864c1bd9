"""The launchers on the real one-node SLURM cluster (CPUs=2: two ranks of one CPU each): a
2-rank gloo all-reduce through `srun` and through `torchrun`, submitted by `hpcx apply`, and a
checkpoint signal sent to the program's process group (as the job wrapper forwards it)
reaching every rank once; and the same all-reduce across the two nodes of a second cluster
(two slurmd on this machine, one rank each)."""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

import pytest
from support.cli import hpcx
from support.projects import HERE, query, runs, wait_for

from hpcx.run.launch import master_port

pytestmark = pytest.mark.slurm

ALLREDUCE = str(HERE / "progs" / "allreduce.py")


def _env(cluster: Any) -> dict[str, str]:
    return {"SLURM_CONF": cluster.env["SLURM_CONF"]}


def manifest(launcher: str, *args: str, nodes: int = 1, tasks: int = 2) -> str:
    doc = {
        "apiVersion": "hpcx/v1",
        "kind": "Experiment",
        "metadata": {"name": "ddp"},
        "spec": {
            "command": [sys.executable, ALLREDUCE, *args],
            "launcher": launcher,
            "executor": {"type": "slurm"},
            "resources": {
                "partition": "debug",
                "nodes": nodes,
                "tasks_per_node": tasks,
                "cpus": 1,
                "time": 3,
            },
        },
    }
    return json.dumps(doc)


def _final(root: Path, cluster: Any, timeout: float = 60) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        hpcx(root, "refresh", env=_env(cluster), check=True)
        (run,) = runs(root).values()
        return run if run["status"] in ("succeeded", "failed", "cancelled", "timeout") else None

    result: dict[str, Any] = wait_for(done, timeout, "the run to finish", interval=0.5)
    return result


@pytest.mark.parametrize("launcher", ["srun", "torchrun"])
def test_two_ranks_all_reduce_under_slurm(slurm_cluster: Any, project, launcher: str) -> None:
    root = project({"ddp": manifest(launcher, "--every-rank")})
    hpcx(root, "apply", "--yes", env=_env(slurm_cluster), check=True)
    run = _final(root, slurm_cluster)
    folder = Path(run["run_dir"])
    stdout = (folder / "stdout.log").read_text()
    assert run["status"] == "succeeded", (run, stdout, (folder / "stderr.log").read_text())
    host = slurm_cluster.host
    for rank in (0, 1):
        assert f"rank={rank} local_rank={rank} world=2 local_world=2" in stdout
        assert f"rank={rank}/2 allreduce_sum=3.0" in stdout
    if launcher == "srun":
        # the rank environment from SLURM's; the rendezvous on the first node's NodeAddr (the
        # host name here, which slurm.conf gives as no NodeAddr) and the job's own port
        port = master_port(str(run["job_id"]).split("_")[0])
        for rank in (0, 1):
            assert (
                f"rank={rank} local_rank={rank} world=2 local_world=2 node_rank=0 node={host} "
                f"master={host}:{port}"
            ) in stdout
    rows = query(
        root, "SELECT name, value FROM metrics WHERE name NOT LIKE 'hpcx.%' ORDER BY name, value"
    )
    assert rows == [("allreduce_sum", 3.0), ("rank_seen", 0.0), ("rank_seen", 1.0)]


@pytest.mark.parametrize(
    "launcher", ["srun", pytest.param("torchrun", marks=pytest.mark.slow)]  # CI: srun's path
)
@pytest.mark.parametrize(
    "sig", ["USR1", pytest.param("USR2", marks=pytest.mark.slow)]  # the same path: CI runs one
)
def test_a_signal_to_the_program_group_reaches_every_rank_once(
    slurm_cluster: Any, project, launcher: str, sig: str, tmp_path: Path
) -> None:
    flags = tmp_path / "flags"
    flags.mkdir()
    os.chmod(flags, 0o777)
    root = project({"ddp": manifest(launcher, "--wait-signal", sig, str(flags))})
    hpcx(root, "apply", "--yes", env=_env(slurm_cluster), check=True)
    wait_for(
        lambda: all((flags / f"ready-{r}").exists() for r in (0, 1)), 60, "both ranks ready"
    )
    (run,) = runs(root).values()
    status = json.loads((Path(run["run_dir"]) / "status.json").read_text())
    # The wrapper's child (srun) leads the program's process group: signal it as the
    # wrapper forwards a checkpoint signal.
    os.killpg(int(status["pid"]), getattr(signal, f"SIG{sig}"))
    run = _final(root, slurm_cluster)
    for rank in (0, 1):
        assert (flags / f"got-{sig}-{rank}").read_text() == "1\n"
    assert run["status"] == "succeeded", run


@pytest.mark.parametrize(
    "launcher", ["srun", pytest.param("torchrun", marks=pytest.mark.slow)]  # CI: srun only
)
def test_two_ranks_on_two_nodes(slurm_two_nodes: Any, project, launcher: str) -> None:
    root = project({"ddp": manifest(launcher, "--every-rank", nodes=2, tasks=1)})
    hpcx(root, "apply", "--yes", env=_env(slurm_two_nodes), check=True)
    run = _final(root, slurm_two_nodes)
    folder = Path(run["run_dir"])
    stdout = (folder / "stdout.log").read_text()
    assert run["status"] == "succeeded", (run, stdout, (folder / "stderr.log").read_text())
    lines = [ln for ln in stdout.splitlines() if ln.startswith("rank=") and "world=" in ln]
    # one rank per node, each knowing its node; torchrun numbers the ranks its own way
    assert sorted(ln.split(" node=")[1].split()[0] for ln in lines) == ["n1", "n2"]
    assert sorted(ln.split()[0] for ln in lines) == ["rank=0", "rank=1"]
    for ln in lines:
        assert "local_rank=0 world=2 local_world=1" in ln
    if launcher == "srun":
        assert any(" node_rank=1 node=n2 " in ln for ln in lines)
    for rank in (0, 1):
        assert f"rank={rank}/2 allreduce_sum=3.0" in stdout
    rows = query(
        root, "SELECT name, value FROM metrics WHERE name NOT LIKE 'hpcx.%' ORDER BY name, value"
    )
    assert rows == [("allreduce_sum", 3.0), ("rank_seen", 0.0), ("rank_seen", 1.0)]
