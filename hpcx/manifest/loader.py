"""Manifests: load, compose (``extends``), override (``--set``), validate, expand into runs.

The only entry points most code needs are :func:`load_desired` (raises
:class:`hpcx.errors.ManifestError` listing every problem) and :func:`validate_paths` (returns
every problem). Each problem reads ``file:line:col: $.json.path: message``.

Discovery: a path may be a file or a folder; a folder is searched recursively for ``*.yaml`` and
``*.yml`` (hidden files and folders skipped), sorted by path, and every file found must be a
manifest. A manifest with ``abstract: true`` is a base: it is checked, composes into others
through ``extends``, and yields no runs. A ``kind: Cluster`` profile
(``hpcx/cluster/profiles.py``) is checked against its own schema and yields no runs either.

See docs/manifests.md for the language and the identity scheme.
"""

from __future__ import annotations

import difflib
import gc
import hashlib
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from hpcx.errors import ManifestError
from hpcx.manifest import gitinfo
from hpcx.manifest.identity import IDENTITY_VERSION, canonical_json, normalize, run_id_for
from hpcx.manifest.spec import DesiredState, ExperimentInfo, RunSpec
from hpcx.manifest.sweep import Axis, Matcher, RunPath, SweepPlan, expand, get_path
from hpcx.util.yamlload import (
    JsonPath,
    Loaded,
    Position,
    Problem,
    json_path_str,
    load_file,
    parse_value,
)
from hpcx.workloads import known_workloads

__all__ = [
    "API_VERSIONS",
    "BUILTIN_WORKLOADS",
    "DEFAULT_MAX_RUNS",
    "IDENTITY_VERSION",
    "Problem",
    "canonical_json",
    "load_desired",
    "render_command",
    "render_cwd",
    "render_env",
    "run_id_for",
    "run_value",
    "schema_path",
    "schema_text",
    "validate_paths",
]

#: The manifest versions this hpcx reads.
API_VERSIONS = ("hpcx/v1",)
#: Workloads hpcx runs by name (``spec.workload``): the registry in :mod:`hpcx.workloads`.
BUILTIN_WORKLOADS = tuple(known_workloads())
DEFAULT_MAX_RUNS = 1_000_000
SCHEMA_FILE = "manifest.v1.schema.json"

_PLACEHOLDER = re.compile(r"\{\{|\}\}|\{([^{}]*)\}|[{}]")
_RUN_FIELDS = ("run_id", "run_dir", "seed", "repeat", "experiment")
_SETTINGS_ROOTS = ("resources", "env", "cwd", "executor", "retries")
_SLURM_ONLY = ("sbatch_args", "array_throttle", "setup")
_LOCAL_ONLY = ("max_parallel",)
_OVERRIDE = re.compile(r"^(\+?)([A-Za-z0-9_$-]+(?:\.[A-Za-z0-9_-]+)*)=(.*)$", re.S)


# --------------------------------------------------------------------------------------------
# schema


def packaged_schema_path() -> Path | None:
    """The copy shipped inside the installed package (``hpcx/schemas/``), if there is one."""
    from importlib.resources import files

    try:
        packaged = files("hpcx") / "schemas" / SCHEMA_FILE
        if packaged.is_file():
            return Path(str(packaged))
    except (ModuleNotFoundError, FileNotFoundError, NotADirectoryError):  # pragma: no cover
        pass
    return None


def schema_path() -> Path:
    """The JSON Schema file hpcx validates with.

    Running from a source checkout (an editable install imports ``hpcx`` from the repo), the
    repo's ``schemas/`` is the truth: an editable install may hold a copy made at install
    time that has since gone stale. Installed from a wheel, it is the copy inside the package
    (pyproject force-includes ``schemas/`` as ``hpcx/schemas/``).
    """
    source = Path(__file__).resolve().parents[2] / "schemas" / SCHEMA_FILE
    if source.is_file():
        return source
    packaged = packaged_schema_path()
    return packaged if packaged is not None else source


def schema_text() -> str:
    return schema_path().read_text(encoding="utf-8")


@lru_cache(maxsize=1)
def _schema() -> dict[str, Any]:
    result: dict[str, Any] = json.loads(schema_text())
    return result


@lru_cache(maxsize=1)
def _validator() -> Any:
    from jsonschema import Draft202012Validator

    return Draft202012Validator(_schema())


# --------------------------------------------------------------------------------------------
# small helpers


def _did_you_mean(word: str, options: Iterable[str]) -> str:
    match = difflib.get_close_matches(word, list(options), n=1, cutoff=0.6)
    return f" (did you mean {match[0]!r}?)" if match else ""


def _leaf_paths(obj: Any, prefix: str = "") -> list[str]:
    out = []
    if isinstance(obj, dict):
        for k, v in obj.items():
            p = f"{prefix}.{k}" if prefix else k
            out.append(p)
            out.extend(_leaf_paths(v, p))
    return out


def _typename(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, int):
        return "integer"
    if isinstance(v, float):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return "list"
    if isinstance(v, dict):
        return "mapping"
    return type(v).__name__


def _short(v: Any, limit: int = 40) -> str:
    text = json.dumps(v, ensure_ascii=False, default=str)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _format_value(v: Any) -> str:
    """A placeholder's text: strings as they are, everything else as compact JSON."""
    if isinstance(v, str):
        return v
    return json.dumps(v, separators=(",", ":"), ensure_ascii=False)


def _run_path(key: str) -> RunPath:
    """A sweep key as a run path: ``params.x``, ``placement.numa``, or a bare param path."""
    parts = tuple(key.split("."))
    if parts[0] in ("params", "placement") and len(parts) > 1:
        return parts
    return ("params", *parts)


def _dotted(path: RunPath) -> str:
    return ".".join(path)


# --------------------------------------------------------------------------------------------
# positions and problems


@dataclass(slots=True)
class _Doc:
    """A document with the origin of every value (file, line, col), after composition."""

    data: Any
    positions: dict[JsonPath, Position]
    key_positions: dict[JsonPath, Position]
    files: list[Path]  # this file and every base it pulls in
    # Params that refer to swept values (``${params.x}``), resolved per run at expansion.
    dynamic: Any = None


class _Problems:
    def __init__(self) -> None:
        self.items: list[Problem] = []

    def add(self, where: Position, jpath: JsonPath, message: str) -> None:
        self.items.append(Problem(where[0], where[1], where[2], json_path_str(jpath), message))

    def extend(self, problems: Iterable[Problem]) -> None:
        self.items.extend(problems)

    def sorted(self) -> list[Problem]:
        return sorted(set(self.items), key=Problem.sort_key)


def _pos(doc: _Doc, path: JsonPath, *, key: bool = False, default: str = "") -> Position:
    if key and path in doc.key_positions:
        return doc.key_positions[path]
    p = path
    while True:
        if p in doc.positions:
            return doc.positions[p]
        if not p:
            return (default, None, None)
        p = p[:-1]


# --------------------------------------------------------------------------------------------
# composition


def _merge(base: Any, over: Any) -> Any:
    """Deep merge: mappings merge key by key, everything else is replaced."""
    if isinstance(base, dict) and isinstance(over, dict):
        out = dict(base)
        for k, v in over.items():
            out[k] = _merge(base[k], v) if k in base else v
        return out
    return over


class _Loader:
    def __init__(self, root: Path, problems: _Problems) -> None:
        self.root = root
        self.problems = problems
        self.parsed: dict[Path, Loaded | None] = {}
        self.composed: dict[Path, _Doc | None] = {}
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

    def compose(self, path: Path, stack: tuple[Path, ...] = ()) -> _Doc | None:
        if path in self.composed:
            return self.composed[path]
        loaded = self.parse(path)
        if loaded is None:
            self.composed[path] = None
            return None
        data = loaded.data
        own = _Doc(data, dict(loaded.positions), dict(loaded.key_positions), [path])
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
                        _pos(own, ("extends", i)),
                        ("extends", i),
                        "expected a path (a non-empty string)",
                    )
        else:
            self.problems.add(
                _pos(own, ("extends",)), ("extends",), "expected a path or a list of paths"
            )
        merged: Any = {}
        positions: dict[JsonPath, Position] = {}
        kpositions: dict[JsonPath, Position] = {}
        files = [path]
        ok = True
        for rel, jp in entries:
            base_path = (path.parent / rel).resolve()
            where = _pos(own, jp)
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
                    self.problems.add(_pos(base, ()), (), "a base manifest must be a mapping")
                continue
            contribution = {
                k: v for k, v in base.data.items() if k not in ("abstract", "extends", "$schema")
            }
            meta = contribution.get("metadata")
            if isinstance(meta, dict) and "name" in meta:
                contribution["metadata"] = {k: v for k, v in meta.items() if k != "name"}
            merged = _merge(merged, contribution)
            positions.update(base.positions)
            kpositions.update(base.key_positions)
            files.extend(f for f in base.files if f not in files)
        own_data = {k: v for k, v in data.items() if k != "extends"}
        merged = _merge(merged, own_data)
        positions.update(loaded.positions)
        kpositions.update(loaded.key_positions)
        doc = _Doc(merged, positions, kpositions, files) if ok else None
        if doc is not None:
            self._check_hidden_params(doc, own_data, self.label(path))
        self.composed[path] = doc
        return doc

    def _check_hidden_params(self, doc: _Doc, own: dict[str, Any], label: str) -> None:
        """A param this file sets that a grid or zip axis inherited from a base sets in every
        run: the value would never be used, so it is an error naming the axis, not a quiet
        loss. (A file that sets both its params and its own axis knows the axis wins.)"""
        own_spec = own.get("spec")
        params = own_spec.get("params") if isinstance(own_spec, dict) else None
        spec = doc.data.get("spec") if isinstance(doc.data, dict) else None
        if not isinstance(params, dict) or not isinstance(spec, dict):
            return
        for dotted, jp in _sweep_keys(spec):
            if jp[2] == "include":
                continue  # an include entry adds points; the param still holds elsewhere
            axis_at = _pos(doc, jp, key=True)
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
                        _pos(doc, jp_param, key=True),
                        jp_param,
                        f"params.{'.'.join(parts[: depth + 1])} is set here, but the "
                        f"{jp[2]} axis {jp[-1]!r} inherited from {at} sets {dotted} in every "
                        f"run, so this value is never used; set the axis instead "
                        f"(spec.sweep.{jp[2]}"
                        + (f".{jp[-1]}: [...]" if jp[2] == "grid" else " entry")
                        + ") or remove this value",
                    )
                    break


# --------------------------------------------------------------------------------------------
# overrides


@dataclass(slots=True)
class _Override:
    text: str
    path: tuple[str, ...]  # document-rooted
    value: Any
    add: bool
    applied: int = 0
    candidates: list[str] = field(default_factory=list)


def _parse_overrides(overrides: Sequence[str], problems: _Problems) -> list[_Override]:
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
            spec_fields = _schema()["properties"]["spec"]["properties"]
            parts = ("spec", *parts) if parts[0] in spec_fields else ("spec", "params", *parts)
        if len(parts) < 2:
            problems.add(where, parts, "the path names a whole section; name a field inside it")
            continue
        try:
            value = parse_value(raw, "--set")
        except ValueError as exc:
            problems.add(where, parts, f"bad value {raw!r}: {exc}")
            continue
        out.append(_Override(text, parts, value, bool(add)))
    return out


def _shallow_copy(node: Any) -> Any:
    """A copy of one level of a dict or list (others as they are): an override writes into
    copies along its path, never into the cached base documents it came from."""
    if isinstance(node, dict):
        return dict(node)
    if isinstance(node, list):
        return list(node)
    return node


def _apply_override(doc: _Doc, ov: _Override) -> str | None:
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
            return f"{'.'.join(path[:i])} is a {_typename(cur)}, not a mapping"
        real.append(key)
        if key not in cur:
            if in_params and i >= 2 and not ov.add:
                ov.candidates.extend(
                    _leaf_paths(
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


# --------------------------------------------------------------------------------------------
# interpolation


def _sweep_keys(spec: dict[str, Any]) -> list[tuple[str, JsonPath]]:
    """Each path a sweep sets, dotted (``params.model.dim``), with the JSON path of its key.
    Before the sweep is checked: odd shapes are skipped here and reported by the schema."""
    sweep = spec.get("sweep")
    if not isinstance(sweep, dict):
        return []
    out: list[tuple[str, JsonPath]] = []
    if isinstance(sweep.get("grid"), dict):
        out.extend((str(k), ("spec", "sweep", "grid", k)) for k in sweep["grid"])
    for section in ("zip", "include"):
        entries = sweep.get(section)
        for i, group in enumerate(entries if isinstance(entries, list) else []):
            if isinstance(group, dict):
                out.extend((str(k), ("spec", "sweep", section, i, k)) for k in group)
    return [(_dotted(_run_path(k)), jp) for k, jp in out]


def _swept_paths(spec: dict[str, Any]) -> frozenset[str]:
    """The dotted paths a sweep sets, and ``seed`` where it sweeps seeds."""
    out = {dotted for dotted, _ in _sweep_keys(spec)}
    sweep = spec.get("sweep")
    if isinstance(sweep, dict) and (
        sweep.get("seeds") is not None or sweep.get("repeats") is not None
    ):
        out.add("seed")
    return frozenset(out)


def _override_hits_sweep(doc: _Doc, ov: _Override) -> str | None:
    """Why ``--set params.x=...`` cannot work here: a sweep axis sets ``params.x`` (or a path
    above or below it) in every run, so the value would be silently replaced."""
    spec = doc.data.get("spec") if isinstance(doc.data, dict) else None
    if ov.path[:2] != ("spec", "params") or not isinstance(spec, dict):
        return None
    target = _dotted(ov.path[1:])
    for dotted, jp in _sweep_keys(spec):
        if dotted == target or dotted.startswith(target + ".") or target.startswith(dotted + "."):
            where = _pos(doc, jp, key=True)
            at = f"{where[0]}:{where[1]}" if where[1] else where[0]
            section = "an include entry" if jp[2] == "include" else f"the {jp[2]} axis"
            return (
                f"{target} is swept by {section} {jp[-1]!r} at {at} ({json_path_str(jp)}): "
                f"the sweep sets it in every run; edit the sweep instead "
                f"(e.g. --set sweep.grid.{jp[-1]}=[...])"
            )
    return None


def _interpolate(doc: _Doc, problems: _Problems) -> None:
    """Resolve ``${env:...}`` and ``${field}`` references in the spec
    (hpcx/manifest/interpolate.py),
    once, here at load (plan) time: runs record and hash the resolved values."""
    import os

    from hpcx.manifest.interpolate import resolve_spec

    data = doc.data
    if not isinstance(data, dict) or not isinstance(data.get("spec"), dict):
        return

    def report(jp: tuple[str | int, ...], message: str) -> None:
        full: JsonPath = ("spec", *jp)
        problems.add(_pos(doc, full), full, message)

    spec, dynamic = resolve_spec(data["spec"], os.environ, _swept_paths(data["spec"]), report)
    if spec is not data["spec"]:
        doc.data = {**data, "spec": spec}
    doc.dynamic = dynamic if dynamic else None


# --------------------------------------------------------------------------------------------
# schema validation


def _describe(schema: dict[str, Any]) -> str:
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        return "a range {start, stop, step}" if name == "range" else str(name)
    if "enum" in schema:
        return " or ".join(repr(v) for v in schema["enum"])
    t = schema.get("type")
    if isinstance(t, list):
        return " or ".join(_article(x) for x in t)
    if isinstance(t, str):
        return _article(t)
    return "a valid value"


def _article(t: str) -> str:
    return {"array": "a list", "object": "a mapping", "integer": "an integer"}.get(t, f"a {t}")


def _schema_problems(doc: _Doc, abstract: bool, problems: _Problems) -> None:
    for err in _validator().iter_errors(doc.data):
        _report_schema_error(doc, err, abstract, problems)


def _report_schema_error(doc: _Doc, err: Any, abstract: bool, problems: _Problems) -> None:
    path: JsonPath = tuple(err.absolute_path)
    kind = err.validator
    inst = err.instance
    sch = err.schema if isinstance(err.schema, dict) else {}
    in_sweep = path[:2] == ("spec", "sweep")
    if kind == "additionalProperties" and isinstance(inst, dict):
        allowed = list(sch.get("properties", {}))
        for k in inst:
            if k not in allowed:
                hint = _did_you_mean(k, allowed)
                if not hint and len(allowed) <= 16:
                    hint = f" (expected one of: {', '.join(allowed)})"
                problems.add(
                    _pos(doc, (*path, k), key=True), (*path, k), f"unknown key {k!r}{hint}"
                )
        return
    if kind == "propertyNames":
        name = inst
        desc = sch.get("propertyNames", {}).get("description", "not a valid name")
        for sub in err.context or []:
            name = sub.instance
        problems.add(
            _pos(doc, (*path, str(name)), key=True),
            (*path, str(name)),
            f"key {name!r} is not valid: {desc.rstrip('.')}",
        )
        return
    if kind == "required" and isinstance(inst, dict):
        for k in err.validator_value:
            if k in inst:
                continue
            if abstract and not (path == () and k in ("apiVersion", "kind")):
                continue
            problems.add(_pos(doc, path), path, f"missing required key {k!r}")
        return
    if kind in ("oneOf", "anyOf"):
        deeper = [e for e in (err.context or []) if len(e.absolute_path) > len(path)]
        if deeper:
            from jsonschema.exceptions import best_match

            _report_schema_error(doc, best_match(deeper), abstract, problems)
            return
        # A value that is the right kind for one branch but fails its constraint: report that.
        typed = [e for e in (err.context or []) if e.validator not in ("type", "$ref", "enum")]
        if len(typed) == 1:
            _report_schema_error(doc, typed[0], abstract, problems)
            return
        options = " or ".join(_describe(s) for s in err.validator_value)
        problems.add(
            _pos(doc, path), path, f"expected {options}, got {_typename(inst)} {_short(inst)}"
        )
        return
    if kind == "type":
        want = err.validator_value
        wants = " or ".join(_article(w) for w in (want if isinstance(want, list) else [want]))
        problems.add(
            _pos(doc, path), path, f"expected {wants}, got {_typename(inst)} {_short(inst)}"
        )
        return
    if kind == "enum":
        opts = err.validator_value
        hint = _did_you_mean(inst, [str(o) for o in opts]) if isinstance(inst, str) else ""
        if path == ("apiVersion",):
            msg = f"unknown apiVersion {_short(inst)}: this hpcx reads {', '.join(API_VERSIONS)}"
        else:
            msg = f"{_short(inst)} is not one of {', '.join(repr(o) for o in opts)}{hint}"
        problems.add(_pos(doc, path), path, msg)
        return
    if kind in ("minItems", "minProperties", "minLength") and not inst:
        extra = " (an empty sweep axis yields no runs)" if in_sweep else ""
        problems.add(_pos(doc, path), path, f"must not be empty{extra}")
        return
    if kind == "pattern":
        desc = sch.get("description", f"must match {err.validator_value}")
        problems.add(_pos(doc, path), path, f"{_short(inst)} is not valid: {desc.rstrip('.')}")
        return
    if kind in ("minimum", "maximum"):
        word = "at least" if kind == "minimum" else "at most"
        problems.add(
            _pos(doc, path), path, f"must be {word} {err.validator_value}, got {_short(inst)}"
        )
        return
    if kind == "uniqueItems":
        problems.add(_pos(doc, path), path, "items must be unique")
        return
    if kind == "not":
        problems.add(_pos(doc, path), path, f"{_short(inst)} is not allowed here")
        return
    problems.add(_pos(doc, path), path, err.message)


# --------------------------------------------------------------------------------------------
# the experiment after validation


@dataclass(slots=True)
class _Experiment:
    name: str
    label: str
    doc: _Doc
    spec: dict[str, Any]
    plan: SweepPlan
    workload: str | None
    command: tuple[str, ...] | None
    env: dict[str, str]
    cwd: str | None
    params: dict[str, Any]
    placement: dict[str, Any]
    resources: dict[str, Any]
    executor: dict[str, Any]
    retries: int
    tags: tuple[str, ...]
    overrides: tuple[str, ...]
    code_hash: str | None
    extras: dict[str, Any]
    swept: tuple[str, ...]
    settings_digest: str
    extra: dict[str, Any]


def _placement_value_problem(leaf: str, v: Any) -> str | None:
    if leaf == "numa":
        if isinstance(v, int) and not isinstance(v, bool) and v >= 0:
            return None
        if v in ("none", "local-to-gpu"):
            return None
        return f"{_short(v)} is not a NUMA placement (a node number, 'none' or 'local-to-gpu')"
    ok = (
        isinstance(v, list)
        and all(isinstance(x, int) and not isinstance(x, bool) and x >= 0 for x in v)
        and len(set(v)) == len(v)
    )
    return None if ok else f"{_short(v)} is not a list of distinct GPU indices"


def _check_run_path(
    key: str, params: dict[str, Any], doc: _Doc, jp: JsonPath, problems: _Problems
) -> RunPath | None:
    path = _run_path(key)
    where = _pos(doc, jp, key=True)
    if path[0] == "placement":
        if len(path) != 2 or path[1] not in ("numa", "gpus"):
            problems.add(
                where, jp, f"{key!r}: placement paths are placement.numa and placement.gpus"
            )
            return None
        return path
    try:
        get_path(params, path[1:])
    except KeyError:
        hint = _did_you_mean(_dotted(path[1:]), _leaf_paths(params))
        problems.add(
            where, jp, f"{key!r} names no parameter: set a default under params first{hint}"
        )
        return None
    return path


def _axis_values(raw: Any, doc: _Doc, jp: JsonPath, problems: _Problems) -> list[Any] | int | None:
    """A list as it is; a range as its length (materialised later, after the run count check)."""
    if isinstance(raw, list):
        return raw
    start, stop, step = raw["start"], raw["stop"], raw.get("step", 1)
    if all(isinstance(x, int) for x in (start, stop, step)):
        n = len(range(start, stop, step))
    else:
        n = max(0, -int(-((stop - start) / step - 1e-9) // 1))
    if n == 0:
        problems.add(
            _pos(doc, jp), jp, f"empty sweep: range({start}, {stop}, {step}) has no values"
        )
        return None
    return n


def _check_placement_axis(
    path: RunPath, raw: Any, doc: _Doc, jp: JsonPath, problems: _Problems
) -> bool:
    if path[0] != "placement":
        return True
    if not isinstance(raw, list):
        if (
            path[1] == "gpus"
            or raw["start"] < 0
            or raw.get("step", 1) < 0
            or not all(isinstance(raw.get(k, 1), int) for k in ("start", "stop", "step"))
        ):
            problems.add(
                _pos(doc, jp),
                jp,
                f"{_dotted(path)} cannot be swept over this range; list the values",
            )
            return False
        return True
    ok = True
    for i, v in enumerate(raw):
        if msg := _placement_value_problem(path[1], v):
            problems.add(_pos(doc, (*jp, i)), (*jp, i), msg)
            ok = False
    return ok


def _range_values(raw: dict[str, Any]) -> list[Any]:
    start, stop, step = raw["start"], raw["stop"], raw.get("step", 1)
    if all(isinstance(x, int) for x in (start, stop, step)):
        return list(range(start, stop, step))
    n = max(0, -int(-((stop - start) / step - 1e-9) // 1))
    return [round(start + i * step, 12) for i in range(n)]


def _nul_paths(obj: Any, jp: JsonPath) -> Iterable[JsonPath]:
    """JSON paths of every string (value or key) below ``obj`` holding a NUL character."""
    if isinstance(obj, str):
        if "\x00" in obj:
            yield jp
    elif isinstance(obj, dict):
        for k, v in obj.items():
            if isinstance(k, str) and "\x00" in k:
                yield (*jp, k)
            yield from _nul_paths(v, (*jp, k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _nul_paths(v, (*jp, i))


def _check_placeholders(
    text: str, params: dict[str, Any], has_seed: bool, doc: _Doc, jp: JsonPath, problems: _Problems
) -> None:
    for m in _PLACEHOLDER.finditer(text):
        tok = m.group(0)
        if tok in ("{{", "}}"):
            continue
        name = m.group(1)
        where = _pos(doc, jp)
        if name is None:
            problems.add(
                where,
                jp,
                f"unmatched {tok!r} in {_short(text)}: write {tok * 2!r} for a literal brace",
            )
            continue
        name = name.strip()
        if name.startswith("params."):
            try:
                get_path(params, name.split(".")[1:])
            except KeyError:
                hint = _did_you_mean(name, ["params." + p for p in _leaf_paths(params)])
                problems.add(where, jp, f"placeholder {{{name}}} names no parameter{hint}")
            continue
        if name == "seed" and not has_seed:
            problems.add(
                where,
                jp,
                "placeholder {seed} but no seed is set (spec.seed, sweep.seeds or sweep.repeats)",
            )
            continue
        if name not in _RUN_FIELDS:
            options = [*_RUN_FIELDS, *("params." + p for p in _leaf_paths(params))]
            hint = _did_you_mean(name, options)
            literal = "{{" + m.group(1) + "}}"
            problems.add(
                where,
                jp,
                f"unknown placeholder {{{name}}}{hint}; for literal braces write {{{{ and }}}}: "
                f"{literal!r}",
            )


#: Sweep values checked against a workload's parameter schema, per axis (more are sampled).
_AXIS_CHECK_LIMIT = 64


def _check_workload_params(
    workload: str,
    params: dict[str, Any],
    axes_raw: list[tuple[list[RunPath], list[Any], JsonPath]],
    doc: _Doc,
    problems: _Problems,
) -> None:
    """A built-in workload's params, and each value its sweep gives them, against the
    workload's own schema and rules, so `hpcx validate` catches `depth: -1` before a run
    fails on a node. Problems point at the param (or the sweep axis that set it)."""
    from hpcx.workloads import ParamsError, validate_params

    def report(err: ParamsError, jp_default: JsonPath | None) -> None:
        for text in err.problems:
            dotted, _, message = text.partition(": ")
            if jp_default is None and dotted.startswith("params"):
                jp: JsonPath = ("spec", *dotted.split("."))
            else:
                jp = jp_default or ("spec", "params")
            problems.add(_pos(doc, jp), jp, f"{dotted}: {message or text}")

    try:
        validate_params(workload, params)
    except ParamsError as err:
        report(err, None)
        return
    for paths, raws, jp in axes_raw:
        params_paths = [p for p in paths if p[0] == "params"]
        if not params_paths:
            continue
        columns = [r if isinstance(r, list) else list(_range_values(r)) for r in raws]
        n = min(len(c) for c in columns) if columns else 0
        idx = range(n) if n <= _AXIS_CHECK_LIMIT else [0, n // 2, n - 1]
        for i in idx:
            trial = json.loads(json.dumps(params))
            for path, col in zip(paths, columns, strict=False):
                if path[0] != "params":
                    continue
                node = trial
                for k in path[1:-1]:
                    node = node.setdefault(k, {})
                node[path[-1]] = col[i]
            try:
                validate_params(workload, trial)
            except ParamsError as err:
                report(err, jp)
                return


def _prepare(
    label: str,
    doc: _Doc,
    overrides: tuple[str, ...],
    root: Path,
    problems: _Problems,
    code_cache: dict[Any, Any],
) -> _Experiment | None:
    start = len(problems.items)
    data = doc.data
    spec: dict[str, Any] = data["spec"]
    meta: dict[str, Any] = data["metadata"]
    params: dict[str, Any] = spec.get("params") or {}
    placement: dict[str, Any] = dict(spec.get("placement") or {})
    workload = spec.get("workload")
    command_raw = spec.get("command")
    if (workload is None) == (command_raw is None):
        msg = (
            "give either workload or command, not both"
            if workload is not None
            else "spec needs a workload or a command"
        )
        problems.add(_pos(doc, ("spec",)), ("spec",), msg)
    if workload is not None and workload not in BUILTIN_WORKLOADS:
        problems.add(
            _pos(doc, ("spec", "workload")),
            ("spec", "workload"),
            f"unknown workload {workload!r}{_did_you_mean(workload, BUILTIN_WORKLOADS)}; "
            f"built-in: {', '.join(BUILTIN_WORKLOADS)}",
        )
    executor = dict(spec.get("executor") or {})
    executor.setdefault("type", "local")
    wrong = _SLURM_ONLY if executor["type"] == "local" else _LOCAL_ONLY
    jp: JsonPath
    for k in wrong:
        if k in executor:
            jp = ("spec", "executor", k)
            problems.add(
                _pos(doc, jp, key=True),
                jp,
                f"{k} does not apply to executor type {executor['type']!r}",
            )

    if executor["type"] == "slurm":
        # The checks the SLURM executor makes when apply builds it, so validate refuses
        # what apply would (a --job-name in sbatch_args, a control character in setup, ...).
        from hpcx.cluster.slurm import option_problems

        for sub, message in option_problems(executor, spec.get("resources") or {}):
            jp = ("spec", *sub)
            problems.add(_pos(doc, jp), jp, message)

    # --- the sweep
    sweep = spec.get("sweep") or {}
    plan = SweepPlan()
    axes_raw: list[tuple[list[RunPath], list[Any], JsonPath]] = []  # (paths, values or raws, jp)
    seen_paths: dict[RunPath, JsonPath] = {}

    def claim(path: RunPath, jp: JsonPath) -> bool:
        for other, ojp in seen_paths.items():
            n = min(len(other), len(path))
            if other[:n] == path[:n]:
                problems.add(
                    _pos(doc, jp, key=True),
                    jp,
                    f"{_dotted(path)!r} overlaps {_dotted(other)!r} (at "
                    f"{json_path_str(ojp)}): each value can be swept once",
                )
                return False
        seen_paths[path] = jp
        return True

    for key, raw in (sweep.get("grid") or {}).items():
        jp = ("spec", "sweep", "grid", key)
        path = _check_run_path(key, params, doc, jp, problems)
        vals = _axis_values(raw, doc, jp, problems)
        if (
            path is not None
            and vals is not None
            and _check_placement_axis(path, raw, doc, jp, problems)
            and claim(path, jp)
        ):
            axes_raw.append(([path], [raw], jp))
    for gi, group in enumerate(sweep.get("zip") or []):
        gjp: JsonPath = ("spec", "sweep", "zip", gi)
        paths: list[RunPath] = []
        raws: list[Any] = []
        lengths: dict[str, int] = {}
        good = True
        for key, raw in group.items():
            jp = (*gjp, key)
            path = _check_run_path(key, params, doc, jp, problems)
            vals = _axis_values(raw, doc, jp, problems)
            if vals is None:
                good = False
                continue
            lengths[key] = vals if isinstance(vals, int) else len(vals)
            if (
                path is None
                or not _check_placement_axis(path, raw, doc, jp, problems)
                or not claim(path, jp)
            ):
                good = False
                continue
            paths.append(path)
            raws.append(raw)
        if len(set(lengths.values())) > 1:
            desc = ", ".join(f"{k}: {n}" for k, n in lengths.items())
            problems.add(_pos(doc, gjp), gjp, f"zip group lists differ in length ({desc})")
            good = False
        if good and paths:
            axes_raw.append((paths, raws, gjp))

    for ii, point in enumerate(sweep.get("include") or []):
        assignments: list[tuple[RunPath, Any]] = []
        for key, value in point.items():
            jp = ("spec", "sweep", "include", ii, key)
            path = _check_run_path(key, params, doc, jp, problems)
            if path is None:
                continue
            bad = _placement_value_problem(path[1], value) if path[0] == "placement" else None
            if bad:
                problems.add(_pos(doc, jp), jp, bad)
                continue
            assignments.append((path, value))
        plan.includes.append(assignments)

    swept_paths = {p for paths, _, _ in axes_raw for p in paths}
    for ei, entry in enumerate(sweep.get("exclude") or []):
        matchers: list[Matcher] = []
        never = False
        for key, value in entry.items():
            jp = ("spec", "sweep", "exclude", ei, key)
            path = _run_path(key)
            if isinstance(value, dict) and len(value) == 1 and next(iter(value)) in ("in", "glob"):
                op, arg = next(iter(value.items()))
                if op == "in" and not isinstance(arg, list):
                    problems.add(_pos(doc, jp), jp, "in: expects a list of values")
                    continue
                if op == "glob" and not isinstance(arg, str):
                    problems.add(_pos(doc, jp), jp, "glob: expects a pattern string")
                    continue
                m = Matcher(
                    path, op, frozenset(canonical_json(v) for v in arg) if op == "in" else arg
                )
            else:
                m = Matcher(path, "eq", canonical_json(value))
            if path in swept_paths:
                matchers.append(m)
                continue
            try:
                constant = get_path({"params": params, "placement": placement}, path)
            except KeyError:
                if path[0] == "placement" and path[1:] in (("numa",), ("gpus",)):
                    constant = None
                else:
                    hint = _did_you_mean(key, [_dotted(p) for p in swept_paths])
                    problems.add(
                        _pos(doc, jp, key=True),
                        jp,
                        f"{key!r} is neither swept nor a parameter{hint}",
                    )
                    continue
            if not m.matches(constant):
                never = True
        if not never:
            plan.excludes.append(matchers)

    seeds, repeats = sweep.get("seeds"), sweep.get("repeats")
    base_seed = spec.get("seed")
    if seeds is not None and repeats is not None:
        problems.add(
            _pos(doc, ("spec", "sweep", "repeats")),
            ("spec", "sweep", "repeats"),
            "give seeds or repeats, not both",
        )
    elif seeds is not None:
        plan.seeds = list(seeds)
    elif repeats is not None:
        first = base_seed if base_seed is not None else 0
        plan.seeds = [first + i for i in range(repeats)]
    else:
        plan.seeds = [base_seed]
    has_seed = plan.seeds != [None]

    # --- NUL: no program can receive it in an argument or the environment (execve stops at
    # it), so a value holding one is refused here rather than failing on a node later.
    for jp_nul in _nul_paths(spec, ("spec",)):
        problems.add(
            _pos(doc, jp_nul),
            jp_nul,
            "contains a NUL character (\\0), which no program can receive in its arguments "
            "or environment; remove it",
        )

    # --- placeholders
    command: tuple[str, ...] | None = None
    if command_raw is not None:
        command = tuple(a if isinstance(a, str) else _format_value(a) for a in command_raw)
        for i, arg in enumerate(command):
            _check_placeholders(arg, params, has_seed, doc, ("spec", "command", i), problems)
    env = {
        k: v if isinstance(v, str) else _format_value(v) for k, v in (spec.get("env") or {}).items()
    }
    for k, v in env.items():
        _check_placeholders(v, params, has_seed, doc, ("spec", "env", k), problems)
    cwd = spec.get("cwd")
    if cwd is not None:
        _check_placeholders(cwd, params, has_seed, doc, ("spec", "cwd"), problems)

    # --- identity extras and code
    ident = spec.get("identity") or {}
    extras: dict[str, Any] = {}
    for i, dotted in enumerate(ident.get("include") or []):
        jp = ("spec", "identity", "include", i)
        parts = dotted.split(".")
        if parts[0] in ("params", "placement", "seed", "workload", "command"):
            problems.add(_pos(doc, jp), jp, f"{dotted!r} is already part of the identity")
            continue
        if parts[0] not in _SETTINGS_ROOTS:
            problems.add(
                _pos(doc, jp),
                jp,
                f"{dotted!r}: identity.include names fields under "
                f"{', '.join(_SETTINGS_ROOTS)}{_did_you_mean(parts[0], _SETTINGS_ROOTS)}",
            )
            continue
        if parts[0] in ("resources", "executor"):
            props = _schema()["$defs"][parts[0]]["properties"]
            if len(parts) != 2 or parts[1] not in props:
                problems.add(
                    _pos(doc, jp),
                    jp,
                    f"{dotted!r} names no {parts[0]} field{_did_you_mean(parts[-1], props)}",
                )
                continue
        try:
            extras[dotted] = get_path(spec, parts)
        except KeyError:
            extras[dotted] = None
    code_hash = None
    if ident.get("code"):
        key = tuple(ident["code"])
        if key not in code_cache:
            try:
                code_cache[key] = gitinfo.tree_hash(root, list(key))
            except gitinfo.GitInfoError as exc:
                code_cache[key] = exc
        got = code_cache[key]
        if isinstance(got, Exception):
            problems.add(
                _pos(doc, ("spec", "identity", "code")),
                ("spec", "identity", "code"),
                f"code trigger: {got}",
            )
        else:
            code_hash = got

    # --- result sources: what JSON Schema cannot say (regexes compile, named groups, paths)
    from hpcx.manifest.result_sources import check_sources

    for sub, message in check_sources((spec.get("results") or {}).get("sources")):
        jp_src: JsonPath = ("spec", "results", "sources", *sub)
        problems.add(_pos(doc, jp_src), jp_src, message)

    if len(problems.items) > start:
        return None

    if workload is not None:
        _check_workload_params(workload, params, axes_raw, doc, problems)
        if len(problems.items) > start:
            return None

    # Ranges stay lazy: the run count is checked before anything large is built.
    for paths, raws, _jp in axes_raw:
        cols = [r if isinstance(r, list) else _LazyRange(r) for r in raws]
        plan.axes.append(Axis(paths, _LazyAxisValues(cols)))  # type: ignore[arg-type]

    resources = dict(spec.get("resources") or {})
    tags = tuple(meta.get("tags") or ())
    retries = int(spec.get("retries", 0))
    settings = {
        "resources": resources,
        "executor": executor,
        "retries": retries,
        "env": env,
        "cwd": cwd,
        "tags": list(tags),
    }
    if spec.get("results"):
        # Not identity (a finished run's results are re-read, never rerun, when the rules
        # change) but a setting: a changed rule is an `update`. Only when present, so the
        # digest of every run without results stays what it was.
        settings["results"] = spec["results"]
    swept = [_dotted(p) for paths, _, _ in axes_raw for p in paths]
    for assignments in plan.includes:
        swept.extend(_dotted(p) for p, _ in assignments if _dotted(p) not in swept)
    if len(plan.seeds) > 1:
        swept.append("seed")
    extra: dict[str, Any] = {}
    if spec.get("results"):
        extra["results"] = spec["results"]
    if spec.get("reports"):
        extra["reports"] = spec["reports"]
    if spec.get("trackers"):
        extra["trackers"] = spec["trackers"]
    return _Experiment(
        name=meta["name"],
        label=label,
        doc=doc,
        spec=spec,
        plan=plan,
        workload=workload,
        command=command,
        env=env,
        cwd=cwd,
        params=params,
        placement=placement,
        resources=resources,
        executor=executor,
        retries=retries,
        tags=tags,
        overrides=overrides,
        code_hash=code_hash,
        extras=extras,
        swept=tuple(swept),
        settings_digest=run_id_for(settings),
        extra=extra,
    )


def _range_values_len(raw: dict[str, Any]) -> range:
    start, stop, step = raw["start"], raw["stop"], raw.get("step", 1)
    if all(isinstance(x, int) for x in (start, stop, step)):
        return range(start, stop, step)
    return range(max(0, -int(-((stop - start) / step - 1e-9) // 1)))


class _LazyRange:
    def __init__(self, raw: dict[str, Any]) -> None:
        self.raw = raw
        self.n = len(_range_values_len(raw))

    def __len__(self) -> int:
        return self.n

    def materialise(self) -> list[Any]:
        return _range_values(self.raw)


class _LazyAxisValues:
    """Axis values whose length is known before they are built (ranges stay lazy)."""

    def __init__(self, cols: list[Any]) -> None:
        self.cols = cols
        self.rows: list[tuple[Any, ...]] | None = None

    def __len__(self) -> int:
        return len(self.cols[0])

    def build(self) -> list[tuple[Any, ...]]:
        if self.rows is None:
            cols = [c.materialise() if isinstance(c, _LazyRange) else c for c in self.cols]
            self.rows = list(zip(*cols, strict=True))
        return self.rows


# --------------------------------------------------------------------------------------------
# discovery


def _discover(paths: Sequence[Path | str], problems: _Problems) -> list[Path]:
    files: list[Path] = []
    for p in paths:
        path = Path(p)
        if path.is_dir():
            found = sorted(
                f
                for pattern in ("*.yaml", "*.yml")
                for f in path.rglob(pattern)
                if f.is_file()
                and not any(part.startswith(".") for part in f.relative_to(path).parts)
            )
            if not found:
                problems.add(
                    (str(p), None, None), (), "no manifests (*.yaml, *.yml) in this folder"
                )
            files.extend(f.resolve() for f in found)
        elif path.is_file():
            files.append(path.resolve())
        else:
            problems.add((str(p), None, None), (), "no such file or folder")
    seen: set[Path] = set()
    unique = []
    for f in files:
        if f not in seen:
            seen.add(f)
            unique.append(f)
    return unique


# --------------------------------------------------------------------------------------------
# the entry points


def _identity_head(exp: _Experiment) -> dict[str, Any]:
    head: dict[str, Any] = {"v": IDENTITY_VERSION}
    if exp.workload is not None:
        head["workload"] = exp.workload
    else:
        head["command"] = list(exp.command or ())
    if exp.extras:
        head["include"] = exp.extras
    return head


def _fast_constructor(cls: type) -> Any:
    """A positional constructor for a frozen, slotted dataclass that skips the frozen
    ``__setattr__`` dance: setting 22 fields through ``object.__setattr__`` costs ~5 us a run,
    most of the budget for a 100,000-run sweep. Falls back to the class when it has no slots.
    The result is equal (``==``) to what the class builds; a test pins that."""
    import dataclasses

    names = [f.name for f in dataclasses.fields(cls)]
    if not all(n in getattr(cls, "__slots__", ()) for n in names):
        return cls
    ns: dict[str, Any] = {"_new": object.__new__, "_cls": cls}
    body = ["def make(" + ", ".join(names) + "):", "    o = _new(_cls)"]
    for i, n in enumerate(names):
        ns[f"_s{i}"] = getattr(cls, n).__set__
        body.append(f"    _s{i}(o, {n})")
    body.append("    return o")
    exec("\n".join(body), ns)
    return ns["make"]


_new_run = _fast_constructor(RunSpec)


def _load(
    paths: Sequence[Path | str],
    overrides: Sequence[str],
    max_runs: int,
    project_root: Path | None,
) -> tuple[DesiredState | None, list[Problem]]:
    problems = _Problems()
    if isinstance(paths, str | Path):
        paths = [paths]
    if not paths:
        problems.add(("hpcx", None, None), (), "no manifest paths given")
        return None, problems.sorted()
    files = _discover(paths, problems)
    if project_root is None:
        start_at = files[0] if files else Path(paths[0])
        project_root = gitinfo.repo_root(start_at) or (
            start_at if start_at.is_dir() else start_at.parent
        )
    root = Path(project_root).resolve()
    parsed_overrides = _parse_overrides(overrides, problems)
    loader = _Loader(root, problems)
    code_cache: dict[Any, Any] = {}
    experiments: list[_Experiment] = []
    names: dict[str, tuple[str, Position]] = {}
    for f in files:
        label = loader.label(f)
        doc = loader.compose(f)
        if doc is None:
            continue
        data = doc.data
        if (
            isinstance(data, dict)
            and "apiVersion" in data
            and data["apiVersion"] not in API_VERSIONS
        ):
            jp = ("apiVersion",)
            problems.add(
                _pos(doc, jp, default=label),
                jp,
                f"unknown apiVersion {_short(data['apiVersion'])}: "
                f"this hpcx reads {', '.join(API_VERSIONS)}",
            )
            continue
        if isinstance(data, dict) and data.get("kind") == "Cluster":
            # A cluster profile (hpcx/cluster/profiles.py) may live beside the experiments: it
            # yields no
            # runs; it is checked against its own schema so `hpcx validate` covers it too.
            from hpcx.cluster.profiles import profile_problems

            problems.extend(profile_problems(data, label, doc.positions))
            continue
        abstract = isinstance(data, dict) and data.get("abstract") is True
        applied: list[str] = []
        if not abstract:
            for ov in parsed_overrides:
                outcome = _override_hits_sweep(doc, ov) or _apply_override(doc, ov)
                if outcome is None:
                    ov.applied += 1
                    applied.append(ov.text)
                elif outcome != "skip":
                    problems.add((f"--set {ov.text}", None, None), ov.path, f"{label}: {outcome}")
        before = len(problems.items)
        if not abstract:
            _interpolate(doc, problems)
            if len(problems.items) > before:
                continue
        _schema_problems(doc, abstract, problems)
        if abstract or len(problems.items) > before:
            continue
        name = doc.data["metadata"]["name"]
        where = _pos(doc, ("metadata", "name"))
        if name in names:
            other_label, other_where = names[name]
            at = f"{other_where[0]}:{other_where[1]}" if other_where[1] else other_label
            problems.add(
                where, ("metadata", "name"), f"experiment name {name!r} is already used by {at}"
            )
            continue
        names[name] = (label, where)
        exp = _prepare(label, doc, tuple(applied), root, problems, code_cache)
        if exp is not None:
            experiments.append(exp)
    for ov in parsed_overrides:
        if ov.applied == 0 and not any(p.path == f"--set {ov.text}" for p in problems.items):
            hint = _did_you_mean(_dotted(ov.path[1:]), set(ov.candidates))
            problems.add(
                (f"--set {ov.text}", None, None),
                ov.path,
                f"applies to no experiment: {_dotted(ov.path[1:])} does "
                f"not exist{hint} (prefix + to add a new parameter)",
            )
    total = 0
    for exp in experiments:
        n = exp.plan.upper_count()
        total += n
    if total > max_runs:
        for exp in experiments:
            n = exp.plan.upper_count()
            sjp: JsonPath = ("spec", "sweep")
            problems.add(
                _pos(exp.doc, sjp),
                sjp,
                f"sweep asks for {n:,} runs; all manifests together ask for "
                f"{total:,}, over the limit of {max_runs:,} (--max-runs)",
            )
    if problems.items:
        return None, problems.sorted()

    runs: list[RunSpec] = []
    infos: list[ExperimentInfo] = []
    by_id: dict[str, int] = {}
    for exp in experiments:
        for axis in exp.plan.axes:
            if isinstance(axis.values, _LazyAxisValues):
                axis.values = axis.values.build()
        base = {"params": exp.params, "placement": exp.placement}
        index = 0
        count = 0
        head = _identity_head(exp)
        name, command, env, cwd, resources, executor = (
            exp.name,
            exp.command,
            exp.env,
            exp.cwd,
            exp.resources,
            exp.executor,
        )
        retries, tags, ovs, label, sd, ch, xtra = (
            exp.retries,
            exp.tags,
            exp.overrides,
            exp.label,
            exp.settings_digest,
            exp.code_hash,
            exp.extra,
        )
        workload = exp.workload
        gc_was_enabled = gc.isenabled()
        gc.disable()  # 100k small dicts trigger needless collections; nothing here is cyclic
        try:
            first_new = len(runs)
            derive = exp.doc.dynamic.apply if exp.doc.dynamic else None
            for rid, bid, ident, params, placement, seed, rep in expand(
                exp.plan, base, head, ch, derive
            ):
                j = by_id.get(rid)
                if j is not None:
                    if j < first_new:  # asked for by an earlier experiment too: run it once
                        also = runs[j].extra.setdefault("also_in", [])
                        if name not in also:
                            also.append(name)
                    continue
                by_id[rid] = len(runs)
                runs.append(
                    _new_run(
                        name,
                        rid,
                        bid,
                        index,
                        ident,
                        params,
                        workload,
                        command,
                        env,
                        cwd,
                        placement,
                        seed,
                        rep,
                        resources,
                        executor,
                        retries,
                        tags,
                        ovs,
                        label,
                        sd,
                        ch,
                        dict(xtra) if xtra else {},
                    )
                )
                index += 1
            shared = sum(1 for r in runs[:first_new] if name in r.extra.get("also_in", ()))
            count = index + shared
        finally:
            if gc_was_enabled:
                gc.enable()
        if count == 0:
            problems.add(
                _pos(exp.doc, ("spec", "sweep")),
                ("spec", "sweep"),
                "the sweep excludes every point: no runs",
            )
        meta = exp.doc.data["metadata"]
        infos.append(
            ExperimentInfo(
                name=exp.name,
                path=exp.label,
                description=meta.get("description", ""),
                owner=meta.get("owner"),
                tags=exp.tags,
                run_count=count,
                swept=exp.swept,
                document=exp.doc.data,
            )
        )
    if problems.items:
        return None, problems.sorted()
    state = DesiredState(
        runs=runs,
        experiments=infos,
        digests=dict(sorted(loader.digests.items())),
        overrides=tuple(overrides),
    )
    return state, []


def load_desired(
    paths: Sequence[Path | str],
    *,
    overrides: Sequence[str] = (),
    max_runs: int = DEFAULT_MAX_RUNS,
    project_root: Path | None = None,
) -> DesiredState:
    """Every run the manifests under ``paths`` ask for.

    Raises ``ManifestError`` listing every problem."""
    state, problems = _load(paths, overrides, max_runs, project_root)
    if state is None:
        n = len(problems)
        only_set = all(str(p).startswith("--set ") for p in problems)
        raise ManifestError(
            f"{n} problem{'s' if n != 1 else ''} "
            + ("with --set" if only_set else "in the manifests"),
            problems=[str(p) for p in problems],
            # `hpcx validate` of the files would not show what a --set did.
            hint="fix the --set above (validate takes --set too)"
            if only_set
            else "run `hpcx validate` on the files for the full list",
        )
    return state


def validate_paths(
    paths: Sequence[Path | str],
    *,
    overrides: Sequence[str] = (),
    max_runs: int = DEFAULT_MAX_RUNS,
    project_root: Path | None = None,
) -> list[Problem]:
    """Every problem in the manifests under ``paths`` (empty when they are valid). Never raises
    for bad input."""
    return _load(paths, overrides, max_runs, project_root)[1]


def validate_paths_with_state(
    paths: Sequence[Path | str],
    *,
    overrides: Sequence[str] = (),
    max_runs: int = DEFAULT_MAX_RUNS,
    project_root: Path | None = None,
) -> tuple[DesiredState | None, list[Problem]]:
    """Both: the desired state (``None`` when invalid) and every problem."""
    return _load(paths, overrides, max_runs, project_root)


# --------------------------------------------------------------------------------------------
# per-run rendering (for executors)


def run_value(run: RunSpec, dotted: str) -> Any:
    """The value of a swept path (``params.model.depth``, ``placement.numa``, ``seed``) in a run."""
    if dotted == "seed":
        return run.seed
    path = _run_path(dotted)
    try:
        return get_path({"params": run.params, "placement": run.placement}, path)
    except KeyError:
        return None


def _render(text: str, run: RunSpec, run_dir: str) -> str:
    def sub(m: re.Match[str]) -> str:
        tok = m.group(0)
        if tok == "{{":
            return "{"
        if tok == "}}":
            return "}"
        name = (m.group(1) or "").strip()
        if name.startswith("params."):
            return _format_value(get_path(run.params, name.split(".")[1:]))
        values = {
            "run_id": run.run_id,
            "run_dir": run_dir,
            "seed": run.seed,
            "repeat": run.repeat,
            "experiment": run.experiment,
        }
        if name in values:
            return _format_value(values[name])
        raise ManifestError(
            f"{run.source}: unknown placeholder {tok}",
            hint="write {{ and }} for a literal brace",
        )

    return _PLACEHOLDER.sub(sub, text)


def render_command(run: RunSpec, run_dir: str) -> list[str]:
    """The run's argv with every placeholder replaced; each argument stays one argument."""
    if run.command is None:
        raise ManifestError(f"{run.experiment}: run {run.run_id} is a workload, not a command")
    return [_render(a, run, run_dir) for a in run.command]


def render_env(run: RunSpec, run_dir: str) -> dict[str, str]:
    """The run's extra environment with placeholders replaced."""
    return {k: _render(v, run, run_dir) for k, v in run.env.items()}


def render_cwd(run: RunSpec, run_dir: str) -> str | None:
    return None if run.cwd is None else _render(run.cwd, run, run_dir)


def override_paths(doc: dict[str, Any]) -> list[str]:  # pragma: no cover - convenience
    """Dotted paths that ``--set`` can name in a composed document's params."""
    return ["params." + p for p in _leaf_paths(doc.get("spec", {}).get("params", {}))]


_ = normalize  # re-exported for tests and the planner
