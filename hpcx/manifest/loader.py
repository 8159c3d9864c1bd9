"""Manifests in, runs out: the entry points :func:`load_desired` (raises
:class:`hpcx.errors.ManifestError` listing every problem) and :func:`validate_paths` (returns
every problem). Each problem reads ``file:line:col: $.json.path: message``.

The steps, one module each: :mod:`~hpcx.manifest.discover` finds the files;
:mod:`~hpcx.manifest.compose` reads each (:mod:`hpcx.util.yamlload`) and merges its bases;
:mod:`~hpcx.manifest.overrides` applies ``--set``; :mod:`~hpcx.manifest.interpolate` resolves
``${...}``; :mod:`~hpcx.manifest.schema` checks the JSON Schema;
:mod:`~hpcx.manifest.experiment` checks the rest; :mod:`~hpcx.manifest.expand` makes the runs.

A manifest with ``abstract: true`` is a base: it is checked, composes into others through
``extends``, and yields no runs. A ``kind: Cluster`` profile (:mod:`hpcx.cluster.profiles`) is
checked against its own schema and yields no runs either.

See docs/manifests.md for the language and the identity scheme.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hpcx.errors import ManifestError
from hpcx.manifest import gitinfo
from hpcx.manifest.axes import dotted_path, run_value
from hpcx.manifest.compose import Composer
from hpcx.manifest.discover import discover
from hpcx.manifest.document import Doc, Problems, did_you_mean, pos, short
from hpcx.manifest.expand import expand_experiments, search_specs
from hpcx.manifest.experiment import Experiment, prepare
from hpcx.manifest.interpolate import resolve_document
from hpcx.manifest.overrides import Override, apply_override, override_hits_sweep, parse_overrides
from hpcx.manifest.placeholders import render_command, render_cwd, render_env
from hpcx.manifest.schema import API_VERSIONS, schema_path, schema_problems
from hpcx.manifest.spec import DesiredState
from hpcx.util.yamlload import JsonPath, Position, Problem

__all__ = [
    "API_VERSIONS",
    "DEFAULT_MAX_RUNS",
    "Problem",
    "load_desired",
    "render_command",
    "render_cwd",
    "render_env",
    "run_value",
    "schema_path",
    "validate_paths",
    "validate_paths_with_state",
]

DEFAULT_MAX_RUNS = 1_000_000


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


def _load(
    paths: Sequence[Path | str],
    overrides: Sequence[str],
    max_runs: int,
    project_root: Path | None,
) -> tuple[DesiredState | None, list[Problem]]:
    problems = Problems()
    if isinstance(paths, str | Path):
        paths = [paths]
    if not paths:
        problems.add(("hpcx", None, None), (), "no manifest paths given")
        return None, problems.sorted()
    files = discover(paths, problems)
    if project_root is None:
        start_at = files[0] if files else Path(paths[0])
        project_root = gitinfo.repo_root(start_at) or (
            start_at if start_at.is_dir() else start_at.parent
        )
    root = Path(project_root).resolve()
    parsed_overrides = parse_overrides(overrides, problems)
    composer = Composer(root, problems)
    code_cache: dict[Any, Any] = {}
    experiments: list[Experiment] = []
    names: dict[str, tuple[str, Position]] = {}
    for f in files:
        label = composer.label(f)
        doc = composer.compose(f)
        if doc is None:
            continue
        applied = _check_document(label, doc, parsed_overrides, names, problems)
        if applied is None:
            continue
        exp = prepare(label, doc, applied, root, problems, code_cache)
        if exp is not None:
            experiments.append(exp)
    _report_unused_overrides(parsed_overrides, problems)
    _check_run_count(experiments, max_runs, problems)
    if problems.items:
        return None, problems.sorted()
    runs, infos = expand_experiments(experiments, problems)
    if problems.items:
        return None, problems.sorted()
    state = DesiredState(
        runs=runs,
        experiments=infos,
        digests=dict(sorted(composer.digests.items())),
        overrides=tuple(overrides),
        warnings=tuple(str(w) for w in sorted(set(problems.warnings), key=Problem.sort_key)),
        searches=search_specs(experiments),
    )
    return state, []


def _check_document(
    label: str,
    doc: Doc,
    overrides: list[Override],
    names: dict[str, tuple[str, Position]],
    problems: Problems,
) -> tuple[str, ...] | None:
    """One composed document up to the schema: its apiVersion, ``--set`` (into ``doc``),
    ``${...}``, the schema, a unique experiment name (recorded in ``names``). The ``--set``
    texts that applied, or ``None`` where it yields no experiment (a base, a cluster profile,
    a problem)."""
    data = doc.data
    if isinstance(data, dict) and "apiVersion" in data and data["apiVersion"] not in API_VERSIONS:
        jp: JsonPath = ("apiVersion",)
        problems.add(
            pos(doc, jp, default=label),
            jp,
            f"unknown apiVersion {short(data['apiVersion'])}: "
            f"this hpcx reads {', '.join(API_VERSIONS)}",
        )
        return None
    if isinstance(data, dict) and data.get("kind") == "Cluster":
        # A cluster profile may live beside the experiments: it yields no runs; it is checked
        # against its own schema so `hpcx validate` covers it too.
        from hpcx.cluster.profiles import profile_problems

        problems.extend(profile_problems(data, label, doc.positions))
        return None
    abstract = isinstance(data, dict) and data.get("abstract") is True
    applied: list[str] = []
    if not abstract:
        for ov in overrides:
            outcome = override_hits_sweep(doc, ov) or apply_override(doc, ov)
            if outcome is None:
                ov.applied += 1
                applied.append(ov.text)
            elif outcome != "skip":
                problems.add((f"--set {ov.text}", None, None), ov.path, f"{label}: {outcome}")
    before = len(problems.items)
    if not abstract:
        resolve_document(doc, problems)
        if len(problems.items) > before:
            return None
    schema_problems(doc, abstract, problems)
    if abstract or len(problems.items) > before:
        return None
    name = doc.data["metadata"]["name"]
    where = pos(doc, ("metadata", "name"))
    if name in names:
        other_label, other_where = names[name]
        at = f"{other_where[0]}:{other_where[1]}" if other_where[1] else other_label
        problems.add(
            where, ("metadata", "name"), f"experiment name {name!r} is already used by {at}"
        )
        return None
    names[name] = (label, where)
    return tuple(applied)


def _report_unused_overrides(overrides: list[Override], problems: Problems) -> None:
    """A ``--set`` that applied to no experiment (and is not already a problem) is one."""
    for ov in overrides:
        if ov.applied == 0 and not any(p.path == f"--set {ov.text}" for p in problems.items):
            hint = did_you_mean(dotted_path(ov.path[1:]), set(ov.candidates))
            problems.add(
                (f"--set {ov.text}", None, None),
                ov.path,
                f"applies to no experiment: {dotted_path(ov.path[1:])} does "
                f"not exist{hint} (prefix + to add a new parameter)",
            )


def _check_run_count(experiments: list[Experiment], max_runs: int, problems: Problems) -> None:
    """All manifests together ask for at most ``max_runs`` runs (before anything is built)."""
    total = sum(exp.plan.upper_count() for exp in experiments)
    if total <= max_runs:
        return
    for exp in experiments:
        n = exp.plan.upper_count()
        sjp: JsonPath = ("spec", "sweep")
        problems.add(
            pos(exp.doc, sjp),
            sjp,
            f"sweep asks for {n:,} runs; all manifests together ask for "
            f"{total:,}, over the limit of {max_runs:,} (--max-runs)",
        )
