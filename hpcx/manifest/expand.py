"""Expansion: checked experiments into runs, each with its content-hash ``run_id``.

A run two experiments ask for (the same identity) runs once: the first experiment owns it and
the others are listed in its ``extra["also_in"]``. Built for 100,000-run sweeps: see
:mod:`hpcx.manifest.sweep` for the fast path and :func:`_fast_constructor` for the runs.
"""

from __future__ import annotations

import gc
from collections.abc import Sequence
from typing import Any

from hpcx.manifest.axes import LazyAxisValues
from hpcx.manifest.document import Problems, pos
from hpcx.manifest.experiment import Experiment
from hpcx.manifest.identity import IDENTITY_VERSION
from hpcx.manifest.spec import ExperimentInfo, RunSpec
from hpcx.manifest.sweep import expand

__all__ = ["expand_experiments"]


def expand_experiments(
    experiments: Sequence[Experiment], problems: Problems
) -> tuple[list[RunSpec], list[ExperimentInfo]]:
    """Every run of the experiments, in order, and each experiment's summary. An experiment
    whose sweep excludes every point is a problem."""
    runs: list[RunSpec] = []
    infos: list[ExperimentInfo] = []
    by_id: dict[str, int] = {}
    for exp in experiments:
        count = _expand_one(exp, runs, by_id)
        if count == 0:
            problems.add(
                pos(exp.doc, ("spec", "sweep")),
                ("spec", "sweep"),
                "the sweep excludes every point: no runs",
            )
        meta = exp.doc.data["metadata"]
        infos.append(
            ExperimentInfo(
                name=exp.name,
                path=exp.label,
                description=meta.get("description", ""),
                owner=meta.get("owner"),
                tags=exp.tags,
                run_count=count,
                swept=exp.swept,
                document=exp.doc.data,
            )
        )
    return runs, infos


def _expand_one(exp: Experiment, runs: list[RunSpec], by_id: dict[str, int]) -> int:
    """Append ``exp``'s new runs to ``runs``; its run count, shared runs included."""
    for axis in exp.plan.axes:
        if isinstance(axis.values, LazyAxisValues):
            axis.values = axis.values.build()
    base = {"params": exp.params, "placement": exp.placement}
    index = 0
    count = 0
    head = _identity_head(exp)
    name, command, env, cwd, resources, executor = (
        exp.name,
        exp.command,
        exp.env,
        exp.cwd,
        exp.resources,
        exp.executor,
    )
    retries, tags, ovs, label, sd, ch, xtra = (
        exp.retries,
        exp.tags,
        exp.overrides,
        exp.label,
        exp.settings_digest,
        exp.code_hash,
        exp.extra,
    )
    workload = exp.workload
    gc_was_enabled = gc.isenabled()
    gc.disable()  # 100k small dicts trigger needless collections; nothing here is cyclic
    try:
        first_new = len(runs)
        derive = exp.doc.dynamic.apply if exp.doc.dynamic else None
        for rid, bid, ident, params, placement, seed, rep in expand(
            exp.plan, base, head, ch, derive
        ):
            j = by_id.get(rid)
            if j is not None:
                if j < first_new:  # asked for by an earlier experiment too: run it once
                    also = runs[j].extra.setdefault("also_in", [])
                    if name not in also:
                        also.append(name)
                continue
            by_id[rid] = len(runs)
            runs.append(
                _new_run(
                    name,
                    rid,
                    bid,
                    index,
                    ident,
                    params,
                    workload,
                    command,
                    env,
                    cwd,
                    placement,
                    seed,
                    rep,
                    resources,
                    executor,
                    retries,
                    tags,
                    ovs,
                    label,
                    sd,
                    ch,
                    dict(xtra) if xtra else {},
                )
            )
            index += 1
        shared = sum(1 for r in runs[:first_new] if name in r.extra.get("also_in", ()))
        count = index + shared
    finally:
        if gc_was_enabled:
            gc.enable()
    return count


def _identity_head(exp: Experiment) -> dict[str, Any]:
    head: dict[str, Any] = {"v": IDENTITY_VERSION}
    if exp.workload is not None:
        head["workload"] = exp.workload
    else:
        head["command"] = list(exp.command or ())
    if exp.extras:
        head["include"] = exp.extras
    return head


def _fast_constructor(cls: type) -> Any:
    """A positional constructor for a frozen, slotted dataclass that skips the frozen
    ``__setattr__`` dance: setting 22 fields through ``object.__setattr__`` costs ~5 us a run,
    most of the budget for a 100,000-run sweep. Falls back to the class when it has no slots.
    The result is equal (``==``) to what the class builds; a test pins that."""
    import dataclasses

    names = [f.name for f in dataclasses.fields(cls)]
    if not all(n in getattr(cls, "__slots__", ()) for n in names):
        return cls
    ns: dict[str, Any] = {"_new": object.__new__, "_cls": cls}
    body = ["def make(" + ", ".join(names) + "):", "    o = _new(_cls)"]
    for i, n in enumerate(names):
        ns[f"_s{i}"] = getattr(cls, n).__set__
        body.append(f"    _s{i}(o, {n})")
    body.append("    return o")
    exec("\n".join(body), ns)
    return ns["make"]


_new_run = _fast_constructor(RunSpec)
