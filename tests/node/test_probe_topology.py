"""The sysfs reader against hwloc (the oracle) on real machines' snapshots, and the live box."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from hwloc_oracle import SNAPSHOTS, HwlocView

from hpcx.node.topology import (
    Link,
    format_cpulist,
    normalize_bdf,
    parse_cpulist,
    parse_cpumask,
    read_topology,
)

Snapshot = Callable[[str], Path]
Hwloc = Callable[[Path], HwlocView]

# Where the reader deliberately differs from hwloc, and why (see hpcx/node/topology.py's notes).
MERGED_BY_HWLOC = {"8em64t-2s2ca2c-buggynuma"}  # identical node cpusets: hwloc keeps node 0


def test_every_snapshot_is_covered() -> None:
    assert len(SNAPSHOTS) >= 7, f"expected the 7 hwloc snapshots, found {SNAPSHOTS}"


@pytest.mark.parametrize("name", SNAPSHOTS)
def test_numa_nodes_cpus_and_memory_match_hwloc(
    name: str, snapshot: Snapshot, hwloc: Hwloc
) -> None:
    root = snapshot(name)
    oracle = hwloc(root)
    topo = read_topology(root)
    ours = {n.id: (set(n.cpus), n.memory_bytes) for n in topo.host_nodes}

    assert set(topo.cpus) == oracle.pus, "online CPUs"
    if name in MERGED_BY_HWLOC:
        # hwloc merges nodes that report the same CPUs into node 0; we keep the kernel's view
        # (binding acts on it) and say the firmware looks wrong.
        assert set(oracle.nodes) == {0}
        assert ours[0] == oracle.nodes[0]
        assert len(ours) == 8 and all(cpus == oracle.nodes[0][0] for cpus, _ in ours.values())
        assert any("firmware" in w for w in topo.warnings)
        return
    assert ours == {k: (cpus, mem) for k, (cpus, mem) in oracle.nodes.items()}


@pytest.mark.parametrize("name", SNAPSHOTS)
def test_numa_distances_match_hwloc(name: str, snapshot: Snapshot, hwloc: Hwloc) -> None:
    root = snapshot(name)
    oracle = hwloc(root)
    topo = read_topology(root)
    if not oracle.distances:
        return
    host = {n.id for n in topo.host_nodes}
    for (a, b), d in oracle.distances.items():
        node = topo.node(a)
        assert node is not None and a in host
        assert node.distance_to(b) == d, f"distance {a}->{b}"


@pytest.mark.parametrize("name", SNAPSHOTS)
def test_pci_locality_and_link_speed_match_hwloc(
    name: str, snapshot: Snapshot, hwloc: Hwloc
) -> None:
    root = snapshot(name)
    oracle = hwloc(root)
    topo = read_topology(root, all_pci=True)
    for bdf, (node, gbps) in oracle.pci.items():
        dev = topo.device(bdf)
        assert dev is not None, f"{bdf} missing"
        if name in MERGED_BY_HWLOC:
            continue
        assert dev.numa_node == node, f"{bdf}: NUMA node"
        ours = dev.link.current.gbytes_per_s if dev.link else None
        if gbps is None:
            assert ours is None
        else:
            assert ours == pytest.approx(gbps, rel=1e-3), f"{bdf}: link GB/s"


def test_gpu_memory_nodes_are_kept_but_not_host_nodes(snapshot: Snapshot) -> None:
    topo = read_topology(snapshot("nvidiagpunumanodes"))
    assert topo.node_ids == (0, 8, 250, 251, 252, 253, 254, 255)
    assert [n.id for n in topo.host_nodes] == [0, 8]
    gpus = {g.bdf: (g.numa_node, g.memory_node) for g in topo.gpus}
    assert gpus == {
        "0004:05:00.0": (0, 255),
        "0004:06:00.0": (0, 254),
        "0006:00:00.0": (0, 253),
        "0007:00:00.0": (8, 252),
        "0035:04:00.0": (8, 251),
        "0035:05:00.0": (8, 250),
    }
    assert all(g.is_nvidia_gpu for g in topo.gpus)
    node250 = topo.node(250)
    assert node250 is not None and node250.cpus == () and node250.gpu_memory_of == "0035:05:00.0"


def test_node_cpus_exclude_offline_cpus_and_orphans_are_reported(snapshot: Snapshot) -> None:
    topo = read_topology(snapshot("offline-cpu0-node0"))
    assert topo.node_ids == (1,)
    assert topo.offline_nodes == (0,)
    assert format_cpulist(topo.nodes[0].cpus) == "5,7,9,11,13,15,17,19"
    assert topo.cpus_without_node == (4, 6, 8, 10, 12, 14, 16, 18, 20)
    assert 0 in topo.offline_cpus and 23 in topo.offline_cpus
    assert any("belong to no online NUMA node" in w for w in topo.warnings)
    # The distance row has 2 values for 1 online node: matched to the possible nodes 0-1.
    assert topo.nodes[0].distance_to(1) == 10


def test_machine_without_numa_is_one_node_with_everything(snapshot: Snapshot) -> None:
    topo = read_topology(snapshot("2arm-2c"))
    assert not topo.numa_detected
    assert topo.node_ids == (0,)
    assert topo.nodes[0].cpus == (0, 1)
    assert topo.nodes[0].memory_bytes == 280840 * 1024


def test_conflicting_pci_locality_attaches_to_no_node(snapshot: Snapshot) -> None:
    topo = read_topology(snapshot("40intel64-4n10c+pci-conflicts"), all_pci=True)
    dev = topo.device("0000:01:00.0")
    assert dev is not None
    assert dev.numa_node_sysfs == -1 and dev.numa_node is None


def test_narrowest_link_and_degraded_links(snapshot: Snapshot) -> None:
    topo = read_topology(snapshot("32intel64-2p8co2t+8ve"))
    ve = topo.device("0000:1b:00.0")
    assert ve is not None and ve.kind == "accelerator"
    assert [h.bdf for h in ve.path] == [
        "0000:17:00.0",
        "0000:18:00.0",
        "0000:19:08.0",
        "0000:1b:00.0",
    ]
    assert ve.link is not None and ve.link.current.describe() == "Gen3 x16"
    assert not ve.degraded
    nic = topo.device("0000:60:00.0")
    assert nic is not None
    assert nic.degraded  # trained at 2.5 GT/s of 8 GT/s
    assert nic.narrowest is not None and nic.narrowest.bdf == "0000:5f:03.0"  # the x1 bridge


def test_missing_root_gives_an_empty_but_valid_topology(tmp_path: Path) -> None:
    topo = read_topology(tmp_path)
    assert topo.node_ids == (0,)
    assert topo.devices == ()
    assert topo.to_dict()["nodes"][0]["id"] == 0


def test_parsers_handle_sysfs_oddities() -> None:
    assert parse_cpulist(" 0-3,8,10-11\n") == (0, 1, 2, 3, 8, 10, 11)
    assert parse_cpulist("") == ()
    assert parse_cpulist("0-7:2") == (0, 2, 4, 6)
    assert parse_cpumask("0000,00000000,00ff00ff") == (*range(8), *range(16, 24))
    assert parse_cpumask("0000,00000000,000000ff,ff000000,00000000,00000000")[0] == 88
    assert format_cpulist([0, 1, 2, 5, 7, 8]) == "0-2,5,7-8"
    assert normalize_bdf("00000000:17:00.0") == "0000:17:00.0"
    assert normalize_bdf("17:00.0") == "0000:17:00.0"
    assert Link(16.0, 16).generation == 4
    assert Link(8.0, 16).gbytes_per_s == pytest.approx(15.7538, rel=1e-4)
    assert Link(2.5, 1).gbytes_per_s == pytest.approx(0.25)


# --------------------------------------------------------------------------------------------
# The live machine


def numactl_hardware() -> dict[str, object]:
    exe = shutil.which("numactl")
    if exe is None:
        pytest.skip("numactl not installed")
    text = subprocess.run([exe, "--hardware"], capture_output=True, text=True, check=True).stdout
    m = re.search(r"available: (\d+) nodes \(([^)]*)\)", text)
    assert m, text
    ids = parse_cpulist(m.group(2))
    cpus = {
        int(k): tuple(int(c) for c in v.split())
        for k, v in re.findall(r"node (\d+) cpus:([ \d]*)", text)
    }
    sizes = {int(k): int(v) for k, v in re.findall(r"node (\d+) size: (\d+) MB", text)}
    dist_block = text.split("node distances:")[1].strip().splitlines()[1:]
    distances = {}
    for line in dist_block:
        head, _, rest = line.partition(":")
        distances[int(head)] = tuple(int(x) for x in rest.split())
    return {"ids": ids, "cpus": cpus, "sizes": sizes, "distances": distances}


def test_live_topology_matches_numactl_hardware() -> None:
    want = numactl_hardware()
    topo = read_topology()
    assert topo.node_ids == want["ids"]
    cpus = want["cpus"]
    sizes = want["sizes"]
    distances = want["distances"]
    assert isinstance(cpus, dict) and isinstance(sizes, dict) and isinstance(distances, dict)
    for node in topo.nodes:
        assert node.cpus == cpus[node.id]
        assert node.memory_bytes is not None
        # Memory moves a little between the two reads (ballooning VMs): MB within 5 %.
        assert node.memory_bytes // 2**20 == pytest.approx(sizes[node.id], rel=0.05)
        assert tuple(node.distance_to(o) for o in topo.node_ids) == distances[node.id]
