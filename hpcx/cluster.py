"""Cluster profiles (``kind: Cluster``): what each partition offers, and whether runs fit.

A profile is a small YAML document beside the manifests (``clusters/NAME.yaml`` by convention)::

    apiVersion: hpcx/v1
    kind: Cluster
    metadata: {name: greene}
    spec:
      default_partition: a100_public
      partitions:
        a100_public: {gpu_type: a100, gpus_per_node: 4, nodes: 20, cpus_per_node: 48,
                      memory_gb: 480, gpu_memory_gb: 80, arch: Ampere, fp8: false,
                      priority: normal, max_time: 2-00:00:00}

Three pure functions do the work; only :func:`discover` and :func:`queue_lengths` talk to SLURM
(through a ``run`` callable, so tests can hand them recorded output):

* :func:`check_fit` (runs, profile) -> findings: a run asking for more GPUs, CPUs, memory, nodes
  or time than its partition has, a partition the profile does not know, a GPU type or fp8
  need the partition cannot meet. Findings are grouped per experiment and problem, so a
  10,000-run sweep yields one line, not 10,000.
* :func:`advise` (runs, profile, queue) -> per experiment, the partitions that fit, ranked, each
  with the reasons.
* :func:`discover` (SLURM) -> a profile document: ``sinfo`` for the default partition,
  ``scontrol show partition -o`` for limits and tiers, ``scontrol show node -o`` for CPUs, memory
  and GPUs (``Gres=gpu:a100:4(S:0-1)``).

``resources.gpus`` is checked per node: SLURM applies ``--gres=gpu:N`` to every node of the job.
"""

from __future__ import annotations

import datetime as _dt
import difflib
import json
import re
import shutil
import subprocess
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from hpcx.errors import ManifestError
from hpcx.spec import RunSpec
from hpcx.yamlload import JsonPath, Position, Problem, json_path_str, load_file

__all__ = [
    "ClusterProfile",
    "ClusterProfileError",
    "Finding",
    "Partition",
    "PartitionAdvice",
    "ResourceFitError",
    "advise",
    "check_fit",
    "check_plan",
    "discover",
    "find_profiles",
    "fp8_needed",
    "is_cluster_file",
    "load_profile",
    "profile_from_document",
    "profile_problems",
    "profile_yaml",
    "queue_lengths",
    "resolve_profile",
]

SCHEMA_FILE = "cluster.v1.schema.json"
KIND = "Cluster"
#: Where ``hpcx plan`` and ``hpcx advise`` look for a profile when none is named.
CLUSTERS_DIR = "clusters"

_PRIORITY_WORDS = {"low": 0, "normal": 1, "high": 2}

#: What discovery cannot read from SLURM: memory, architecture and fp8 of a GPU model, by the
#: names sites give it in gres.conf. Keys are lowercase; the first matching prefix wins.
GPU_MODELS: tuple[tuple[str, dict[str, Any]], ...] = (
    ("gh200", {"gpu_memory_gb": 96, "arch": "Hopper", "fp8": True}),
    ("h200", {"gpu_memory_gb": 141, "arch": "Hopper", "fp8": True}),
    ("h100", {"gpu_memory_gb": 80, "arch": "Hopper", "fp8": True}),
    ("b200", {"gpu_memory_gb": 180, "arch": "Blackwell", "fp8": True}),
    ("b100", {"gpu_memory_gb": 192, "arch": "Blackwell", "fp8": True}),
    ("l40s", {"gpu_memory_gb": 48, "arch": "Ada", "fp8": True}),
    ("l40", {"gpu_memory_gb": 48, "arch": "Ada", "fp8": True}),
    ("l4", {"gpu_memory_gb": 24, "arch": "Ada", "fp8": True}),
    ("rtx6000ada", {"gpu_memory_gb": 48, "arch": "Ada", "fp8": True}),
    ("a100_40", {"gpu_memory_gb": 40, "arch": "Ampere", "fp8": False}),
    ("a100-40", {"gpu_memory_gb": 40, "arch": "Ampere", "fp8": False}),
    ("a100", {"gpu_memory_gb": 80, "arch": "Ampere", "fp8": False}),
    ("a40", {"gpu_memory_gb": 48, "arch": "Ampere", "fp8": False}),
    ("a30", {"gpu_memory_gb": 24, "arch": "Ampere", "fp8": False}),
    ("a10", {"gpu_memory_gb": 24, "arch": "Ampere", "fp8": False}),
    ("rtx8000", {"gpu_memory_gb": 48, "arch": "Turing", "fp8": False}),
    ("t4", {"gpu_memory_gb": 16, "arch": "Turing", "fp8": False}),
    ("v100", {"gpu_memory_gb": 32, "arch": "Volta", "fp8": False}),
    ("p100", {"gpu_memory_gb": 16, "arch": "Pascal", "fp8": False}),
    ("mi300", {"gpu_memory_gb": 192, "arch": "CDNA3", "fp8": True}),
    ("mi250", {"gpu_memory_gb": 128, "arch": "CDNA2", "fp8": False}),
)


class ClusterProfileError(ManifestError):
    """A cluster profile is missing, unreadable or invalid (``problems`` lists every finding)."""


class ResourceFitError(ManifestError):
    """Runs ask for more than their partition offers (``problems``: one line per finding)."""


# --------------------------------------------------------------------------------------------
# the profile


@dataclass(frozen=True, slots=True)
class Partition:
    name: str
    gpus_per_node: int
    gpu_type: str | None = None
    nodes: int | None = None
    cpus_per_node: int | None = None
    memory_gb: float | None = None
    gpu_memory_gb: float | None = None
    arch: str | None = None
    fp8: bool | None = None
    priority: int | str | None = None
    max_time: int | str | None = None
    default: bool = False
    description: str = ""

    @property
    def priority_rank(self) -> int:
        """Higher starts sooner; words map to 0/1/2, integers are SLURM priority tiers."""
        if isinstance(self.priority, int):
            return self.priority
        if isinstance(self.priority, str):
            return _PRIORITY_WORDS.get(self.priority, 1)
        return 1

    @property
    def max_minutes(self) -> float | None:
        return None if self.max_time is None else time_minutes(self.max_time)


@dataclass(frozen=True, slots=True)
class ClusterProfile:
    name: str
    partitions: dict[str, Partition]
    default_partition: str | None = None
    path: str | None = None
    description: str = ""

    @property
    def default(self) -> str | None:
        if self.default_partition:
            return self.default_partition
        for p in self.partitions.values():
            if p.default:
                return p.name
        return None


def schema_path() -> Path:
    """The cluster JSON Schema: the repo's ``schemas/`` in a source checkout, else the copy
    inside the package (``hpcx/schemas/``, force-included in the wheel)."""
    source = Path(__file__).resolve().parent.parent / "schemas" / SCHEMA_FILE
    if source.is_file():
        return source
    from importlib.resources import files

    packaged = Path(str(files("hpcx") / "schemas" / SCHEMA_FILE))
    return packaged if packaged.is_file() else source


@lru_cache(maxsize=1)
def _validator() -> Any:
    from jsonschema import Draft202012Validator

    return Draft202012Validator(json.loads(schema_path().read_text(encoding="utf-8")))


def _where(
    label: str, positions: Mapping[JsonPath, Position] | None, path: JsonPath
) -> tuple[int | None, int | None]:
    if positions:
        p: JsonPath = path
        while True:
            pos = positions.get(p)
            if pos is not None:
                return pos[1], pos[2]
            if not p:
                break
            p = p[:-1]
    return None, None


def profile_problems(
    data: Any,
    label: str,
    positions: Mapping[JsonPath, Position] | None = None,
) -> list[Problem]:
    """Every problem in a parsed profile document, as ``file:line:col: $.path: message``."""
    out: list[Problem] = []
    for err in sorted(_validator().iter_errors(data), key=lambda e: list(map(str, e.path))):
        path: JsonPath = tuple(err.absolute_path)
        msg = err.message
        if err.validator == "additionalProperties" and isinstance(err.instance, dict):
            allowed = list((err.schema.get("properties") or {}).keys())
            extra = [k for k in err.instance if k not in allowed and not k.startswith("$")] or list(
                err.instance
            )
            for k in extra:
                hint = difflib.get_close_matches(str(k), allowed, n=1)
                line, col = _where(label, positions, (*path, k))
                out.append(
                    Problem(
                        label,
                        line,
                        col,
                        json_path_str((*path, k)),
                        f"unknown field {k!r}"
                        + (f" (did you mean {hint[0]!r}?)" if hint else "")
                        + f"; allowed: {', '.join(allowed)}",
                    )
                )
            continue
        line, col = _where(label, positions, path)
        out.append(Problem(label, line, col, json_path_str(path), msg))
    if not out and isinstance(data, dict):
        spec = data.get("spec") or {}
        dp = spec.get("default_partition")
        parts = spec.get("partitions") or {}
        if dp is not None and dp not in parts:
            jp: JsonPath = ("spec", "default_partition")
            line, col = _where(label, positions, jp)
            out.append(
                Problem(
                    label,
                    line,
                    col,
                    json_path_str(jp),
                    f"default_partition {dp!r} is not a partition: {', '.join(parts)}",
                )
            )
        defaults = [n for n, p in parts.items() if isinstance(p, dict) and p.get("default")]
        if len(defaults) > 1:
            line, col = _where(label, positions, ("spec", "partitions"))
            out.append(
                Problem(
                    label,
                    line,
                    col,
                    "$.spec.partitions",
                    f"several partitions say default: true ({', '.join(defaults)}); mark one",
                )
            )
    return out


def profile_from_document(data: Mapping[str, Any], path: str | None = None) -> ClusterProfile:
    """A validated document (see :func:`profile_problems`) as a :class:`ClusterProfile`."""
    spec = data["spec"]
    parts = {}
    for name, p in spec["partitions"].items():
        parts[name] = Partition(
            name=name,
            gpus_per_node=int(p["gpus_per_node"]),
            gpu_type=p.get("gpu_type"),
            nodes=p.get("nodes"),
            cpus_per_node=p.get("cpus_per_node"),
            memory_gb=p.get("memory_gb"),
            gpu_memory_gb=p.get("gpu_memory_gb"),
            arch=p.get("arch"),
            fp8=p.get("fp8"),
            priority=p.get("priority"),
            max_time=p.get("max_time"),
            default=bool(p.get("default", False)),
            description=p.get("description", ""),
        )
    meta = data.get("metadata") or {}
    return ClusterProfile(
        name=meta.get("name", "cluster"),
        partitions=parts,
        default_partition=spec.get("default_partition"),
        path=path,
        description=meta.get("description", ""),
    )


def load_profile(path: str | Path) -> ClusterProfile:
    """Read, validate and build a profile; raises :class:`ClusterProfileError` listing every
    problem."""
    p = Path(path)
    label = str(path)
    loaded = load_file(p, label)
    if isinstance(loaded, Problem):
        raise ClusterProfileError(f"cannot read cluster profile {label}", problems=[str(loaded)])
    problems = profile_problems(loaded.data, label, loaded.positions)
    if problems:
        n = len(problems)
        raise ClusterProfileError(
            f"{n} problem{'s' if n != 1 else ''} in cluster profile {label}",
            problems=[str(x) for x in problems],
        )
    return profile_from_document(loaded.data, label)


_KIND_LINE = re.compile(rb"^kind:\s*['\"]?Cluster['\"]?\s*(#.*)?$", re.M)


def is_cluster_file(path: Path) -> bool:
    """Whether a YAML file is a cluster profile (a cheap look at its top-level ``kind``)."""
    try:
        with open(path, "rb") as f:
            head = f.read(64 * 1024)
    except OSError:
        return False
    return _KIND_LINE.search(head) is not None


def find_profiles(paths: Iterable[Path], root: Path | None = None) -> list[Path]:
    """Cluster profiles among ``paths`` (files, or folders searched recursively) and in
    ``<root>/clusters/``, sorted and without duplicates."""
    found: set[Path] = set()
    search = list(paths)
    if root is not None and (root / CLUSTERS_DIR).is_dir():
        search.append(root / CLUSTERS_DIR)
    for p in search:
        p = Path(p)
        if p.is_dir():
            for pattern in ("*.yaml", "*.yml"):
                for f in p.rglob(pattern):
                    rel = f.relative_to(p).parts
                    hidden = any(s.startswith(".") for s in rel)
                    if not hidden and f.is_file() and is_cluster_file(f):
                        found.add(f.resolve())
        elif p.is_file() and p.suffix in (".yaml", ".yml") and is_cluster_file(p):
            found.add(p.resolve())
    return sorted(found)


# --------------------------------------------------------------------------------------------
# units


_MEM = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*([KMGT])?(i?B)?\s*$", re.I)
_UNIT_MB = {"K": 1 / 1024, "M": 1.0, "G": 1024.0, "T": 1024.0 * 1024}


def memory_gb(value: Any) -> float | None:
    """A manifest's ``resources.memory`` (integer MB, or 16G, 512M, 64GiB) in GB (1024 MB)."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value) / 1024.0
    m = _MEM.match(str(value))
    if not m:
        return None
    unit = (m.group(2) or "M").upper()
    return float(m.group(1)) * _UNIT_MB[unit] / 1024.0


def time_minutes(value: Any) -> float | None:
    """A SLURM time limit (minutes as an integer, MM, MM:SS, HH:MM:SS, D-HH, D-HH:MM,
    D-HH:MM:SS) in minutes; ``None`` for UNLIMITED/INFINITE or something unreadable."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    text = str(value).strip()
    if text.upper() in ("UNLIMITED", "INFINITE", "NONE", ""):
        return None
    days = 0
    if "-" in text:
        d, _, text = text.partition("-")
        if not d.isdigit():
            return None
        days = int(d)
        parts = text.split(":")
        if not all(x.isdigit() for x in parts) or len(parts) > 3:
            return None
        h, mnt, s = ([*parts, "0", "0"])[:3]
        return days * 1440 + int(h) * 60 + int(mnt) + int(s) / 60
    parts = text.split(":")
    if not all(x.isdigit() for x in parts):
        return None
    if len(parts) == 1:
        return float(parts[0])
    if len(parts) == 2:
        return int(parts[0]) + int(parts[1]) / 60
    if len(parts) == 3:
        return int(parts[0]) * 60 + int(parts[1]) + int(parts[2]) / 60
    return None


def _fmt_minutes(m: float) -> str:
    total = round(m * 60)
    d, rest = divmod(total, 86400)
    h, rest = divmod(rest, 3600)
    mi, s = divmod(rest, 60)
    return (f"{d}-" if d else "") + f"{h:02d}:{mi:02d}:{s:02d}"


def _num(x: float) -> str:
    return f"{x:g}"


# --------------------------------------------------------------------------------------------
# what a run needs

_FP8_WORDS = ("fp8", "float8", "e4m3", "e5m2")
_PRECISION_KEYS = {"precision", "dtype", "mixed_precision", "amp_dtype", "compute_dtype"}


def fp8_needed(run: RunSpec) -> str | None:
    """Why a run needs FP8 hardware, or None: ``resources.fp8: true``, a ``resources.constraint``
    naming fp8, a param ``fp8: true``, or a precision/dtype param such as ``precision: fp8``."""
    res = run.resources or {}
    if res.get("fp8") is True:
        return "resources.fp8: true"
    constraint = res.get("constraint")
    if isinstance(constraint, str) and "fp8" in constraint.lower():
        return f"resources.constraint: {constraint}"

    def walk(obj: Any, prefix: str) -> str | None:
        if isinstance(obj, dict):
            for k, v in obj.items():
                key = f"{prefix}.{k}" if prefix else str(k)
                lk = str(k).lower()
                if lk in ("fp8", "use_fp8") and v is True:
                    return f"params.{key}: true"
                if (
                    lk in _PRECISION_KEYS
                    and isinstance(v, str)
                    and any(w in v.lower() for w in _FP8_WORDS)
                ):
                    return f"params.{key}: {v}"
                found = walk(v, key)
                if found:
                    return found
        return None

    return walk(run.params, "")


@dataclass(frozen=True, slots=True)
class Need:
    """The most any run of a group asks for (what a partition must offer all of them)."""

    gpus: int = 0
    gpu_type: str | None = None
    nodes: int = 1
    cpus: int | None = None
    memory_gb: float | None = None
    minutes: float | None = None
    fp8: str | None = None

    @classmethod
    def of(cls, runs: Sequence[RunSpec]) -> Need:
        gpus, nodes = 0, 1
        cpus: int | None = None
        mem: float | None = None
        minutes: float | None = None
        gpu_type: str | None = None
        fp8: str | None = None
        for r in runs:
            res = r.resources or {}
            g = res.get("gpus")
            if isinstance(g, int) and not isinstance(g, bool):
                gpus = max(gpus, g)
            n = res.get("nodes")
            if isinstance(n, int) and not isinstance(n, bool):
                nodes = max(nodes, n)
            c = res.get("cpus")
            if isinstance(c, int) and not isinstance(c, bool):
                cpus = c if cpus is None else max(cpus, c)
            m = memory_gb(res.get("memory"))
            if m is not None:
                mem = m if mem is None else max(mem, m)
            t = time_minutes(res.get("time"))
            if t is not None:
                minutes = t if minutes is None else max(minutes, t)
            if res.get("gpu_type") and gpu_type is None:
                gpu_type = str(res["gpu_type"])
            if fp8 is None:
                fp8 = fp8_needed(r)
        return cls(gpus, gpu_type, nodes, cpus, mem, minutes, fp8)


def _misfits(need: Need, part: Partition) -> list[tuple[str, str]]:
    """(problem key, reason) for each way ``need`` does not fit ``part``."""
    out: list[tuple[str, str]] = []
    if need.gpus > part.gpus_per_node:
        out.append(
            (
                "gpus",
                f"asks for {need.gpus} GPU{'s' if need.gpus != 1 else ''} per node; "
                f"{part.name} has {part.gpus_per_node} per node",
            )
        )
    if (
        need.gpu_type
        and part.gpus_per_node > 0
        and part.gpu_type
        and need.gpu_type.lower() != part.gpu_type.lower()
    ):
        out.append(("gpu_type", f"asks for {need.gpu_type} GPUs; {part.name} has {part.gpu_type}"))
    if part.nodes is not None and need.nodes > part.nodes:
        out.append(("nodes", f"asks for {need.nodes} nodes; {part.name} has {part.nodes}"))
    if need.cpus is not None and part.cpus_per_node is not None and need.cpus > part.cpus_per_node:
        out.append(
            ("cpus", f"asks for {need.cpus} CPUs; {part.name} has {part.cpus_per_node} per node")
        )
    if (
        need.memory_gb is not None
        and part.memory_gb is not None
        and need.memory_gb > part.memory_gb + 1e-9
    ):
        out.append(
            (
                "memory",
                f"asks for {_num(need.memory_gb)}G of memory; {part.name} has "
                f"{_num(part.memory_gb)}G per node",
            )
        )
    limit = part.max_minutes
    if need.minutes is not None and limit is not None and need.minutes > limit + 1e-9:
        out.append(
            (
                "time",
                f"asks for {_fmt_minutes(need.minutes)}; {part.name} allows at most "
                f"{_fmt_minutes(limit)}",
            )
        )
    if need.fp8 and part.fp8 is False:
        out.append(
            (
                "fp8",
                f"needs fp8 ({need.fp8}); {part.name}'s "
                f"{part.gpu_type or 'hardware'} ({part.arch or 'unknown arch'}) has no fp8",
            )
        )
    return out


# --------------------------------------------------------------------------------------------
# the fit check


@dataclass(frozen=True, slots=True)
class Finding:
    """One problem (or note) about some runs of one experiment against a profile."""

    level: str  # "error" | "warning"
    experiment: str
    source: str
    partition: str | None
    problem: str  # gpus, gpu_type, nodes, cpus, memory, time, fp8, partition
    message: str
    run_ids: tuple[str, ...]
    fits: tuple[str, ...] = ()

    def __str__(self) -> str:
        n = len(self.run_ids)
        shown = ", ".join(self.run_ids[:3]) + (f", ... ({n} runs)" if n > 3 else "")
        text = f"{self.level}: {self.source}: experiment {self.experiment!r}"
        text += f" (run{'s' if n != 1 else ''} {shown}): {self.message}"
        if self.problem != "partition" and self.level == "error":
            text += (
                f"; partitions that fit: {', '.join(self.fits)}"
                if self.fits
                else "; no partition of this cluster fits"
            )
        return text

    def as_dict(self) -> dict[str, Any]:
        return {
            "level": self.level,
            "experiment": self.experiment,
            "source": self.source,
            "partition": self.partition,
            "problem": self.problem,
            "message": self.message,
            "run_ids": list(self.run_ids),
            "fits": list(self.fits),
            "text": str(self),
        }


def _fitting(need: Need, profile: ClusterProfile) -> tuple[str, ...]:
    return tuple(n for n, p in profile.partitions.items() if not _misfits(need, p))


def check_fit(runs: Iterable[RunSpec], profile: ClusterProfile) -> list[Finding]:
    """Every way the runs do not fit the cluster, grouped per experiment, partition and problem.

    A run's partition is ``resources.partition``, else the profile's default; with neither, the
    run must fit some partition. Each error names the partitions that would fit the runs it is
    about."""
    groups: dict[tuple[str, str | None], list[RunSpec]] = {}
    for r in runs:
        part = (r.resources or {}).get("partition") or profile.default
        groups.setdefault((r.experiment, part), []).append(r)
    findings: list[Finding] = []
    for (exp, part_name), members in groups.items():
        source = members[0].source
        if part_name is None:
            need = Need.of(members)
            fits = _fitting(need, profile)
            if not fits:
                findings.append(
                    Finding(
                        "error",
                        exp,
                        source,
                        None,
                        "gpus",
                        "names no partition and fits none of "
                        + ", ".join(profile.partitions)
                        + ": "
                        + "; ".join(
                            m for p in profile.partitions.values() for _, m in _misfits(need, p)
                        ),
                        tuple(r.run_id for r in members),
                    )
                )
            continue
        part = profile.partitions.get(part_name)
        if part is None:
            close = (
                difflib.get_close_matches(part_name, list(profile.partitions), n=1)
                or [n for n in profile.partitions if n.lower().startswith(part_name.lower())][:1]
            )
            need = Need.of(members)
            fits = _fitting(need, profile)
            findings.append(
                Finding(
                    "error",
                    exp,
                    source,
                    part_name,
                    "partition",
                    f"partition {part_name!r} is not in cluster {profile.name!r}"
                    + (f" (did you mean {close[0]!r}?)" if close else "")
                    + f"; its partitions: {', '.join(profile.partitions)}"
                    + (f"; these would fit: {', '.join(fits)}" if fits else ""),
                    tuple(r.run_id for r in members),
                    fits,
                )
            )
            continue
        # Group the runs by what they get wrong, so one sweep axis over gpus gives one line
        # per distinct problem and the runs it concerns.
        by_problem: dict[tuple[str, str], list[RunSpec]] = {}
        needs: dict[str, Need] = {}
        for r in members:
            need = Need.of([r])
            for key, message in _misfits(need, part):
                by_problem.setdefault((key, message), []).append(r)
                needs[r.run_id] = need
        for (key, message), bad in by_problem.items():
            need = Need.of(bad)
            findings.append(
                Finding(
                    "error",
                    exp,
                    source,
                    part_name,
                    key,
                    message,
                    tuple(r.run_id for r in bad),
                    _fitting(need, profile),
                )
            )
    return findings


def resolve_profile(
    explicit: str | Path | None, manifest_paths: Iterable[Path], root: Path
) -> ClusterProfile | None:
    """The profile named, else the one found among the manifest paths or in ``clusters/``;
    None when there is none. Several found and none named is an error: any choice would be a
    guess."""
    if explicit is not None:
        return load_profile(explicit)
    found = find_profiles(manifest_paths, root)
    if not found:
        return None
    shown = [str(p.relative_to(root)) if p.is_relative_to(root) else str(p) for p in found]
    if len(found) > 1:
        raise ClusterProfileError(
            f"{len(found)} cluster profiles found: {', '.join(shown)}",
            hint="name one with --cluster FILE",
        )
    profile = load_profile(found[0])
    return ClusterProfile(
        profile.name, profile.partitions, profile.default_partition, shown[0], profile.description
    )


def _executor_type(run: RunSpec) -> str:
    ex = run.executor or {}
    return str(ex.get("type") or ex.get("kind") or "local")


def check_plan(
    runs: Sequence[RunSpec],
    explicit: str | Path | None,
    manifest_paths: Iterable[Path],
    root: Path,
) -> ClusterProfile | None:
    """``hpcx plan``'s resource check. With ``--cluster`` every run is checked; with a profile
    found on its own, the runs bound for SLURM (the local executor does not use partitions).
    Raises :class:`ResourceFitError` listing every finding; returns the profile used."""
    profile = resolve_profile(explicit, manifest_paths, root)
    if profile is None:
        return None
    checked = runs if explicit is not None else [r for r in runs if _executor_type(r) == "slurm"]
    findings = [f for f in check_fit(checked, profile) if f.level == "error"]
    if findings:
        n = len(findings)
        raise ResourceFitError(
            f"{n} resource problem{'s' if n != 1 else ''} against cluster {profile.name!r} "
            f"({profile.path}); nothing was planned",
            problems=[str(f) for f in findings],
            hint="change resources (partition, gpus, nodes, ...) or check the profile: "
            "hpcx advise MANIFEST ranks the partitions that fit",
        )
    return profile


# --------------------------------------------------------------------------------------------
# advice


@dataclass(frozen=True, slots=True)
class PartitionAdvice:
    partition: str
    fits: bool
    rank: int  # 1 = best among those that fit; 0 for those that do not
    reasons: tuple[str, ...]
    problems: tuple[str, ...] = ()
    pending_jobs: int | None = None
    named: bool = False  # the manifest names this partition

    def as_dict(self) -> dict[str, Any]:
        return {
            "partition": self.partition,
            "fits": self.fits,
            "rank": self.rank,
            "reasons": list(self.reasons),
            "problems": list(self.problems),
            "pending_jobs": self.pending_jobs,
            "named_in_manifest": self.named,
        }


@dataclass(frozen=True, slots=True)
class ExperimentAdvice:
    experiment: str
    runs: int
    need: Need
    partitions: list[PartitionAdvice] = field(default_factory=list)

    @property
    def best(self) -> str | None:
        for p in self.partitions:
            if p.fits:
                return p.partition
        return None

    def as_dict(self) -> dict[str, Any]:
        n = self.need
        return {
            "experiment": self.experiment,
            "runs": self.runs,
            "needs": {
                "gpus_per_node": n.gpus,
                "gpu_type": n.gpu_type,
                "nodes": n.nodes,
                "cpus": n.cpus,
                "memory_gb": n.memory_gb,
                "time_minutes": n.minutes,
                "fp8": n.fp8,
            },
            "best": self.best,
            "partitions": [p.as_dict() for p in self.partitions],
        }


def advise(
    runs: Sequence[RunSpec],
    profile: ClusterProfile,
    pending: Mapping[str, int | None] | None = None,
) -> list[ExperimentAdvice]:
    """Per experiment: every partition, those that fit first, ranked by

    1. fp8: when the runs need it, only fp8 partitions fit; when they do not, partitions without
       fp8 come first (leaving Hopper/Ada nodes to the work that needs them);
    2. queue: fewer pending jobs first (``pending``, from :func:`queue_lengths`; unknown counts
       as none);
    3. priority: a higher tier first;
    4. fewest idle GPUs per node: asking 1 GPU of an 8-GPU node wastes the node's share;
    5. more GPU memory first (headroom for batch size and sequence length).

    Each entry says why, in words."""
    pending = pending or {}
    by_exp: dict[str, list[RunSpec]] = {}
    for r in runs:
        by_exp.setdefault(r.experiment, []).append(r)
    out = []
    for exp, members in by_exp.items():
        need = Need.of(members)
        named = {(r.resources or {}).get("partition") for r in members} - {None}
        scored: list[tuple[tuple[Any, ...], PartitionAdvice]] = []
        for name, part in profile.partitions.items():
            problems = tuple(m for _, m in _misfits(need, part))
            q = pending.get(name)
            reasons = []
            if need.gpus:
                reasons.append(
                    f"{part.gpus_per_node} x {part.gpu_type or 'GPU'} per node "
                    f"for {need.gpus} asked"
                    + (
                        f" ({part.gpus_per_node - need.gpus} idle per node)"
                        if part.gpus_per_node > need.gpus
                        else ""
                    )
                )
            elif part.gpus_per_node:
                reasons.append(f"runs need no GPU; {part.name} has {part.gpus_per_node} per node")
            if part.gpu_memory_gb:
                reasons.append(f"{_num(part.gpu_memory_gb)} GB per GPU")
            if need.fp8:
                reasons.append(
                    f"fp8 needed ({need.fp8}): "
                    + ("supported" if part.fp8 else "not supported" if part.fp8 is False else "?")
                    + (f" on {part.arch}" if part.arch else "")
                )
            elif part.fp8:
                reasons.append(f"fp8-capable {part.arch or ''} not needed here".replace("  ", " "))
            if part.priority is not None:
                reasons.append(f"priority {part.priority}")
            if q is not None:
                reasons.append(f"{q} job{'s' if q != 1 else ''} pending in its queue")
            if name in named:
                reasons.append("named in the manifest")
            fp8_order = 0 if need.fp8 else (1 if part.fp8 else 0)
            idle = max(0, part.gpus_per_node - need.gpus) if need.gpus else part.gpus_per_node
            key = (
                0 if not problems else 1,
                fp8_order,
                q or 0,
                -part.priority_rank,
                idle,
                -(part.gpu_memory_gb or 0),
                name,
            )
            scored.append(
                (
                    key,
                    PartitionAdvice(
                        name, not problems, 0, tuple(reasons), problems, q, name in named
                    ),
                )
            )
        scored.sort(key=lambda kv: kv[0])
        ranked = []
        rank = 0
        for _, adv in scored:
            if adv.fits:
                rank += 1
                adv = PartitionAdvice(
                    adv.partition,
                    True,
                    rank,
                    adv.reasons,
                    adv.problems,
                    adv.pending_jobs,
                    adv.named,
                )
            ranked.append(adv)
        out.append(ExperimentAdvice(exp, len(members), need, ranked))
    return out


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


def _scalar(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return _num(float(v)) if isinstance(v, float) else str(v)
    text = str(v)
    if re.match(r"^[A-Za-z_][A-Za-z0-9_./-]*$", text) and text.lower() not in (
        "true",
        "false",
        "null",
        "yes",
        "no",
        "on",
        "off",
        "y",
        "n",
    ):
        return text
    return json.dumps(text)


def profile_yaml(doc: Mapping[str, Any], schema_ref: str | None = None) -> str:
    """A profile document as YAML, in the field order of the schema, with the editor comment."""
    lines = []
    if schema_ref:
        lines.append(f"# yaml-language-server: $schema={schema_ref}")
    lines.append("# A cluster profile: `hpcx plan` checks runs against it, `hpcx advise` ranks it.")
    lines.append(f"apiVersion: {doc['apiVersion']}")
    lines.append(f"kind: {doc['kind']}")
    lines.append("metadata:")
    for k, v in doc["metadata"].items():
        lines.append(f"  {k}: {_scalar(v)}")
    lines.append("spec:")
    spec = doc["spec"]
    if spec.get("default_partition"):
        lines.append(f"  default_partition: {_scalar(spec['default_partition'])}")
    lines.append("  partitions:")
    for pname, p in spec["partitions"].items():
        lines.append(f"    {_scalar(pname)}:")
        for k, v in p.items():
            lines.append(f"      {k}: {_scalar(v)}")
    return "\n".join(lines) + "\n"


def profile_table(profile: ClusterProfile) -> str:
    """The partitions as a text table (``hpcx cluster show``)."""
    cols = ["partition", "gpu", "gpus/node", "nodes", "cpus/node", "mem/node", "gpu mem"]
    cols += ["arch", "fp8", "priority", "max time"]
    rows = []
    for p in profile.partitions.values():
        rows.append(
            [
                p.name + ("*" if p.name == profile.default else ""),
                p.gpu_type or "-",
                str(p.gpus_per_node),
                "-" if p.nodes is None else str(p.nodes),
                "-" if p.cpus_per_node is None else str(p.cpus_per_node),
                "-" if p.memory_gb is None else f"{_num(p.memory_gb)}G",
                "-" if not p.gpu_memory_gb else f"{_num(p.gpu_memory_gb)}G",
                p.arch or "-",
                "-" if p.fp8 is None else ("yes" if p.fp8 else "no"),
                "-" if p.priority is None else str(p.priority),
                "-" if p.max_time is None else str(p.max_time),
            ]
        )
    widths = [max(len(c), *(len(r[i]) for r in rows)) for i, c in enumerate(cols)]
    out = [
        "  ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True)).rstrip(),
    ]
    out += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    return "\n".join(out) + "\n"
