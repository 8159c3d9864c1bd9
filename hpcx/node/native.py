"""Typed access to the node: NUMA placement, CPU memory bandwidth, CUDA devices and copies.

A thin layer over the private compiled module ``hpcx._native`` (C++ in ``native/``). Importing
this module is cheap and never fails: the compiled module is imported on first call, and it in
turn opens ``libnuma.so.1`` and ``libcuda.so.1`` with ``dlopen`` only when a call needs them.
What is missing surfaces as :class:`~hpcx.errors.NativeUnavailableError` from the call, and
:func:`capabilities` says what loaded and why not.

Bandwidth convention: bytes copied / seconds / 1e9 (GB = 10^9 bytes), the median of the
samples, as NVIDIA's nvbandwidth reports. A CPU copy of N bytes counts N (not the 2N of
read + write traffic that STREAM's Copy counts), which is also how ``numpy.copyto`` is timed
in ``bench/cpu_copy.py``.

Bad arguments raise :class:`ValueError`; failures of the system raise
:class:`~hpcx.errors.NumaError` or :class:`~hpcx.errors.CudaError` (the message names the
``CUDA_ERROR_...`` code); a missing library or build raises
:class:`~hpcx.errors.NativeUnavailableError`.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Literal

from hpcx.errors import CudaError, NativeUnavailableError, NumaError

__all__ = [
    "Bandwidth",
    "Capabilities",
    "CudaDevice",
    "NumaBuffer",
    "bind",
    "capabilities",
    "cpu_bandwidth_matrix",
    "cpu_copy_bandwidth",
    "cuda_devices",
    "gpu_copy_bandwidth",
    "memory_policy",
    "node_cpus",
    "node_memory",
    "numa_node_count",
]

_BUILD_HINT = "build it with `pip install .` (or `pip install -e .` in a checkout)"
_MAX_INT = (1 << 63) - 1  # what the compiled module's int64 arguments can hold
_MAX_COUNT = (1 << 31) - 1  # its int arguments (samples, threads, warmup, device, node)

#: Warm-up copies before a CPU bandwidth sample is timed (faults in TLBs, wakes the core).
_CPU_WARMUP = 1


def _module() -> Any:
    """The compiled module, or NativeUnavailableError saying how to build it."""
    try:
        return importlib.import_module("hpcx._native")
    except ImportError as exc:
        raise NativeUnavailableError(
            f"the compiled module hpcx._native is not available ({exc})", hint=_BUILD_HINT
        ) from exc


@contextmanager
def _native() -> Iterator[None]:
    """Check the compiled module imports; translate its exceptions into hpcx's. The block
    imports it itself (``import hpcx._native as mod``), so its calls are typed by the stub."""
    mod = _module()
    try:
        yield
    except mod.LibraryUnavailable as exc:
        raise NativeUnavailableError(
            str(exc), hint="set HPCX_LIBNUMA / HPCX_LIBCUDA to the library's path"
        ) from exc
    except mod.NumaError as exc:
        raise NumaError(str(exc)) from exc
    except mod.CudaError as exc:
        raise CudaError(str(exc)) from exc


def _int(name: str, value: object, *, minimum: int, maximum: int = _MAX_INT) -> int:
    """Check an integer argument here, so every entry point rejects the same things."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, not {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, not {value}")
    if value > maximum:
        raise ValueError(f"{name} must be <= {maximum}, not {value}")
    return value


def _node(name: str, value: object) -> int:
    node = _int(name, value, minimum=-_MAX_INT)
    if not 0 <= node <= _MAX_COUNT:
        raise ValueError(f"{name}: no NUMA node {node}")
    return node


# --- capabilities -------------------------------------------------------------------------


@dataclass(frozen=True)
class Capabilities:
    """What the native layer could load on this machine, and why not where it could not."""

    native: bool
    native_error: str | None
    numa: bool
    numa_error: str | None
    cuda: bool
    cuda_error: str | None
    numa_library: str | None
    cuda_library: str | None


def capabilities() -> Capabilities:
    """Try (once per process) to load libnuma and the CUDA driver; report the outcome."""
    try:
        mod = _module()
    except NativeUnavailableError as exc:
        reason = f"{exc}; {_BUILD_HINT}"
        return Capabilities(False, reason, False, reason, False, reason, None, None)
    caps = mod.capabilities()
    return Capabilities(
        native=True,
        native_error=None,
        numa=bool(caps["numa"]),
        numa_error=caps["numa_error"],
        cuda=bool(caps["cuda"]),
        cuda_error=caps["cuda_error"],
        numa_library=caps["numa_library"],
        cuda_library=caps["cuda_library"],
    )


# --- NUMA ---------------------------------------------------------------------------------


def numa_node_count() -> int:
    """Configured NUMA nodes (``numa_max_node() + 1``)."""
    with _native():
        import hpcx._native as mod

        return int(mod.numa_node_count())


def node_cpus(node: int) -> list[int]:
    """The CPUs of a NUMA node, ascending (empty for a CPU-less node)."""
    node = _node("node", node)
    with _native():
        import hpcx._native as mod

        return list(mod.node_cpus(node))


def node_memory(node: int) -> tuple[int, int]:
    """(total, free) bytes of a NUMA node's memory; total <= 0 for a memory-less node."""
    node = _node("node", node)
    with _native():
        import hpcx._native as mod

        total, free = mod.node_memory(node)
        return int(total), int(free)


def bind(node: int, *, memory: bool = True) -> None:
    """Bind this process to ``node``'s CPUs and, if ``memory``, its memory (MPOL_BIND).

    CPU affinity is set on every thread of the process; the memory policy on the calling
    thread (the kernel offers no way to set another thread's). Threads created later and
    programs started with ``exec`` inherit both, which is how ``hpcx exec`` places a command.
    """
    node = _node("node", node)
    with _native():
        import hpcx._native as mod

        mod.bind(node, memory=bool(memory))


def memory_policy() -> tuple[str, list[int]]:
    """The calling thread's memory policy: mode ("default", "bind", ...) and its nodes."""
    with _native():
        import hpcx._native as mod

        mode, nodes = mod.memory_policy()
        return str(mode), list(nodes)


class NumaBuffer:
    """``size`` bytes of memory on NUMA node ``node``, pre-faulted; freed by :meth:`close`.

    Use it as a context manager. Raises ValueError for a node that does not exist or has no
    memory, a size of 0 or beyond the node's memory; NumaError if the node lacks that much
    free memory now.
    """

    def __init__(self, size: int, node: int) -> None:
        size = _int("size", size, minimum=1)
        node = _node("node", node)
        with _native():
            import hpcx._native as mod

            self._buf = mod.NumaBuffer(size, node)
        self._size = size
        self._node = node

    @property
    def size(self) -> int:
        return self._size

    @property
    def node(self) -> int:
        return self._node

    @property
    def closed(self) -> bool:
        return bool(self._buf.closed)

    def page_nodes(self, max_pages: int = 64) -> list[int]:
        """The node each of up to ``max_pages`` pages (spread evenly) actually lives on.

        From ``move_pages`` with no target nodes; a negative entry is ``-errno`` for that page.
        """
        max_pages = _int("max_pages", max_pages, minimum=1)
        if self.closed:
            raise ValueError("NumaBuffer is closed")
        with _native():
            return list(self._buf.page_nodes(max_pages))

    def close(self) -> None:
        """Free the memory. Idempotent."""
        self._buf.close()

    def __enter__(self) -> NumaBuffer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return f"NumaBuffer(size={self._size}, node={self._node}, {state})"


# --- bandwidth ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Bandwidth:
    """One measured bandwidth. ``gbps`` is the median of ``samples`` (GB = 10^9 bytes).

    ``kind`` is "cpu-copy", "h2d-pinned", "d2h-pinned", "h2d-pageable" or "d2h-pageable".
    ``src`` and ``dst`` name the ends: "numaN" (host memory on node N), "host" (host memory
    with no chosen node), "cudaN" (GPU N); for "cpu-copy" ``src`` is where both buffers live
    and ``dst`` is "numaN-cpus", the node whose CPUs copied. A pair that cannot be measured
    (a node with no memory or no CPUs) has ``gbps`` NaN and no samples.
    """

    gbps: float
    samples: list[float]
    size: int
    kind: str
    src: str
    dst: str


def cpu_copy_bandwidth(
    mem_node: int,
    cpu_node: int,
    *,
    size: int = 256 << 20,
    samples: int = 5,
    threads: int = 1,
) -> Bandwidth:
    """memcpy bandwidth between two ``size``-byte buffers on ``mem_node``, by ``threads``
    threads running on ``cpu_node``'s CPUs (each copying its share of the buffer).

    Keep ``size`` well above the last-level cache (the default, 256 MiB, is), or the figure is
    the cache's. Needs room for two buffers on ``mem_node``.
    """
    mem_node = _node("mem_node", mem_node)
    cpu_node = _node("cpu_node", cpu_node)
    size = _int("size", size, minimum=1)
    samples = _int("samples", samples, minimum=1, maximum=_MAX_COUNT)
    threads = _int("threads", threads, minimum=1, maximum=_MAX_COUNT)
    with _native():
        import hpcx._native as mod

        median, values, nbytes = mod.cpu_copy_bandwidth(
            mem_node, cpu_node, size, samples, threads, _CPU_WARMUP
        )
    return Bandwidth(
        gbps=float(median),
        samples=[float(v) for v in values],
        size=int(nbytes),
        kind="cpu-copy",
        src=f"numa{mem_node}",
        dst=f"numa{cpu_node}-cpus",
    )


def cpu_bandwidth_matrix(
    *,
    size: int = 256 << 20,
    samples: int = 5,
    threads: int = 1,
    progress: Callable[[int, int], None] | None = None,
) -> list[list[Bandwidth]]:
    """:func:`cpu_copy_bandwidth` for every (memory node, CPU node) pair: ``[mem][cpu]``.

    ``progress(done, total)`` is called after each pair. Pairs with a memory-less memory node
    or a CPU-less CPU node are NaN entries rather than errors, so one such node (CXL memory,
    HBM) does not sink the whole matrix.
    """
    size = _int("size", size, minimum=1)
    samples = _int("samples", samples, minimum=1, maximum=_MAX_COUNT)
    threads = _int("threads", threads, minimum=1, maximum=_MAX_COUNT)
    n = numa_node_count()
    with _native():
        import hpcx._native as mod

        has_cpus = [bool(mod.node_cpus(i)) for i in range(n)]
        has_memory = [int(mod.node_memory(i)[0]) > 0 for i in range(n)]
    total = n * n
    matrix: list[list[Bandwidth]] = []
    for mem in range(n):
        row: list[Bandwidth] = []
        for cpu in range(n):
            if has_memory[mem] and has_cpus[cpu]:
                row.append(
                    cpu_copy_bandwidth(mem, cpu, size=size, samples=samples, threads=threads)
                )
            else:
                row.append(
                    Bandwidth(math.nan, [], size, "cpu-copy", f"numa{mem}", f"numa{cpu}-cpus")
                )
            if progress is not None:
                progress(mem * n + cpu + 1, total)
        matrix.append(row)
    return matrix


# --- CUDA ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class CudaDevice:
    """A GPU as the driver numbers it (CUDA_VISIBLE_DEVICES applies)."""

    index: int
    name: str
    pci_bus_id: str  # lower case, 4-digit domain: "0000:17:00.0", as sysfs names it
    total_memory: int  # bytes


def cuda_devices() -> list[CudaDevice]:
    """The GPUs the driver sees. NativeUnavailableError without a driver."""
    with _native():
        import hpcx._native as mod

        return [
            CudaDevice(index=int(i), name=str(name), pci_bus_id=str(bus), total_memory=int(mem))
            for i, name, bus, mem in mod.cuda_devices()
        ]


def gpu_copy_bandwidth(
    device: int,
    numa_node: int | None,
    direction: Literal["h2d", "d2h"],
    *,
    size: int = 64 << 20,
    samples: int = 10,
    warmup: int = 3,
    pinned: bool = True,
) -> Bandwidth:
    """Host<->device copy bandwidth, measured as nvbandwidth does.

    The host buffer lives on ``numa_node`` (``numa_alloc_onnode``, then ``cuMemHostRegister``
    when ``pinned``) or, with ``numa_node=None``, comes from ``cuMemAllocHost`` (pinned) or the
    heap (pageable). Each sample is one ``cuMemcpy{HtoD,DtoH}Async`` of ``size`` bytes on a
    non-blocking stream between two events, after ``warmup`` untimed copies.
    """
    if direction not in ("h2d", "d2h"):
        raise ValueError(f"direction must be 'h2d' or 'd2h', not {direction!r}")
    device = _int("device", device, minimum=0, maximum=_MAX_COUNT)
    node = None if numa_node is None else _node("numa_node", numa_node)
    size = _int("size", size, minimum=1)
    samples = _int("samples", samples, minimum=1, maximum=_MAX_COUNT)
    warmup = _int("warmup", warmup, minimum=0, maximum=_MAX_COUNT)
    with _native():
        import hpcx._native as mod

        median, values, nbytes = mod.gpu_copy_bandwidth(
            device, node, direction, size, samples, warmup, bool(pinned)
        )
    host = "host" if node is None else f"numa{node}"
    gpu = f"cuda{device}"
    src, dst = (host, gpu) if direction == "h2d" else (gpu, host)
    return Bandwidth(
        gbps=float(median),
        samples=[float(v) for v in values],
        size=int(nbytes),
        kind=f"{direction}-{'pinned' if pinned else 'pageable'}",
        src=src,
        dst=dst,
    )
