"""Placeholders in a command, its environment and its working directory: ``{params.x}``,
``{run_id}``, ``{run_dir}``, ``{seed}``, ``{repeat}``, ``{experiment}``; ``{{`` and ``}}`` are
literal braces.

Checked at load (every name must exist), rendered per run by the executors. A value is its
text when it is a string, else compact JSON; each command argument stays one argument.
"""

from __future__ import annotations

import re
from typing import Any

from hpcx.errors import ManifestError
from hpcx.manifest.document import Doc, Problems, did_you_mean, format_value, leaf_paths, pos, short
from hpcx.manifest.spec import RunSpec
from hpcx.manifest.sweep import get_path
from hpcx.util.yamlload import JsonPath

__all__ = ["check_placeholders", "render_command", "render_cwd", "render_env"]

PLACEHOLDER = re.compile(r"\{\{|\}\}|\{([^{}]*)\}|[{}]")
_RUN_FIELDS = ("run_id", "run_dir", "seed", "repeat", "experiment")


def check_placeholders(
    text: str, params: dict[str, Any], has_seed: bool, doc: Doc, jp: JsonPath, problems: Problems
) -> None:
    """Every placeholder in ``text`` names a parameter or a run field, and braces match."""
    for m in PLACEHOLDER.finditer(text):
        tok = m.group(0)
        if tok in ("{{", "}}"):
            continue
        name = m.group(1)
        where = pos(doc, jp)
        if name is None:
            problems.add(
                where,
                jp,
                f"unmatched {tok!r} in {short(text)}: write {tok * 2!r} for a literal brace",
            )
            continue
        name = name.strip()
        if name.startswith("params."):
            try:
                get_path(params, name.split(".")[1:])
            except KeyError:
                hint = did_you_mean(name, ["params." + p for p in leaf_paths(params)])
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
            options = [*_RUN_FIELDS, *("params." + p for p in leaf_paths(params))]
            hint = did_you_mean(name, options)
            literal = "{{" + m.group(1) + "}}"
            problems.add(
                where,
                jp,
                f"unknown placeholder {{{name}}}{hint}; for literal braces write {{{{ and }}}}: "
                f"{literal!r}",
            )


def _render(text: str, run: RunSpec, run_dir: str) -> str:
    def sub(m: re.Match[str]) -> str:
        tok = m.group(0)
        if tok == "{{":
            return "{"
        if tok == "}}":
            return "}"
        name = (m.group(1) or "").strip()
        if name.startswith("params."):
            return format_value(get_path(run.params, name.split(".")[1:]))
        values = {
            "run_id": run.run_id,
            "run_dir": run_dir,
            "seed": run.seed,
            "repeat": run.repeat,
            "experiment": run.experiment,
        }
        if name in values:
            return format_value(values[name])
        raise ManifestError(
            f"{run.source}: unknown placeholder {tok}",
            hint="write {{ and }} for a literal brace",
        )

    return PLACEHOLDER.sub(sub, text)


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
