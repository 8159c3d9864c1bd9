"""``run_status()``: the status use case as a library call, on a real project's state."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from support.cli import hpcx
from support.projects import manifest, state_path

from hpcx.errors import HpcxError
from hpcx.run.status import run_status


@pytest.fixture
def root(project: Callable[[dict[str, str]], Path]) -> Path:
    root = project({"a": manifest("a", ["--metric", "x", "1"], grid={"i": [0, 1]})})
    hpcx(root, "apply", "--yes", "-q", check=True)
    return root


def test_run_status_counts_filters_and_lists(root: Path) -> None:
    found = run_status(state_path(root))
    assert (found.by_experiment, found.runs, found.contended) == ({"a": {"succeeded": 2}}, [], [])
    listed = run_status(state_path(root), experiments=["a"], list_runs=True)
    assert sorted(r.status for r in listed.runs) == ["succeeded", "succeeded"]
    with pytest.raises(HpcxError, match="no run is running"):
        run_status(state_path(root), statuses=["running"])
    with pytest.raises(HpcxError, match="nope"):
        run_status(state_path(root), experiments=["nope"])
