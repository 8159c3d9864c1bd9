"""Process placement: run a command on one NUMA node's CPUs and memory, next to a GPU.

``hpcx exec`` and the executors share three steps:

* :func:`resolve` turns what a user wrote (``--numa 1``, ``--numa local-to-gpu``,
  ``--gpu 0000:17:00.0``) into a :class:`Placement`, checked against the topology.
* :func:`apply_binding` binds the *calling* process (CPU affinity and, through libnuma,
  ``MPOL_BIND`` memory): both survive ``exec``, as with ``numactl --cpunodebind --membind``.
* :func:`exec_command` replaces the process with the command (an argv list, never a shell).

GPU numbers are hpcx's: NVIDIA GPUs in PCI bus order, which is nvidia-smi's order. A placement
with a GPU sets ``CUDA_DEVICE_ORDER=PCI_BUS_ID`` so that CUDA counts the same way, and
``CUDA_VISIBLE_DEVICES`` to that one GPU.
"""

from __future__ import annotations

import os
import shutil
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NoReturn

from hpcx.errors import CommandNotFound, HpcxError, NativeUnavailableError, NumaError
from hpcx.node.topology import Topology, format_cpulist, normalize_bdf, read_topology

__all__ = [
    "LOCAL_TO_GPU",
    "BindingWarning",
    "CommandNotFound",
    "Placement",
    "apply_binding",
    "exec_command",
    "resolve",
]

LOCAL_TO_GPU = "local-to-gpu"


class BindingWarning(UserWarning):
    """Binding was weaker than asked (memory left unbound without libnuma)."""


@dataclass(frozen=True)
class Placement:
    numa_node: int | None
    cpus: tuple[int, ...] = ()
    membind: bool = True
    gpu_index: int | None = None
    gpu_bdf: str | None = None
    env: Mapping[str, str] = field(default_factory=dict)

    def describe(self) -> str:
        parts = []
        if self.numa_node is not None:
            mem = "memory bound" if self.membind else "memory not bound"
            parts.append(f"NUMA node {self.numa_node} (CPUs {format_cpulist(self.cpus)}, {mem})")
        if self.gpu_index is not None:
            parts.append(f"GPU {self.gpu_index} ({self.gpu_bdf})")
        return ", ".join(parts) or "no placement"

    def to_dict(self) -> dict[str, Any]:
        return {
            "numa_node": self.numa_node,
            "cpus": format_cpulist(self.cpus),
            "membind": self.membind,
            "gpu_index": self.gpu_index,
            "gpu_bdf": self.gpu_bdf,
            "env": dict(self.env),
        }


def _gpu_list(topology: Topology) -> list[str]:
    """Bus ids of the NVIDIA GPUs in hpcx's order; sysfs first, else what the driver lists."""
    bdfs = [g.bdf for g in topology.nvidia_gpus]
    if bdfs:
        return bdfs
    try:
        from hpcx.node import native
        if native.capabilities().cuda:
            return sorted(normalize_bdf(d.pci_bus_id) for d in native.cuda_devices())
    except HpcxError:
        pass
    return []


def _resolve_gpu(gpu: int | str, topology: Topology) -> tuple[int, str]:
    bdfs = _gpu_list(topology)
    if not bdfs:
        raise HpcxError(
            f"--gpu {gpu}: no NVIDIA GPU on this machine",
            hint="hpcx probe --quick lists the GPUs it finds",
        )
    listing = ", ".join(f"{i}={b}" for i, b in enumerate(bdfs))
    text = str(gpu).strip()
    if text.isdigit():
        index = int(text)
        if index >= len(bdfs):
            raise HpcxError(f"--gpu {gpu}: no such GPU (GPUs: {listing})")
        return index, bdfs[index]
    want = normalize_bdf(text)
    if want in bdfs:
        return bdfs.index(want), want
    raise HpcxError(
        f"--gpu {gpu}: not a GPU index or a GPU's PCI bus id (GPUs: {listing})",
        hint="a bus id looks like 0000:17:00.0",
    )


def resolve(
    numa: int | str | None,
    gpu: int | str | None = None,
    *,
    membind: bool = True,
    topology: Topology | None = None,
) -> Placement:
    """Check a placement against the topology (``/`` by default) and describe it.

    ``numa`` is a node id, ``"local-to-gpu"`` (the node the GPU hangs off) or None (no
    binding). Raises :class:`NumaError` naming the nodes that exist when the node does not.
    """
    topo = topology if topology is not None else read_topology()
    gpu_index: int | None = None
    gpu_bdf: str | None = None
    env: dict[str, str] = {}
    if gpu is not None:
        gpu_index, gpu_bdf = _resolve_gpu(gpu, topo)
        env = {"CUDA_DEVICE_ORDER": "PCI_BUS_ID", "CUDA_VISIBLE_DEVICES": str(gpu_index)}

    usable = [n for n in topo.nodes if n.cpus]
    listing = ", ".join(f"{n.id} (CPUs {n.cpulist})" for n in usable) or "none"
    node_id: int | None
    if numa is None:
        return Placement(None, (), False, gpu_index, gpu_bdf, env)
    if str(numa).strip() == LOCAL_TO_GPU:
        if gpu_bdf is None:
            raise NumaError(f"--numa {LOCAL_TO_GPU} needs --gpu")
        dev = topo.device(gpu_bdf)
        node_id = None if dev is None else dev.numa_node
        if node_id is None:
            raise NumaError(
                f"sysfs gives no NUMA node for GPU {gpu_index} ({gpu_bdf})",
                hint=f"pass --numa with one of the nodes: {listing}",
            )
    else:
        try:
            node_id = int(str(numa).strip())
        except ValueError:
            raise NumaError(
                f"--numa {numa}: not a node number or {LOCAL_TO_GPU!r} (nodes: {listing})"
            ) from None
    node = topo.node(node_id)
    if node is None:
        raise NumaError(
            f"NUMA node {node_id} does not exist on this machine (nodes: {listing})",
            hint="hpcx probe --quick shows the topology",
        )
    if not node.cpus:
        raise NumaError(
            f"NUMA node {node_id} has no CPUs to run on (nodes with CPUs: {listing})",
        )
    return Placement(node_id, node.cpus, membind, gpu_index, gpu_bdf, env)


def apply_binding(placement: Placement) -> list[str]:
    """Bind the calling process as ``placement`` says; return warnings (also issued as
    :class:`BindingWarning`) when binding had to be weaker than asked."""
    notes: list[str] = []
    if placement.numa_node is None:
        return notes
    try:
        from hpcx.node import native
        native.bind(placement.numa_node, memory=placement.membind)
        return notes
    except (NativeUnavailableError, ImportError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    try:
        os.sched_setaffinity(0, placement.cpus)
    except OSError as exc:
        raise NumaError(
            f"cannot bind to NUMA node {placement.numa_node}'s CPUs "
            f"{format_cpulist(placement.cpus)}: {exc.strerror or exc}"
        ) from None
    if placement.membind:
        note = (
            f"memory is not bound to node {placement.numa_node} (libnuma unavailable: "
            f"{reason}); only the CPUs are"
        )
        notes.append(note)
        warnings.warn(note, BindingWarning, stacklevel=2)
    return notes


def find_command(argv: Sequence[str], env: Mapping[str, str] | None = None) -> str:
    """The program ``argv[0]`` names, resolved as ``execvp`` would; CommandNotFound if not."""
    if not argv:
        raise CommandNotFound("no command given", exit_code=2, hint="hpcx exec --numa 0 -- CMD")
    prog = argv[0]
    path = (env or os.environ).get("PATH", os.defpath)
    if os.sep in prog:
        if not os.path.exists(prog):
            raise CommandNotFound(f"{prog}: no such file", exit_code=127)
        if os.path.isdir(prog) or not os.access(prog, os.X_OK):
            raise CommandNotFound(f"{prog}: not executable", exit_code=126)
        return prog
    found = shutil.which(prog, path=path)
    if found is None:
        raise CommandNotFound(f"{prog}: command not found", exit_code=127)
    return found


def exec_command(
    placement: Placement, argv: Sequence[str], *, env: Mapping[str, str] | None = None
) -> NoReturn:
    """Bind, then replace this process with ``argv`` (no shell: each item reaches the program
    as it is). The command is looked up before binding, so a typo fails cleanly."""
    full_env = dict(os.environ if env is None else env)
    full_env.update(placement.env)
    program = find_command(argv, full_env)
    apply_binding(placement)
    try:
        os.execve(program, list(argv), full_env)
    except OSError as exc:
        code = 126 if isinstance(exc, PermissionError) else 127
        raise CommandNotFound(f"{argv[0]}: {exc.strerror or exc}", exit_code=code) from None
