"""``--set path=value``: overrides for one invocation, applied to each composed document.

A path is rooted at the document (``spec.resources.time``), at the spec (``resources.time``:
a spec field) or at the params (``model.depth``: as sweep axes and Hydra's overrides take it).
Values are YAML, read through :func:`hpcx.util.yamlload.parse_value`. An override writes into
copies along its path, never into the cached base documents. ``+`` adds a parameter that does
not exist yet; without it, a missing parameter is skipped here and reported once for all
manifests by the loader if no experiment took it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from hpcx.manifest.axes import dotted_path, sweep_keys
from hpcx.manifest.document import Doc, Problems, leaf_paths, pos, typename
from hpcx.manifest.schema import schema_document
from hpcx.manifest.sweep import get_path
from hpcx.util.yamlload import Position, json_path_str, parse_value

__all__ = ["Override", "apply_override", "override_hits_sweep", "parse_overrides"]

_OVERRIDE = re.compile(r"^(\+?)([A-Za-z0-9_$-]+(?:\.[A-Za-z0-9_-]+)*)=(.*)$", re.S)


@dataclass(slots=True)
class Override:
    """One ``--set``: its text, its document-rooted path and value, and how it fared."""

    text: str
    path: tuple[str, ...]  # document-rooted
    value: Any
    add: bool
    applied: int = 0
    candidates: list[str] = field(default_factory=list)


def parse_overrides(overrides: Sequence[str], problems: Problems) -> list[Override]:
    """Each ``--set`` text parsed; the ones that cannot be are problems (and left out)."""
    out = []
    for text in overrides:
        where: Position = (f"--set {text}", None, None)
        m = _OVERRIDE.match(text)
        if not m:
            problems.add(
                where,
                (),
                "expected path=value, with a dotted path (for example params.model.depth=8)",
            )
            continue
        add, dotted, raw = m.groups()
        parts = tuple(dotted.split("."))
        if parts[0] in ("apiVersion", "kind", "abstract", "extends"):
            problems.add(where, parts[:1], f"{parts[0]} cannot be overridden")
            continue
        if parts[0] not in ("spec", "metadata"):
            # A bare path names a spec field (resources.time=...) or, as in sweep axes and
            # Hydra's overrides, a parameter (model.depth=8 is params.model.depth).
            spec_fields = schema_document()["properties"]["spec"]["properties"]
            parts = ("spec", *parts) if parts[0] in spec_fields else ("spec", "params", *parts)
        if len(parts) < 2:
            problems.add(where, parts, "the path names a whole section; name a field inside it")
            continue
        try:
            value = parse_value(raw, "--set")
        except ValueError as exc:
            problems.add(where, parts, f"bad value {raw!r}: {exc}")
            continue
        out.append(Override(text, parts, value, bool(add)))
    return out


def _shallow_copy(node: Any) -> Any:
    """A copy of one level of a dict or list (others as they are): an override writes into
    copies along its path, never into the cached base documents it came from."""
    if isinstance(node, dict):
        return dict(node)
    if isinstance(node, list):
        return list(node)
    return node


def apply_override(doc: Doc, ov: Override) -> str | None:
    """Set the override in ``doc`` (copy on write); ``"skip"`` where it does not apply."""
    path = list(ov.path)
    if path[:3] == ["spec", "sweep", "grid"] and len(path) > 4:
        path = [*path[:3], ".".join(path[3:])]
    data = doc.data
    if not isinstance(data, dict):
        return "skip"
    new_root = dict(data)
    cur: Any = new_root
    in_params = path[:2] == ["spec", "params"]
    real: list[str | int] = []
    for i, key in enumerate(path):
        last = i == len(path) - 1
        if isinstance(cur, list):
            if not key.isdigit() or int(key) >= len(cur):
                return f"{'.'.join(path[: i + 1])}: no such list item"
            idx = int(key)
            real.append(idx)
            if last:
                cur[idx] = ov.value
            else:
                cur[idx] = cur = _shallow_copy(cur[idx])
            continue
        if not isinstance(cur, dict):
            return f"{'.'.join(path[:i])} is a {typename(cur)}, not a mapping"
        real.append(key)
        if key not in cur:
            if in_params and i >= 2 and not ov.add:
                ov.candidates.extend(
                    leaf_paths(
                        get_path(new_root, ["spec", "params"])
                        if isinstance(new_root.get("spec"), dict)
                        and isinstance(new_root["spec"].get("params"), dict)
                        else {},
                        "params",
                    )
                )
                return "skip"
            cur[key] = {} if not last else ov.value
        elif last:
            cur[key] = ov.value
        if not last:
            cur[key] = cur = _shallow_copy(cur[key])
    doc.data = new_root
    target = tuple(real)
    n = len(target)
    for table in (doc.positions, doc.key_positions):
        for p in [p for p in table if p[:n] == target]:
            del table[p]
    doc.positions[target] = (f"--set {ov.text}", None, None)
    doc.key_positions[target] = (f"--set {ov.text}", None, None)
    return None


def override_hits_sweep(doc: Doc, ov: Override) -> str | None:
    """Why ``--set params.x=...`` cannot work here: a sweep axis sets ``params.x`` (or a path
    above or below it) in every run, so the value would be silently replaced."""
    spec = doc.data.get("spec") if isinstance(doc.data, dict) else None
    if ov.path[:2] != ("spec", "params") or not isinstance(spec, dict):
        return None
    target = dotted_path(ov.path[1:])
    for dotted, jp in sweep_keys(spec):
        if dotted == target or dotted.startswith(target + ".") or target.startswith(dotted + "."):
            where = pos(doc, jp, key=True)
            at = f"{where[0]}:{where[1]}" if where[1] else where[0]
            if jp[2] == "search":
                return (
                    f"{target} is searched ({json_path_str(jp)} at {at}): the search sets it "
                    f"in every trial; edit the space instead (e.g. --set "
                    f"sweep.search.space.{jp[-1]}.high=...)"
                )
            section = "an include entry" if jp[2] == "include" else f"the {jp[2]} axis"
            return (
                f"{target} is swept by {section} {jp[-1]!r} at {at} ({json_path_str(jp)}): "
                f"the sweep sets it in every run; edit the sweep instead "
                f"(e.g. --set sweep.grid.{jp[-1]}=[...])"
            )
    return None
