"""``${...}`` interpolation in manifest values, resolved when the manifests are loaded.

- ``${env:NAME}`` / ``${env:NAME,default}``: the environment of the process that plans;
- ``${params.model.dim}``, ``${resources.cpus}``, ...: another field of the same experiment's
  ``spec`` (a leading ``spec.`` may be written);
- ``$${`` is a literal ``${``.

A value that is one reference and nothing else takes the referenced value with its type
(``${resources.cpus}`` stays an integer); inside a longer string a value is inserted as a
placeholder is (strings as they are, others as compact JSON). The resolved value is what the
run records and what its identity hashes, so ``rerun`` and the run id never depend on the
environment of a later day. A reference to a swept parameter is resolved per run (see
:class:`Dynamic`); one outside ``params`` is refused (the ``{params.x}`` placeholder does that
for commands). ``{placeholder}`` command placeholders are a different, run-time mechanism and
are left alone.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from hpcx.errors import InterpolationError
from hpcx.manifest.axes import paths_swept
from hpcx.manifest.document import Doc, Problems, pos
from hpcx.util.yamlload import JsonPath

JPath = tuple[str | int, ...]

_TOKEN = re.compile(r"\$\$\{|\$\{([^{}]*)\}")
_ENV = re.compile(r"^env:([A-Za-z_][A-Za-z0-9_]*)(?:,(.*))?$", re.S)


def escape(text: str) -> str:
    """``text`` written so that interpolation gives it back unchanged (each ``${`` as
    ``$${``): for values a program generates into a manifest."""
    return text.replace("${", "$${")


def _format(v: Any) -> str:
    return v if isinstance(v, str) else json.dumps(v, separators=(",", ":"), ensure_ascii=False)


def _typed(text: Any) -> Any:
    """An environment value standing alone: a number or boolean as one (``cpus: ${env:N}``
    must be an integer), anything else the string it is."""
    if not isinstance(text, str):
        return text
    from hpcx.util.yamlload import parse_value

    try:
        value = parse_value(text, "env")
    except ValueError:
        return text
    return value if isinstance(value, bool | int | float) else text


def _strings(obj: Any, jp: JPath) -> Iterator[tuple[JPath, str]]:
    if isinstance(obj, str):
        if "${" in obj:
            yield jp, obj
    elif isinstance(obj, dict):
        for k, v in obj.items():
            yield from _strings(v, (*jp, k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _strings(v, (*jp, i))


def _get(root: Any, path: tuple[str, ...]) -> Any:
    cur = root
    for key in path:
        if isinstance(cur, dict) and key in cur:
            cur = cur[key]
        elif isinstance(cur, list) and key.isdigit() and int(key) < len(cur):
            cur = cur[int(key)]
        else:
            raise KeyError(".".join(path))
    return cur


def _leaves(obj: Any, prefix: str = "") -> Iterator[str]:
    if isinstance(obj, dict):
        for k, v in obj.items():
            p = f"{prefix}.{k}" if prefix else str(k)
            yield p
            yield from _leaves(v, p)


def _set(root: Any, jp: JPath, value: Any) -> Any:
    """A copy of ``root`` with ``jp`` set, copying only the containers along the path."""
    if not jp:
        return value
    head, rest = jp[0], jp[1:]
    if isinstance(root, dict):
        out: Any = dict(root)
    else:
        out = list(root)
    out[head] = _set(root[head], rest, value)
    return out


@dataclass(slots=True)
class Dynamic:
    """Params whose references name a swept path: resolved per run by :meth:`apply`."""

    templates: list[tuple[tuple[str, ...], str]] = field(
        default_factory=list
    )  # (params path, text)
    spec: dict[str, Any] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.templates)

    def apply(self, params: dict[str, Any], placement: dict[str, Any], seed: Any) -> dict[str, Any]:
        run_spec = {**self.spec, "params": params, "placement": placement, "seed": seed}
        own: dict[JPath, str] = {("params", *p): t for p, t in self.templates}
        r = _Resolver(run_spec, {}, frozenset(), own)
        out = params
        for path, text in self.templates:
            out = _set(out, path, r.resolve_text(("params", *path), text, ()))
        return out


class _Resolver:
    def __init__(
        self,
        spec: dict[str, Any],
        env: Mapping[str, str],
        swept: frozenset[str],
        pending: Mapping[JPath, str] | None = None,
    ) -> None:
        self.spec = spec
        self.env = env
        self.swept = swept
        self.done: dict[JPath, Any] = {}
        self.dynamic: set[JPath] = set()
        # Strings still holding references, by their path under spec.
        self.pending: dict[JPath, str] = dict(pending or {})

    def _is_swept(self, dotted: str) -> bool:
        return any(
            dotted == s or dotted.startswith(s + ".") or s.startswith(dotted + ".")
            for s in self.swept
        )

    def value_at(self, path: tuple[str, ...], stack: tuple[JPath, ...], at: JPath) -> Any:
        """The resolved value at ``path`` (under spec), following references inside it."""
        for jp, text in self.pending.items():
            n = len(jp)
            if tuple(str(x) for x in jp) == path[:n]:
                if jp in stack:
                    chain = " -> ".join(
                        "${" + ".".join(str(x) for x in p) + "}" for p in (*stack, jp)
                    )
                    raise InterpolationError(
                        stack[0], f"reference cycle: {chain}; make one of them a plain value", stack
                    )
                if jp not in self.done:
                    self.done[jp] = self.resolve_text(jp, text, stack)
                if jp in self.dynamic and at[:1] == ("params",):
                    self.dynamic.add(at)
                base = self.done[jp]
                return _get(base, path[n:]) if len(path) > n else base
        return _get(self.spec, path)

    def resolve_text(self, jp: JPath, text: str, stack: tuple[JPath, ...]) -> Any:
        stack = (*stack, jp)
        parts: list[Any] = []
        whole = None
        matches = list(_TOKEN.finditer(text))
        pos = 0
        for m in matches:
            parts.append(text[pos : m.start()])
            pos = m.end()
            if m.group(0) == "$${":
                parts.append("${")
                continue
            value = self._one(jp, m.group(1).strip(), stack)
            if len(matches) == 1 and m.start() == 0 and m.end() == len(text):
                whole = (_typed(value) if m.group(1).strip().startswith("env:") else value,)
            parts.append(_format(value))
        if whole is not None:
            return whole[0]
        parts.append(text[pos:])
        return "".join(parts)

    def _one(self, jp: JPath, ref: str, stack: tuple[JPath, ...]) -> Any:
        if ref.startswith("env:"):
            m = _ENV.match(ref)
            if not m:
                raise InterpolationError(
                    jp,
                    f"${{{ref}}} is not a valid reference: write ${{env:NAME}} or "
                    "${env:NAME,default}",
                )
            name, default = m.group(1), m.group(2)
            if name in self.env:
                return self.env[name]
            if default is not None:
                return default
            raise InterpolationError(
                jp,
                f"environment variable {name} is not set (${{env:{name}}}); set it, or give a "
                f"default: ${{env:{name},value}}",
            )
        if not ref:
            raise InterpolationError(jp, "empty reference ${}; write $${ for a literal ${")
        dotted = ref.removeprefix("spec.")
        path = tuple(dotted.split("."))
        if self._is_swept(dotted):
            if jp[:1] != ("params",):
                raise InterpolationError(
                    jp,
                    f"${{{ref}}} names a swept value, which differs from run to run; only params "
                    f"may refer to it (in a command, env or cwd use the placeholder {{{dotted}}})",
                )
            self.dynamic.add(jp)
        try:
            return self.value_at(path, stack, jp)
        except KeyError:
            known = [p for p in _leaves(self.spec) if not p.startswith("sweep")]
            import difflib  # a suggestion for a misspelling only

            close = difflib.get_close_matches(dotted, known, n=1, cutoff=0.6)
            hint = f" (did you mean ${{{close[0]}}}?)" if close else ""
            raise InterpolationError(
                jp, f"${{{ref}}} names no field of this experiment's spec{hint}"
            ) from None


def resolve_spec(
    spec: dict[str, Any],
    env: Mapping[str, str],
    swept: frozenset[str],
    on_error: Callable[[JPath, str], None],
) -> tuple[dict[str, Any], Dynamic]:
    """``spec`` with every ``${...}`` resolved (copy on write) and the per-run remainder.

    ``swept`` holds the dotted paths a sweep sets (``params.model.dim``, ``seed``); each
    problem goes to ``on_error(path under spec, message)``."""
    found = list(_strings(spec, ()))
    if not found:
        return spec, Dynamic()
    r = _Resolver(spec, env, swept, dict(found))
    out = spec
    dynamic = Dynamic()
    failed: set[JPath] = set()
    for jp, text in found:
        if jp in failed:
            continue
        try:
            if jp not in r.done:
                r.done[jp] = r.resolve_text(jp, text, ())
        except InterpolationError as exc:
            on_error(exc.jpath, exc.message)
            failed.update(exc.involved)
            continue
        out = _set(out, jp, r.done[jp])
    for jp, text in found:
        if jp in r.dynamic and jp[:1] == ("params",) and all(isinstance(k, str) for k in jp):
            dynamic.templates.append((tuple(str(k) for k in jp[1:]), text))
    if dynamic:
        dynamic.spec = {k: v for k, v in out.items() if k not in ("params", "placement")}
    return out, dynamic


def resolve_document(doc: Doc, problems: Problems) -> None:
    """Resolve ``${env:...}`` and ``${field}`` references in the document's spec, once, at
    load (plan) time: runs record and hash the resolved values. Problems go to ``problems``
    with the position of the value."""
    import os

    data = doc.data
    if not isinstance(data, dict) or not isinstance(data.get("spec"), dict):
        return

    def report(jp: tuple[str | int, ...], message: str) -> None:
        full: JsonPath = ("spec", *jp)
        problems.add(pos(doc, full), full, message)

    spec, dynamic = resolve_spec(data["spec"], os.environ, paths_swept(data["spec"]), report)
    if spec is not data["spec"]:
        doc.data = {**data, "spec": spec}
    doc.dynamic = dynamic if dynamic else None
