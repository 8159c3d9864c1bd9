"""The manifest JSON Schema: where it is, and its errors said as a person would.

The schema ships inside the package (``hpcx/schemas/``); :func:`hpcx.util.schemas.schema_file`
is the one lookup, shared with the cluster profile schema.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

from hpcx.manifest.document import Doc, Problems, did_you_mean, pos, short, typename
from hpcx.util.schemas import schema_file
from hpcx.util.yamlload import JsonPath

__all__ = [
    "API_VERSIONS",
    "SCHEMA_FILE",
    "schema_document",
    "schema_path",
    "schema_problems",
    "schema_text",
    "validator",
]

#: The manifest versions this hpcx reads.
API_VERSIONS = ("hpcx/v1",)
SCHEMA_FILE = "manifest.v1.schema.json"


def schema_path() -> Path:
    """The manifest JSON Schema file hpcx validates with (inside the package)."""
    return schema_file(SCHEMA_FILE)


def schema_text() -> str:
    return schema_path().read_text(encoding="utf-8")


@lru_cache(maxsize=1)
def schema_document() -> dict[str, Any]:
    result: dict[str, Any] = json.loads(_schema_bytes())
    return result


@lru_cache(maxsize=1)
def validator() -> Any:
    from jsonschema import Draft202012Validator

    return Draft202012Validator(schema_document())


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


@lru_cache(maxsize=1)
def _schema_bytes() -> bytes:
    return schema_path().read_bytes()


def schema_problems(doc: Doc, abstract: bool, problems: Problems) -> None:
    """Every schema error of ``doc`` as a problem. A document this schema already passed (the
    same data, :mod:`hpcx.util.validated`) is not checked again: jsonschema is then not
    even imported."""
    from hpcx.util import validated

    key = validated.document_key(_schema_bytes(), doc.data)
    if key is not None and validated.is_known(key):
        return
    clean = True
    for err in validator().iter_errors(doc.data):
        clean = False
        _report_schema_error(doc, err, abstract, problems)
    if clean and key is not None:
        validated.remember(key)


def _report_schema_error(doc: Doc, err: Any, abstract: bool, problems: Problems) -> None:
    path: JsonPath = tuple(err.absolute_path)
    kind = err.validator
    inst = err.instance
    sch = err.schema if isinstance(err.schema, dict) else {}
    in_sweep = path[:2] == ("spec", "sweep")
    if kind == "additionalProperties" and isinstance(inst, dict):
        allowed = list(sch.get("properties", {}))
        for k in inst:
            if k not in allowed:
                hint = did_you_mean(k, allowed)
                if not hint and len(allowed) <= 16:
                    hint = f" (expected one of: {', '.join(allowed)})"
                problems.add(pos(doc, (*path, k), key=True), (*path, k), f"unknown key {k!r}{hint}")
        return
    if kind == "propertyNames":
        name = inst
        desc = sch.get("propertyNames", {}).get("description", "not a valid name")
        for sub in err.context or []:
            name = sub.instance
        problems.add(
            pos(doc, (*path, str(name)), key=True),
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
            problems.add(pos(doc, path), path, f"missing required key {k!r}")
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
            pos(doc, path), path, f"expected {options}, got {typename(inst)} {short(inst)}"
        )
        return
    if kind == "type":
        want = err.validator_value
        wants = " or ".join(_article(w) for w in (want if isinstance(want, list) else [want]))
        problems.add(pos(doc, path), path, f"expected {wants}, got {typename(inst)} {short(inst)}")
        return
    if kind == "enum":
        opts = err.validator_value
        hint = did_you_mean(inst, [str(o) for o in opts]) if isinstance(inst, str) else ""
        if path == ("apiVersion",):
            msg = f"unknown apiVersion {short(inst)}: this hpcx reads {', '.join(API_VERSIONS)}"
        else:
            msg = f"{short(inst)} is not one of {', '.join(repr(o) for o in opts)}{hint}"
        problems.add(pos(doc, path), path, msg)
        return
    if kind in ("minItems", "minProperties", "minLength") and not inst:
        extra = " (an empty sweep axis yields no runs)" if in_sweep else ""
        problems.add(pos(doc, path), path, f"must not be empty{extra}")
        return
    if kind == "pattern":
        desc = sch.get("description", f"must match {err.validator_value}")
        problems.add(pos(doc, path), path, f"{short(inst)} is not valid: {desc.rstrip('.')}")
        return
    if kind in ("minimum", "maximum"):
        word = "at least" if kind == "minimum" else "at most"
        problems.add(
            pos(doc, path), path, f"must be {word} {err.validator_value}, got {short(inst)}"
        )
        return
    if kind == "uniqueItems":
        problems.add(pos(doc, path), path, "items must be unique")
        return
    if kind == "not":
        problems.add(pos(doc, path), path, f"{short(inst)} is not allowed here")
        return
    problems.add(pos(doc, path), path, err.message)
