"""Cluster profiles (``kind: Cluster``): what each partition offers.

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

Whether runs fit a profile is the plan's question (:mod:`hpcx.plan.fit`); a profile can be
discovered from SLURM (:mod:`hpcx.cluster.discover`).

"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from hpcx.cluster.found import find_profiles, is_cluster_file
from hpcx.cluster.units import plain_number, time_minutes
from hpcx.errors import ClusterProfileError, ResourceFitError
from hpcx.util.yamlload import JsonPath, Position, Problem, json_path_str, load_file

__all__ = [
    "ClusterProfile",
    "ClusterProfileError",
    "Partition",
    "ResourceFitError",
    "find_profiles",
    "is_cluster_file",
    "load_profile",
    "profile_from_document",
    "profile_problems",
    "profile_table",
    "profile_yaml",
    "resolve_profile",
]

SCHEMA_FILE = "cluster.v1.schema.json"
KIND = "Cluster"

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
class ClusterLimits:
    """A profile's ``spec.limits``: what caps a user's submissions (None: not recorded)."""

    max_job_count: int | None = None
    max_array_size: int | None = None
    accounting: bool = False
    user: str | None = None
    max_submit_jobs: int | None = None
    max_submit_source: str | None = None


@dataclass(frozen=True, slots=True)
class ClusterProfile:
    name: str
    partitions: dict[str, Partition]
    default_partition: str | None = None
    path: str | None = None
    description: str = ""
    limits: ClusterLimits | None = None

    @property
    def default(self) -> str | None:
        if self.default_partition:
            return self.default_partition
        for p in self.partitions.values():
            if p.default:
                return p.name
        return None


def schema_path() -> Path:
    """The cluster JSON Schema shipped inside the package (``hpcx/schemas/``)."""
    from hpcx.util.schemas import schema_file

    return schema_file(SCHEMA_FILE)


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
    lim = spec.get("limits")
    limits = (
        ClusterLimits(
            max_job_count=lim.get("max_job_count"),
            max_array_size=lim.get("max_array_size"),
            accounting=bool(lim.get("accounting", False)),
            user=lim.get("user"),
            max_submit_jobs=lim.get("max_submit_jobs"),
            max_submit_source=lim.get("max_submit_source"),
        )
        if isinstance(lim, Mapping)
        else None
    )
    return ClusterProfile(
        name=meta.get("name", "cluster"),
        partitions=parts,
        default_partition=spec.get("default_partition"),
        path=path,
        description=meta.get("description", ""),
        limits=limits,
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


def resolve_profile(
    explicit: str | Path | None,
    manifest_paths: Iterable[Path],
    root: Path,
    found: list[Path] | None = None,
) -> ClusterProfile | None:
    """The profile named, else the one found among the manifest paths or in ``clusters/``
    (``found``, when the caller has already looked: :func:`find_profiles`); None when there is
    none. Several found and none named is an error: any choice would be a guess."""
    if explicit is not None:
        return load_profile(explicit)
    if found is None:
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
        profile.name,
        profile.partitions,
        profile.default_partition,
        shown[0],
        profile.description,
        profile.limits,
    )


def _scalar(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return plain_number(float(v)) if isinstance(v, float) else str(v)
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
    if spec.get("limits"):
        lines.append("  limits:")
        for k, v in spec["limits"].items():
            lines.append(f"    {k}: {_scalar(v)}")
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
                "-" if p.memory_gb is None else f"{plain_number(p.memory_gb)}G",
                "-" if not p.gpu_memory_gb else f"{plain_number(p.gpu_memory_gb)}G",
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
