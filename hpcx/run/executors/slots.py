"""What a local run holds while it runs: cores, GPUs, or the whole machine, and the ledger
that makes every hpcx queue on this machine respect that.

A run's demand (:func:`demand_of`) comes from its spec: ``resources.cpus`` cores (default: all
of them for the built-in benchmark workloads, 1 for commands), ``resources.gpus`` GPUs or the
GPUs its placement names, and when it is placed on a NUMA node, cores of that node only. A
*measurement* (``resources.exclusive``, the default for benchmark workloads) holds every core
and GPU of the machine, or of its NUMA node when placed: nothing hpcx starts runs beside it.

The ledger is one lock file per core and per GPU in a folder private to this user; a queue
holds a run's slots with ``flock`` for as long as the run lives. Locks are per open file, so
two runs of one queue and two queues (a detached apply and a foreground one, two terminals)
exclude each other alike, and a queue that dies releases its slots with its file descriptors:
no stale reservation outlives its holder. Each lock file names its holder, which is how a
waiting queue can say who it waits for.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import stat
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hpcx.errors import SlotsError as SlotsError  # known here to callers of the ledger


@dataclass(frozen=True, slots=True)
class Demand:
    """What one run asks of this machine.

    ``cpus``: how many cores (never more than ``candidates``); ``candidates``: the cores it
    may take them from (its NUMA node's when placed, else the machine's); ``gpus``: a count
    to pick from the free ones; ``gpu_ids``: exact GPUs (its placement's); ``exclusive``: hold
    every candidate core and, unless ``gpu_ids`` pin it, every GPU.
    """

    cpus: int
    candidates: tuple[int, ...]
    gpus: int = 0
    gpu_ids: tuple[str, ...] = ()
    exclusive: bool = False
    numa: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "cpus": self.cpus,
            "candidates": list(self.candidates),
            "gpus": self.gpus,
            "gpu_ids": list(self.gpu_ids),
            "exclusive": self.exclusive,
            "numa": self.numa,
        }

    @classmethod
    def from_json(cls, doc: Mapping[str, Any], machine: Sequence[int]) -> Demand:
        cands = tuple(int(c) for c in doc.get("candidates") or machine)
        return cls(
            cpus=int(doc.get("cpus") or 1),
            candidates=cands,
            gpus=int(doc.get("gpus") or 0),
            gpu_ids=tuple(str(g) for g in doc.get("gpu_ids") or ()),
            exclusive=bool(doc.get("exclusive", False)),
            numa=doc.get("numa"),
        )

    def describe(self) -> str:
        where = f" on NUMA node {self.numa}" if self.numa is not None else ""
        if self.exclusive:
            return f"all {len(self.candidates)} cores{where} (exclusive)"
        gpus = f", GPUs {','.join(self.gpu_ids)}" if self.gpu_ids else (
            f", {self.gpus} GPU(s)" if self.gpus else ""
        )
        return f"{self.cpus} core(s){where}{gpus}"


def machine_cores() -> list[int]:
    """The cores this process may run on (its affinity, which cgroups and taskset narrow)."""
    return sorted(os.sched_getaffinity(0))


def node_cores(node: int, root: str = "/") -> set[int] | None:
    """The cores of NUMA node ``node`` from sysfs, or None when there is no such node."""
    try:
        text = Path(root, f"sys/devices/system/node/node{node}/cpulist").read_text().strip()
    except OSError:
        return None
    from hpcx.node.topology import parse_cpulist  # the one parser (strides, stray NULs)

    return set(parse_cpulist(text))


def is_benchmark(workload: str | None) -> bool:
    """True for built-in workloads that measure (their defaults: all cores, exclusive)."""
    if workload is None:
        return False
    from hpcx.workloads import WORKLOADS

    info = WORKLOADS.get(workload)
    return bool(info is not None and info.benchmark)


def demand_of(spec: Mapping[str, Any], machine: Sequence[int]) -> Demand:
    """The demand of a run from its spec (spec.json or a RunSpec's fields as a mapping).

    ``machine``: this machine's usable cores. A NUMA placement narrows the candidates to that
    node's usable cores (``local-to-gpu`` is resolved by the wrapper, so it counts as the whole
    machine here). Asking for more cores than the candidates holds them all (``apply`` warns,
    through :func:`check_fits`): a manifest written for a cluster node still tries out here.
    """
    res = spec.get("resources") or {}
    placement = spec.get("placement") or {}
    bench = is_benchmark(spec.get("workload"))
    candidates = tuple(sorted(machine))
    numa = placement.get("numa")
    node: int | None = None
    if isinstance(numa, int) and not isinstance(numa, bool):
        cores = node_cores(numa)
        if cores:
            narrowed = tuple(c for c in candidates if c in cores)
            if narrowed:
                candidates = narrowed
                node = numa
    exclusive = res.get("exclusive")
    if exclusive is None:
        exclusive = bench
    cpus = res.get("cpus")
    if not isinstance(cpus, int) or isinstance(cpus, bool) or cpus < 1:
        cpus = len(candidates) if bench else 1
    ranks = _local_ranks(spec)
    # A launcher starts tasks_per_node ranks here, each with resources.cpus cores and
    # gpus_per_task GPUs: the run holds them all.
    cpus = min(cpus * ranks, len(candidates))
    gpu_ids = tuple(str(g) for g in placement.get("gpus") or ())
    want = res.get("gpus")
    per_task = res.get("gpus_per_task")
    if ranks > 1 and isinstance(per_task, int) and not isinstance(per_task, bool):
        want = per_task * ranks
    gpus = 0 if gpu_ids or not isinstance(want, int) or isinstance(want, bool) else want
    if exclusive:
        cpus = len(candidates)
    return Demand(
        cpus=cpus,
        candidates=candidates,
        gpus=max(0, gpus),
        gpu_ids=gpu_ids,
        exclusive=bool(exclusive),
        numa=node,
    )


def _local_ranks(spec: Mapping[str, Any]) -> int:
    """How many ranks a run starts on this machine: ``resources.tasks_per_node`` with a
    launcher (``spec.launcher``), else one."""
    if not (spec.get("extra") or {}).get("launcher"):
        return 1
    tasks = (spec.get("resources") or {}).get("tasks_per_node")
    return tasks if isinstance(tasks, int) and not isinstance(tasks, bool) and tasks > 0 else 1


def check_fits(spec: Mapping[str, Any], machine: Sequence[int], where: str) -> str | None:
    """Why this machine can never give the run what it asks, or None when it can."""
    res = spec.get("resources") or {}
    cpus = res.get("cpus")
    demand = demand_of(spec, machine)
    ranks = _local_ranks(spec)
    if (
        isinstance(cpus, int)
        and not isinstance(cpus, bool)
        and cpus * ranks > len(demand.candidates)
    ):
        scope = f"NUMA node {demand.numa}" if demand.numa is not None else "this machine"
        asked = f"resources.cpus={cpus}" + (f" for each of {ranks} ranks" if ranks > 1 else "")
        return f"{where} ask for {asked}; {scope} has {len(demand.candidates)} usable core(s)"
    return None


# --------------------------------------------------------------------------------------------
# The ledger


def default_ledger_dir() -> Path:
    """``$HPCX_SLOTS_DIR``, else ``$XDG_RUNTIME_DIR/hpcx-slots``, else a per-user folder in
    the temporary directory. One per user: another user's runs are outside hpcx's say (and
    are what a run's recorded contention shows)."""
    explicit = os.environ.get("HPCX_SLOTS_DIR")
    if explicit:
        return Path(explicit)
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime and os.path.isdir(runtime):
        return Path(runtime) / "hpcx-slots"
    return Path(tempfile.gettempdir()) / f"hpcx-slots-{os.getuid()}"


def _private_dir(path: Path) -> Path:
    with contextlib.suppress(FileExistsError):
        path.mkdir(mode=0o700, parents=True)
    st = os.lstat(path)
    if not stat.S_ISDIR(st.st_mode):
        raise SlotsError(
            f"slot ledger {path} is not a folder", hint="remove it, or set HPCX_SLOTS_DIR"
        )
    if st.st_uid != os.getuid():
        raise SlotsError(
            f"slot ledger {path} belongs to uid {st.st_uid}, not to you",
            hint="set HPCX_SLOTS_DIR to a folder of your own",
        )
    return path


@dataclass
class Hold:
    """Slots held for one run: the open, locked files. ``release`` (or the holder's death)
    frees them."""

    cores: list[int]
    gpus: list[str]
    fds: list[int] = field(default_factory=list)

    def release(self) -> None:
        for fd in self.fds:
            with contextlib.suppress(OSError):
                os.close(fd)
        self.fds = []


class Ledger:
    """One lock file per core (``cpu-N``) and GPU (``gpu-ID``)."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = _private_dir(path or default_ledger_dir())

    def _lock(self, name: str) -> int | None:
        fd = os.open(self.path / name, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                return None
            raise
        return fd

    def _take(
        self, hold: Hold, kind: str, names: Sequence[Any], need: int, strict: bool
    ) -> list[Any] | None:
        """Lock ``need`` of ``names`` (in order) into ``hold``; ``strict``: each one tried
        must be free. None when that cannot be had (what was locked stays in ``hold``)."""
        taken: list[Any] = []
        for name in names:
            if len(taken) == need:
                break
            fd = self._lock(f"{kind}-{name}")
            if fd is None:
                if strict:
                    return None
                continue
            hold.fds.append(fd)
            taken.append(name)
        return taken if len(taken) == need else None

    def try_hold(
        self, demand: Demand, gpus_available: Sequence[str], holder: Mapping[str, Any]
    ) -> Hold | None:
        """Take the demand's slots now, or take nothing and return None."""
        hold = Hold(cores=[], gpus=[])
        if demand.gpu_ids:
            gpu_names, need = list(demand.gpu_ids), len(demand.gpu_ids)
        elif demand.exclusive and demand.numa is None:
            gpu_names, need = list(gpus_available), len(gpus_available)
        else:
            gpu_names, need = list(gpus_available), min(demand.gpus, len(gpus_available))
        try:
            want = len(demand.candidates) if demand.exclusive else demand.cpus
            cores = self._take(hold, "cpu", demand.candidates, want, demand.exclusive)
            strict = bool(demand.gpu_ids) or demand.exclusive
            gpus = None if cores is None else self._take(hold, "gpu", gpu_names, need, strict)
            if cores is None or gpus is None:
                hold.release()
                return None
            hold.cores, hold.gpus = cores, gpus
        except BaseException:
            hold.release()
            raise
        note = json.dumps(dict(holder), default=str).encode() + b"\n"
        for fd in hold.fds:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
                os.pwrite(fd, note, 0)
        return hold

    def holders(self, demand: Demand) -> list[dict[str, Any]]:
        """Who holds the slots this demand could use (as their lock files say), for messages."""
        seen: dict[str, dict[str, Any]] = {}
        for core in demand.candidates:
            name = f"cpu-{core}"
            fd = self._lock(name)
            if fd is not None:
                os.close(fd)
                continue
            with contextlib.suppress(OSError, ValueError):
                doc = json.loads((self.path / name).read_text() or "{}")
                if isinstance(doc, dict):
                    seen[json.dumps(doc, sort_keys=True)] = doc
        return list(seen.values())
