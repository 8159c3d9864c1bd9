"""``cancel_session()``: the cancel use case as a library call, with its result to render."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest
from support.cli import hpcx
from support.projects import manifest, runs, state_path, wait_for

from hpcx.errors import HpcxError
from hpcx.run.cancel import cancel_session


def test_nothing_selected_is_an_error_not_a_silent_no_op(tmp_path: Path) -> None:
    with pytest.raises(HpcxError, match="say what to cancel"):
        cancel_session(tmp_path / "state.duckdb")


def test_a_running_run_is_cancelled_and_counted(
    project: Callable[[dict[str, str]], Path], tmp_path: Path
) -> None:
    started = tmp_path / "started"
    root = project({"bg": manifest("bg", ["--touch-started", str(started), "--sleep", "60"])})
    hpcx(root, "apply", "--yes", "--detach", check=True)
    wait_for(lambda: started.exists() and any(started.iterdir()), 30, "the run to start")
    (rid,) = runs(root)
    t0 = time.monotonic()
    done = cancel_session(state_path(root), runs=[rid[:8]], wait=30)
    assert time.monotonic() - t0 < 30
    assert done.asked == {rid}
    assert (done.cancelled, done.stopping, done.ended_on_their_own, done.unreached) == (
        1, 0, {}, []
    )
    again = cancel_session(state_path(root), all_in_flight=True)
    assert (again.asked, again.cancelled) == (set(), 0)
