"""Helpers of the dependency tests (tests/run/test_deps_*.py): plan changes for specs, a run
as the state records it, and its run folder's status."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

from hpcx.manifest.spec import RunSpec
from hpcx.plan.planner import Action, RunChange
from hpcx.state.store import open_reader


def changes(runs: list[RunSpec], action: Action = Action.CREATE) -> list[RunChange]:
    """One change per run, as a plan would make it (``create``, or ``retry``)."""
    return [RunChange(action, action.value, r, r.run_id, r.experiment, None) for r in runs]


def record(state: Path, run_id: str) -> dict[str, Any]:
    """The run's columns in the state, with its ``events``."""
    with open_reader(state) as store:
        detail = store.run_detail(run_id)
    return {**detail.record, "events": detail.events}


def folder_status(rec: dict[str, Any]) -> dict[str, Any]:
    """The status.json of the run folder the state records for a run."""
    doc: dict[str, Any] = json.loads((Path(rec["run_dir"]) / "status.json").read_text())
    return doc


def ts(value: Any) -> datetime:
    """A timestamp as the state gives it (or its text)."""
    return value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
