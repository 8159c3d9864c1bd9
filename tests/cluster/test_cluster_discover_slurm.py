"""`hpcx cluster discover` and the queue lengths `hpcx advise` uses, against the real one-node
SLURM test cluster (partitions debug (default), other, low and high; the node's CPUs and memory)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from support.cli import hpcx
from support.slurm import SlurmCluster

from hpcx.cluster.discover import discover, queue_lengths
from hpcx.cluster.profiles import load_profile

pytestmark = pytest.mark.slurm


@pytest.fixture
def env(slurm_cluster: SlurmCluster, monkeypatch: pytest.MonkeyPatch) -> SlurmCluster:
    monkeypatch.setenv("SLURM_CONF", slurm_cluster.env["SLURM_CONF"])
    return slurm_cluster


def test_discover_reads_partitions_and_the_node(env: SlurmCluster) -> None:
    doc = discover()
    assert doc["metadata"]["name"] == "hpcxtest"
    assert doc["metadata"]["source"].startswith("hpcx cluster discover (SLURM ")
    spec = doc["spec"]
    assert set(spec["partitions"]) == {"debug", "other", "low", "high"}
    assert spec["default_partition"] == "debug"
    debug = spec["partitions"]["debug"]
    assert debug["cpus_per_node"] == env.cpus
    assert debug["memory_gb"] == round(env.memory_mb / 1024, 1)
    assert debug["gpus_per_node"] == 0 and debug["gpu_type"] is None
    assert debug["nodes"] == 1 and debug["max_time"] == "UNLIMITED"


def test_cli_writes_a_profile_that_loads(env: SlurmCluster, tmp_path: Path) -> None:
    out = tmp_path / "clusters" / "test.yaml"
    proc = hpcx(tmp_path, "cluster", "discover", "-o", str(out), env=env.env)
    assert proc.returncode == 0, proc.stderr
    assert "4 partitions (debug, other, low, high)" in proc.stdout
    profile = load_profile(out)
    assert profile.default == "debug"
    assert profile.partitions["debug"].cpus_per_node == env.cpus
    again = hpcx(tmp_path, "cluster", "discover", "-o", str(out), env=env.env)
    assert again.returncode == 1 and "exists already" in again.stderr
    shown = hpcx(tmp_path, "cluster", "show", "--json")  # found under clusters/
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["partitions"]["other"]["nodes"] == 1


def test_queue_lengths_from_squeue(env: SlurmCluster) -> None:
    held = env.run("sbatch", "--parsable", "--hold", "-p", "other", "--wrap", "true").stdout
    job = held.strip().split(";")[0]
    try:
        got = queue_lengths(["debug", "other"])
    finally:
        subprocess.run(["scancel", job], env=env.env, check=False, timeout=30)
    assert got == {"debug": 0, "other": 1}
