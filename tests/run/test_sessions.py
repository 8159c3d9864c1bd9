"""The apply and refresh use cases as library calls: the whole `hpcx apply` / `hpcx refresh`
sequence without the CLI, on a real project, state and local executor."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

from hpcx.errors import HpcxError, PlanError, StateError
from hpcx.run.apply import ApplyHooks, ApplyRequest, PlanReview, Selection, apply_session
from hpcx.run.refresh import refresh_session
from hpcx.state.backup import list_backups
from hpcx.state.lock import lock_path
from hpcx.state.store import StateStore

PROGRAM = "import json, sys; print(json.dumps({{'value': int(sys.argv[1]) * 2}}))"


def _project(root: Path, values: list[int]) -> Path:
    doc = {
        "apiVersion": "hpcx/v1",
        "kind": "Experiment",
        "metadata": {"name": "double"},
        "spec": {
            "command": [sys.executable, "-c", PROGRAM, "{params.x}"],
            "params": {"x": values[0]},
            "sweep": {"grid": {"x": values}},
            "results": {"stdout_json": True},
        },
    }
    (root / "manifests").mkdir(parents=True)
    (root / "manifests" / "double.yaml").write_text(json.dumps(doc))
    return root


def _request(root: Path, **kw: Any) -> ApplyRequest:
    return ApplyRequest(
        project_root=root,
        state_path=root / ".hpcx" / "state.duckdb",
        runs_root=root / "runs",
        **kw,
    )


class Recorder(ApplyHooks):
    def __init__(self, answer: bool = True) -> None:
        self.answer = answer
        self.calls: list[str] = []
        self.seen: list[str] = []

    def show(self, review: PlanReview) -> None:
        self.calls.append(f"show {len(review.todo)}")

    def confirm(self, review: PlanReview) -> bool:
        self.calls.append("confirm")
        return self.answer

    def starting(self, review: PlanReview) -> None:
        self.calls.append(f"starting {review.to_submit}")

    def progress(self, run_id: str, observed: Any) -> None:
        if observed.final:
            self.seen.append(observed.state)


@pytest.fixture(autouse=True)
def _env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HPCX_BACKUPS", raising=False)
    monkeypatch.delenv("HPCX_STATE", raising=False)
    monkeypatch.delenv("HPCX_RUNS_ROOT", raising=False)


def test_apply_session_plans_confirms_runs_and_harvests(tmp_path: Path) -> None:
    root = _project(tmp_path / "proj", [1, 2, 3])
    hooks = Recorder()
    done = apply_session(_request(root), hooks)
    assert hooks.calls == ["show 3", "confirm", "starting 3"]
    assert done.outcome is not None and not done.declined
    assert done.outcome.to_dict()["finished"] == {"succeeded": 3}
    assert sorted(hooks.seen) == ["succeeded"] * 3
    assert not lock_path(root / ".hpcx" / "state.duckdb").exists()
    with StateStore.open(root / ".hpcx" / "state.duckdb", read_only=True) as store:
        values = sorted(
            m[1]
            for r in store.run_summaries()
            for m in store.latest_metrics(r.run_id)[1]
            if m[0] == "value"
        )
    assert values == [2.0, 4.0, 6.0]
    # A second apply has nothing to do: shown, never confirmed.
    hooks = Recorder()
    again = apply_session(_request(root), hooks)
    assert again.outcome is None and not again.declined and hooks.calls == ["show 0"]


def test_apply_session_declined_applies_nothing_and_a_bad_selector_is_refused(
    tmp_path: Path,
) -> None:
    root = _project(tmp_path / "proj", [1, 2])
    done = apply_session(_request(root), Recorder(answer=False))
    assert done.declined and done.outcome is None and len(done.review.todo) == 2
    assert not (root / ".hpcx" / "state.duckdb").exists()  # nothing written at all
    with pytest.raises(HpcxError, match="-e nope"):
        apply_session(_request(root, selection=Selection.parse(experiments=["nope"])))
    with pytest.raises(PlanError, match="--set cannot change a saved plan"):
        apply_session(_request(root, paths=(root / "plan.json",), overrides=("x=1",)))


def test_refresh_session_backs_up_and_reharvests(tmp_path: Path) -> None:
    root = _project(tmp_path / "proj", [5])
    state = root / ".hpcx" / "state.duckdb"
    with pytest.raises(StateError, match="no state at"):
        refresh_session(state)
    apply_session(_request(root))
    before = len(list_backups(state))
    done = refresh_session(state, runs_root=root / "runs")
    assert done.reharvest is None and done.refresh.changed == 0
    assert len(list_backups(state)) == before + 1  # the state moved on since the last one
    again = refresh_session(state, runs_root=root / "runs", reharvest_runs=True)
    assert again.reharvest is not None
    assert again.reharvest.runs == 1 and again.reharvest.metrics == again.reharvest.dropped > 0
    with pytest.raises(HpcxError, match="select what --reharvest re-reads"):
        refresh_session(state, experiments=["double"])
