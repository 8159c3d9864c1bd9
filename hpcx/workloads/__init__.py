"""Built-in workloads: a registry the manifest validator reads, and a runner the job wrapper calls.

A workload is a Python function that a run executes on the node, named ``module:function``.
Its parameters are described by a JSON Schema (``params_schema``) plus a semantic check for
rules a schema cannot say (``dim`` divisible by ``heads``); :func:`validate_params` applies both
and fills in defaults. Nothing here imports torch: the manifest validator and ``hpcx plan`` use
the registry on login nodes that have no torch.

The job wrapper runs ``python -m hpcx.workloads run NAME <run_dir>/spec.json``; see
``hpcx/workloads/__main__.py`` and ``docs/workloads.md``.
"""

from __future__ import annotations

import copy
import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from hpcx.errors import ParamsError, WorkloadError
from hpcx.util.memo import ByIdentity
from hpcx.util.validated import schema_bytes

if TYPE_CHECKING:
    from hpcx.workloads.context import RunContext

__all__ = [
    "WORKLOADS",
    "ParamsError",
    "RunContext",
    "WorkloadError",
    "WorkloadInfo",
    "get_workload",
    "known_workloads",
    "validate_params",
    "workload_params_schema",
]


@dataclass(frozen=True, slots=True)
class WorkloadInfo:
    """One registered workload.

    ``entry`` and ``check`` are ``module:function`` names, imported only when used: ``entry``
    takes a :class:`RunContext` and returns its summary metrics; ``check`` takes the params
    (defaults applied, schema-valid) and returns problems a schema cannot express.
    """

    name: str
    entry: str
    description: str
    params_schema: dict[str, Any]
    defaults: dict[str, Any]
    check: str | None = None
    #: A measurement: by default its runs hold every core (resources.cpus) and run alone
    #: (resources.exclusive) on the local executor, so no other run hpcx starts disturbs it.
    benchmark: bool = False
    #: The metric names its runs log (shell patterns), besides the wrapper's ``hpcx.*``: a
    #: search whose objective is none of them is warned about at validation.
    reports: tuple[str, ...] = ()

    def logs(self, metric: str) -> bool:
        """Whether a run of this workload logs ``metric``."""
        import fnmatch

        return any(fnmatch.fnmatchcase(metric, p) for p in (*self.reports, "hpcx.*"))


def __getattr__(name: str) -> Any:
    # RunContext is what a workload runs with: the validator and the planner, which read the
    # registry on every start, do not load it.
    if name == "RunContext":
        from hpcx.workloads.context import RunContext

        return RunContext
    raise AttributeError(f"module 'hpcx.workloads' has no attribute {name!r}")


def _registry() -> dict[str, WorkloadInfo]:
    from hpcx.workloads import noop, vit  # torch-free at import time

    return {
        noop.NAME: WorkloadInfo(
            name=noop.NAME,
            entry="hpcx.workloads.noop:run",
            description=noop.DESCRIPTION,
            params_schema=noop.PARAMS_SCHEMA,
            defaults=noop.DEFAULTS,
            reports=noop.REPORTS,
        ),
        vit.NAME: WorkloadInfo(
            name=vit.NAME,
            entry="hpcx.workloads.vit:run",
            description=vit.DESCRIPTION,
            params_schema=vit.PARAMS_SCHEMA,
            defaults=vit.DEFAULTS,
            check="hpcx.workloads.vit:check_params",
            benchmark=True,
            reports=vit.REPORTS,
        ),
    }


#: Every built-in workload by name.
WORKLOADS: dict[str, WorkloadInfo] = _registry()


def known_workloads() -> list[str]:
    """The built-in workload names, sorted."""
    return sorted(WORKLOADS)


def get_workload(name: str) -> WorkloadInfo:
    """The workload called ``name``, or :class:`WorkloadError` listing the known ones."""
    try:
        return WORKLOADS[name]
    except KeyError:
        raise WorkloadError(
            f"unknown workload {name!r} (known: {', '.join(known_workloads())})"
        ) from None


def workload_params_schema(name: str) -> dict[str, Any]:
    """A copy of the JSON Schema (draft 2020-12) of workload ``name``'s ``params``."""
    return copy.deepcopy(get_workload(name).params_schema)


def load_callable(ref: str) -> Callable[..., Any]:
    """Import ``module:function``."""
    module, _, attr = ref.partition(":")
    fn = getattr(importlib.import_module(module), attr)
    if not callable(fn):
        raise WorkloadError(f"{ref} is not callable")
    return fn  # type: ignore[no-any-return]


def merge_defaults(defaults: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
    """``params`` over ``defaults``, recursively for nested objects; inputs are not changed."""
    out = copy.deepcopy(defaults)
    for k, v in params.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = merge_defaults(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


#: A workload's params schema as bytes, made once per schema object (each axis value of a
#: sweep asks again).
_params_schema_bytes: ByIdentity[bytes] = ByIdentity(schema_bytes)


def validate_params(name: str, params: dict[str, Any] | None) -> dict[str, Any]:
    """Check ``params`` against workload ``name``; return them with defaults filled in.

    Raises :class:`ParamsError` whose ``problems`` name every bad parameter by dotted path and
    say what is allowed. The schema is checked on the params as given (so an unknown key is
    caught even where a default exists), then the workload's semantic check on the merged ones.
    """
    from hpcx.util import validated

    info = get_workload(name)
    given = params or {}
    if not isinstance(given, dict):
        raise ParamsError(
            f"{name}: params must be a mapping", [f"params: must be a mapping, got {given!r}"]
        )
    # Params the schema already passed skip jsonschema (hpcx.util.validated); with the cache
    # off (the library, a job on a node) the schema is not even serialised.
    key = (
        validated.document_key(_params_schema_bytes(info.params_schema), given)
        if validated.cache_file() is not None
        else None
    )
    problems: list[str] = []
    if key is None or not validated.is_known(key):
        import jsonschema

        validator = jsonschema.Draft202012Validator(info.params_schema)
        problems = sorted(
            {_describe(e) for e in validator.iter_errors(given)},
        )
        if not problems and key is not None:
            validated.remember(key)
    if not problems:
        merged = merge_defaults(info.defaults, given)
        if info.check is not None:
            problems = list(load_callable(info.check)(merged))
        if not problems:
            return merged
    raise ParamsError(f"{name}: invalid params: " + "; ".join(problems), problems)


def _dotted(parts: Any) -> str:
    return ".".join(["params", *(str(p) for p in parts)])


def _describe(err: Any) -> str:
    """One line for a jsonschema error: dotted path, what is wrong, what is allowed."""
    path = list(err.absolute_path)
    schema = err.schema if isinstance(err.schema, dict) else {}
    kind = err.validator
    if kind == "additionalProperties":
        allowed = sorted(schema.get("properties", {}))
        extra = sorted(set(err.instance) - set(allowed))
        return "; ".join(
            f"{_dotted([*path, k])}: unknown parameter (allowed here: {', '.join(allowed)})"
            for k in extra
        )
    where = _dotted(path)
    got = f"got {err.instance!r}"
    if kind == "type":
        return f"{where}: must be of type {err.validator_value}, {got}"
    if kind == "minimum":
        return f"{where}: must be >= {err.validator_value}, {got}"
    if kind == "maximum":
        return f"{where}: must be <= {err.validator_value}, {got}"
    if kind == "enum":
        allowed_s = ", ".join(json_repr(v) for v in err.validator_value)
        return f"{where}: must be one of {allowed_s}, {got}"
    return f"{where}: {err.message}"


def json_repr(v: Any) -> str:
    import json

    return json.dumps(v)
