"""Manifests in, runs out: YAML with positions, composition (``extends``, ``defaults``), ``--set``
overrides, the JSON Schema check, sweep expansion, placeholders and each run's identity.

In: ``manifests/*.yaml``. Out: a :class:`~hpcx.manifest.spec.DesiredState` whose
:class:`~hpcx.manifest.spec.RunSpec`\\ s each carry a content-hash ``run_id``. Pure apart from
reading files and asking git for code hashes; knows nothing of the state or of schedulers.
"""

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
