"""check(report, profile) on synthetic reports (bandwidth, links, locality), and run_probe's
measuring path driven through a stand-in native module."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

from hpcx.node.probe import (
    CheckProfile,
    GpuBandwidth,
    GpuInfo,
    Measurement,
    ProbeReport,
    ProfileError,
    check,
    expected_bandwidth,
    format_report,
    profile_from_mapping,
    run_probe,
    with_overrides,
)
from hpcx.node.topology import Link, LinkHop, NumaNode, Topology

Snapshot = Callable[[str], Path]


def hop(bdf: str, cur: tuple[float, int], mx: tuple[float, int]) -> LinkHop:
    return LinkHop(bdf, Link(*cur), Link(*mx))


def two_node_report(
    *,
    link: LinkHop | None = None,
    h2d: dict[int, float] | None = None,
    d2h: dict[int, float] | None = None,
    gpu_node: int | None = 0,
    quick: bool = False,
) -> ProbeReport:
    link = link or hop("0000:17:00.0", (16.0, 16), (16.0, 16))
    topo = Topology(
        root="/",
        nodes=(
            NumaNode(0, (0, 1), 2**34, ((0, 10), (1, 21))),
            NumaNode(1, (2, 3), 2**34, ((0, 21), (1, 10))),
        ),
        cpus=(0, 1, 2, 3),
    )
    gpu = GpuInfo(
        index=0,
        bdf=link.bdf,
        numa_node=gpu_node,
        link=link,
        narrowest=link,
        capability=link,
        degraded=link.current != link.max,
    )
    rows = tuple(
        GpuBandwidth(
            0,
            node,
            Measurement((h2d or {})[node]) if h2d and node in h2d else None,
            Measurement((d2h or {})[node]) if d2h and node in d2h else None,
        )
        for node in sorted(set(h2d or {}) | set(d2h or {}))
    )
    return ProbeReport(
        host="h",
        time="t",
        hpcx_version="0",
        source="live",
        topology=topo,
        capabilities={"cuda": True, "numa": True},
        gpus=(gpu,),
        gpu_bandwidth=rows,
        settings={"quick": quick},
    )


def failures(report: ProbeReport, **profile: Any) -> list[str]:
    return [f.line() for f in check(report, CheckProfile(**profile)) if f.status == "fail"]


def test_healthy_gen4_node_passes_every_rule() -> None:
    report = two_node_report(h2d={0: 24.5, 1: 20.0}, d2h={0: 25.1, 1: 21.0})
    assert failures(report, numa_nodes=2, gpus=1, min_link_gen=4, min_link_width=16) == []


def test_link_below_minimum_fails_with_the_documented_line() -> None:
    link = hop("0000:17:00.0", (8.0, 8), (8.0, 8))
    report = two_node_report(link=link)
    assert failures(report, min_link_gen=4, min_link_width=16, min_h2d=None, min_d2h=None) == [
        "FAIL gpu0: link Gen3 x8 below Gen4 x16"
    ]


def test_link_trained_narrower_than_it_can_fails() -> None:
    link = hop("0000:17:00.0", (16.0, 8), (16.0, 16))
    report = two_node_report(link=link, h2d={0: 12.0})
    out = failures(report, min_link_width=16, min_h2d=None, min_d2h=None)
    assert out == ["FAIL gpu0: link Gen4 x8 below x16 (max Gen4 x16)"]


def test_idle_link_speed_is_judged_by_measured_bandwidth() -> None:
    idle = hop("0000:17:00.0", (2.5, 16), (16.0, 16))
    # Measured at Gen4 rate: the link trains up under load.
    assert failures(two_node_report(link=idle, h2d={0: 24.0}), min_link_gen=4) == []
    # Not measured (--quick): cannot tell, so skip rather than fail.
    quick = two_node_report(link=idle, quick=True)
    found = [f for f in check(quick, CheckProfile(min_link_gen=4)) if f.rule == "link"]
    assert [f.status for f in found] == ["skip"]
    assert "idle GPUs lower the link speed" in found[0].message
    # Measured and slow: fails.
    slow = two_node_report(link=idle, h2d={0: 2.0})
    assert "FAIL gpu0: link Gen1 x16 below Gen4 (max Gen4 x16), and H2D is low" in failures(
        slow, min_link_gen=4
    )


def test_narrow_upstream_link_fails_even_when_the_gpu_link_is_fine() -> None:
    report = two_node_report()
    gpu = replace(report.gpus[0], narrowest=hop("0000:16:00.0", (16.0, 4), (16.0, 16)))
    report = replace(report, gpus=(gpu,))
    assert failures(report, min_link_width=16, min_h2d=None, min_d2h=None) == [
        "FAIL gpu0: link Gen4 x16, but upstream 0000:16:00.0 is Gen4 x4, below x16"
    ]


def test_default_bandwidth_floor_follows_the_link_generation() -> None:
    assert expected_bandwidth(hop("a", (16.0, 16), (16.0, 16))) == pytest.approx(20.0)
    assert expected_bandwidth(hop("a", (32.0, 16), (32.0, 16))) == pytest.approx(44.0)
    assert expected_bandwidth(hop("a", (8.0, 8), (8.0, 8))) == pytest.approx(4.8)
    report = two_node_report(h2d={0: 15.0, 1: 14.0}, d2h={0: 22.0, 1: 21.0})
    assert failures(report) == [
        "FAIL gpu0: H2D from node0 15.0 GB/s below 20.0 GB/s (0.8 x typical Gen4 x16)"
    ]


def test_explicit_bandwidth_floors() -> None:
    report = two_node_report(h2d={0: 24.0}, d2h={0: 9.0})
    assert failures(report, min_h2d=20, min_d2h=10) == [
        "FAIL gpu0: D2H from node0 9.0 GB/s below 10.0 GB/s"
    ]


def test_gpu_local_node_must_be_the_fastest() -> None:
    report = two_node_report(h2d={0: 18.0, 1: 24.0}, d2h={0: 24.0, 1: 24.0})
    assert failures(report, min_h2d=None) == [
        "FAIL gpu0: fastest H2D from node1 (24.0 GB/s), not from its local node0 (18.0 GB/s)"
    ]
    # Within the noise tolerance (5 %), a near tie passes.
    near = two_node_report(h2d={0: 23.5, 1: 24.0})
    assert failures(near, min_h2d=None, min_d2h=None) == []


def test_bandwidth_rules_skip_when_nothing_was_measured() -> None:
    report = two_node_report(quick=True)
    found = check(report, CheckProfile(min_h2d=10))
    assert {f.status for f in found} == {"skip"}
    assert any("not measured (--quick)" in f.message for f in found)


def test_degraded_and_topology_warning_rules(snapshot: Snapshot) -> None:
    degraded = two_node_report(link=hop("0000:17:00.0", (16.0, 8), (16.0, 16)))
    assert "FAIL gpu0: link Gen4 x8 of Gen4 x16 (degraded)" in failures(
        degraded, no_degraded_links=True, min_h2d=None, min_d2h=None
    )
    report = run_probe(sysfs_root=snapshot("8em64t-2s2ca2c-buggynuma"))
    out = failures(report, no_topology_warnings=True)
    assert len(out) == 1 and "firmware's NUMA information looks wrong" in out[0]


def test_profile_validation_and_overrides() -> None:
    assert profile_from_mapping(None) == CheckProfile()
    p = profile_from_mapping({"numa_nodes": 2, "min_h2d": "auto", "min_d2h": None}, "x.yaml")
    assert p.numa_nodes == 2 and p.min_h2d == "auto" and p.min_d2h is None
    assert with_overrides(p, numa_nodes=4, gpus=None).numa_nodes == 4
    with pytest.raises(ProfileError, match=r"x\.yaml: bandwidth_fraction must be a number between"):
        profile_from_mapping({"bandwidth_fraction": 2}, "x.yaml")


# --------------------------------------------------------------------------------------------
# run_probe's measuring path, through a stand-in for hpcx.node.native


@dataclass
class FakeBandwidth:
    gbps: float
    samples: list[float]
    size: int
    kind: str
    src: str = ""
    dst: str = ""


@dataclass
class FakeDevice:
    index: int
    name: str
    pci_bus_id: str
    total_memory: int


class FakeNative:
    """Two GPUs on the nvidiagpunumanodes machine's nodes 0 and 8, numbered by the driver in
    the opposite order, to show the join is by bus id."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    def capabilities(self) -> dict[str, Any]:
        return {"native": True, "numa": True, "cuda": True, "numa_error": None}

    def cpu_bandwidth_matrix(self, *, size: int, samples: int, progress: Any) -> list[list[Any]]:
        n = 9  # numa_max_node + 1 on a machine with nodes 0 and 8: holes are NaN
        out = []
        for m in range(n):
            row = []
            for c in range(n):
                ok = m in (0, 8) and c in (0, 8)
                gbps = (20.0 if m == c else 10.0) if ok else float("nan")
                row.append(FakeBandwidth(gbps, [gbps] * samples, size, "cpu-copy"))
                progress(m * n + c + 1, n * n)
            out.append(row)
        return out

    def cuda_devices(self) -> list[FakeDevice]:
        return [
            FakeDevice(0, "V100", "00000007:00:00.0", 16 << 30),
            FakeDevice(1, "V100", "0004:05:00.0", 16 << 30),
        ]

    def gpu_copy_bandwidth(
        self,
        device: int,
        node: int,
        direction: str,
        *,
        size: int,
        samples: int,
        pinned: bool = True,
    ) -> FakeBandwidth:
        self.calls.append((device, node, direction, pinned))
        local = {0: 8, 1: 0}[device]
        gbps = (60.0 if node == local else 40.0) if pinned else 9.0
        return FakeBandwidth(
            gbps, [gbps], size, f"{direction}-{'pinned' if pinned else 'pageable'}"
        )


def test_run_probe_measures_every_gpu_node_pair_and_joins_by_bus_id(snapshot: Snapshot) -> None:
    import hpcx.node.probe as probe_mod

    fake = FakeNative()
    stages: list[str] = []
    root = snapshot("nvidiagpunumanodes")
    # A live probe whose sysfs is the snapshot: read_topology is pointed at it.
    real = probe_mod.read_topology
    try:
        probe_mod.read_topology = lambda _root=None, **kw: real(root, **kw)  # type: ignore[assignment]
        report = run_probe(
            native=fake, size=1 << 20, samples=2, progress=lambda s, d, t: stages.append(s)
        )
    finally:
        probe_mod.read_topology = real  # type: ignore[assignment]
    assert report.source == "live"
    assert report.cpu_bandwidth_nodes == (0, 8)
    assert report.cpu_bandwidth is not None
    assert [[m.gbps for m in row] for row in report.cpu_bandwidth] == [[20.0, 10.0], [10.0, 20.0]]
    gpus = {g.bdf: (g.index, g.cuda_index, g.numa_node) for g in report.gpus}
    assert gpus["0004:05:00.0"] == (0, 1, 0)
    assert gpus["0007:00:00.0"] == (3, 0, 8)
    # Only the two GPUs the driver lists are measured, each from both host nodes (not 250+).
    measured = {(r.gpu, r.numa_node) for r in report.gpu_bandwidth}
    assert measured == {(0, 0), (0, 8), (3, 0), (3, 8)}
    pageable = [c for c in fake.calls if not c[3]]
    assert sorted(pageable) == [(0, 8, "h2d", False), (1, 0, "h2d", False)]
    assert {"CPU bandwidth", "GPU bandwidth"} <= set(stages)
    # Local node fastest: passes; and the report renders and serialises (NaN-free).
    profile = CheckProfile(min_h2d=50, min_d2h=50)
    assert [f.line() for f in check(report, profile) if f.status == "fail"] == []
    text = format_report(report)
    assert "gpu3 <- node8: H2D   60.0" in text and "pageable H2D 9.0" in text
    import json

    json.dumps(report.to_dict(), allow_nan=False)
