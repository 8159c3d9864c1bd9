r"""Manifests in, runs out: YAML with positions, composition (``extends``, ``defaults``), ``--set``
overrides, the JSON Schema check, sweep expansion, placeholders and each run's identity.

In: ``manifests/*.yaml``. Out: a :class:`~hpcx.manifest.spec.DesiredState` whose
:class:`~hpcx.manifest.spec.RunSpec`\ s each carry a content-hash ``run_id``. Pure apart from
reading files and asking git for code hashes; knows nothing of the state or of schedulers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from hpcx.util.lazy import lazy_exports

if TYPE_CHECKING:
    from hpcx.manifest.axes import run_value
    from hpcx.manifest.loader import load_desired, validate_paths, validate_paths_with_state
    from hpcx.manifest.placeholders import render_command, render_cwd, render_env
    from hpcx.manifest.schema import schema_path
    from hpcx.manifest.spec import DesiredState, ExperimentInfo, RunSpec, executor_kind

__all__ = [
    "DesiredState",
    "ExperimentInfo",
    "RunSpec",
    "executor_kind",
    "load_desired",
    "render_command",
    "render_cwd",
    "render_env",
    "run_value",
    "schema_path",
    "validate_paths",
    "validate_paths_with_state",
]

# Each name is imported from its module on first use, so importing one module of this
# stage does not load the others.
__getattr__ = lazy_exports(__name__, {
    "DesiredState": "spec",
    "ExperimentInfo": "spec",
    "RunSpec": "spec",
    "executor_kind": "spec",
    "load_desired": "loader",
    "render_command": "placeholders",
    "render_cwd": "placeholders",
    "render_env": "placeholders",
    "run_value": "axes",
    "schema_path": "schema",
    "validate_paths": "loader",
    "validate_paths_with_state": "loader",
})
