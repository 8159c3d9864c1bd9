"""Placeholders in a command, its environment and its working directory: ``{params.x}``,
``{run_id}``, ``{run_dir}``, ``{seed}``, ``{repeat}``, ``{experiment}``, and for an experiment
named in ``needs:`` ``{needs.<experiment>.<field>}`` (:data:`NEEDS_FIELDS`); ``{{`` and ``}}``
are literal braces.

Checked at load (every name must exist), rendered per run by the executors. A value is its
text when it is a string, else compact JSON; each command argument stays one argument.
"""

from __future__ import annotations

import os
import re
from collections.abc import Collection
from typing import Any

from hpcx.errors import ManifestError
from hpcx.manifest.document import Doc, Problems, did_you_mean, format_value, leaf_paths, pos, short
from hpcx.manifest.spec import RunSpec
from hpcx.manifest.sweep import get_path
from hpcx.util.yamlload import JsonPath

__all__ = [
    "NEEDS_FIELDS",
    "NEEDS_SINGULAR",
    "check_placeholders",
    "render_command",
    "render_cwd",
    "render_env",
]

PLACEHOLDER = re.compile(r"\{\{|\}\}|\{([^{}]*)\}|[{}]")
_RUN_FIELDS = ("run_id", "run_dir", "seed", "repeat", "experiment")
#: The fields of ``{needs.<experiment>.<field>}``: the one run needed (``run_dir``, ``run_id``:
#: only where every run needs exactly one run of that experiment), all of them (``run_dirs``,
#: ``run_ids``: joined with ``os.pathsep``, one argument), the experiment's runs folder.
NEEDS_FIELDS = ("run_dir", "run_id", "run_dirs", "run_ids", "experiment_dir")
#: The fields that name one run: refused at load unless the match is one-to-one.
NEEDS_SINGULAR = frozenset({"run_dir", "run_id"})


def check_placeholders(
    text: str,
    params: dict[str, Any],
    has_seed: bool,
    doc: Doc,
    jp: JsonPath,
    problems: Problems,
    needs: Collection[str] = (),
    singular: dict[str, JsonPath] | None = None,
) -> None:
    """Every placeholder in ``text`` names a parameter, a run field or a field of an experiment
    in ``needs``, and braces match. ``singular`` collects, per needed experiment, where a
    placeholder naming one of its runs (:data:`NEEDS_SINGULAR`) is first used: the expansion
    refuses it there unless each run needs exactly one run of that experiment."""
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
        if name.startswith("needs."):
            _check_needs_placeholder(name, needs, where, jp, problems, singular)
            continue
        if name == "seed" and not has_seed:
            problems.add(
                where,
                jp,
                "placeholder {seed} but no seed is set (spec.seed, sweep.seeds or sweep.repeats)",
            )
            continue
        if name not in _RUN_FIELDS:
            options = [
                *_RUN_FIELDS,
                *("params." + p for p in leaf_paths(params)),
                *(f"needs.{n}.{f}" for n in needs for f in NEEDS_FIELDS),
            ]
            hint = did_you_mean(name, options)
            literal = "{{" + m.group(1) + "}}"
            problems.add(
                where,
                jp,
                f"unknown placeholder {{{name}}}{hint}; for literal braces write {{{{ and }}}}: "
                f"{literal!r}",
            )


def _check_needs_placeholder(
    name: str,
    needs: Collection[str],
    where: Any,
    jp: JsonPath,
    problems: Problems,
    singular: dict[str, JsonPath] | None,
) -> None:
    """``{needs.<experiment>.<field>}``: the experiment is one ``needs:`` names (names may hold
    dots: the field is the last part), the field one of :data:`NEEDS_FIELDS`."""
    exp, _, fld = name[len("needs.") :].rpartition(".")
    if exp not in needs:
        if not needs:
            problems.add(where, jp, f"placeholder {{{name}}} but this experiment has no spec.needs")
        else:
            hint = did_you_mean(exp, list(needs))
            problems.add(
                where,
                jp,
                f"placeholder {{{name}}}: {exp!r} is not in spec.needs{hint} "
                f"(needs: {', '.join(sorted(needs))})",
            )
        return
    if fld not in NEEDS_FIELDS:
        hint = did_you_mean(fld, NEEDS_FIELDS)
        problems.add(
            where,
            jp,
            f"placeholder {{{name}}}: unknown field {fld!r}{hint}; "
            f"fields: {', '.join(NEEDS_FIELDS)}",
        )
        return
    if fld in NEEDS_SINGULAR and singular is not None:
        singular.setdefault(exp, jp)


def _needs_value(name: str, run: RunSpec, run_dir: str) -> str:
    """The text of ``{needs.<experiment>.<field>}`` for ``run``: an upstream run's folder is
    ``<runs root>/<experiment>/<run_id>``, beside this run's own."""
    exp, _, fld = name[len("needs.") :].rpartition(".")
    ids = [rid for e, rid in run.needs if e == exp]
    root = os.path.dirname(os.path.dirname(run_dir))
    if fld == "experiment_dir":
        return os.path.join(root, exp)
    if fld in ("run_ids", "run_dirs"):
        items = ids if fld == "run_ids" else [os.path.join(root, exp, r) for r in ids]
        if any(os.pathsep in i for i in items):
            raise ManifestError(
                f"{run.source}: {{{name}}} of run {run.run_id}: a folder holds "
                f"{os.pathsep!r}, the separator of the list",
                hint="move the runs folder to a path without it",
            )
        return os.pathsep.join(items)
    if fld in NEEDS_SINGULAR and len(ids) == 1:
        return ids[0] if fld == "run_id" else os.path.join(root, exp, ids[0])
    raise ManifestError(
        f"{run.source}: {{{name}}} of run {run.run_id}: it needs {len(ids)} runs of {exp!r}, "
        "not one",
        hint=f"use {{needs.{exp}.{fld}s}} for all of them",
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
        if name.startswith("needs."):
            return _needs_value(name, run, run_dir)
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
