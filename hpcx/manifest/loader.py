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
from hpcx.manifest.experiment import Experiment, experiment_has_path, prepare
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
    needs_from: Sequence[Path | str] = (),
) -> DesiredState:
    """Every run the manifests under ``paths`` ask for.

    ``needs_from``: where to look for an experiment that a loaded one ``needs`` and that is
    not among ``paths`` (the project's ``manifests/``): it is loaded too, with a named
    warning, and its runs are desired like the others.

    Raises ``ManifestError`` listing every problem."""
    state, problems = _load(paths, overrides, max_runs, project_root, needs_from)
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
    needs_from: Sequence[Path | str] = (),
) -> list[Problem]:
    """Every problem in the manifests under ``paths`` (empty when they are valid). Never raises
    for bad input."""
    return _load(paths, overrides, max_runs, project_root, needs_from)[1]


def validate_paths_with_state(
    paths: Sequence[Path | str],
    *,
    overrides: Sequence[str] = (),
    max_runs: int = DEFAULT_MAX_RUNS,
    project_root: Path | None = None,
    needs_from: Sequence[Path | str] = (),
) -> tuple[DesiredState | None, list[Problem]]:
    """Both: the desired state (``None`` when invalid) and every problem."""
    return _load(paths, overrides, max_runs, project_root, needs_from)


def _load(
    paths: Sequence[Path | str],
    overrides: Sequence[str],
    max_runs: int,
    project_root: Path | None,
    needs_from: Sequence[Path | str] = (),
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
    queue = list(files)
    seen = {f.resolve() for f in files}
    pulled: dict[str, str] = {}  # experiment loaded for a needs -> its file's label
    while queue:
        for f in queue:
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
        # Experiments needed but not among the paths: from the project's manifests.
        queue = _needed_files(experiments, names, needs_from, seen, root, pulled)
    _warn_pulled(experiments, pulled, problems)
    _check_needs_graph(experiments, names, problems)
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


def _needed_files(
    experiments: list[Experiment],
    names: dict[str, tuple[str, Position]],
    needs_from: Sequence[Path | str],
    seen: set[Path],
    root: Path,
    pulled: dict[str, str],
) -> list[Path]:
    """The files under ``needs_from`` not yet loaded that hold an experiment a loaded one
    needs and no loaded file names (recorded in ``pulled``). Files are read only for their
    name, by a composer of their own: a broken file nobody needs stays out of this load."""
    missing = {n for e in experiments for n in e.needs if n not in names}
    if not missing or not needs_from:
        return []
    scratch = Problems()
    candidates = [
        f
        for f in discover([p for p in needs_from if Path(p).exists()], scratch)
        if f.resolve() not in seen
    ]
    if not candidates:
        return []
    reader = Composer(root, scratch)
    out: list[Path] = []
    for f in candidates:
        loaded = reader.parse(f)
        data = loaded.data if loaded is not None else None
        meta = data.get("metadata") if isinstance(data, dict) else None
        name = meta.get("name") if isinstance(meta, dict) else None
        if not isinstance(name, str) or name not in missing:
            continue
        pulled[name] = reader.label(f)
        missing.discard(name)
        seen.add(f.resolve())  # the others may be needed by what this one needs
        out.append(f)
    return out


def _warn_pulled(experiments: list[Experiment], pulled: dict[str, str], problems: Problems) -> None:
    """A named warning at each ``needs`` entry whose experiment was loaded for it."""
    for exp in experiments:
        for name in exp.needs:
            if name in pulled:
                jp: JsonPath = ("spec", "needs", name)
                problems.warn(
                    pos(exp.doc, jp, key=True),
                    jp,
                    f"needs {name!r}, which is not among the paths given: loaded from "
                    f"{pulled[name]}, and its runs are planned too",
                )


def _check_needs_graph(
    experiments: list[Experiment], names: dict[str, tuple[str, Position]], problems: Problems
) -> None:
    """What one experiment cannot check alone: each experiment ``needs`` names is loaded, is
    not itself nor a search, has the match paths; and the needs have no cycle."""
    by_name = {e.name: e for e in experiments}
    edges: dict[str, list[str]] = {}
    for exp in experiments:
        for name, match in exp.needs.items():
            jp: JsonPath = ("spec", "needs", name)
            where = pos(exp.doc, jp, key=True)
            if name == exp.name:
                problems.add(where, jp, f"experiment {name!r} needs itself")
                continue
            up = by_name.get(name)
            if up is None:
                if name in names:
                    continue  # loaded with problems of its own, reported there
                problems.add(
                    where,
                    jp,
                    f"needs experiment {name!r}, which is not among the manifests loaded"
                    f"{did_you_mean(name, by_name)}; add its manifest to the paths (or keep "
                    "it in the project's manifests/ folder)",
                )
                continue
            if up.search is not None:
                problems.add(
                    where,
                    jp,
                    f"needs {name!r}, a search (sweep.search): its trials are proposed at plan "
                    "time, one batch at a time, so no run can be matched to them",
                )
                continue
            for i, dotted in enumerate(match):
                if not experiment_has_path(up, dotted):
                    mjp: JsonPath = (*jp, "match", i)
                    problems.add(
                        pos(exp.doc, mjp), mjp, f"needs.{name}.match: {name} has no {dotted}"
                    )
            edges.setdefault(exp.name, []).append(name)
    for cycle in _cycles(edges):
        exp = by_name[cycle[0]]
        jp = ("spec", "needs", cycle[1])
        problems.add(pos(exp.doc, jp, key=True), jp, "needs form a cycle: " + " -> ".join(cycle))


def _cycles(edges: dict[str, list[str]]) -> list[list[str]]:
    """One cycle (``a -> b -> a``, as the list of its names) per back edge of a depth-first
    walk over ``edges``, in the experiments' order."""
    state: dict[str, int] = {}  # 1: on the walk's path, 2: done
    out: list[list[str]] = []
    for start in edges:
        if state.get(start):
            continue
        path: list[str] = [start]
        state[start] = 1
        stack = [iter(edges.get(start, ()))]
        while stack:
            nxt = next(stack[-1], None)
            if nxt is None:
                state[path.pop()] = 2
                stack.pop()
                continue
            mark = state.get(nxt)
            if mark == 1:
                out.append([*path[path.index(nxt) :], nxt])
            elif mark is None:
                state[nxt] = 1
                path.append(nxt)
                stack.append(iter(edges.get(nxt, ())))
    return out


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
