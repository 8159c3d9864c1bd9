"""``sweep.search``: an adaptive search, checked.

A search is a sweep whose points are not listed but proposed, a batch at a time, by a sampler
fed with the trials the state already holds (:mod:`hpcx.plan.search`). This module knows
nothing of the state or of the sampler: it checks the manifest's ``search`` block (each
problem at its file, line and path) into a :class:`SearchDef`, whose :meth:`SearchDef.identity`
is what makes two searches the same one. :class:`hpcx.manifest.expand.SearchSpec` holds a
search's key and turns its trials into runs.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from hpcx.manifest.axes import AxisSource, check_run_path, dotted_path
from hpcx.manifest.document import Doc, Problems, pos, short
from hpcx.manifest.identity import canonical_json
from hpcx.manifest.sweep import RunPath
from hpcx.util.yamlload import JsonPath

__all__ = [
    "SAMPLERS",
    "Dimension",
    "SearchDef",
    "Trial",
    "check_search",
    "search_axes",
]

#: The samplers a search may name; ``tpe`` when it names none.
SAMPLERS = ("tpe", "random", "qmc", "cmaes", "grid")
DEFAULT_BATCH = 8
PRUNE_DEFAULTS: dict[str, Any] = {
    "direction": "minimize",
    "warmup_steps": 0,
    "startup_trials": 5,
    "min_resource": 1,
    "reduction_factor": 3,
}
#: Sweep keys a search replaces: a search is the whole sweep.
_NOT_WITH_SEARCH = ("grid", "zip", "include", "exclude", "repeats", "seeds")
#: A grid sampler over more points than this is refused (the sampler lists them all).
GRID_MAX_POINTS = 1_000_000


@dataclass(frozen=True, slots=True)
class Dimension:
    """One searched value: ``kind`` is ``float``, ``int`` or ``categorical``."""

    path: RunPath
    kind: str
    low: float | int | None = None
    high: float | int | None = None
    log: bool = False
    step: float | int | None = None
    choices: tuple[Any, ...] = ()

    @property
    def dotted(self) -> str:
        return dotted_path(self.path)

    def as_dict(self) -> dict[str, Any]:
        if self.kind == "categorical":
            return {"kind": self.kind, "choices": list(self.choices)}
        out: dict[str, Any] = {"kind": self.kind, "low": self.low, "high": self.high}
        if self.log:
            out["log"] = True
        if self.step is not None:
            out["step"] = self.step
        return out

    def grid_points(self) -> int | None:
        """How many values a grid over this dimension has (None: a continuous range)."""
        if self.kind == "categorical":
            return len(self.choices)
        if self.kind == "int":
            assert self.low is not None and self.high is not None
            return int((self.high - self.low) // (self.step or 1)) + 1
        if self.step is None:
            return None
        assert self.low is not None and self.high is not None
        return round((self.high - self.low) / self.step) + 1

    def grid_values(self) -> list[Any]:
        if self.kind == "categorical":
            return list(self.choices)
        n = self.grid_points()
        assert n is not None and self.low is not None
        step = self.step or 1
        if self.kind == "int":
            return [int(self.low + i * step) for i in range(n)]
        return [round(self.low + i * step, 12) for i in range(n)]


@dataclass(frozen=True, slots=True)
class SearchDef:
    """A checked ``sweep.search``."""

    sampler: str
    dims: tuple[Dimension, ...]
    metric: str
    direction: str
    budget: int
    batch: int
    seed: int
    prune: dict[str, Any] | None = None

    def describe(self) -> dict[str, Any]:
        """The settings a person or script reads: sampler, budget, batch, objective."""
        return {
            "sampler": self.sampler,
            "budget": self.budget,
            "batch": self.batch,
            "objective": {"metric": self.metric, "direction": self.direction},
        }

    def identity(self) -> dict[str, Any]:
        """What makes two searches the same search (budget, batch and pruning do not: a
        bigger budget goes on with the same trials)."""
        return {
            "sampler": self.sampler,
            "space": {d.dotted: d.as_dict() for d in self.dims},
            "objective": {"metric": self.metric, "direction": self.direction},
            "seed": self.seed,
        }


@dataclass(frozen=True, slots=True)
class Trial:
    """One trial as the state remembers it: its number, the searched values and the sampler's
    own per-trial state."""

    number: int
    values: Mapping[str, Any]
    system_attrs: Mapping[str, Any] = field(default_factory=dict)


def search_axes(definition: SearchDef) -> list[AxisSource]:
    """The values each dimension can take, as axes, for the checks a sweep's values get (a
    built-in workload's params): the bounds of a range, every choice."""
    out: list[AxisSource] = []
    for d in definition.dims:
        jp: JsonPath = ("spec", "sweep", "search", "space", d.dotted)
        vals = list(d.choices) if d.kind == "categorical" else [d.low, d.high]
        out.append(([d.path], [vals], jp))
    return out


# --------------------------------------------------------------------------------------------
# Checks


def check_search(
    sweep: Mapping[str, Any], params: dict[str, Any], doc: Doc, problems: Problems
) -> SearchDef | None:
    """The checked ``sweep.search`` (None when absent or with problems, each added)."""
    raw = sweep.get("search")
    if not isinstance(raw, dict):
        return None
    start = len(problems.items)
    base: JsonPath = ("spec", "sweep", "search")
    for other in _NOT_WITH_SEARCH:
        if other in sweep:
            jp: JsonPath = ("spec", "sweep", other)
            problems.add(
                pos(doc, jp, key=True),
                jp,
                f"{other} cannot be combined with search: a search proposes its own points "
                "(put fixed values in params, or search them with choices)",
            )
    sampler = str(raw.get("sampler", "tpe"))
    dims: list[Dimension] = []
    seen: dict[RunPath, str] = {}
    for key, spec in (raw.get("space") or {}).items():
        jp = (*base, "space", key)
        dim = _dimension(str(key), spec, params, doc, jp, problems)
        if dim is None:
            continue
        clash = next((o for p, o in seen.items() if _overlaps(p, dim.path)), None)
        if clash is not None:
            problems.add(
                pos(doc, jp, key=True),
                jp,
                f"{dim.dotted!r} overlaps {clash!r}: each value can be searched once",
            )
            continue
        seen[dim.path] = dim.dotted
        dims.append(dim)
    objective = raw.get("objective") or {}
    budget = int(raw.get("budget", 1))
    batch = int(raw.get("batch", DEFAULT_BATCH))
    prune = _prune(raw.get("prune"), objective, doc, base, problems)
    _check_sampler(sampler, dims, budget, doc, base, problems)
    if batch > budget:
        jp = (*base, "batch")
        problems.warn(
            pos(doc, jp),
            jp,
            f"batch {batch} is more than the budget of {budget} trials: at most {budget} run",
        )
    if len(problems.items) > start:
        return None
    return SearchDef(
        sampler=sampler,
        dims=tuple(dims),
        metric=str(objective["metric"]),
        direction=str(objective.get("direction", "minimize")),
        budget=budget,
        batch=min(batch, budget),
        seed=int(raw.get("seed", 0)),
        prune=prune,
    )


def _overlaps(a: RunPath, b: RunPath) -> bool:
    n = min(len(a), len(b))
    return a[:n] == b[:n]


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _dimension(
    key: str, spec: Any, params: dict[str, Any], doc: Doc, jp: JsonPath, problems: Problems
) -> Dimension | None:
    if key.split(".")[0] == "placement":
        problems.add(
            pos(doc, jp, key=True),
            jp,
            f"{key!r}: a search sets params only (sweep placements with a grid)",
        )
        return None
    path = check_run_path(key, params, doc, jp, problems)
    if path is None or not isinstance(spec, dict):
        return None
    ranged = [k for k in ("low", "high", "log", "step") if k in spec]
    if "choices" in spec and ranged:
        problems.add(
            pos(doc, jp),
            jp,
            f"give choices or a range, not both (remove {', '.join(ranged)} or choices)",
        )
        return None
    if "choices" not in spec and not ("low" in spec and "high" in spec):
        problems.add(pos(doc, jp), jp, "a range needs low and high (or give choices)")
        return None
    if "choices" in spec:
        choices = tuple(spec["choices"])
        texts = [canonical_json(c) for c in choices]
        if len(set(texts)) != len(texts):
            problems.add(pos(doc, (*jp, "choices")), (*jp, "choices"), "choices repeat a value")
            return None
        return Dimension(path, "categorical", choices=choices)
    low, high, log, step = spec["low"], spec["high"], bool(spec.get("log", False)), spec.get("step")
    where = pos(doc, jp)
    if not low < high:
        problems.add(where, jp, f"low {short(low)} must be below high {short(high)}")
        return None
    if log and step is not None:
        problems.add(pos(doc, (*jp, "log")), (*jp, "log"), "log and step cannot be combined")
        return None
    if log and low <= 0:
        problems.add(
            pos(doc, (*jp, "low")), (*jp, "low"), f"a log range needs low above 0, not {low}"
        )
        return None
    kind = "int" if _is_int(low) and _is_int(high) and (step is None or _is_int(step)) else "float"
    if step is not None:
        span = (high - low) / step
        if abs(span - round(span)) > 1e-9:
            problems.add(
                pos(doc, (*jp, "step")),
                (*jp, "step"),
                f"high - low ({short(high - low)}) is not a multiple of step {short(step)}: "
                "make high low + k * step",
            )
            return None
    if kind == "float":
        low, high = float(low), float(high)
        step = float(step) if step is not None else None
    return Dimension(path, kind, low=low, high=high, log=log, step=step)


def _check_sampler(
    sampler: str, dims: list[Dimension], budget: int, doc: Doc, base: JsonPath, problems: Problems
) -> None:
    jp: JsonPath = (*base, "sampler")
    if sampler == "cmaes":
        cats = [d.dotted for d in dims if d.kind == "categorical"]
        if cats:
            problems.add(
                pos(doc, jp),
                jp,
                f"cmaes searches numeric ranges only, and {', '.join(cats)} are choices: "
                "use tpe, or make them ranges",
            )
        if len(dims) == 1:
            problems.add(
                pos(doc, jp), jp, "cmaes needs two or more searched values: use tpe for one"
            )
    if sampler == "grid":
        counts = [d.grid_points() for d in dims]
        continuous = [d.dotted for d, n in zip(dims, counts, strict=True) if n is None]
        if continuous:
            problems.add(
                pos(doc, jp),
                jp,
                f"a grid needs a finite set of values, and {', '.join(continuous)} "
                "are continuous ranges: give them a step, or choices",
            )
            return
        total = math.prod(n for n in counts if n is not None)
        if total > GRID_MAX_POINTS:
            problems.add(pos(doc, jp), jp, f"the grid has {total:,} points: too many to list")
        elif total < budget:
            bjp: JsonPath = (*base, "budget")
            problems.warn(
                pos(doc, bjp),
                bjp,
                f"the budget of {budget} trials is more than the grid's {total} points: "
                f"the search ends after {total}",
            )


def _prune(
    raw: Any, objective: Mapping[str, Any], doc: Doc, base: JsonPath, problems: Problems
) -> dict[str, Any] | None:
    if not isinstance(raw, dict):
        return None
    out = {**PRUNE_DEFAULTS, **raw}
    jp: JsonPath = (*base, "prune")
    rule = out["rule"]
    asha_only, median_only = (
        ("min_resource", "reduction_factor"),
        ("warmup_steps", "startup_trials"),
    )
    unused = asha_only if rule == "median" else median_only
    for k in unused:
        if k in raw:
            problems.add(
                pos(doc, (*jp, k), key=True),
                (*jp, k),
                f"{k} is not a setting of the {rule} rule: remove it",
            )
    if out["metric"] == objective.get("metric") and out["direction"] != objective.get(
        "direction", "minimize"
    ):
        problems.add(
            pos(doc, (*jp, "direction")),
            (*jp, "direction"),
            f"the prune metric {out['metric']!r} is the objective, with the other direction",
        )
    return {k: out[k] for k in sorted(out)}
