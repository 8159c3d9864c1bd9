"""``restore_session()``: the restore use case as a library call, on a real project's state."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from support.cli import hpcx
from support.projects import manifest, query, state_path

from hpcx.state.writer import restore_session


@pytest.fixture
def root(project: Callable[[dict[str, str]], Path]) -> Path:
    root = project({"a": manifest("a", ["--metric", "x", "1"], grid={"i": [0, 1]})})
    hpcx(root, "apply", "--yes", "-q", check=True)
    return root


def test_restore_session_puts_the_backup_back_and_names_later_submissions(root: Path) -> None:
    (root / "manifests" / "b.yaml").write_text(manifest("b", ["--metric", "x", "2"]))
    hpcx(root, "apply", "--yes", "-q", check=True)
    assert query(root, "SELECT count(*) FROM runs")[0][0] == 3
    done = restore_session(state_path(root), None, runs_root=root / "runs", force=True)
    assert done.restored.state == state_path(root)
    assert query(root, "SELECT count(*) FROM runs")[0][0] == 2
    assert len(done.unknown_submissions) == 1
