"""`hpcx exec` and hpcx.node.placement: binding a child, no shell, clear errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from hpcx.errors import HpcxError, NativeUnavailableError, NumaError
from hpcx.node.placement import (
    BindingWarning,
    CommandNotFound,
    Placement,
    apply_binding,
    find_command,
    resolve,
)
from hpcx.node.topology import read_topology

Snapshot = Callable[[str], Path]
HPCX = [sys.executable, "-m", "hpcx"]


def hpcx_exec(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*HPCX, "exec", *args], capture_output=True, text=True, timeout=60, env=env
    )


REPORT = (
    "import os, json, sys; "
    "print(json.dumps({'cpus': sorted(os.sched_getaffinity(0)), 'argv': sys.argv[1:], "
    "'cvd': os.environ.get('CUDA_VISIBLE_DEVICES')}))"
)


def test_exec_binds_the_command_to_the_nodes_cpus() -> None:
    topo = read_topology()
    node = topo.cpu_nodes[0]
    proc = hpcx_exec("--numa", str(node.id), "--", sys.executable, "-c", REPORT)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["cpus"] == list(node.cpus)


def test_exec_binds_memory_too_when_libnuma_is_there() -> None:
    from hpcx.node import native
    if not native.capabilities().numa:
        pytest.skip("libnuma not available")
    node = read_topology().cpu_nodes[0].id
    # numactl --show prints the policy the child inherited.
    proc = hpcx_exec("--numa", str(node), "--", "numactl", "--show")
    if proc.returncode == 127:
        pytest.skip("numactl not installed")
    assert proc.returncode == 0, proc.stderr
    assert "policy: bind" in proc.stdout
    assert f"membind: {node}" in proc.stdout
    proc = hpcx_exec("--numa", str(node), "--no-membind", "--", "numactl", "--show")
    assert "policy: default" in proc.stdout


def test_exec_passes_arguments_verbatim_without_a_shell(tmp_path: Path) -> None:
    marker = tmp_path / "x"
    weird = f"$(touch {marker})"
    proc = hpcx_exec("--numa", "0", "--", sys.executable, "-c", REPORT, weird, "-v", "--numa", ";")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["argv"] == [weird, "-v", "--numa", ";"]
    assert not marker.exists()


def test_exec_unknown_node_fails_listing_the_nodes() -> None:
    proc = hpcx_exec("--numa", "7", "--", "true")
    assert proc.returncode == 1
    assert "NUMA node 7 does not exist on this machine (nodes: 0 (CPUs" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_exec_unknown_command_exits_127() -> None:
    proc = hpcx_exec("--numa", "0", "--", "no-such-command-hpcx")
    assert proc.returncode == 127
    assert "no-such-command-hpcx: command not found" in proc.stderr


def test_exec_non_executable_file_exits_126(tmp_path: Path) -> None:
    script = tmp_path / "script.sh"
    script.write_text("#!/bin/sh\necho hi\n")
    proc = hpcx_exec("--numa", "0", "--", str(script))
    assert proc.returncode == 126
    assert "not executable" in proc.stderr


def test_exec_returns_the_commands_own_exit_code() -> None:
    proc = hpcx_exec("--numa", "0", "--", sys.executable, "-c", "raise SystemExit(42)")
    assert proc.returncode == 42


def test_exec_needs_a_placement_and_a_command() -> None:
    assert "give --numa and/or --gpu" in hpcx_exec("--", "true").stderr
    assert "no command given" in hpcx_exec("--numa", "0").stderr


def test_exec_gpu_on_a_machine_without_gpus_is_a_clear_error() -> None:
    if read_topology().nvidia_gpus:
        pytest.skip("this machine has a GPU")
    proc = hpcx_exec("--numa", "0", "--gpu", "0", "--", "true")
    assert proc.returncode == 1
    assert "no NVIDIA GPU on this machine" in proc.stderr


# --------------------------------------------------------------------------------------------
# resolve() on a machine with GPUs (the POWER9 snapshot)


def test_resolve_gpu_by_index_or_bus_id_and_local_node(snapshot: Snapshot) -> None:
    topo = read_topology(snapshot("nvidiagpunumanodes"))
    p = resolve("local-to-gpu", "3", topology=topo)
    assert (p.numa_node, p.gpu_index, p.gpu_bdf) == (8, 3, "0007:00:00.0")
    assert p.cpus == tuple(range(88, 104))
    assert p.env == {"CUDA_DEVICE_ORDER": "PCI_BUS_ID", "CUDA_VISIBLE_DEVICES": "3"}
    same = resolve("local-to-gpu", "00000007:00:00.0", topology=topo)
    assert same == p
    assert resolve(0, "0035:05:00.0", topology=topo).gpu_index == 5


def test_resolve_rejects_bad_gpus_and_cpu_less_nodes(snapshot: Snapshot) -> None:
    topo = read_topology(snapshot("nvidiagpunumanodes"))
    with pytest.raises(HpcxError, match=r"--gpu 6: no such GPU \(GPUs: 0=0004:05:00.0"):
        resolve(0, "6", topology=topo)
    with pytest.raises(HpcxError, match="not a GPU index or a GPU's PCI bus id"):
        resolve(0, "0000:99:00.0", topology=topo)
    with pytest.raises(NumaError, match="NUMA node 250 has no CPUs"):
        resolve(250, topology=topo)
    with pytest.raises(NumaError, match="needs --gpu"):
        resolve("local-to-gpu", topology=topo)
    with pytest.raises(NumaError, match="not a node number"):
        resolve("first", topology=topo)


def test_binding_falls_back_to_cpu_affinity_without_libnuma(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from hpcx.node import native
    def no_numa(node: int, *, memory: bool = True) -> None:
        raise NativeUnavailableError("libnuma.so.1: cannot open shared object file")

    monkeypatch.setattr(native, "bind", no_numa)
    calls: list[tuple[int, tuple[int, ...]]] = []
    monkeypatch.setattr(os, "sched_setaffinity", lambda pid, cpus: calls.append((pid, cpus)))
    with pytest.warns(BindingWarning, match="memory is not bound to node 0"):
        notes = apply_binding(Placement(0, (0, 1), membind=True))
    assert calls == [(0, (0, 1))]
    assert len(notes) == 1
    assert apply_binding(Placement(0, (0, 1), membind=False)) == []


def test_find_command_follows_path_rules(tmp_path: Path) -> None:
    assert find_command(["sh"]).endswith("/sh")
    with pytest.raises(CommandNotFound) as info:
        find_command([str(tmp_path / "missing")])
    assert info.value.exit_code == 127
