"""The sweep section of a checked document: the paths it sets, and its check into a
:class:`~hpcx.manifest.sweep.SweepPlan` (grid and zip axes, include and exclude entries, seeds).

A sweep key is a run path: ``params.x``, ``placement.numa``/``placement.gpus``, or a bare
parameter path (``model.depth`` is ``params.model.depth``). Each path can be swept once. Ranges
stay lazy until the run count has been checked, so a sweep over the limit builds nothing large.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hpcx.manifest.document import Doc, Problems, did_you_mean, leaf_paths, pos, short
from hpcx.manifest.identity import canonical_json
from hpcx.manifest.spec import RunSpec
from hpcx.manifest.sweep import Axis, Matcher, RunPath, SweepPlan, get_path
from hpcx.util.yamlload import JsonPath, json_path_str

__all__ = [
    "AxisSource",
    "CheckedSweep",
    "LazyAxisValues",
    "LazyRange",
    "check_run_path",
    "check_sweep",
    "dotted_path",
    "paths_swept",
    "range_values",
    "run_path",
    "run_value",
    "sweep_keys",
]

#: One axis as the manifest gives it: its paths (one for a grid key, several for a zip group),
#: each path's list or range, and where it is.
AxisSource = tuple[list[RunPath], list[Any], JsonPath]


def run_path(key: str) -> RunPath:
    """A sweep key as a run path: ``params.x``, ``placement.numa``, or a bare param path."""
    parts = tuple(key.split("."))
    if parts[0] in ("params", "placement") and len(parts) > 1:
        return parts
    return ("params", *parts)


def dotted_path(path: RunPath) -> str:
    return ".".join(path)


def sweep_keys(spec: dict[str, Any]) -> list[tuple[str, JsonPath]]:
    """Each path a sweep sets, dotted (``params.model.dim``), with the JSON path of its key.
    Before the sweep is checked: odd shapes are skipped here and reported by the schema."""
    sweep = spec.get("sweep")
    if not isinstance(sweep, dict):
        return []
    out: list[tuple[str, JsonPath]] = []
    if isinstance(sweep.get("grid"), dict):
        out.extend((str(k), ("spec", "sweep", "grid", k)) for k in sweep["grid"])
    for section in ("zip", "include"):
        entries = sweep.get(section)
        for i, group in enumerate(entries if isinstance(entries, list) else []):
            if isinstance(group, dict):
                out.extend((str(k), ("spec", "sweep", section, i, k)) for k in group)
    search = sweep.get("search")
    space = search.get("space") if isinstance(search, dict) else None
    if isinstance(space, dict):
        out.extend((str(k), ("spec", "sweep", "search", "space", k)) for k in space)
    return [(dotted_path(run_path(k)), jp) for k, jp in out]


def paths_swept(spec: dict[str, Any]) -> frozenset[str]:
    """The dotted paths a sweep sets, and ``seed`` where it sweeps seeds."""
    out = {dotted for dotted, _ in sweep_keys(spec)}
    sweep = spec.get("sweep")
    if isinstance(sweep, dict) and (
        sweep.get("seeds") is not None or sweep.get("repeats") is not None
    ):
        out.add("seed")
    return frozenset(out)


def placement_value_problem(leaf: str, v: Any) -> str | None:
    if leaf == "numa":
        if isinstance(v, int) and not isinstance(v, bool) and v >= 0:
            return None
        if v in ("none", "local-to-gpu"):
            return None
        return f"{short(v)} is not a NUMA placement (a node number, 'none' or 'local-to-gpu')"
    ok = (
        isinstance(v, list)
        and all(isinstance(x, int) and not isinstance(x, bool) and x >= 0 for x in v)
        and len(set(v)) == len(v)
    )
    return None if ok else f"{short(v)} is not a list of distinct GPU indices"


def check_run_path(
    key: str, params: dict[str, Any], doc: Doc, jp: JsonPath, problems: Problems
) -> RunPath | None:
    path = run_path(key)
    where = pos(doc, jp, key=True)
    if path[0] == "placement":
        if len(path) != 2 or path[1] not in ("numa", "gpus"):
            problems.add(
                where, jp, f"{key!r}: placement paths are placement.numa and placement.gpus"
            )
            return None
        return path
    try:
        get_path(params, path[1:])
    except KeyError:
        hint = did_you_mean(dotted_path(path[1:]), leaf_paths(params))
        problems.add(
            where, jp, f"{key!r} names no parameter: set a default under params first{hint}"
        )
        return None
    return path


def _axis_values(raw: Any, doc: Doc, jp: JsonPath, problems: Problems) -> list[Any] | int | None:
    """A list as it is; a range as its length (materialised later, after the run count check)."""
    if isinstance(raw, list):
        return raw
    start, stop, step = raw["start"], raw["stop"], raw.get("step", 1)
    if all(isinstance(x, int) for x in (start, stop, step)):
        n = len(range(start, stop, step))
    else:
        n = max(0, -int(-((stop - start) / step - 1e-9) // 1))
    if n == 0:
        problems.add(pos(doc, jp), jp, f"empty sweep: range({start}, {stop}, {step}) has no values")
        return None
    return n


def _check_placement_axis(
    path: RunPath, raw: Any, doc: Doc, jp: JsonPath, problems: Problems
) -> bool:
    if path[0] != "placement":
        return True
    if not isinstance(raw, list):
        if (
            path[1] == "gpus"
            or raw["start"] < 0
            or raw.get("step", 1) < 0
            or not all(isinstance(raw.get(k, 1), int) for k in ("start", "stop", "step"))
        ):
            problems.add(
                pos(doc, jp),
                jp,
                f"{dotted_path(path)} cannot be swept over this range; list the values",
            )
            return False
        return True
    ok = True
    for i, v in enumerate(raw):
        if msg := placement_value_problem(path[1], v):
            problems.add(pos(doc, (*jp, i)), (*jp, i), msg)
            ok = False
    return ok


def range_values(raw: dict[str, Any]) -> list[Any]:
    start, stop, step = raw["start"], raw["stop"], raw.get("step", 1)
    if all(isinstance(x, int) for x in (start, stop, step)):
        return list(range(start, stop, step))
    n = max(0, -int(-((stop - start) / step - 1e-9) // 1))
    return [round(start + i * step, 12) for i in range(n)]


def _range_len(raw: dict[str, Any]) -> range:
    start, stop, step = raw["start"], raw["stop"], raw.get("step", 1)
    if all(isinstance(x, int) for x in (start, stop, step)):
        return range(start, stop, step)
    return range(max(0, -int(-((stop - start) / step - 1e-9) // 1)))


class LazyRange:
    """A ``{start, stop, step}`` range whose length is known before its values are built."""

    def __init__(self, raw: dict[str, Any]) -> None:
        self.raw = raw
        self.n = len(_range_len(raw))

    def __len__(self) -> int:
        return self.n

    def materialise(self) -> list[Any]:
        return range_values(self.raw)


class LazyAxisValues:
    """Axis values whose length is known before they are built (ranges stay lazy)."""

    def __init__(self, cols: list[Any]) -> None:
        self.cols = cols
        self.rows: list[tuple[Any, ...]] | None = None

    def __len__(self) -> int:
        return len(self.cols[0])

    def build(self) -> list[tuple[Any, ...]]:
        if self.rows is None:
            cols = [c.materialise() if isinstance(c, LazyRange) else c for c in self.cols]
            self.rows = list(zip(*cols, strict=True))
        return self.rows


@dataclass(slots=True)
class CheckedSweep:
    """A checked sweep: the plan (its axes still to be filled in lazily) and each axis as the
    manifest gives it, for the workload check and :meth:`fill_axes`."""

    plan: SweepPlan
    axes: list[AxisSource]

    @property
    def has_seed(self) -> bool:
        return self.plan.seeds != [None]

    def fill_axes(self) -> None:
        """Add the axes to the plan, ranges lazy: the run count is checked before anything
        large is built."""
        for paths, raws, _jp in self.axes:
            cols = [r if isinstance(r, list) else LazyRange(r) for r in raws]
            self.plan.axes.append(Axis(paths, LazyAxisValues(cols)))  # type: ignore[arg-type]


def check_sweep(
    spec: dict[str, Any],
    params: dict[str, Any],
    placement: dict[str, Any],
    doc: Doc,
    problems: Problems,
) -> CheckedSweep:
    """The spec's sweep checked against its params: every problem is added to ``problems``."""
    sweep = spec.get("sweep") or {}
    plan = SweepPlan()
    claims = _Claims(doc, problems)
    axes = _grid_axes(sweep, params, claims, doc, problems)
    axes += _zip_axes(sweep, params, claims, doc, problems)
    plan.includes.extend(_includes(sweep, params, doc, problems))
    swept = {p for paths, _, _ in axes for p in paths}
    plan.excludes.extend(_excludes(sweep, params, placement, swept, doc, problems))
    seeds = _seeds(sweep, spec.get("seed"), doc, problems)
    if seeds is not None:
        plan.seeds = seeds
    return CheckedSweep(plan, axes)


class _Claims:
    """The paths swept so far: each value can be swept once (a path, or one above or below
    it, swept twice is a problem at the second)."""

    def __init__(self, doc: Doc, problems: Problems) -> None:
        self.doc = doc
        self.problems = problems
        self.seen: dict[RunPath, JsonPath] = {}

    def claim(self, path: RunPath, jp: JsonPath) -> bool:
        for other, ojp in self.seen.items():
            n = min(len(other), len(path))
            if other[:n] == path[:n]:
                self.problems.add(
                    pos(self.doc, jp, key=True),
                    jp,
                    f"{dotted_path(path)!r} overlaps {dotted_path(other)!r} (at "
                    f"{json_path_str(ojp)}): each value can be swept once",
                )
                return False
        self.seen[path] = jp
        return True


def _grid_axes(
    sweep: dict[str, Any], params: dict[str, Any], claims: _Claims, doc: Doc, problems: Problems
) -> list[AxisSource]:
    axes: list[AxisSource] = []
    for key, raw in (sweep.get("grid") or {}).items():
        jp: JsonPath = ("spec", "sweep", "grid", key)
        path = check_run_path(key, params, doc, jp, problems)
        vals = _axis_values(raw, doc, jp, problems)
        if (
            path is not None
            and vals is not None
            and _check_placement_axis(path, raw, doc, jp, problems)
            and claims.claim(path, jp)
        ):
            axes.append(([path], [raw], jp))
    return axes


def _zip_axes(
    sweep: dict[str, Any], params: dict[str, Any], claims: _Claims, doc: Doc, problems: Problems
) -> list[AxisSource]:
    axes: list[AxisSource] = []
    for gi, group in enumerate(sweep.get("zip") or []):
        gjp: JsonPath = ("spec", "sweep", "zip", gi)
        paths: list[RunPath] = []
        raws: list[Any] = []
        lengths: dict[str, int] = {}
        good = True
        for key, raw in group.items():
            jp = (*gjp, key)
            path = check_run_path(key, params, doc, jp, problems)
            vals = _axis_values(raw, doc, jp, problems)
            if vals is None:
                good = False
                continue
            lengths[key] = vals if isinstance(vals, int) else len(vals)
            if (
                path is None
                or not _check_placement_axis(path, raw, doc, jp, problems)
                or not claims.claim(path, jp)
            ):
                good = False
                continue
            paths.append(path)
            raws.append(raw)
        if len(set(lengths.values())) > 1:
            desc = ", ".join(f"{k}: {n}" for k, n in lengths.items())
            problems.add(pos(doc, gjp), gjp, f"zip group lists differ in length ({desc})")
            good = False
        if good and paths:
            axes.append((paths, raws, gjp))
    return axes


def _includes(
    sweep: dict[str, Any], params: dict[str, Any], doc: Doc, problems: Problems
) -> list[list[tuple[RunPath, Any]]]:
    out: list[list[tuple[RunPath, Any]]] = []
    for ii, point in enumerate(sweep.get("include") or []):
        assignments: list[tuple[RunPath, Any]] = []
        for key, value in point.items():
            jp: JsonPath = ("spec", "sweep", "include", ii, key)
            path = check_run_path(key, params, doc, jp, problems)
            if path is None:
                continue
            bad = placement_value_problem(path[1], value) if path[0] == "placement" else None
            if bad:
                problems.add(pos(doc, jp), jp, bad)
                continue
            assignments.append((path, value))
        out.append(assignments)
    return out


def _excludes(
    sweep: dict[str, Any],
    params: dict[str, Any],
    placement: dict[str, Any],
    swept: set[RunPath],
    doc: Doc,
    problems: Problems,
) -> list[list[Matcher]]:
    """Each exclude entry as matchers on swept paths; an entry whose condition on an unswept
    value can never hold is dropped (it excludes nothing)."""
    out: list[list[Matcher]] = []
    for ei, entry in enumerate(sweep.get("exclude") or []):
        matchers: list[Matcher] = []
        never = False
        for key, value in entry.items():
            jp: JsonPath = ("spec", "sweep", "exclude", ei, key)
            path = run_path(key)
            if isinstance(value, dict) and len(value) == 1 and next(iter(value)) in ("in", "glob"):
                op, arg = next(iter(value.items()))
                if op == "in" and not isinstance(arg, list):
                    problems.add(pos(doc, jp), jp, "in: expects a list of values")
                    continue
                if op == "glob" and not isinstance(arg, str):
                    problems.add(pos(doc, jp), jp, "glob: expects a pattern string")
                    continue
                m = Matcher(
                    path, op, frozenset(canonical_json(v) for v in arg) if op == "in" else arg
                )
            else:
                m = Matcher(path, "eq", canonical_json(value))
            if path in swept:
                matchers.append(m)
                continue
            try:
                constant = get_path({"params": params, "placement": placement}, path)
            except KeyError:
                if path[0] == "placement" and path[1:] in (("numa",), ("gpus",)):
                    constant = None
                else:
                    hint = did_you_mean(key, [dotted_path(p) for p in swept])
                    problems.add(
                        pos(doc, jp, key=True),
                        jp,
                        f"{key!r} is neither swept nor a parameter{hint}",
                    )
                    continue
            if not m.matches(constant):
                never = True
        if not never:
            out.append(matchers)
    return out


def _seeds(sweep: dict[str, Any], base_seed: Any, doc: Doc, problems: Problems) -> list[Any] | None:
    """The seeds the runs take (``[None]`` when none is set); ``None`` on a problem."""
    seeds, repeats = sweep.get("seeds"), sweep.get("repeats")
    if seeds is not None and repeats is not None:
        problems.add(
            pos(doc, ("spec", "sweep", "repeats")),
            ("spec", "sweep", "repeats"),
            "give seeds or repeats, not both",
        )
        return None
    if seeds is not None:
        return list(seeds)
    if repeats is not None:
        first = base_seed if base_seed is not None else 0
        return [first + i for i in range(repeats)]
    return [base_seed]


def run_value(run: RunSpec, dotted: str) -> Any:
    """The value of a swept path (``params.model.depth``, ``placement.numa``, ``seed``) in a run."""
    if dotted == "seed":
        return run.seed
    path = run_path(dotted)
    try:
        return get_path({"params": run.params, "placement": run.placement}, path)
    except KeyError:
        return None
