"""The plan: what the manifests want against what the state has, decided purely.

In: the manifests' runs and a :class:`~hpcx.state.StateSnapshot`. Out: a :class:`Plan` (one
:class:`RunChange` per run: create, replace, retry, keep, delete, each with its reason), saved
plan files that remember the state's serial, and the text ``hpcx plan`` prints.
:func:`plan_manifests` is the whole of ``hpcx plan`` as a library call.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from hpcx.util.lazy import lazy_exports

if TYPE_CHECKING:
    from hpcx.plan.planner import (
        Action,
        Plan,
        RunChange,
        load_saved_plan,
        make_plan,
        save_plan,
        summary_line,
    )
    from hpcx.plan.session import PlannedManifests, plan_manifests

__all__ = [
    "Action",
    "Plan",
    "PlannedManifests",
    "RunChange",
    "load_saved_plan",
    "make_plan",
    "plan_manifests",
    "save_plan",
    "summary_line",
]

# Each name is imported from its module on first use, so importing one module of this
# stage does not load the others.
__getattr__ = lazy_exports(__name__, {
    "Action": "planner",
    "Plan": "planner",
    "PlannedManifests": "session",
    "RunChange": "planner",
    "load_saved_plan": "planner",
    "make_plan": "planner",
    "plan_manifests": "session",
    "save_plan": "planner",
    "summary_line": "planner",
})
