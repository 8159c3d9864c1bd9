"""The machine's NUMA and PCIe topology, read from sysfs under a root.

:func:`read_topology` reads ``/sys`` (and a little of ``/proc``) under ``root``: ``/`` for this
machine, or the folder of another machine's snapshot as ``hwloc-gather-topology`` makes it. It
never raises for a missing or odd file: real snapshots are partial, and a login node or a
container hides parts of sysfs. What it could not make sense of goes into
:attr:`Topology.warnings`, in words a person can act on.

The rules, where sysfs can be read more than one way (each pinned by a test against hwloc):

* A node's CPUs are its ``cpulist`` restricted to the online CPUs (hwloc does the same), so a
  node whose CPUs are all offline has none, and CPUs of an offline node belong to no node.
* No ``/sys/devices/system/node``: one node 0 holding every online CPU and ``MemTotal``.
* ``distance`` rows are laid out over the *online* nodes; a row of another length is matched to
  the ``possible`` nodes when it fits them, and dropped with a warning otherwise.
* A PCI device's NUMA node is its ``numa_node`` when that is 0 or more. When it is ``-1`` or
  missing, the node is inferred from ``local_cpulist`` (or the ``local_cpus`` mask) when those
  CPUs lie within exactly one node; otherwise the device has no node (``None``), as hwloc
  attaches it to the whole machine.
* NUMA nodes that hold a GPU's memory (POWER9 + V100, Grace Hopper: the driver's
  ``/proc/driver/nvidia/gpus/*/numa_status``) stay in :attr:`Topology.nodes`, since libnuma can
  bind to them, but carry ``gpu_memory_of`` and are not counted as host nodes. hwloc hides them.
* Firmware that reports every node with the same CPUs (``buggynuma``) is reported as the kernel
  sees it, since that is what binding acts on, with a warning that placement among those nodes
  means nothing. hwloc merges them into one node and so loses their memory.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "Link",
    "LinkHop",
    "NumaNode",
    "PciDevice",
    "Topology",
    "format_cpulist",
    "parse_cpulist",
    "parse_cpumask",
    "read_topology",
]

NVIDIA = 0x10DE
_VENDORS = {
    0x10DE: "nvidia",
    0x1002: "amd",
    0x8086: "intel",
    0x15B3: "mellanox",
    0x14E4: "broadcom",
    0x1BCF: "nec",
    0x1D0F: "amazon",
    0x1DD8: "pensando",
    0x1077: "qlogic",
    0x1924: "solarflare",
    0x1AF4: "virtio",
}
_BDF = re.compile(r"^[0-9a-fA-F]{4}:[0-9a-fA-F]{2}:[0-9a-fA-F]{2}\.[0-7]$")

# PCIe generation by transfer rate (GT/s), and the line encoding that sets the payload rate.
_GEN_BY_GTS = {2.5: 1, 5.0: 2, 8.0: 3, 16.0: 4, 32.0: 5, 64.0: 6}


# ---------------------------------------------------------------------------------------------
# Small parsers


def parse_cpulist(text: str | None) -> tuple[int, ...]:
    """``"0-3,8,10-11"`` -> ``(0, 1, 2, 3, 8, 10, 11)``. Empty or unreadable gives ``()``."""
    if not text:
        return ()
    out: set[int] = set()
    for part in text.replace("\x00", "").strip().split(","):
        part = part.strip()
        if not part:
            continue
        try:
            if "-" in part:
                lo, _, hi = part.partition("-")
                hi, _, stride = hi.partition(":")  # "0-7:2" (rare, but the kernel allows it)
                out.update(range(int(lo), int(hi) + 1, int(stride) if stride else 1))
            else:
                out.add(int(part))
        except ValueError:
            continue
    return tuple(sorted(out))


def parse_cpumask(text: str | None) -> tuple[int, ...]:
    """A sysfs mask ``"0000,00ff00ff"`` (32-bit hex words, most significant first) -> CPUs."""
    if not text:
        return ()
    words = text.replace("\x00", "").strip().split(",")
    out: list[int] = []
    for i, word in enumerate(reversed(words)):
        word = word.strip().removeprefix("0x")
        if not word:
            continue
        try:
            value = int(word, 16)
        except ValueError:
            return ()
        bit = 0
        while value:
            if value & 1:
                out.append(i * 32 + bit)
            value >>= 1
            bit += 1
    return tuple(sorted(out))


def format_cpulist(cpus: Iterable[int]) -> str:
    """``(0, 1, 2, 3, 8)`` -> ``"0-3,8"``, the kernel's own format."""
    ordered = sorted(set(cpus))
    parts: list[str] = []
    i = 0
    while i < len(ordered):
        j = i
        while j + 1 < len(ordered) and ordered[j + 1] == ordered[j] + 1:
            j += 1
        parts.append(str(ordered[i]) if i == j else f"{ordered[i]}-{ordered[j]}")
        i = j + 1
    return ",".join(parts)


def _read(path: Path) -> str | None:
    try:
        return path.read_text(errors="replace").replace("\x00", "").strip()
    except (OSError, ValueError):
        return None


def _read_int(path: Path, base: int = 10) -> int | None:
    text = _read(path)
    if text is None:
        return None
    try:
        return int(text, base)
    except ValueError:
        return None


def _parse_speed(text: str | None) -> float | None:
    """``"8 GT/s"``, ``"16.0 GT/s PCIe"``, ``"Unknown speed"`` -> 8.0, 16.0, None."""
    if not text:
        return None
    m = re.search(r"(\d+(?:\.\d+)?)\s*GT/s", text)
    if not m:
        return None
    value = float(m.group(1))
    return value if value > 0 else None


def _parse_width(text: str | None) -> int | None:
    if not text:
        return None
    m = re.search(r"\d+", text)
    if not m:
        return None
    value = int(m.group(0))
    # 255 is what some devices report for "unknown"; 0 is a link that is down.
    return value if 0 < value <= 32 else None


# ---------------------------------------------------------------------------------------------
# Types


@dataclass(frozen=True)
class Link:
    """One PCIe link state: transfer rate and lane count (either may be unknown)."""

    speed_gts: float | None
    width: int | None

    @property
    def generation(self) -> int | None:
        if self.speed_gts is None:
            return None
        return (
            _GEN_BY_GTS.get(self.speed_gts)
            or min(
                _GEN_BY_GTS.items(),
                key=lambda kv: abs(kv[0] - self.speed_gts),  # type: ignore[operator]
            )[1]
        )

    @property
    def gbytes_per_s(self) -> float | None:
        """Payload rate per direction in GB/s (1e9 bytes), as hwloc computes ``pci_link_speed``:
        lanes x GT/s x encoding (8b/10b up to Gen2, 128b/130b from Gen3) / 8."""
        if self.speed_gts is None or self.width is None:
            return None
        encoding = 128 / 130 if self.speed_gts >= 8 else 8 / 10
        return self.speed_gts * encoding * self.width / 8

    def describe(self) -> str:
        gen = f"Gen{self.generation}" if self.generation else "Gen?"
        width = f"x{self.width}" if self.width else "x?"
        return f"{gen} {width}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "speed_gts": self.speed_gts,
            "width": self.width,
            "generation": self.generation,
            "gbytes_per_s": None if self.gbytes_per_s is None else round(self.gbytes_per_s, 3),
        }


@dataclass(frozen=True)
class LinkHop:
    """The link of one device on the path from the root complex (its upstream side)."""

    bdf: str
    current: Link
    max: Link

    def to_dict(self) -> dict[str, Any]:
        return {"bdf": self.bdf, "current": self.current.to_dict(), "max": self.max.to_dict()}


@dataclass(frozen=True)
class NumaNode:
    id: int
    cpus: tuple[int, ...]
    memory_bytes: int | None
    #: (other node id, distance) for every node the kernel gave a distance to, self included.
    distances: tuple[tuple[int, int], ...] = ()
    #: PCI bus id of the GPU whose memory this node is (CPU-less GPU memory nodes), else None.
    gpu_memory_of: str | None = None

    def distance_to(self, other: int) -> int | None:
        return dict(self.distances).get(other)

    @property
    def cpulist(self) -> str:
        return format_cpulist(self.cpus)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "cpus": self.cpulist,
            "cpu_count": len(self.cpus),
            "memory_bytes": self.memory_bytes,
            "distances": {str(k): v for k, v in self.distances},
            "gpu_memory_of": self.gpu_memory_of,
        }


@dataclass(frozen=True)
class PciDevice:
    bdf: str
    vendor: int | None
    device: int | None
    class_code: int | None
    #: "gpu", "accelerator", "nic"; "other" only when read with ``all_pci=True``.
    kind: str
    #: The node the device hangs off (see the module notes), or None when unknown.
    numa_node: int | None
    #: What ``numa_node`` said (-1, a node, or None when the file is missing).
    numa_node_sysfs: int | None
    local_cpus: tuple[int, ...]
    link: LinkHop | None
    #: Links from the root port down to this device, this device last.
    path: tuple[LinkHop, ...] = ()
    #: NUMA node holding this GPU's memory, when the driver exposes it as one.
    memory_node: int | None = None

    @property
    def vendor_name(self) -> str:
        if self.vendor is None:
            return "unknown"
        return _VENDORS.get(self.vendor, f"0x{self.vendor:04x}")

    @property
    def is_nvidia_gpu(self) -> bool:
        return self.kind == "gpu" and self.vendor == NVIDIA

    @property
    def narrowest(self) -> LinkHop | None:
        """The slowest link (current state) between the root complex and the device."""
        known = [h for h in self.path if h.current.gbytes_per_s is not None]
        if not known:
            return None
        # The first of equals wins: the one nearest the root complex.
        return min(known, key=lambda h: h.current.gbytes_per_s or 0.0)

    @property
    def degraded(self) -> bool:
        """The device's own link trained below what it (and its port) can do."""
        if self.link is None:
            return False
        cur, mx = self.link.current, self.link.max
        slower = cur.speed_gts is not None and mx.speed_gts is not None
        narrower = cur.width is not None and mx.width is not None
        return (slower and cur.speed_gts < mx.speed_gts) or (  # type: ignore[operator]
            narrower and cur.width < mx.width  # type: ignore[operator]
        )

    def to_dict(self) -> dict[str, Any]:
        narrow = self.narrowest
        return {
            "bdf": self.bdf,
            "kind": self.kind,
            "vendor": None if self.vendor is None else f"0x{self.vendor:04x}",
            "vendor_name": self.vendor_name,
            "device": None if self.device is None else f"0x{self.device:04x}",
            "class": None if self.class_code is None else f"0x{self.class_code:06x}",
            "numa_node": self.numa_node,
            "numa_node_sysfs": self.numa_node_sysfs,
            "local_cpus": format_cpulist(self.local_cpus),
            "link": None if self.link is None else self.link.to_dict(),
            "degraded": self.degraded,
            "narrowest": None if narrow is None else narrow.to_dict(),
            "path": [h.bdf for h in self.path],
            "memory_node": self.memory_node,
        }


@dataclass(frozen=True)
class Topology:
    root: str
    nodes: tuple[NumaNode, ...]
    #: Online CPUs.
    cpus: tuple[int, ...]
    #: Present but offline CPUs.
    offline_cpus: tuple[int, ...] = ()
    #: Possible but offline NUMA nodes.
    offline_nodes: tuple[int, ...] = ()
    devices: tuple[PciDevice, ...] = ()
    #: False when sysfs had no NUMA information and one node was assumed.
    numa_detected: bool = True
    warnings: tuple[str, ...] = field(default=())

    @property
    def node_ids(self) -> tuple[int, ...]:
        return tuple(n.id for n in self.nodes)

    @property
    def host_nodes(self) -> tuple[NumaNode, ...]:
        """Nodes that are the host's memory (not a GPU's memory exposed as a node)."""
        return tuple(n for n in self.nodes if n.gpu_memory_of is None)

    @property
    def cpu_nodes(self) -> tuple[NumaNode, ...]:
        """Nodes with at least one online CPU: where a process can be bound to run."""
        return tuple(n for n in self.nodes if n.cpus)

    @property
    def gpus(self) -> tuple[PciDevice, ...]:
        """NVIDIA GPUs in PCI bus order (the order ``CUDA_DEVICE_ORDER=PCI_BUS_ID`` and
        nvidia-smi use, which is what hpcx's GPU indices mean), then other GPUs."""
        gpus = [d for d in self.devices if d.kind == "gpu"]
        return tuple(sorted(gpus, key=lambda d: (not d.is_nvidia_gpu, d.bdf)))

    @property
    def nvidia_gpus(self) -> tuple[PciDevice, ...]:
        return tuple(d for d in self.gpus if d.is_nvidia_gpu)

    @property
    def cpus_without_node(self) -> tuple[int, ...]:
        placed = {c for n in self.nodes for c in n.cpus}
        return tuple(c for c in self.cpus if c not in placed)

    def node(self, node_id: int) -> NumaNode | None:
        for n in self.nodes:
            if n.id == node_id:
                return n
        return None

    def device(self, bdf: str) -> PciDevice | None:
        want = normalize_bdf(bdf)
        for d in self.devices:
            if d.bdf == want:
                return d
        return None

    def distance_matrix(self) -> list[list[int | None]]:
        return [[a.distance_to(b.id) for b in self.nodes] for a in self.nodes]

    def to_dict(self) -> dict[str, Any]:
        return {
            "root": self.root,
            "numa_detected": self.numa_detected,
            "cpus": format_cpulist(self.cpus),
            "cpu_count": len(self.cpus),
            "offline_cpus": format_cpulist(self.offline_cpus),
            "offline_nodes": list(self.offline_nodes),
            "nodes": [n.to_dict() for n in self.nodes],
            "node_ids": list(self.node_ids),
            "distance_matrix": self.distance_matrix(),
            "devices": [d.to_dict() for d in self.devices],
            "gpus": [d.bdf for d in self.gpus],
            "warnings": list(self.warnings),
        }


def normalize_bdf(bdf: str) -> str:
    """``"17:00.0"``, ``"00000000:17:00.0"`` (the driver's 8-digit domain) -> ``"0000:17:00.0"``."""
    text = bdf.strip().lower()
    parts = text.split(":")
    if len(parts) == 2:
        parts = ["0000", *parts]
    if len(parts) == 3:
        parts[0] = parts[0][-4:].rjust(4, "0")
    return ":".join(parts)


# ---------------------------------------------------------------------------------------------
# Reading


def read_topology(root: Path | str = Path("/"), *, all_pci: bool = False) -> Topology:
    """Read NUMA nodes, CPUs and PCI devices of interest from sysfs under ``root``.

    Devices of interest are GPUs (NVIDIA first), accelerators and network adapters;
    ``all_pci=True`` keeps every other endpoint too (storage, ...; bridges never), as kind
    ``"other"``.
    """
    root = Path(root)
    sysdir = root / "sys"
    warnings: list[str] = []

    # CPUs -------------------------------------------------------------------------------------
    cpu_dir = sysdir / "devices/system/cpu"
    online_text = _read(cpu_dir / "online")
    present = parse_cpulist(_read(cpu_dir / "present"))
    online = parse_cpulist(online_text) if online_text is not None else _cpus_from_dirs(cpu_dir)
    if not present:
        present = tuple(sorted(set(online) | set(_cpu_dirs(cpu_dir))))
    offline_cpus = tuple(c for c in present if c not in set(online))
    online_set = set(online)

    # NUMA nodes ---------------------------------------------------------------------------------
    node_dir = sysdir / "devices/system/node"
    gpu_mem_nodes = _nvidia_gpu_memory_nodes(root)
    node_ids = _online_nodes(node_dir)
    possible = parse_cpulist(_read(node_dir / "possible"))
    nodes: list[NumaNode] = []
    numa_detected = bool(node_ids)
    if not node_ids:
        mem = _meminfo_total(root / "proc/meminfo", r"MemTotal:\s+(\d+)\s*kB")
        nodes.append(NumaNode(id=0, cpus=online, memory_bytes=mem, distances=((0, 10),)))
        if not node_dir.is_dir():
            warnings.append(
                f"no NUMA information under {node_dir}: assuming one node 0 with every CPU"
            )
    else:
        for nid in node_ids:
            ndir = node_dir / f"node{nid}"
            cpulist = _read(ndir / "cpulist")
            cpus = (
                parse_cpulist(cpulist)
                if cpulist is not None
                else parse_cpumask(_read(ndir / "cpumap"))
            )
            cpus = tuple(c for c in cpus if c in online_set)
            mem = _meminfo_total(ndir / "meminfo", r"MemTotal:\s+(\d+)\s*kB")
            distances, problem = _distances(_read(ndir / "distance"), node_ids, possible)
            if problem:
                warnings.append(f"node{nid}/distance: {problem}")
            nodes.append(
                NumaNode(
                    id=nid,
                    cpus=cpus,
                    memory_bytes=mem,
                    distances=distances,
                    gpu_memory_of=gpu_mem_nodes.get(nid),
                )
            )
    offline_nodes = tuple(n for n in possible if n not in set(node_ids)) if node_ids else ()
    warnings.extend(_numa_sanity(nodes, online, offline_nodes))

    # PCI devices ------------------------------------------------------------------------------
    devices = _read_pci(
        root, nodes, {v: k for k, v in gpu_mem_nodes.items()}, warnings, all_pci=all_pci
    )

    return Topology(
        root=str(root),
        nodes=tuple(nodes),
        cpus=online,
        offline_cpus=offline_cpus,
        offline_nodes=offline_nodes,
        devices=devices,
        numa_detected=numa_detected,
        warnings=tuple(warnings),
    )


def _cpu_dirs(cpu_dir: Path) -> list[int]:
    try:
        names = os.listdir(cpu_dir)
    except OSError:
        return []
    return sorted(int(n[3:]) for n in names if re.fullmatch(r"cpu\d+", n))


def _cpus_from_dirs(cpu_dir: Path) -> tuple[int, ...]:
    """No ``online`` file: a CPU is online unless its own ``online`` says 0 (cpu0 often has
    no such file at all, since it cannot be taken offline)."""
    out = []
    for cpu in _cpu_dirs(cpu_dir):
        flag = _read(cpu_dir / f"cpu{cpu}/online")
        if flag is None or flag == "1":
            out.append(cpu)
    if not out:
        count = os.cpu_count() if cpu_dir == Path("/sys/devices/system/cpu") else None
        out = list(range(count or 0))
    return tuple(out)


def _online_nodes(node_dir: Path) -> tuple[int, ...]:
    text = _read(node_dir / "online")
    if text is not None and parse_cpulist(text):
        return parse_cpulist(text)
    try:
        names = os.listdir(node_dir)
    except OSError:
        return ()
    return tuple(sorted(int(n[4:]) for n in names if re.fullmatch(r"node\d+", n)))


def _meminfo_total(path: Path, pattern: str) -> int | None:
    text = _read(path)
    if text is None:
        return None
    m = re.search(pattern, text)
    return int(m.group(1)) * 1024 if m else None


def _distances(
    text: str | None, online: tuple[int, ...], possible: tuple[int, ...]
) -> tuple[tuple[tuple[int, int], ...], str | None]:
    if text is None:
        return (), "missing"
    try:
        row = [int(x) for x in text.split()]
    except ValueError:
        return (), f"unreadable ({text!r})"
    if len(row) == len(online):
        return tuple(zip(online, row, strict=True)), None
    if possible and len(row) == len(possible):
        return tuple(zip(possible, row, strict=True)), None
    return (), f"{len(row)} values for {len(online)} online nodes; distances ignored"


def _numa_sanity(
    nodes: list[NumaNode], online: tuple[int, ...], offline_nodes: tuple[int, ...]
) -> list[str]:
    out: list[str] = []
    with_cpus = [n for n in nodes if n.cpus]
    if len(with_cpus) > 1:
        first = with_cpus[0].cpus
        if all(n.cpus == first for n in with_cpus):
            ids = format_cpulist(n.id for n in with_cpus)
            out.append(
                f"nodes {ids} all report the same CPUs ({format_cpulist(first)}): the firmware's "
                "NUMA information looks wrong, and binding to one of these nodes does not "
                "restrict where a process runs"
            )
        else:
            seen: dict[int, int] = {}
            for n in with_cpus:
                for c in n.cpus:
                    if c in seen:
                        out.append(f"CPU {c} is listed in node {seen[c]} and node {n.id}")
                        break
                    seen[c] = n.id
    placed = {c for n in nodes for c in n.cpus}
    orphans = [c for c in online if c not in placed]
    if orphans and nodes:
        extra = f" (offline nodes: {format_cpulist(offline_nodes)})" if offline_nodes else ""
        out.append(
            f"online CPUs {format_cpulist(orphans)} belong to no online NUMA node{extra}; "
            "no --numa binding can use them"
        )
    return out


def _nvidia_gpu_memory_nodes(root: Path) -> dict[int, str]:
    """node id -> GPU bus id, from the NVIDIA driver's ``numa_status`` (coherent GPU memory)."""
    base = root / "proc/driver/nvidia/gpus"
    out: dict[int, str] = {}
    try:
        entries = sorted(os.listdir(base))
    except OSError:
        return out
    for bdf in entries:
        text = _read(base / bdf / "numa_status")
        if not text:
            continue
        m = re.search(r"^Node:\s*(-?\d+)", text, re.MULTILINE)
        if m and int(m.group(1)) >= 0:
            out[int(m.group(1))] = normalize_bdf(bdf)
    return out


def _classify(vendor: int | None, class_code: int | None, nvidia_driver: bool) -> str | None:
    base = None if class_code is None else class_code >> 16
    sub = None if class_code is None else (class_code >> 8) & 0xFF
    if base == 0x03 or nvidia_driver:
        return "gpu"
    if base == 0x12 or (base == 0x0B and sub == 0x40):  # processing accelerator, co-processor
        return "accelerator"
    if base == 0x02:  # ethernet, infiniband, fabric
        return "nic"
    return None


def _link(dev: Path, bdf: str) -> LinkHop | None:
    cur = Link(
        _parse_speed(_read(dev / "current_link_speed")),
        _parse_width(_read(dev / "current_link_width")),
    )
    mx = Link(
        _parse_speed(_read(dev / "max_link_speed")), _parse_width(_read(dev / "max_link_width"))
    )
    if cur == Link(None, None) and mx == Link(None, None):
        return None
    return LinkHop(bdf=bdf, current=cur, max=mx)


def _pci_dirs(root: Path) -> dict[str, Path]:
    """bus id -> the device's real folder (so its parents are the bridges above it)."""
    out: dict[str, Path] = {}
    bus = root / "sys/bus/pci/devices"
    try:
        names = os.listdir(bus)
    except OSError:
        names = []
    for name in names:
        if not _BDF.match(name):
            continue
        entry = bus / name
        real = Path(os.path.realpath(entry))
        # A relative link resolves inside the snapshot; an absolute one would escape it.
        out[normalize_bdf(name)] = real if real.is_dir() and _inside(real, root) else entry
    if out:
        return out
    # No bus folder: walk /sys/devices/pci* directly.
    devices = root / "sys/devices"
    try:
        tops = [devices / n for n in os.listdir(devices) if n.startswith("pci")]
    except OSError:
        return out
    for top in tops:
        for dirpath, dirnames, _ in os.walk(top):
            for d in list(dirnames):
                if _BDF.match(d):
                    out.setdefault(normalize_bdf(d), Path(dirpath) / d)
                else:
                    dirnames.remove(d)
    return out


def _inside(path: Path, root: Path) -> bool:
    try:
        path.relative_to(os.path.realpath(root))
    except ValueError:
        return False
    return True


def _read_pci(
    root: Path,
    nodes: list[NumaNode],
    memory_node_of: dict[str, int],
    warnings: list[str],
    *,
    all_pci: bool = False,
) -> tuple[PciDevice, ...]:
    dirs = _pci_dirs(root)
    nvidia_driver = {normalize_bdf(b) for b in memory_node_of} | _nvidia_driver_gpus(root)
    cpu_nodes = [n for n in nodes if n.cpus]
    out: list[PciDevice] = []
    for bdf, dev in sorted(dirs.items()):
        vendor = _read_int(dev / "vendor", 16)
        class_code = _read_int(dev / "class", 16)
        kind = _classify(vendor, class_code, bdf in nvidia_driver)
        if kind is None:
            is_bridge = class_code is not None and class_code >> 16 == 0x06
            if not all_pci or is_bridge:
                continue
            kind = "other"
        if bdf in nvidia_driver and vendor is None:
            vendor = NVIDIA  # the NVIDIA driver claims it, even if the snapshot lacks `vendor`
        raw_node = _read_int(dev / "numa_node")
        cpulist_text = _read(dev / "local_cpulist")
        local = (
            parse_cpulist(cpulist_text)
            if cpulist_text is not None
            else parse_cpumask(_read(dev / "local_cpus"))
        )
        node: int | None = raw_node if raw_node is not None and raw_node >= 0 else None
        if node is None and local:
            owners = {n.id for n in cpu_nodes if set(n.cpus) & set(local)}
            if len(owners) == 1:
                node = owners.pop()
        if node is not None and not any(n.id == node for n in nodes):
            warnings.append(f"{bdf}: numa_node {node} is not an online node")
        path = []
        for part in dev.parts:
            if _BDF.match(part):
                hop = _link(_ancestor(dev, part), normalize_bdf(part))
                if hop is not None:
                    path.append(hop)
        link = _link(dev, bdf)
        if link is not None and (not path or path[-1].bdf != bdf):
            path.append(link)
        out.append(
            PciDevice(
                bdf=bdf,
                vendor=vendor,
                device=_read_int(dev / "device", 16),
                class_code=class_code,
                kind=kind,
                numa_node=node,
                numa_node_sysfs=raw_node,
                local_cpus=local,
                link=link,
                path=tuple(path),
                memory_node=memory_node_of.get(bdf),
            )
        )
    order = {"gpu": 0, "accelerator": 1, "nic": 2, "other": 3}
    out.sort(key=lambda d: (order[d.kind], not d.is_nvidia_gpu, d.bdf))
    return tuple(out)


def _ancestor(dev: Path, part: str) -> Path:
    """The folder in ``dev``'s path whose name is ``part`` (a bridge above it, or itself)."""
    parts = dev.parts
    idx = len(parts) - 1 - parts[::-1].index(part)
    return Path(*parts[: idx + 1])


def _nvidia_driver_gpus(root: Path) -> set[str]:
    try:
        return {normalize_bdf(b) for b in os.listdir(root / "proc/driver/nvidia/gpus")}
    except OSError:
        return set()
