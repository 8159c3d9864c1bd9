"""Composition: a manifest and the bases it ``extends``, deep-merged into one document that
still knows where each value came from.

A base contributes everything but ``abstract``, ``extends``, ``$schema`` and its own
``metadata.name``; mappings merge key by key, everything else is replaced; later bases win over
earlier ones and the file itself over all of them. Cycles and missing bases are problems.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from hpcx.manifest.axes import sweep_keys
from hpcx.manifest.document import Doc, Problems, pos
from hpcx.util.yamlload import JsonPath, Loaded, Position, Problem, load_file

__all__ = ["Composer", "merge"]


def merge(base: Any, over: Any) -> Any:
    """Deep merge: mappings merge key by key, everything else is replaced."""
    if isinstance(base, dict) and isinstance(over, dict):
        out = dict(base)
        for k, v in over.items():
            out[k] = merge(base[k], v) if k in base else v
        return out
    return over


class Composer:
    """Parses each file once and composes each once, recording every file's sha256 (by its
    label, the path relative to the project root) for saved plans."""

    def __init__(self, root: Path, problems: Problems) -> None:
        self.root = root
        self.problems = problems
        self.parsed: dict[Path, Loaded | None] = {}
        self.composed: dict[Path, Doc | None] = {}
        self.digests: dict[str, str] = {}

    def label(self, path: Path) -> str:
        try:
            return path.relative_to(self.root).as_posix()
        except ValueError:
            return str(path)

    def parse(self, path: Path) -> Loaded | None:
        if path not in self.parsed:
            result = load_file(path, self.label(path))
            if isinstance(result, Problem):
                self.problems.extend([result])
                self.parsed[path] = None
            else:
                self.parsed[path] = result
                self.digests[self.label(path)] = hashlib.sha256(result.raw).hexdigest()
        return self.parsed[path]

    def compose(self, path: Path, stack: tuple[Path, ...] = ()) -> Doc | None:
        if path in self.composed:
            return self.composed[path]
        loaded = self.parse(path)
        if loaded is None:
            self.composed[path] = None
            return None
        data = loaded.data
        own = Doc(data, dict(loaded.positions), dict(loaded.key_positions), [path])
        if not isinstance(data, dict) or "extends" not in data:
            self.composed[path] = own
            return own
        ext = data["extends"]
        entries: list[tuple[str, JsonPath]] = []
        if isinstance(ext, str):
            entries = [(ext, ("extends",))]
        elif isinstance(ext, list):
            for i, e in enumerate(ext):
                if isinstance(e, str) and e:
                    entries.append((e, ("extends", i)))
                else:
                    self.problems.add(
                        pos(own, ("extends", i)),
                        ("extends", i),
                        "expected a path (a non-empty string)",
                    )
        else:
            self.problems.add(
                pos(own, ("extends",)), ("extends",), "expected a path or a list of paths"
            )
        merged: Any = {}
        positions: dict[JsonPath, Position] = {}
        kpositions: dict[JsonPath, Position] = {}
        files = [path]
        ok = True
        for rel, jp in entries:
            base_path = (path.parent / rel).resolve()
            where = pos(own, jp)
            if base_path == path or base_path in stack:
                chain = [*stack, path, base_path]
                start = chain.index(base_path)
                cycle = " -> ".join(self.label(p) for p in chain[start:])
                self.problems.add(where, jp, f"extends cycle: {cycle}")
                ok = False
                continue
            if not base_path.is_file():
                self.problems.add(
                    where,
                    jp,
                    f"base manifest not found: {rel} (looked for {self.label(base_path)})",
                )
                ok = False
                continue
            base = self.compose(base_path, (*stack, path))
            if base is None or not isinstance(base.data, dict):
                ok = False
                if base is not None:
                    self.problems.add(pos(base, ()), (), "a base manifest must be a mapping")
                continue
            contribution = {
                k: v for k, v in base.data.items() if k not in ("abstract", "extends", "$schema")
            }
            meta = contribution.get("metadata")
            if isinstance(meta, dict) and "name" in meta:
                contribution["metadata"] = {k: v for k, v in meta.items() if k != "name"}
            merged = merge(merged, contribution)
            positions.update(base.positions)
            kpositions.update(base.key_positions)
            files.extend(f for f in base.files if f not in files)
        own_data = {k: v for k, v in data.items() if k != "extends"}
        merged = merge(merged, own_data)
        positions.update(loaded.positions)
        kpositions.update(loaded.key_positions)
        doc = Doc(merged, positions, kpositions, files) if ok else None
        if doc is not None:
            self._check_hidden_params(doc, own_data, self.label(path))
        self.composed[path] = doc
        return doc

    def _check_hidden_params(self, doc: Doc, own: dict[str, Any], label: str) -> None:
        """A param this file sets that a grid or zip axis inherited from a base sets in every
        run: the value would never be used, so it is an error naming the axis, not a quiet
        loss. (A file that sets both its params and its own axis knows the axis wins.)"""
        own_spec = own.get("spec")
        params = own_spec.get("params") if isinstance(own_spec, dict) else None
        spec = doc.data.get("spec") if isinstance(doc.data, dict) else None
        if not isinstance(params, dict) or not isinstance(spec, dict):
            return
        for dotted, jp in sweep_keys(spec):
            if jp[2] == "include":
                continue  # an include entry adds points; the param still holds elsewhere
            axis_at = pos(doc, jp, key=True)
            if axis_at[0] == label or not dotted.startswith("params."):
                continue
            parts = dotted.split(".")[1:]
            node: Any = params
            for depth, part in enumerate(parts):
                if not isinstance(node, dict) or part not in node:
                    break
                node = node[part]
                if depth == len(parts) - 1 or not isinstance(node, dict):
                    jp_param: JsonPath = ("spec", "params", *parts[: depth + 1])
                    at = f"{axis_at[0]}:{axis_at[1]}" if axis_at[1] else axis_at[0]
                    self.problems.add(
                        pos(doc, jp_param, key=True),
                        jp_param,
                        f"params.{'.'.join(parts[: depth + 1])} is set here, but the "
                        f"{jp[2]} axis {jp[-1]!r} inherited from {at} sets {dotted} in every "
                        f"run, so this value is never used; set the axis instead "
                        f"(spec.sweep.{jp[2]}"
                        + (f".{jp[-1]}: [...]" if jp[2] == "grid" else " entry")
                        + ") or remove this value",
                    )
                    break
