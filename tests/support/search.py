"""Searches for the tests: Branin's function, a search manifest over it, and a search driven to
its end in process (what the end-to-end tests compare the real runs with)."""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

OBJECTIVE = str(Path(__file__).parent / "progs" / "objective.py")
SPACE: dict[str, Any] = {"x": {"low": -5.0, "high": 10.0}, "y": {"low": 0.0, "high": 15.0}}
#: Four values in [-5, 5] for :func:`sphere` (``--fn sphere``): where TPE clearly beats random
#: at a budget of 40 (on Branin's two values, random search is about as good).
SPHERE4: dict[str, Any] = {n: {"low": -5.0, "high": 5.0} for n in ("x", "y", "z", "w")}


def sphere(values: Mapping[str, Any]) -> float:
    """The sum of (v - 1.5)**2 over the searched values: minimum 0."""
    return float(sum((v - 1.5) ** 2 for v in values.values()))


def branin(values: Mapping[str, Any]) -> float:
    """Branin's function: minimum 0.397887 at three points of the box of :data:`SPACE`."""
    x, y = values["params.x"], values["params.y"]
    b, c, t = 5.1 / (4 * math.pi**2), 5 / math.pi, 1 / (8 * math.pi)
    return float((y - b * x * x + c * x - 6) ** 2 + 10 * (1 - t) * math.cos(x) + 10)


def search_manifest(
    name: str = "s",
    *,
    sampler: str = "tpe",
    budget: int = 16,
    batch: int = 4,
    seed: int = 0,
    args: tuple[str, ...] = (),
    executor: Mapping[str, Any] | None = None,
    prune: Mapping[str, Any] | None = None,
    space: Mapping[str, Any] | None = None,
    resources: Mapping[str, Any] | None = None,
) -> str:
    """A command experiment searching Branin's (x, y) with progs/objective.py."""
    search: dict[str, Any] = {
        "sampler": sampler,
        "space": dict(space or SPACE),
        "objective": {"metric": "loss", "direction": "minimize"},
        "budget": budget,
        "batch": batch,
        "seed": seed,
    }
    if prune:
        search["prune"] = dict(prune)
    keys = [k.split(".")[-1] for k in (space or SPACE)]
    spec: dict[str, Any] = {
        "command": [sys.executable, OBJECTIVE, *(f"--{k}={{params.{k}}}" for k in keys), *args],
        "params": dict.fromkeys(keys, 0.0),
        "sweep": {"search": search},
    }
    if executor:
        spec["executor"] = dict(executor)
    if resources:
        spec["resources"] = dict(resources)
    doc = {"apiVersion": "hpcx/v1", "kind": "Experiment", "metadata": {"name": name}, "spec": spec}
    return json.dumps(doc, indent=2) + "\n"


def drive(search: Any, score: Callable[[Mapping[str, Any]], float] = branin) -> list[Any]:
    """A search run to its end without running anything: each proposal is told its ``score``
    (every trial succeeds). The trial records, in order."""
    from hpcx.plan.search import propose
    from hpcx.state.records import TrialRecord

    records: list[TrialRecord] = []
    while True:
        runs, status = propose(search, records)
        known = {r.run_id for r in records}
        new = [r for r in runs if r.run_id not in known]
        if not new:
            assert status.done, status
            return records
        assert len(new) <= search.definition.batch
        for run in new:
            s = run.extra["search"]
            records.append(TrialRecord(run.run_id, "succeeded", s, score(s["values"])))


def drive_in_process(
    manifest: Path, root: Path, score: Callable[[Mapping[str, Any]], float] = branin
) -> list[Any]:
    """The search of ``manifest`` driven by :func:`drive`."""
    from hpcx.manifest.loader import load_desired

    (search,) = load_desired([manifest], project_root=root).searches
    return drive(search, score)
