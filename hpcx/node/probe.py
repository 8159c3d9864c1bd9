"""``hpcx probe``: what a node is (topology, GPU affinity, PCIe links) and what it does
(CPU and GPU copy bandwidth), checked against a profile.

Three parts, kept apart as the house style asks:

* :func:`run_probe` gathers a :class:`ProbeReport` (the only part that touches sysfs and the
  native module; ``native=`` lets tests hand in a stand-in).
* :func:`check` is a pure function from a report and a :class:`CheckProfile` to findings.
* :func:`format_report` and :func:`format_findings` render text; the CLI only prints.
"""

from __future__ import annotations

import math
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from hpcx import __version__
from hpcx.errors import HpcxError, ProfileError
from hpcx.node.topology import LinkHop, PciDevice, Topology, normalize_bdf, read_topology

__all__ = [
    "DEFAULT_CPU_SAMPLES",
    "DEFAULT_CPU_SIZE",
    "DEFAULT_GPU_SAMPLES",
    "DEFAULT_GPU_SIZE",
    "TYPICAL_X16_GBPS",
    "CheckProfile",
    "Finding",
    "GpuBandwidth",
    "GpuInfo",
    "Measurement",
    "ProbeReport",
    "ProfileError",
    "check",
    "expected_bandwidth",
    "format_findings",
    "format_report",
    "load_profile",
    "run_probe",
]

#: Schema version of :meth:`ProbeReport.to_dict`; bump when a key changes meaning or goes away.
REPORT_VERSION = 1

# Defaults chosen so a full probe of a one- or two-node machine takes a few seconds: buffers
# far beyond any last-level cache (the largest are a few hundred MB per socket), medians of 5.
DEFAULT_CPU_SIZE = 256 << 20
DEFAULT_CPU_SAMPLES = 5
DEFAULT_GPU_SIZE = 64 << 20
DEFAULT_GPU_SAMPLES = 10

#: Pinned host<->device GB/s a healthy x16 link of each generation typically reaches
#: (nvbandwidth-style, one direction). Scaled by width/16 for narrower links.
TYPICAL_X16_GBPS: dict[int, float] = {1: 3.0, 2: 6.0, 3: 12.0, 4: 25.0, 5: 55.0, 6: 110.0}

Progress = Callable[[str, int, int], None]


def _num(x: float) -> float | None:
    """JSON has no NaN: an unmeasurable pair (a CPU-less node) is null."""
    return round(x, 3) if math.isfinite(x) else None


# ---------------------------------------------------------------------------------------------
# Report types (data only)


@dataclass(frozen=True)
class Measurement:
    """One bandwidth figure: the median of ``samples`` (GB/s, 1 GB = 1e9 bytes)."""

    gbps: float
    samples: tuple[float, ...] = ()
    size: int = 0
    kind: str = ""

    @classmethod
    def from_native(cls, bw: Any) -> Measurement:
        return cls(
            gbps=float(bw.gbps),
            samples=tuple(float(s) for s in getattr(bw, "samples", ()) or ()),
            size=int(getattr(bw, "size", 0) or 0),
            kind=str(getattr(bw, "kind", "") or ""),
        )

    @property
    def valid(self) -> bool:
        return math.isfinite(self.gbps)

    def to_dict(self) -> dict[str, Any]:
        return {
            "gbps": _num(self.gbps),
            "samples": [_num(s) for s in self.samples],
            "size": self.size,
            "kind": self.kind,
        }


@dataclass(frozen=True)
class GpuInfo:
    """A GPU as sysfs and the driver see it. ``index`` is hpcx's: PCI bus order."""

    index: int
    bdf: str
    name: str | None = None
    cuda_index: int | None = None
    total_memory: int | None = None
    numa_node: int | None = None
    memory_node: int | None = None
    link: LinkHop | None = None
    narrowest: LinkHop | None = None
    degraded: bool = False
    #: Narrowest *capability* (max link) on the path: what the slot should deliver.
    capability: LinkHop | None = None

    @property
    def label(self) -> str:
        return f"gpu{self.index}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "bdf": self.bdf,
            "name": self.name,
            "cuda_index": self.cuda_index,
            "total_memory": self.total_memory,
            "numa_node": self.numa_node,
            "memory_node": self.memory_node,
            "link": None if self.link is None else self.link.to_dict(),
            "narrowest": None if self.narrowest is None else self.narrowest.to_dict(),
            "capability": None if self.capability is None else self.capability.to_dict(),
            "degraded": self.degraded,
        }


@dataclass(frozen=True)
class GpuBandwidth:
    """Pinned (and, for the GPU's own node, pageable) copies between one GPU and one node."""

    gpu: int
    numa_node: int
    h2d: Measurement | None = None
    d2h: Measurement | None = None
    h2d_pageable: Measurement | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "gpu": self.gpu,
            "numa_node": self.numa_node,
            "h2d": None if self.h2d is None else self.h2d.to_dict(),
            "d2h": None if self.d2h is None else self.d2h.to_dict(),
            "h2d_pageable": None if self.h2d_pageable is None else self.h2d_pageable.to_dict(),
        }


@dataclass(frozen=True)
class ProbeReport:
    host: str
    time: str
    hpcx_version: str
    #: "live" (this machine) or "snapshot" (``--sysfs-root``: nothing measured).
    source: str
    topology: Topology
    capabilities: Mapping[str, Any]
    gpus: tuple[GpuInfo, ...] = ()
    #: Node ids of both axes of :attr:`cpu_bandwidth`.
    cpu_bandwidth_nodes: tuple[int, ...] = ()
    #: ``[memory node][cpu node]`` copy bandwidth, or None when not measured.
    cpu_bandwidth: tuple[tuple[Measurement, ...], ...] | None = None
    gpu_bandwidth: tuple[GpuBandwidth, ...] = ()
    settings: Mapping[str, Any] = field(default_factory=dict)
    #: Why a part was not measured, in words ("--quick", "no NVIDIA GPU", ...).
    skipped: tuple[str, ...] = ()
    duration_s: float = 0.0

    @property
    def measured(self) -> bool:
        return self.cpu_bandwidth is not None or bool(self.gpu_bandwidth)

    def gpu(self, index: int) -> GpuInfo | None:
        return next((g for g in self.gpus if g.index == index), None)

    def gpu_rows(self, index: int) -> tuple[GpuBandwidth, ...]:
        return tuple(r for r in self.gpu_bandwidth if r.gpu == index)

    def to_dict(self) -> dict[str, Any]:
        """Stable, documented keys (docs/probe.md); this is what ``--json`` prints and what
        the state records."""
        matrix = None
        if self.cpu_bandwidth is not None:
            matrix = [[_num(m.gbps) for m in row] for row in self.cpu_bandwidth]
        return {
            "report_version": REPORT_VERSION,
            "host": self.host,
            "time": self.time,
            "hpcx_version": self.hpcx_version,
            "source": self.source,
            "capabilities": dict(self.capabilities),
            "settings": dict(self.settings),
            "skipped": list(self.skipped),
            "duration_s": round(self.duration_s, 3),
            "topology": self.topology.to_dict(),
            "gpus": [g.to_dict() for g in self.gpus],
            "cpu_bandwidth": None
            if self.cpu_bandwidth is None
            else {
                "nodes": list(self.cpu_bandwidth_nodes),
                "axes": "[memory node][cpu node]",
                "gbps": matrix,
                "detail": [[m.to_dict() for m in row] for row in self.cpu_bandwidth],
            },
            "gpu_bandwidth": [r.to_dict() for r in self.gpu_bandwidth],
        }


# ---------------------------------------------------------------------------------------------
# Gathering


def _load_native() -> tuple[Any | None, str | None]:
    try:
        from hpcx.node import native
    except ImportError as exc:  # the wrapper or the compiled module is not there
        return None, f"native module unavailable: {exc}"
    return native, None


def _capabilities(native: Any | None, error: str | None) -> dict[str, Any]:
    if native is None:
        return {
            "native": False,
            "native_error": error,
            "numa": False,
            "numa_error": error,
            "cuda": False,
            "cuda_error": error,
        }
    caps = native.capabilities()
    if isinstance(caps, Mapping):
        out = dict(caps)
    else:
        names = (
            "native",
            "native_error",
            "numa",
            "numa_error",
            "cuda",
            "cuda_error",
            "numa_library",
            "cuda_library",
        )
        out = {k: getattr(caps, k) for k in names if hasattr(caps, k)}
    out.setdefault("native", True)
    return out


def _path_capability(dev: PciDevice) -> LinkHop | None:
    known = [h for h in dev.path if h.max.gbytes_per_s is not None]
    if not known:
        return None
    return min(known, key=lambda h: h.max.gbytes_per_s or 0.0)


def _gpus(topology: Topology, driver: list[Any]) -> tuple[GpuInfo, ...]:
    """NVIDIA GPUs from sysfs joined with the driver's list by PCI bus id, in bus order."""
    by_bdf: dict[str, Any] = {normalize_bdf(str(d.pci_bus_id)): d for d in driver}
    bdfs = sorted({g.bdf for g in topology.nvidia_gpus} | set(by_bdf))
    out: list[GpuInfo] = []
    for i, bdf in enumerate(bdfs):
        dev = topology.device(bdf)
        drv = by_bdf.get(bdf)
        out.append(
            GpuInfo(
                index=i,
                bdf=bdf,
                name=None if drv is None else str(drv.name),
                cuda_index=None if drv is None else int(drv.index),
                total_memory=None if drv is None else int(drv.total_memory),
                numa_node=None if dev is None else dev.numa_node,
                memory_node=None if dev is None else dev.memory_node,
                link=None if dev is None else dev.link,
                narrowest=None if dev is None else dev.narrowest,
                degraded=False if dev is None else dev.degraded,
                capability=None if dev is None else _path_capability(dev),
            )
        )
    return tuple(out)


def run_probe(
    *,
    sysfs_root: Path | str | None = None,
    quick: bool = False,
    size: int = DEFAULT_CPU_SIZE,
    samples: int = DEFAULT_CPU_SAMPLES,
    gpu_size: int = DEFAULT_GPU_SIZE,
    gpu_samples: int = DEFAULT_GPU_SAMPLES,
    progress: Progress | None = None,
    native: Any | None = None,
) -> ProbeReport:
    """Read the topology and, unless ``quick`` or reading a snapshot, measure bandwidth.

    ``progress(stage, done, total)`` is called while measuring. ``native`` replaces
    :mod:`hpcx.node.native` (tests pass a stand-in); by default it is imported here, lazily.
    """
    if size <= 0 or samples <= 0 or gpu_size <= 0 or gpu_samples <= 0:
        raise ValueError("size and samples must be positive")
    started = time.perf_counter()
    snapshot = sysfs_root is not None and Path(sysfs_root).resolve() != Path("/")
    topology = read_topology(Path(sysfs_root) if sysfs_root is not None else Path("/"))
    skipped: list[str] = []

    native_error: str | None = None
    if snapshot:
        native = None
        caps: dict[str, Any] = {"native": False, "numa": False, "cuda": False}
        skipped.append("snapshot: nothing measured (the snapshot is not this machine)")
    else:
        if native is None:
            native, native_error = _load_native()
        caps = _capabilities(native, native_error)

    driver_gpus: list[Any] = []
    if native is not None and caps.get("cuda"):
        try:
            driver_gpus = list(native.cuda_devices())
        except HpcxError as exc:
            skipped.append(f"CUDA devices: {exc}")
    gpus = _gpus(topology, driver_gpus)

    settings = {
        "cpu_size": size,
        "cpu_samples": samples,
        "gpu_size": gpu_size,
        "gpu_samples": gpu_samples,
        "quick": quick,
    }
    cpu_nodes: tuple[int, ...] = ()
    cpu_bw: tuple[tuple[Measurement, ...], ...] | None = None
    gpu_bw: list[GpuBandwidth] = []

    if not snapshot and quick:
        skipped.append("--quick: bandwidth not measured")
    elif not snapshot and native is None:
        skipped.append(native_error or "native module unavailable")
    elif not snapshot:
        assert native is not None
        if caps.get("numa"):
            cpu_nodes, cpu_bw = _measure_cpu(native, topology, size, samples, progress, skipped)
        else:
            skipped.append(f"CPU bandwidth: libnuma unavailable ({caps.get('numa_error')})")
        if not caps.get("cuda"):
            skipped.append(f"GPU bandwidth: no CUDA driver ({caps.get('cuda_error')})")
        elif not any(g.cuda_index is not None for g in gpus):
            skipped.append("GPU bandwidth: the driver lists no GPU")
        else:
            gpu_bw = _measure_gpus(
                native, topology, gpus, gpu_size, gpu_samples, progress, skipped, caps
            )

    return ProbeReport(
        host=socket.gethostname() if not snapshot else f"snapshot:{Path(str(sysfs_root)).name}",
        time=datetime.now(UTC).isoformat(timespec="seconds"),
        hpcx_version=__version__,
        source="snapshot" if snapshot else "live",
        topology=topology,
        capabilities=caps,
        gpus=gpus,
        cpu_bandwidth_nodes=cpu_nodes,
        cpu_bandwidth=cpu_bw,
        gpu_bandwidth=tuple(gpu_bw),
        settings=settings,
        skipped=tuple(skipped),
        duration_s=time.perf_counter() - started,
    )


def _measure_cpu(
    native: Any,
    topology: Topology,
    size: int,
    samples: int,
    progress: Progress | None,
    skipped: list[str],
) -> tuple[tuple[int, ...], tuple[tuple[Measurement, ...], ...] | None]:
    def cb(done: int, total: int) -> None:
        if progress is not None:
            progress("CPU bandwidth", done, total)

    try:
        matrix = native.cpu_bandwidth_matrix(size=size, samples=samples, progress=cb)
    except (HpcxError, ValueError, MemoryError) as exc:
        skipped.append(f"CPU bandwidth: {exc}")
        return (), None
    # The native matrix is indexed by libnuma's node numbers 0..numa_max_node, holes
    # included (NaN there); keep the online nodes only.
    ids = tuple(i for i in range(len(matrix)) if topology.node(i) is not None)
    if not ids:
        ids = tuple(range(len(matrix)))
    return ids, tuple(tuple(Measurement.from_native(matrix[m][c]) for c in ids) for m in ids)


def _measure_gpus(
    native: Any,
    topology: Topology,
    gpus: tuple[GpuInfo, ...],
    size: int,
    samples: int,
    progress: Progress | None,
    skipped: list[str],
    caps: Mapping[str, Any],
) -> list[GpuBandwidth]:
    # Host memory nodes only: a GPU's own memory exposed as a node is not "host" memory.
    nodes = [n.id for n in topology.host_nodes if n.memory_bytes != 0]
    if not caps.get("numa"):
        nodes = nodes[:1]  # cannot place buffers: one measurement, wherever malloc puts it
    todo = [(g, n) for g in gpus if g.cuda_index is not None for n in nodes]
    total = len(todo) * 2 + sum(1 for g in gpus if g.cuda_index is not None)
    done = 0
    rows: list[GpuBandwidth] = []

    def step() -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress("GPU bandwidth", done, total)

    for gpu, node in todo:
        measured: dict[str, Measurement | None] = {}
        for direction in ("h2d", "d2h"):
            try:
                bw = native.gpu_copy_bandwidth(
                    gpu.cuda_index, node, direction, size=size, samples=samples
                )
                measured[direction] = Measurement.from_native(bw)
            except (HpcxError, ValueError, MemoryError) as exc:
                measured[direction] = None
                skipped.append(f"{gpu.label} node{node} {direction}: {exc}")
            step()
        pageable = None
        local = gpu.numa_node if gpu.numa_node in nodes else nodes[0] if nodes else None
        if node == local:
            try:
                pageable = Measurement.from_native(
                    native.gpu_copy_bandwidth(
                        gpu.cuda_index, node, "h2d", size=size, samples=samples, pinned=False
                    )
                )
            except (HpcxError, ValueError, MemoryError) as exc:
                skipped.append(f"{gpu.label} node{node} pageable h2d: {exc}")
            step()
        rows.append(
            GpuBandwidth(
                gpu=gpu.index,
                numa_node=node,
                h2d=measured.get("h2d"),
                d2h=measured.get("d2h"),
                h2d_pageable=pageable,
            )
        )
    return rows


# ---------------------------------------------------------------------------------------------
# Checks


@dataclass(frozen=True)
class CheckProfile:
    """Thresholds a node must meet. ``None`` switches a rule off."""

    #: Host NUMA nodes (GPU-memory nodes not counted).
    numa_nodes: int | None = None
    #: NVIDIA GPUs (sysfs and driver together).
    gpus: int | None = None
    min_link_gen: int | None = None
    min_link_width: int | None = None
    #: GB/s; "auto" = ``bandwidth_fraction`` x the typical figure for the GPU's link.
    min_h2d: float | Literal["auto"] | None = "auto"
    min_d2h: float | Literal["auto"] | None = "auto"
    bandwidth_fraction: float = 0.8
    #: The node a GPU hangs off (sysfs) must be the one with the fastest measured H2D.
    gpu_local_fastest: bool = True
    #: Relative slack for ``gpu_local_fastest`` (measurement noise).
    fastest_tolerance: float = 0.05
    #: GB/s for the CPU copy from a node's own memory (diagonal of the matrix).
    min_cpu_bandwidth: float | None = None
    #: GPU links must run at their maximum speed and width.
    no_degraded_links: bool = False
    #: Topology warnings (wrong firmware NUMA data, orphaned CPUs) fail the check.
    no_topology_warnings: bool = False


_PROFILE_KEYS = {f.name for f in fields(CheckProfile)}


def _profile_value(key: str, value: Any, where: str) -> Any:
    def bad(what: str) -> ProfileError:
        return ProfileError(
            f"{where}: {key} must be {what}, got {value!r}",
            hint="see docs/probe.md, 'Check profiles'",
        )

    if key in ("numa_nodes", "gpus", "min_link_gen", "min_link_width"):
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise bad("a whole number >= 0 (or null)")
        if key == "min_link_gen" and not 1 <= value <= 6:
            raise bad("a PCIe generation 1-6")
        return value
    if key in ("min_h2d", "min_d2h"):
        if value is None or value == "auto":
            return value
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise bad('a number of GB/s, "auto" or null')
        return float(value)
    if key in ("bandwidth_fraction", "fastest_tolerance"):
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
            raise bad("a number between 0 and 1")
        return float(value)
    if key == "min_cpu_bandwidth":
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise bad("a number of GB/s (or null)")
        return float(value)
    if not isinstance(value, bool):
        raise bad("true or false")
    return value


def profile_from_mapping(data: Any, where: str = "profile") -> CheckProfile:
    if data is None:
        return CheckProfile()
    if not isinstance(data, Mapping):
        raise ProfileError(f"{where}: a profile is a mapping of keys to values, not {data!r}")
    values: dict[str, Any] = {}
    for key, value in data.items():
        if key not in _PROFILE_KEYS:
            allowed = ", ".join(sorted(_PROFILE_KEYS))
            raise ProfileError(
                f"{where}: unknown key {key!r} (allowed: {allowed})",
                hint="see docs/probe.md, 'Check profiles'",
            )
        values[key] = _profile_value(key, value, where)
    return CheckProfile(**values)


def load_profile(path: Path | str) -> CheckProfile:
    """Read a YAML check profile, validating every key."""
    from hpcx.util.yamlload import MAX_BYTES, Problem, parse_text

    path = Path(path)
    try:
        if path.stat().st_size > MAX_BYTES:
            raise ProfileError(f"check profile {path} is over the {MAX_BYTES}-byte cap")
        raw = path.read_bytes()
    except OSError as exc:
        raise ProfileError(f"cannot read check profile {path}: {exc.strerror or exc}") from None
    loaded = parse_text(raw, str(path), allow_empty=True)
    if isinstance(loaded, Problem):
        where = f"{path}:{loaded.line}" if loaded.line is not None else str(path)
        raise ProfileError(f"{where}: not valid YAML: {loaded.message}")
    return profile_from_mapping(loaded.data, str(path))


def with_overrides(profile: CheckProfile, **overrides: Any) -> CheckProfile:
    """The profile with every override that is not None applied (the CLI's ``--expect-*``)."""
    given = {k: v for k, v in overrides.items() if v is not None}
    for key, value in given.items():
        _profile_value(key, value, "command line")
    return replace(profile, **given)


Status = Literal["pass", "fail", "skip"]


@dataclass(frozen=True)
class Finding:
    subject: str
    rule: str
    status: Status
    message: str

    @property
    def ok(self) -> bool:
        return self.status != "fail"

    def line(self) -> str:
        return f"{self.status.upper()} {self.subject}: {self.message}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "subject": self.subject,
            "rule": self.rule,
            "status": self.status,
            "message": self.message,
        }


def expected_bandwidth(hop: LinkHop | None, fraction: float = 0.8) -> float | None:
    """``fraction`` x the typical pinned GB/s of the link's maximum generation, by width."""
    if hop is None or hop.max.generation is None or hop.max.width is None:
        return None
    typical = TYPICAL_X16_GBPS.get(hop.max.generation)
    if typical is None:
        return None
    return fraction * typical * hop.max.width / 16


def _best(rows: tuple[GpuBandwidth, ...], direction: str) -> Measurement | None:
    ms = [getattr(r, direction) for r in rows if getattr(r, direction) is not None]
    return max(ms, key=lambda m: m.gbps) if ms else None


def _local(rows: tuple[GpuBandwidth, ...], gpu: GpuInfo, direction: str) -> Measurement | None:
    for r in rows:
        if r.numa_node == gpu.numa_node and getattr(r, direction) is not None:
            m: Measurement = getattr(r, direction)
            return m
    return _best(rows, direction)


def check(report: ProbeReport, profile: CheckProfile) -> list[Finding]:
    """Every rule of ``profile`` applied to ``report``: one finding per rule and subject.

    A rule that cannot be judged from the report (bandwidth under ``--quick`` or from a
    snapshot, a link sysfs does not show) gives ``skip``, which does not fail the check.
    """
    out: list[Finding] = []
    topo = report.topology

    if profile.numa_nodes is not None:
        have = len(topo.host_nodes)
        ok = have == profile.numa_nodes
        msg = f"{have} NUMA nodes" + ("" if ok else f", expected {profile.numa_nodes}")
        out.append(Finding("node", "numa_nodes", "pass" if ok else "fail", msg))

    if profile.gpus is not None:
        have = len(report.gpus)
        ok = have == profile.gpus
        msg = f"{have} GPUs" + ("" if ok else f", expected {profile.gpus}")
        out.append(Finding("node", "gpus", "pass" if ok else "fail", msg))

    if profile.no_topology_warnings:
        if topo.warnings:
            out.extend(Finding("node", "no_topology_warnings", "fail", w) for w in topo.warnings)
        else:
            out.append(Finding("node", "no_topology_warnings", "pass", "no topology warnings"))

    if profile.min_cpu_bandwidth is not None:
        out.extend(_check_cpu_bandwidth(report, profile.min_cpu_bandwidth))

    for gpu in report.gpus:
        rows = report.gpu_rows(gpu.index)
        out.extend(_check_link(report, gpu, rows, profile))
        for direction, wanted in (("h2d", profile.min_h2d), ("d2h", profile.min_d2h)):
            if wanted is None:
                continue
            out.append(_check_bandwidth(report, gpu, rows, direction, wanted, profile))
        if profile.gpu_local_fastest:
            out.append(_check_local_fastest(gpu, rows, profile.fastest_tolerance))
    return out


def _not_measured(report: ProbeReport) -> str:
    if report.source == "snapshot":
        return "not measured (snapshot)"
    if report.settings.get("quick"):
        return "not measured (--quick)"
    return "not measured"


def _check_cpu_bandwidth(report: ProbeReport, minimum: float) -> list[Finding]:
    if report.cpu_bandwidth is None:
        return [Finding("cpu", "min_cpu_bandwidth", "skip", _not_measured(report))]
    out = []
    for i, node in enumerate(report.cpu_bandwidth_nodes):
        gbps = report.cpu_bandwidth[i][i].gbps
        if not math.isfinite(gbps):
            out.append(Finding(f"node{node}", "min_cpu_bandwidth", "skip", "no CPUs or memory"))
            continue
        ok = gbps >= minimum
        msg = f"local copy {gbps:.1f} GB/s" + ("" if ok else f" below {minimum:g} GB/s")
        out.append(Finding(f"node{node}", "min_cpu_bandwidth", "pass" if ok else "fail", msg))
    return out


def _check_link(
    report: ProbeReport, gpu: GpuInfo, rows: tuple[GpuBandwidth, ...], profile: CheckProfile
) -> list[Finding]:
    out: list[Finding] = []
    want_gen, want_width = profile.min_link_gen, profile.min_link_width
    if want_gen is None and want_width is None and not profile.no_degraded_links:
        return out
    if gpu.link is None:
        out.append(Finding(gpu.label, "link", "skip", "link state not in sysfs"))
        return out
    want = f"Gen{want_gen or '?'} x{want_width or '?'}"
    if want_gen is None:
        want = f"x{want_width}"
    elif want_width is None:
        want = f"Gen{want_gen}"
    cur, mx = gpu.link.current, gpu.link.max
    narrow = gpu.narrowest or gpu.link

    def below(link_gen: int | None, link_width: int | None) -> bool:
        return (want_gen is not None and link_gen is not None and link_gen < want_gen) or (
            want_width is not None and link_width is not None and link_width < want_width
        )

    if want_gen is not None or want_width is not None:
        of_max = "" if cur == mx else f" (max {mx.describe()})"
        if not below(cur.generation, cur.width):
            if narrow.bdf != gpu.bdf and below(narrow.current.generation, narrow.current.width):
                msg = (
                    f"link {cur.describe()}, but upstream {narrow.bdf} is "
                    f"{narrow.current.describe()}, below {want}"
                )
                out.append(Finding(gpu.label, "link", "fail", msg))
            else:
                out.append(Finding(gpu.label, "link", "pass", f"link {cur.describe()}"))
        elif not below(mx.generation, cur.width):
            # Only the speed is low and the link can do better: GPUs lower the link speed
            # (never the width) when idle. A measured H2D at the link's rate shows it trains
            # up under load; without a measurement it cannot be judged.
            if _bandwidth_holds(gpu, rows):
                msg = f"link {cur.describe()} at idle{of_max}; H2D measured at full rate"
                out.append(Finding(gpu.label, "link", "pass", msg))
            elif not any(r.h2d is not None for r in rows):
                msg = (
                    f"link {cur.describe()} now{of_max}: idle GPUs lower the link speed, and "
                    f"bandwidth was {_not_measured(report)}"
                )
                out.append(Finding(gpu.label, "link", "skip", msg))
            else:
                msg = f"link {cur.describe()} below {want}{of_max}, and H2D is low"
                out.append(Finding(gpu.label, "link", "fail", msg))
        else:
            msg = f"link {cur.describe()} below {want}{of_max}"
            out.append(Finding(gpu.label, "link", "fail", msg))
    if profile.no_degraded_links:
        status: Status = "fail" if gpu.degraded else "pass"
        msg = f"link {cur.describe()} of {mx.describe()}" + (" (degraded)" if gpu.degraded else "")
        out.append(Finding(gpu.label, "no_degraded_links", status, msg))
    return out


def _min_for(gpu: GpuInfo, wanted: float | str, fraction: float) -> float | None:
    if wanted == "auto":
        return expected_bandwidth(gpu.capability or gpu.link, fraction)
    return float(wanted)


def _bandwidth_holds(gpu: GpuInfo, rows: tuple[GpuBandwidth, ...]) -> bool:
    m = _local(rows, gpu, "h2d")
    floor = _min_for(gpu, "auto", 0.8)
    return m is not None and floor is not None and m.gbps >= floor


def _check_bandwidth(
    report: ProbeReport,
    gpu: GpuInfo,
    rows: tuple[GpuBandwidth, ...],
    direction: str,
    wanted: float | str,
    profile: CheckProfile,
) -> Finding:
    rule = f"min_{direction}"
    name = direction.upper()
    floor = _min_for(gpu, wanted, profile.bandwidth_fraction)
    if floor is None:
        return Finding(gpu.label, rule, "skip", f"{name}: link generation unknown, no default")
    m = _local(rows, gpu, direction)
    if m is None:
        return Finding(gpu.label, rule, "skip", f"{name} {_not_measured(report)}")
    ok = m.gbps >= floor
    basis = ""
    if wanted == "auto":
        hop = gpu.capability or gpu.link
        assert hop is not None
        basis = f" ({profile.bandwidth_fraction:g} x typical {hop.max.describe()})"
    node = next((r.numa_node for r in rows if getattr(r, direction) is m), None)
    where = f" from node{node}" if node is not None else ""
    msg = f"{name}{where} {m.gbps:.1f} GB/s" + ("" if ok else f" below {floor:.1f} GB/s{basis}")
    return Finding(gpu.label, rule, "pass" if ok else "fail", msg)


def _check_local_fastest(gpu: GpuInfo, rows: tuple[GpuBandwidth, ...], tol: float) -> Finding:
    measured = [(r.numa_node, r.h2d.gbps) for r in rows if r.h2d is not None]
    if len(measured) < 2:
        return Finding(gpu.label, "gpu_local_fastest", "skip", "fewer than 2 nodes measured")
    if gpu.numa_node is None:
        return Finding(gpu.label, "gpu_local_fastest", "skip", "sysfs gives no NUMA node")
    fastest_node, fastest = max(measured, key=lambda x: x[1])
    local = dict(measured).get(gpu.numa_node)
    if local is None:
        return Finding(gpu.label, "gpu_local_fastest", "skip", f"node{gpu.numa_node} not measured")
    if fastest_node == gpu.numa_node or local >= fastest * (1 - tol):
        return Finding(
            gpu.label,
            "gpu_local_fastest",
            "pass",
            f"local node{gpu.numa_node} fastest ({local:.1f} GB/s)",
        )
    return Finding(
        gpu.label,
        "gpu_local_fastest",
        "fail",
        f"fastest H2D from node{fastest_node} ({fastest:.1f} GB/s), not from its local "
        f"node{gpu.numa_node} ({local:.1f} GB/s)",
    )


# ---------------------------------------------------------------------------------------------
# Rendering


def _gib(n: int | None) -> str:
    return "?" if n is None else f"{n / 2**30:.1f} GiB"


def format_report(report: ProbeReport) -> str:
    topo = report.topology
    lines: list[str] = []
    head = f"hpcx {report.hpcx_version} probe of {report.host} at {report.time}"
    if report.source == "snapshot":
        head += f" (snapshot {topo.root})"
    lines.append(head)
    lines.append("")
    lines.append(
        f"NUMA: {len(topo.host_nodes)} node(s), {len(topo.cpus)} online CPU(s)"
        + ("" if topo.numa_detected else " (no NUMA information: one node assumed)")
    )
    for n in topo.nodes:
        extra = f"  memory of GPU {n.gpu_memory_of}" if n.gpu_memory_of else ""
        cpus = n.cpulist or "-"
        lines.append(f"  node{n.id:<4} cpus {cpus:<24} memory {_gib(n.memory_bytes):>10}{extra}")
    if len(topo.nodes) > 1:
        width = max(5, *(len(str(n.id)) + 5 for n in topo.nodes))
        lines.append("  distances:")
        lines.append("  " + " " * 8 + "".join(f"{'node' + str(n.id):>{width}}" for n in topo.nodes))
        for n, row in zip(topo.nodes, topo.distance_matrix(), strict=True):
            cells = "".join(f"{'-' if d is None else d:>{width}}" for d in row)
            lines.append(f"  {'node' + str(n.id):<8}{cells}")
    if topo.offline_cpus:
        from hpcx.node.topology import format_cpulist

        lines.append(f"  offline CPUs: {format_cpulist(topo.offline_cpus)}")
    for w in topo.warnings:
        lines.append(f"  warning: {w}")
    lines.append("")

    if not report.gpus:
        cuda = report.capabilities.get("cuda")
        why = "" if cuda or report.source == "snapshot" else " (no CUDA driver)"
        lines.append(f"GPUs: none found{why}; CPU side only")
    else:
        lines.append(f"GPUs: {len(report.gpus)}")
        for g in report.gpus:
            name = g.name or "NVIDIA GPU"
            node = "?" if g.numa_node is None else str(g.numa_node)
            link = "link ?"
            if g.link is not None:
                link = f"link {g.link.current.describe()} (max {g.link.max.describe()})"
                if g.degraded:
                    link += " DEGRADED"
            if g.narrowest is not None and g.narrowest.bdf != g.bdf:
                link += (
                    f", narrowest upstream {g.narrowest.current.describe()} at {g.narrowest.bdf}"
                )
            mem = f", memory node{g.memory_node}" if g.memory_node is not None else ""
            lines.append(f"  {g.label:<5} {g.bdf}  {name}  NUMA node {node}{mem}  {link}")
    others = [d for d in topo.devices if d.kind != "gpu"]
    if others:
        lines.append("Other devices:")
        for d in others:
            node = "?" if d.numa_node is None else str(d.numa_node)
            link = "" if d.link is None else f"  link {d.link.current.describe()}"
            if d.degraded and d.link is not None:
                link += f" of {d.link.max.describe()} DEGRADED"
            lines.append(f"  {d.kind:<11} {d.bdf}  {d.vendor_name:<9} NUMA node {node}{link}")
    lines.append("")

    if report.cpu_bandwidth is not None:
        ids = report.cpu_bandwidth_nodes
        lines.append("CPU copy bandwidth, GB/s (rows: memory node, columns: CPU node):")
        lines.append("          " + "".join(f"{'cpu' + str(i):>9}" for i in ids))
        for i, bw_row in zip(ids, report.cpu_bandwidth, strict=True):
            cells = "".join(f"{m.gbps:>9.1f}" if m.valid else f"{'-':>9}" for m in bw_row)
            lines.append(f"  mem{i:<5} {cells}")
        lines.append("")
    if report.gpu_bandwidth:
        lines.append("GPU copy bandwidth, GB/s (pinned host buffer on each node):")
        for g in report.gpus:
            for r in report.gpu_rows(g.index):
                h2d = "-" if r.h2d is None else f"{r.h2d.gbps:.1f}"
                d2h = "-" if r.d2h is None else f"{r.d2h.gbps:.1f}"
                local = " (local)" if r.numa_node == g.numa_node else ""
                page = ""
                if r.h2d_pageable is not None:
                    page = f"  pageable H2D {r.h2d_pageable.gbps:.1f}"
                lines.append(
                    f"  {g.label} <- node{r.numa_node}: H2D {h2d:>6}  D2H {d2h:>6}{page}{local}"
                )
        lines.append("")
    for s in report.skipped:
        lines.append(f"skipped: {s}")
    lines.append(f"({report.duration_s:.2f} s)")
    return "\n".join(lines)


def report_document(report: ProbeReport, findings: list[Finding] | None = None) -> dict[str, Any]:
    """The report as JSON (``hpcx probe --json``, ``--record``), with a ``checks`` section
    when it was checked against a profile (``findings`` is not None)."""
    doc = report.to_dict()
    if findings is not None:
        failed = [f for f in findings if f.status == "fail"]
        doc["checks"] = {
            "ok": not failed,
            "failed": len(failed),
            "findings": [f.to_dict() for f in findings],
        }
    return doc


def format_findings(findings: list[Finding], *, verbose: bool = False) -> str:
    """One line per failure (and per pass and skip when ``verbose``)."""
    return "\n".join(f.line() for f in findings if verbose or f.status == "fail")
