"""A cluster profile discovered from SLURM itself: ``sinfo`` for the default partition,
``scontrol show partition -o`` for limits and tiers, ``scontrol show node -o`` for CPUs, memory
and GPUs (``Gres=gpu:a100:4(S:0-1)``); and the queue lengths ``hpcx advise`` ranks by. SLURM is
reached through a ``run`` callable, so tests hand it recorded output.
"""

from __future__ import annotations

import datetime as _dt
import re
import shutil
import subprocess
from collections.abc import Callable, Iterable
from typing import Any

from hpcx.cluster.profiles import GPU_MODELS, KIND
from hpcx.errors import ClusterProfileError

Runner = Callable[[list[str]], str | None]


def _run(argv: list[str], timeout: float = 20.0) -> str | None:
    """stdout of a command, or None when it is missing, fails or hangs."""
    if shutil.which(argv[0]) is None:
        return None
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return proc.stdout if proc.returncode == 0 else None


def queue_lengths(partitions: Iterable[str], run: Runner = _run) -> dict[str, int | None]:
    """Pending jobs per partition (``squeue -h -p P -t PD -o %i``); None where squeue cannot
    answer (not installed, no controller)."""
    out: dict[str, int | None] = {}
    for p in partitions:
        text = run(["squeue", "-h", "-p", p, "-t", "PD", "-o", "%i"])
        out[p] = None if text is None else sum(1 for line in text.splitlines() if line.strip())
    return out


# --------------------------------------------------------------------------------------------
# discovery


_KEY = re.compile(r"(?:^|\s)([A-Za-z][A-Za-z0-9_:/.]*)=")


def parse_scontrol_line(line: str) -> dict[str, str]:
    """``Key=Value Key2=Value with spaces ...`` (one ``scontrol show ... -o`` record)."""
    out: dict[str, str] = {}
    matches = list(_KEY.finditer(line))
    for i, m in enumerate(matches):
        end = matches[i + 1].start() if i + 1 < len(matches) else len(line)
        out[m.group(1)] = line[m.end() : end].strip()
    return out


def _split_gres(text: str) -> list[str]:
    parts: list[str] = []
    cur: list[str] = []
    depth = 0
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth = max(0, depth - 1)
        if ch == "," and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur))
    return [p.strip() for p in parts if p.strip()]


def parse_gres(text: str | None) -> list[tuple[str | None, int]]:
    """GPU entries of a node's Gres: ``gpu:a100:4(S:0-1),gpu:v100:2`` -> [("a100", 4),
    ("v100", 2)]; ``gpu:4`` -> [(None, 4)]; ``(null)`` -> []. Other gres (``shard``, ``mps``)
    are skipped."""
    if not text or text in ("(null)", "N/A"):
        return []
    out: list[tuple[str | None, int]] = []
    for entry in _split_gres(text):
        entry = re.sub(r"\(.*\)$", "", entry)
        fields = entry.split(":")
        if fields[0] != "gpu":
            continue
        count_text = fields[-1]
        m = re.match(r"^(\d+)([KMG]?)$", count_text)
        if len(fields) == 2 and m is None:  # gpu:a100 (count 1 implied)
            out.append((fields[1], 1))
            continue
        if m is None:
            continue
        n = int(m.group(1)) * {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3}[m.group(2)]
        kind = fields[1] if len(fields) >= 3 else None
        out.append((kind, n))
    return out


def gpu_model(gpu_type: str | None) -> dict[str, Any]:
    if not gpu_type:
        return {}
    low = gpu_type.lower()
    for prefix, info in GPU_MODELS:
        if low.startswith(prefix) or prefix in low:
            return dict(info)
    return {}


def _slug(text: str) -> str:
    s = re.sub(r"[^a-z0-9._-]+", "-", text.lower()).strip("-._")
    return s[:64] or "cluster"


def discover(run: Runner = _run, name: str | None = None) -> dict[str, Any]:
    """A profile document from the live SLURM cluster that ``sinfo``/``scontrol`` talk to.

    Per partition: its nodes (from each node's ``Partitions=``), the smallest node's CPUs,
    memory and GPU count (so a run that fits, fits on every node), the most common GPU type,
    ``MaxTime``, ``PriorityTier``; GPU memory, architecture and fp8 from :data:`GPU_MODELS`
    by GPU type. Raises :class:`ClusterProfileError` when SLURM does not answer."""
    parts_text = run(["scontrol", "show", "partition", "-o"])
    nodes_text = run(["scontrol", "show", "node", "-o"])
    if parts_text is None or nodes_text is None:
        raise ClusterProfileError(
            "cannot read the cluster: `scontrol show partition -o` / `scontrol show node -o` "
            "failed",
            hint="run it on a login node of the cluster (SLURM_CONF names another cluster)",
        )
    sinfo = run(["sinfo", "-h", "-a", "-o", "%P"]) or ""
    sinfo_default = None
    for line in sinfo.split():
        if line.endswith("*"):
            sinfo_default = line[:-1]
    config = run(["scontrol", "show", "config"]) or ""
    cluster_name = None
    version = None
    for line in config.splitlines():
        k, sep, v = line.partition("=")
        if sep and k.strip() == "ClusterName":
            cluster_name = v.strip()
        if sep and k.strip() == "SLURM_VERSION":
            version = v.strip()
    from hpcx.cluster.limits import discover_limits

    limits = discover_limits(run, config)

    partitions = [
        parse_scontrol_line(line)
        for line in parts_text.splitlines()
        if line.strip().startswith("PartitionName=")
    ]
    nodes = [
        parse_scontrol_line(line)
        for line in nodes_text.splitlines()
        if line.strip().startswith("NodeName=")
    ]
    members: dict[str, list[dict[str, str]]] = {}
    for node in nodes:
        for pn in (node.get("Partitions") or "").split(","):
            if pn:
                members.setdefault(pn, []).append(node)

    doc_parts: dict[str, dict[str, Any]] = {}
    default = sinfo_default
    for p in partitions:
        pname = p["PartitionName"]
        its = members.get(pname, [])
        entry: dict[str, Any] = {}
        gpu_counts: list[int] = []
        types: list[str] = []
        for node in its:
            gres = parse_gres(node.get("Gres"))
            gpu_counts.append(sum(n for _, n in gres))
            types.extend(t for t, _ in gres if t)
        gpus = min(gpu_counts) if gpu_counts else 0
        gtype = max(set(types), key=types.count) if types else None
        entry["gpu_type"] = gtype
        entry["gpus_per_node"] = gpus
        total = p.get("TotalNodes")
        entry["nodes"] = (
            int(total) if total and total.isdigit() and int(total) > 0 else max(1, len(its))
        )
        cpus = [int(n["CPUTot"]) for n in its if n.get("CPUTot", "").isdigit()]
        if cpus:
            entry["cpus_per_node"] = min(cpus)
        mems = [int(n["RealMemory"]) for n in its if n.get("RealMemory", "").isdigit()]
        max_mem = p.get("MaxMemPerNode", "")
        if max_mem.isdigit():
            mems.append(int(max_mem))
        if mems:
            entry["memory_gb"] = round(min(mems) / 1024.0, 1)
        model = gpu_model(gtype)
        entry["gpu_memory_gb"] = model.get("gpu_memory_gb")
        entry["arch"] = model.get("arch")
        entry["fp8"] = bool(model.get("fp8", False))
        tier = p.get("PriorityTier", "")
        if tier.isdigit():
            entry["priority"] = int(tier)
        max_time = p.get("MaxTime")
        if max_time:
            entry["max_time"] = (
                "UNLIMITED" if max_time.upper() in ("UNLIMITED", "INFINITE") else (max_time)
            )
        if p.get("Default") == "YES":
            default = default or pname
        notes = []
        if len(set(gpu_counts)) > 1 or len(set(cpus)) > 1 or len(set(mems)) > 1:
            notes.append("nodes differ: the smallest node's figures are given")
        if gtype and not model:
            notes.append(f"unknown GPU model {gtype!r}: fill in gpu_memory_gb, arch and fp8")
        if p.get("State") and p["State"] != "UP":
            notes.append(f"state {p['State']}")
        if notes:
            entry["description"] = "; ".join(notes)
        doc_parts[pname] = entry

    if not doc_parts:
        raise ClusterProfileError("the cluster reports no partitions")
    spec: dict[str, Any] = {}
    if default in doc_parts:
        spec["default_partition"] = default
    if limits:
        spec["limits"] = limits
    spec["partitions"] = doc_parts
    now = _dt.datetime.now(_dt.UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")
    return {
        "apiVersion": "hpcx/v1",
        "kind": KIND,
        "metadata": {
            "name": _slug(name or cluster_name or "cluster"),
            "discovered_at": now,
            "source": "hpcx cluster discover" + (f" (SLURM {version})" if version else ""),
        },
        "spec": spec,
    }
