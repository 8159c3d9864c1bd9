"""The ``noop`` workload: takes any params, runs nothing, reports them.

For checking a pipeline end to end (manifests, executors, harvest, reports) without a model,
and for measuring hpcx's own per-run overhead. Numeric params are reported as metrics named
``param.<dotted path>``; ``sleep_s`` (optional) waits that long first.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hpcx.workloads.context import RunContext

NAME = "noop"
DESCRIPTION = "Runs nothing; reports its numeric params as metrics (pipeline checks, overhead)."
PARAMS_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "description": "Any params. `sleep_s` (number >= 0) waits that many seconds.",
    "properties": {"sleep_s": {"type": "number", "minimum": 0}},
    "additionalProperties": True,
}
DEFAULTS: dict[str, Any] = {}
#: What its runs log: each numeric param as ``param.<name>``.
REPORTS = ("param.*",)


def _numbers(obj: Any, prefix: str = "") -> dict[str, float]:
    out: dict[str, float] = {}
    if isinstance(obj, dict):
        for k, v in obj.items():
            out.update(_numbers(v, f"{prefix}{k}."))
    elif isinstance(obj, int | float) and not isinstance(obj, bool):
        out[prefix.rstrip(".")] = float(obj)
    return out


def run(ctx: RunContext) -> dict[str, float]:
    t0 = time.perf_counter()
    sleep_s = float(ctx.params.get("sleep_s", 0) or 0)
    if sleep_s > 0:
        time.sleep(sleep_s)
    summary = {f"param.{k}": v for k, v in _numbers(ctx.params).items()}
    summary["elapsed_s"] = time.perf_counter() - t0
    return summary
