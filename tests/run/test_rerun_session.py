"""``rerun_session()``: the rerun use case as a library call, asking its caller through hooks."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from support.cli import hpcx
from support.projects import manifest, runs, state_path

from hpcx.run.rerun import RerunHooks, rerun_session


class _Recorder(RerunHooks):
    def __init__(self, answer: bool) -> None:
        self.answer = answer
        self.calls: list[str] = []

    def show(self, change: Any) -> None:
        self.calls.append(f"show {change.run_id} {change.prior_status}")

    def confirm(self, change: Any) -> bool:
        self.calls.append("confirm")
        return self.answer

    def starting(self, change: Any) -> None:
        self.calls.append("starting")


def test_a_declined_rerun_changes_nothing_and_an_accepted_one_makes_a_new_attempt(
    project: Callable[[dict[str, str]], Path],
) -> None:
    root = project({"one": manifest("one", ["--metric", "loss", "0.5"])})
    hpcx(root, "apply", "--yes", check=True)
    (rid,) = runs(root)
    where = {"project_root": root, "runs_root": root / "runs"}

    no = _Recorder(False)
    declined = rerun_session(state_path(root), rid[:8], hooks=no, **where)
    assert (declined.declined, declined.outcome) == (True, None)
    assert no.calls == [f"show {rid} succeeded", "confirm"]
    assert runs(root)[rid]["attempts"] == 1

    yes = _Recorder(True)
    done = rerun_session(state_path(root), rid, hooks=yes, **where)
    assert yes.calls == [f"show {rid} succeeded", "confirm", "starting"]
    assert done.outcome is not None and done.outcome.to_dict()["finished"] == {"succeeded": 1}
    assert runs(root)[rid]["attempts"] == 2
